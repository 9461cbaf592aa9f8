package sfu

import (
	"math"
	"sync"
	"sync/atomic"
)

// A send-side bandwidth estimator in the manner of Google Congestion Control
// (draft-ietf-rmcat-gcc and libwebrtc's goog_cc): a trendline detector on
// the one-way delay variation of packet groups, an AIMD controller driven by
// that detector and by the acknowledged bitrate, and a loss-based cap. It is
// fed once per transport-wide feedback packet instead of once per media
// packet (which is what made Pion's interceptor/pkg/gcc too expensive for us).
//
// It is pure logic: the caller supplies every timestamp, there are no
// goroutines or timers, so tests can drive it with simulated time.

// ack is one packet reported by a TWCC feedback.
type ack struct {
	sent     int64 // send time at the server, nanotime (0 = unknown: ignore the packet entirely)
	arrived  int64 // arrival time on the receiver's clock, ns (only differences matter); meaningful iff received
	size     int   // bytes on the wire (RTP header + payload)
	received bool
}

// estimatorStats is a snapshot for metrics and logs. Rates are bit/s.
type estimatorStats struct {
	TargetBps    int     // what target() returns
	DelayBps     int     // delay-based (AIMD) rate
	LossBps      int     // loss-based rate; equals DelayBps while loss is not limiting
	AckedBps     int     // receive rate over the last 500 ms of arrivals; 0 = not known yet
	LossFraction float64 // loss over the last loss update (>= 20 packets and 500 ms)
	State        string  // detector state: "normal", "overuse" or "underuse"
	Trend        float64 // modified trend compared with Threshold (ms)
	Threshold    float64 // adaptive detector threshold (ms)
	Decreases    int     // delay-based decreases so far (overuse reactions)
}

// Constants follow libwebrtc's names and values where one exists.
const (
	estMs = int64(1_000_000) // ns
	estS  = 1000 * estMs

	// Inter-arrival grouping.
	estGroupSpan      = 5 * estMs // packets sent within 5 ms of a group's first packet are one burst
	estClockJump      = 3 * estS  // |arrival delta - send delta| beyond this is a clock reset, not congestion
	estReorderedReset = 3         // consecutive reordered groups after which we resynchronise

	// Trendline filter and overuse detector.
	estTrendWindow    = 20
	estSmoothing      = 0.9
	estTrendGain      = 4.0
	estMinNumDeltas   = 60
	estMaxNumDeltas   = 1000
	estOverusingMs    = 10.0
	estThresholdInit  = 12.5
	estKUp            = 0.0087
	estKDown          = 0.039
	estThresholdMin   = 6.0
	estThresholdMax   = 600.0
	estMaxAdaptOffset = 15.0
	estMaxThreshStep  = 100.0 // ms

	// Acknowledged bitrate.
	estAckedWindow = 500 * estMs
	// Window of the throughput test that tells congestion from a receiver
	// that stamps arrivals late: long enough that a stall of ~150 ms in its
	// stamping moves the acked rate by far less than 1 - estThroughRatio.
	estThroughWindow = 2 * estS

	// AIMD rate control. Ours, not libwebrtc's: an overuse counts only while
	// the acked rate is below estThroughRatio of the sent rate (both over
	// estThroughWindow), or once it has lasted estOveruseHold. A busy
	// receiver (Chromium or Pion on a loaded machine) stamps arrivals late
	// and in bursts: its delay rises and falls with no queue and no loss.
	estThroughRatio    = 0.9
	estOveruseHold     = 2500 * estMs
	estBeta            = 0.85
	estReduceInterval  = 200 * estMs // RTT unknown: libwebrtc clamps rtt to at most 200 ms here
	estIncreaseFactor  = 1.08        // per second while far from the link capacity
	estMinMultIncrease = 1000.0      // bit/s per second, so a tiny rate can still grow
	estResponseTime    = 0.3         // s: 100 ms detector delay + 200 ms assumed RTT
	estMinAddIncrease  = 4000.0      // bit/s per second
	estPacketBits      = 1200 * 8
	estMaxIncreaseStep = estS // elapsed time counted per increase is capped so a stall does not cause a jump

	// Loss-based control.
	estLossMinPackets       = 20          // libwebrtc kLimitNumPackets
	estLossMinInterval      = 500 * estMs // libwebrtc uses 1 s for TWCC loss; see updateLossRate
	estLossHigh             = 0.10
	estLossLow              = 0.02
	estLossDecreaseInterval = 300 * estMs
	estLossIncreaseFactor   = 1.05 // per second

	estNever = int64(math.MinInt64 / 4) // "no such event yet"; now-estNever does not overflow
)

