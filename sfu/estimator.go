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

type estUsage uint8

const (
	estNormal estUsage = iota
	estOveruse
	estUnderuse
)

func (u estUsage) String() string {
	switch u {
	case estOveruse:
		return "overuse"
	case estUnderuse:
		return "underuse"
	}
	return "normal"
}

// estGroup is a burst of packets sent within estGroupSpan of its first one.
type estGroup struct {
	firstSent, lastSent int64
	lastArrival         int64 // latest arrival in the group: when the burst was fully received
	valid               bool
}

type estPoint struct{ x, y float64 } // arrival ms since the first delta, smoothed delay ms

// estLink estimates the link capacity seen at overuse, in kbit/s, with a
// normalised variance; it tells AIMD when it is close to the rate at which
// the link last congested (additive increase) or far from it (multiplicative).
type estLink struct {
	kbps, dev float64
	valid     bool
}

func (l *estLink) update(bps float64) {
	const alpha = 0.05
	s := bps / 1000
	if !l.valid {
		l.kbps, l.valid = s, true
	} else {
		l.kbps = (1-alpha)*l.kbps + alpha*s
	}
	norm := math.Max(l.kbps, 1)
	err := l.kbps - s
	l.dev = math.Min(math.Max((1-alpha)*l.dev+alpha*err*err/norm, 0.4), 2.5)
}

func (l *estLink) upper() float64 {
	if !l.valid {
		return math.Inf(1)
	}
	return (l.kbps + 3*math.Sqrt(l.kbps*l.dev)) * 1000
}

func (l *estLink) lower() float64 {
	if !l.valid {
		return 0
	}
	return math.Max(0, l.kbps-3*math.Sqrt(l.kbps*l.dev)) * 1000
}

// estAckedRate sums the bytes of received packets whose arrival lies within
// estAckedWindow of the latest arrival. A ring of packets rather than time
// buckets keeps it exact; the ring only grows to the packets of one window.
type estAckedRate struct {
	window  int64 // 0 = estAckedWindow
	at      []int64
	size    []int32
	head, n int
	bytes   int64
	first   int64 // earliest arrival since the last reset
	latest  int64
	started bool
}

func (r *estAckedRate) span() int64 {
	if r.window > 0 {
		return r.window
	}
	return estAckedWindow
}

func (r *estAckedRate) add(at int64, size int) {
	w := r.span()
	if !r.started || at < r.latest-estClockJump {
		// first packet, or the receiver clock went back: start over
		r.head, r.n, r.bytes = 0, 0, 0
		r.first, r.latest, r.started = at, at, true
	}
	if at <= r.latest-w {
		return // late (reordered) arrival that is already outside the window
	}
	if at > r.latest {
		r.latest = at
	}
	if r.n == len(r.at) {
		r.grow()
	}
	i := (r.head + r.n) % len(r.at)
	r.at[i], r.size[i] = at, int32(size)
	r.n++
	r.bytes += int64(size)
	for r.n > 0 && r.at[r.head] <= r.latest-w {
		r.bytes -= int64(r.size[r.head])
		r.head = (r.head + 1) % len(r.at)
		r.n--
	}
}

func (r *estAckedRate) grow() {
	c := 2 * len(r.at)
	if c == 0 {
		c = 256
	}
	at, size := make([]int64, c), make([]int32, c)
	for i := 0; i < r.n; i++ {
		j := (r.head + i) % len(r.at)
		at[i], size[i] = r.at[j], r.size[j]
	}
	r.at, r.size, r.head = at, size, 0
}

// bps is 0 until arrivals span a whole window: a shorter span would make
// the first packets of a stream look like a burst at a huge rate.
func (r *estAckedRate) bps() float64 {
	w := r.span()
	if !r.started || r.latest-r.first < w {
		return 0
	}
	return float64(r.bytes) * 8 * float64(estS) / float64(w)
}