// estimator: create with newEstimator, call onFeedback from one goroutine;
// target and stats may be called from any goroutine.
type estimator struct {
	minBps, maxBps float64

	targetBps atomic.Int64
	mu        sync.Mutex     // a leaf; publish takes it under Peer.estMu
	snap      estimatorStats // guarded by mu; rebuilt after every feedback

	// inter-arrival grouping
	cur, prev estGroup
	reordered int

	// trendline filter and detector
	numDeltas      int
	accDelay       float64
	smoothDelay    float64
	firstArrival   int64
	haveFirst      bool
	hist           [estTrendWindow]estPoint
	histHead       int
	histN          int
	prevTrend      float64
	modTrend       float64
	overMs         float64 // time spent over the threshold, -1 = not over
	overCount      int
	threshold      float64
	lastThreshMs   float64
	haveThreshTime bool
	usage          estUsage

	acked estAckedRate
	// the throughput test: received packets by arrival, and every packet
	// (lost ones included) by send time, over estThroughWindow
	thruAcked, thruSent estAckedRate
	// overSince: when the current overuse began (estNever: not in overuse)
	overSince int64

	// AIMD
	delayBps     float64
	increasing   bool // false = hold (also right after a decrease)
	lastChange   int64
	lastDecrease int64
	link         estLink
	decreases    int

	// loss-based
	lossBps          float64
	lossLimited      bool // a high-loss decrease happened and lossBps has not caught up with delayBps
	lossTotal        int
	lossLost         int
	lossFrac         float64
	lastLossUpdate   int64
	lastLossDecrease int64
}

// newEstimator starts at initialBps, clamped to [minBps, maxBps]. A maxBps
// below minBps is raised to minBps.
func newEstimator(initialBps, minBps, maxBps int) *estimator {
	if minBps < 0 {
		minBps = 0
	}
	if maxBps < minBps {
		maxBps = minBps
	}
	e := &estimator{
		minBps:           float64(minBps),
		maxBps:           float64(maxBps),
		overMs:           -1,
		threshold:        estThresholdInit,
		lastChange:       estNever,
		lastDecrease:     estNever,
		overSince:        estNever,
		lastLossUpdate:   estNever,
		lastLossDecrease: estNever,
		link:             estLink{dev: 0.4},
	}
	e.delayBps = e.clamp(float64(initialBps))
	e.lossBps = e.delayBps
	e.thruAcked.window, e.thruSent.window = estThroughWindow, estThroughWindow
	e.acked.grow() // typical windows fit, so steady state does not allocate
	e.thruAcked.grow()
	e.thruSent.grow()
	e.publish()
	return e
}

// target returns the current target in bit/s, clamped to [min, max].
func (e *estimator) target() int { return int(e.targetBps.Load()) }

// stats returns a snapshot of the estimator's state.
func (e *estimator) stats() estimatorStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snap
}

// onFeedback processes one TWCC feedback: acks in transport sequence order,
// now = nanotime at which the feedback arrived. Feedbacks without a single
// packet of known send time change nothing.
func (e *estimator) onFeedback(now int64, acks []ack) {
	total, lost := 0, 0
	for i := range acks {
		a := &acks[i]
		if a.sent == 0 {
			continue // not sent by us (or history overwritten): nothing is known about it
		}
		total++
		e.thruSent.add(a.sent, a.size)
		if !a.received {
			lost++
			continue
		}
		e.acked.add(a.arrived, a.size)
		e.thruAcked.add(a.arrived, a.size)
		e.onPacket(a.sent, a.arrived)
	}
	if total == 0 {
		return
	}
	acked := e.acked.bps()
	e.updateDelayRate(now, acked)
	e.updateLossRate(now, total, lost)
	e.publish()
}

// onStale is told of a feedback whose packets had all left the send
// history: the path holds seconds of queue (or the feedback is that late),
// so cut as on overuse, at most every estReduceInterval.
func (e *estimator) onStale(now int64) {
	if now-e.lastDecrease < estReduceInterval {
		return
	}
	e.delayBps = e.clamp(estBeta * e.delayBps)
	e.lossBps = math.Min(e.lossBps, e.delayBps)
	e.increasing = false
	e.decreases++
	e.lastChange, e.lastDecrease = now, now
	e.publish()
}

func (e *estimator) clamp(bps float64) float64 {
	if !(bps >= e.minBps) { // also catches NaN
		return e.minBps
	}
	return math.Min(bps, e.maxBps)
}

// publish updates the atomic target and the stats snapshot.
func (e *estimator) publish() {
	t := int64(e.clamp(math.Min(e.delayBps, e.lossBps)))
	e.targetBps.Store(t)
	e.mu.Lock()
	e.snap = estimatorStats{
		TargetBps:    int(t),
		DelayBps:     int(e.delayBps),
		LossBps:      int(e.lossBps),
		AckedBps:     int(e.acked.bps()),
		LossFraction: e.lossFrac,
		State:        e.usage.String(),
		Trend:        e.modTrend,
		Threshold:    e.threshold,
		Decreases:    e.decreases,
	}
	e.mu.Unlock()
}