// estimator: create with newEstimator, call onFeedback from one goroutine;
// target and stats may be called from any goroutine.
type estimator struct {
	minBps, maxBps float64

	targetBps atomic.Int64
	mu        sync.Mutex
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

// onPacket adds a received packet to the current send group; when the
// packet starts a new group the current one is complete and is compared
// with the previous complete group.
func (e *estimator) onPacket(sent, arrived int64) {
	g := &e.cur
	switch {
	case !g.valid:
		*g = estGroup{firstSent: sent, lastSent: sent, lastArrival: arrived, valid: true}
		return
	case sent < g.firstSent:
		return // sent before the current group: out of order, as libwebrtc drops it
	case sent-g.firstSent <= estGroupSpan:
		g.lastSent = max(g.lastSent, sent)
		g.lastArrival = max(g.lastArrival, arrived)
		return
	}
	if e.prev.valid {
		sendDelta := e.cur.lastSent - e.prev.lastSent
		arrDelta := e.cur.lastArrival - e.prev.lastArrival
		switch {
		case arrDelta-sendDelta >= estClockJump || arrDelta-sendDelta <= -estClockJump:
			// A receiver clock jump (or a long outage) says nothing about
			// queueing: forget the groups, keep the filter.
			e.prev = estGroup{}
			e.reordered = 0
		case arrDelta < 0:
			// The current group arrived before the previous one: its delta
			// would be meaningless. Drop the group and measure the next one
			// against prev, unless the receiver clock really went back.
			e.reordered++
			if e.reordered >= estReorderedReset {
				e.prev = e.cur
				e.reordered = 0
			}
		default:
			e.reordered = 0
			e.updateTrend(float64(arrDelta-sendDelta)/float64(estMs), float64(sendDelta)/float64(estMs), e.cur.lastArrival)
			e.prev = e.cur
		}
	} else {
		e.prev = e.cur
	}
	e.cur = estGroup{firstSent: sent, lastSent: sent, lastArrival: arrived, valid: true}
}

// updateTrend is libwebrtc's TrendlineEstimator::UpdateTrendline: the slope
// of the smoothed accumulated delay over the last estTrendWindow groups says
// whether queues are building (positive), draining (negative) or stable.
func (e *estimator) updateTrend(deltaMs, sendDeltaMs float64, arrival int64) {
	e.numDeltas = min(e.numDeltas+1, estMaxNumDeltas)
	if !e.haveFirst {
		e.firstArrival, e.haveFirst = arrival, true
	}
	e.accDelay += deltaMs
	e.smoothDelay = estSmoothing*e.smoothDelay + (1-estSmoothing)*e.accDelay
	x := float64(arrival-e.firstArrival) / float64(estMs)
	e.hist[(e.histHead+e.histN)%estTrendWindow] = estPoint{x, e.smoothDelay}
	if e.histN < estTrendWindow {
		e.histN++
	} else {
		e.histHead = (e.histHead + 1) % estTrendWindow
	}
	trend := e.prevTrend
	if e.histN == estTrendWindow {
		if s, ok := e.slope(); ok {
			trend = s
		}
	}
	e.detect(trend, sendDeltaMs, x)
}

// slope is the least-squares slope of the history (ms of delay per ms).
func (e *estimator) slope() (float64, bool) {
	var sx, sy float64
	for i := 0; i < e.histN; i++ {
		p := e.hist[i]
		sx += p.x
		sy += p.y
	}
	n := float64(e.histN)
	mx, my := sx/n, sy/n
	var num, den float64
	for i := 0; i < e.histN; i++ {
		p := e.hist[i]
		num += (p.x - mx) * (p.y - my)
		den += (p.x - mx) * (p.x - mx)
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

// detect compares the modified trend with the adaptive threshold. Overuse
// needs more than estOverusingMs over it across at least two groups and a
// trend that is not already falling, so single delay spikes are ignored.
func (e *estimator) detect(trend, tsDeltaMs, nowMs float64) {
	if e.numDeltas < 2 {
		e.usage = estNormal
		return
	}
	mod := float64(min(e.numDeltas, estMinNumDeltas)) * trend * estTrendGain
	e.modTrend = mod
	switch {
	case mod > e.threshold:
		if e.overMs < 0 {
			e.overMs = tsDeltaMs / 2
		} else {
			e.overMs += tsDeltaMs
		}
		e.overCount++
		if e.overMs > estOverusingMs && e.overCount > 1 && trend >= e.prevTrend {
			e.overMs, e.overCount = 0, 0
			e.usage = estOveruse
		}
	case mod < -e.threshold:
		e.overMs, e.overCount = -1, 0
		e.usage = estUnderuse
	default:
		e.overMs, e.overCount = -1, 0
		e.usage = estNormal
	}
	e.prevTrend = trend
	e.updateThreshold(mod, nowMs)
}

// updateThreshold adapts the threshold towards |trend| (fast down, slow up),
// so the detector neither starves against TCP flows nor fires on jitter.
// Outliers far above the threshold are not followed.
func (e *estimator) updateThreshold(mod, nowMs float64) {
	if !e.haveThreshTime {
		e.lastThreshMs, e.haveThreshTime = nowMs, true
	}
	a := math.Abs(mod)
	if a > e.threshold+estMaxAdaptOffset {
		e.lastThreshMs = nowMs
		return
	}
	k := estKUp
	if a < e.threshold {
		k = estKDown
	}
	dt := math.Min(math.Max(nowMs-e.lastThreshMs, 0), estMaxThreshStep)
	e.threshold += k * (a - e.threshold) * dt
	e.threshold = math.Min(math.Max(e.threshold, estThresholdMin), estThresholdMax)
	e.lastThreshMs = nowMs
}

// updateDelayRate runs the AIMD controller on the detector state. acked is
// the acknowledged bitrate, 0 if not yet known.
func (e *estimator) updateDelayRate(now int64, acked float64) {
	if e.usage != estOveruse {
		e.overSince = estNever
	}
	switch e.usage {
	case estOveruse:
		e.increasing = false
		if e.overSince == estNever {
			e.overSince = now
		}
		if got, sent := e.thruAcked.bps(), e.thruSent.bps(); (got == 0 || sent == 0 || got >= estThroughRatio*sent) && now-e.overSince < estOveruseHold {
			// The delay grew but what was sent got through at the rate it
			// was sent (or the rates are not known yet): a receiver that
			// stamps arrivals late, not a queue. Hold rather than cut, but
			// keep what got through as a floor (see increase); a queue
			// that keeps growing for estOveruseHold is real even when the
			// overshoot is small.
			if acked > e.delayBps && !e.link.valid {
				e.delayBps = acked
			}
			break
		}
		// The detector stays in overuse while queues keep growing; the
		// acked rate lags a sudden capacity drop, so allow a further
		// decrease every estReduceInterval (or at once when far too high).
		if now-e.lastDecrease >= estReduceInterval || (acked > 0 && acked < 0.5*e.delayBps) {
			e.decrease(now, acked)
		}
	case estUnderuse:
		// Queues are draining: hold until they are empty, or we would
		// refill them at once.
		e.increasing = false
	default:
		if !e.increasing {
			e.increasing = true
			e.lastChange = now // the time spent holding is not ramp-up time
		}
		e.increase(now, acked)
	}
	e.delayBps = e.clamp(e.delayBps)
}

func (e *estimator) decrease(now int64, acked float64) {
	base := acked
	if base <= 0 {
		base = e.delayBps
	}
	nb := estBeta * base
	if acked > 0 && nb > e.delayBps && e.link.valid {
		nb = estBeta * e.link.kbps * 1000
	}
	if nb < e.delayBps { // never raise the rate on overuse
		e.delayBps = nb
	}
	if acked > 0 {
		if acked < e.link.lower() {
			e.link = estLink{dev: e.link.dev} // capacity changed: the old estimate would mislead
		}
		e.link.update(acked)
	}
	e.decreases++
	e.lastChange, e.lastDecrease = now, now
}

func (e *estimator) increase(now int64, acked float64) {
	if acked > 0 && acked > e.link.upper() {
		e.link = estLink{dev: e.link.dev} // well above the old capacity: ramp fast again
	}
	limit := math.Inf(1)
	if acked > 0 {
		// Do not run away above what is actually sent: an app-limited
		// stream would otherwise "prove" any rate.
		limit = 1.5*acked + 10_000
		// Far from any capacity seen at overuse, what got through without
		// queueing is a floor for the link: take it at once (libwebrtc's
		// probe result) instead of creeping up to it, or a probe of the next
		// layer never proves its cost in time. Near that capacity, keep
		// the headroom the last decrease made to drain the queue.
		if acked > e.delayBps && !e.link.valid {
			e.delayBps = acked
		}
	}
	if e.delayBps < limit {
		dt := float64(min(max(now-e.lastChange, 0), estMaxIncreaseStep)) / float64(estS)
		var inc float64
		if e.link.valid {
			// Near the capacity at which we last congested: about one
			// packet per response time.
			frame := e.delayBps / 30
			ppf := math.Max(math.Ceil(frame/estPacketBits), 1)
			inc = math.Max(frame/ppf/estResponseTime, estMinAddIncrease) * dt
		} else {
			inc = math.Max(e.delayBps*(math.Pow(estIncreaseFactor, dt)-1), estMinMultIncrease*dt)
		}
		e.delayBps = math.Min(e.delayBps+inc, limit)
	}
	e.lastChange = now
}

// updateLossRate accumulates loss counts until enough packets make the
// fraction meaningful, then applies the loss-based controller: back off on
// more than 10 % loss, recover slowly below 2 %, hold in between.
//
// One feedback holds only 5-20 packets at typical rates, where a single
// random loss reads as 5-20 %; even 20 packets of a 1 % loss link show more
// than 10 % about once in a thousand. Hence at least estLossMinPackets and
// estLossMinInterval per decision (libwebrtc uses 1 s for TWCC loss).
func (e *estimator) updateLossRate(now int64, total, lost int) {
	e.lossTotal += total
	e.lossLost += lost
	if e.lastLossUpdate == estNever {
		e.lastLossUpdate = now // the first interval starts with the first feedback
	}
	if e.lossTotal >= estLossMinPackets && now-e.lastLossUpdate >= estLossMinInterval {
		frac := float64(e.lossLost) / float64(e.lossTotal)
		e.lossTotal, e.lossLost = 0, 0
		e.lossFrac = frac
		switch {
		case frac > estLossHigh:
			if now-e.lastLossDecrease >= estLossDecreaseInterval {
				// From the effective rate, or a stale higher loss rate
				// would take several steps to bite.
				e.lossBps = math.Min(e.lossBps, e.delayBps) * (1 - 0.5*frac)
				e.lossLimited = true
				e.lastLossDecrease = now
			}
		case frac < estLossLow:
			if e.lossLimited {
				dt := float64(min(max(now-e.lastLossUpdate, 0), estS)) / float64(estS)
				e.lossBps *= math.Pow(estLossIncreaseFactor, dt)
			}
		}
		e.lastLossUpdate = now
	}
	// Until loss forces a decrease the loss-based rate does not limit:
	// it follows the delay-based rate instead of ramping (more slowly) on
	// its own, and a later decrease starts from the effective rate.
	if e.lossLimited && e.lossBps >= e.delayBps {
		e.lossLimited = false
	}
	if !e.lossLimited {
		e.lossBps = e.delayBps
	}
	e.lossBps = e.clamp(e.lossBps)
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
