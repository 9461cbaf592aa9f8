package sfu

import (
	"math"
	"math/rand"
	"testing"
)

// The simulator: a paced sender (1200-byte packets) whose rate follows the
// estimator, a FIFO bottleneck, optional random loss and arrival jitter, and
// a receiver that reports every packet up to the last one received every
// 100 ms, the way TWCC feedback does. Everything runs on simulated time.

const (
	simPacket   = 1200
	simProp     = 25 * estMs            // one-way propagation delay
	simFeedback = 100 * estMs           // feedback interval
	simSendBase = int64(1.7e18)         // sender clock: unix ns
	simRecvBase = int64(42_000_000_000) // receiver clock: unrelated to the sender's
)

type simConfig struct {
	capacity  func(t int64) float64 // bottleneck bit/s at t (ns since start); nil = no bottleneck
	appLimit  float64               // the sender never sends faster (0 = no limit)
	fixedRate float64               // >0: send at this rate regardless of the target
	start     int
	min, max  int
	loss      float64 // random loss probability
	jitter    int64   // arrival jitter, uniform in ±jitter ns
	duration  int64
	seed      int64
}

type simSample struct {
	t      int64 // ns since start, when the feedback was processed
	target int
	queue  int64 // queueing delay of the last packet sent, ns
	st     estimatorStats
}

type simPkt struct {
	sent, arrived int64 // sim time, ns
	dropped       bool
}

func simulate(t testing.TB, c simConfig) []simSample {
	t.Helper()
	if c.min == 0 {
		c.min = 30_000
	}
	if c.max == 0 {
		c.max = 20_000_000
	}
	rng := rand.New(rand.NewSource(c.seed + 1))
	e := newEstimator(c.start, c.min, c.max)
	var (
		samples  []simSample
		pending  []simPkt
		acks     []ack
		nextSend int64
		nextFb   = simFeedback
		linkFree int64
		queue    int64
	)
	for nextSend < c.duration || nextFb < c.duration {
		if nextSend <= nextFb {
			p := simPkt{sent: nextSend, dropped: rng.Float64() < c.loss}
			dep := nextSend
			if c.capacity != nil {
				start := max(nextSend, linkFree)
				queue = start - nextSend
				dep = start + int64(simPacket*8/c.capacity(start)*1e9)
				linkFree = dep
			}
			p.arrived = dep + simProp
			if c.jitter > 0 {
				p.arrived += rng.Int63n(2*c.jitter+1) - c.jitter
			}
			pending = append(pending, p)
			rate := float64(e.target())
			if c.fixedRate > 0 {
				rate = c.fixedRate
			} else if c.appLimit > 0 {
				rate = math.Min(rate, c.appLimit)
			}
			nextSend += int64(simPacket * 8 / rate * 1e9)
			continue
		}
		// Report up to the last packet such that every packet before it
		// has either arrived or been lost; later ones wait for the next
		// feedback.
		last := -1
		for i, p := range pending {
			if p.dropped {
				continue
			}
			if p.arrived > nextFb {
				break
			}
			last = i
		}
		acks = acks[:0]
		for _, p := range pending[:last+1] {
			a := ack{sent: simSendBase + p.sent, size: simPacket, received: !p.dropped}
			if a.received {
				a.arrived = simRecvBase + p.arrived
			}
			acks = append(acks, a)
		}
		pending = pending[last+1:]
		e.onFeedback(simSendBase+nextFb, acks)
		samples = append(samples, simSample{t: nextFb, target: e.target(), queue: queue, st: e.stats()})
		nextFb += simFeedback
	}
	return samples
}

func simConst(bps float64) func(int64) float64 { return func(int64) float64 { return bps } }

func simNeverDecreases(t *testing.T, s []simSample) {
	t.Helper()
	for i := 1; i < len(s); i++ {
		if s[i].target < s[i-1].target {
			t.Fatalf("target decreased at %.1fs: %d -> %d (%+v)", simSecs(s[i].t), s[i-1].target, s[i].target, s[i].st)
		}
	}
}

func simFinal(s []simSample) int { return s[len(s)-1].target }

func simSecs(ns int64) float64 { return float64(ns) / 1e9 }

func TestEstimatorSimulation(t *testing.T) {
	clean := simConfig{capacity: simConst(5e6), appLimit: 2e6, start: 1_000_000, duration: 20 * estS}
	cases := []struct {
		name  string
		cfg   simConfig
		check func(t *testing.T, s []simSample)
	}{
		{
			name: "clean link app-limited",
			cfg:  simConfig{capacity: simConst(5e6), appLimit: 1e6, start: 300_000, duration: 30 * estS},
			check: func(t *testing.T, s []simSample) {
				simNeverDecreases(t, s)
				if f := simFinal(s); f < 1_000_000 || f > 1_600_000 {
					t.Fatalf("final target %d, want [1.0M, 1.6M]", f)
				}
			},
		},
		{
			name: "jitter without congestion",
			// 1 Mbit/s = 1200 B every 9.6 ms, arrival = send + constant ± 2 ms
			cfg: simConfig{fixedRate: 1e6, jitter: 2 * estMs, start: 300_000, duration: 20 * estS},
			check: func(t *testing.T, s []simSample) {
				simNeverDecreases(t, s)
				if f := simFinal(s); f < 1_300_000 {
					t.Fatalf("final target %d, want >= 1.3M", f)
				}
			},
		},
		{
			name: "busy receiver: 10 ms arrival jitter without congestion",
			// Pion clients stamp arrivals when a goroutine reads the packet;
			// on a loaded machine that jitters by many milliseconds.
			cfg: simConfig{fixedRate: 1e6, jitter: 10 * estMs, start: 300_000, duration: 20 * estS},
			check: func(t *testing.T, s []simSample) {
				simNeverDecreases(t, s)
				if f := simFinal(s); f < 1_300_000 {
					t.Fatalf("final target %d, want >= 1.3M", f)
				}
			},
		},
		{
			name: "bottleneck 600k",
			cfg:  simConfig{capacity: simConst(600e3), appLimit: 2.5e6, start: 1_000_000, duration: 30 * estS},
			check: func(t *testing.T, s []simSample) {
				below := int64(-1)
				for _, x := range s {
					if x.target < 800_000 {
						below = x.t
						break
					}
				}
				if below < 0 || below > 10*estS {
					t.Fatalf("target not below 800k within 10 s (at %.1fs)", simSecs(below))
				}
				for _, x := range s {
					if x.t >= 20*estS && (x.target < 300_000 || x.target > 800_000) {
						t.Fatalf("target %d at %.1fs, want [300k, 800k]", x.target, simSecs(x.t))
					}
				}
				if q := s[len(s)-1].queue; q >= 500*estMs {
					t.Fatalf("final queue delay %.0f ms, want < 500 ms", float64(q)/1e6)
				}
			},
		},
		{
			name: "capacity drop 3M to 500k",
			cfg: simConfig{
				capacity: func(t int64) float64 {
					if t < 10*estS {
						return 3e6
					}
					return 500e3
				},
				appLimit: 2.5e6, start: 2_000_000, duration: 16 * estS,
			},
			check: func(t *testing.T, s []simSample) {
				for _, x := range s {
					if x.t < 10*estS && x.target < 2_000_000 {
						t.Fatalf("target %d at %.1fs before the drop, want >= 2M", x.target, simSecs(x.t))
					}
					if x.t >= 15*estS && x.target >= 700_000 {
						t.Fatalf("target %d at %.1fs, want < 700k within 5 s of the drop", x.target, simSecs(x.t))
					}
				}
			},
		},
		{
			name: "20% loss uncongested",
			cfg:  simWithLoss(clean, 0.2),
			check: func(t *testing.T, s []simSample) {
				ref := simFinal(simulate(t, clean))
				if f := simFinal(s); f >= ref/2 {
					t.Fatalf("final target %d with 20%% loss, want < %d (half of %d without loss)", f, ref/2, ref)
				}
				if st := s[len(s)-1].st; st.LossBps >= st.DelayBps {
					t.Fatalf("loss-based rate %d not limiting (delay-based %d)", st.LossBps, st.DelayBps)
				}
			},
		},
		{
			name: "1% loss uncongested",
			cfg:  simWithLoss(clean, 0.01),
			check: func(t *testing.T, s []simSample) {
				simNeverDecreases(t, s)
				ref := simFinal(simulate(t, clean))
				if f := simFinal(s); f < ref*95/100 {
					t.Fatalf("final target %d with 1%% loss, want >= 95%% of %d", f, ref)
				}
			},
		},
		{
			name: "clamped to max",
			cfg:  simConfig{capacity: simConst(5e6), appLimit: 2e6, start: 300_000, max: 600_000, duration: 20 * estS},
			check: func(t *testing.T, s []simSample) {
				for _, x := range s {
					if x.target > 600_000 {
						t.Fatalf("target %d above max", x.target)
					}
				}
				if f := simFinal(s); f != 600_000 {
					t.Fatalf("final target %d, want max 600k", f)
				}
			},
		},
		{
			name: "clamped to min",
			cfg:  simConfig{capacity: simConst(5e6), appLimit: 2e6, loss: 0.5, start: 1_000_000, min: 200_000, duration: 20 * estS},
			check: func(t *testing.T, s []simSample) {
				for _, x := range s {
					if x.target < 200_000 {
						t.Fatalf("target %d below min", x.target)
					}
				}
				if f := simFinal(s); f != 200_000 {
					t.Fatalf("final target %d, want min 200k", f)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := simulate(t, tc.cfg)
			for _, x := range s {
				if estBadStats(x.st) {
					t.Fatalf("bad stats at %.1fs: %+v", simSecs(x.t), x.st)
				}
			}
			tc.check(t, s)
			l := s[len(s)-1]
			t.Logf("final target %d, %+v, queue %.0f ms", l.target, l.st, float64(l.queue)/1e6)
		})
	}
}

func simWithLoss(c simConfig, p float64) simConfig {
	c.loss = p
	return c
}

// estBadStats reports NaN or infinite values, or an inconsistent snapshot.
func estBadStats(st estimatorStats) bool {
	for _, f := range []float64{st.LossFraction, st.Trend, st.Threshold} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return true
		}
	}
	switch st.State {
	case "normal", "overuse", "underuse":
	default:
		return true
	}
	return st.TargetBps <= 0 || st.DelayBps <= 0 || st.LossBps <= 0 || st.AckedBps < 0
}

// estFeedbackAt returns n acks of 1200 B sent every 10 ms from sent, arriving
// 30 ms later.
func estFeedbackAt(sent int64, n int) []ack {
	acks := make([]ack, n)
	for i := range acks {
		s := sent + int64(i)*10*estMs
		acks[i] = ack{sent: s, arrived: s - simSendBase + 30*estMs, size: simPacket, received: true}
	}
	return acks
}

func TestEstimatorIgnoresUnknownAndEmpty(t *testing.T) {
	e := newEstimator(500_000, 50_000, 5_000_000)
	now := simSendBase
	for i := 0; i < 30; i++ {
		e.onFeedback(now+100*estMs, estFeedbackAt(now, 10))
		now += 100 * estMs
	}
	before := e.stats()
	unknown := estFeedbackAt(now, 10)
	for i := range unknown {
		unknown[i].sent = 0
		unknown[i].received = i%2 == 0
	}
	cases := []struct {
		name string
		acks []ack
	}{
		{"nil", nil},
		{"empty", []ack{}},
		{"all sent==0", unknown},
		{"sent==0 and not received", []ack{{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.onFeedback(now+5*estS, tc.acks)
			if got := e.stats(); got != before {
				t.Fatalf("stats changed:\n got %+v\nwant %+v", got, before)
			}
			if e.target() != before.TargetBps {
				t.Fatalf("target changed: %d -> %d", before.TargetBps, e.target())
			}
		})
	}
	// sent==0 acks mixed into a normal feedback neither count as loss nor
	// reach the delay filter.
	mixed := estFeedbackAt(now, 20)
	for i := 0; i < len(mixed); i += 2 {
		mixed[i] = ack{sent: 0, arrived: 1, size: 50_000, received: i%4 == 0}
	}
	e.onFeedback(now+100*estMs, mixed)
	if st := e.stats(); st.LossFraction != 0 || st.State != "normal" || st.TargetBps < before.TargetBps {
		t.Fatalf("sent==0 acks affected the estimate: %+v (before %+v)", st, before)
	}
}

func TestEstimatorReorderedArrivals(t *testing.T) {
	cases := []struct {
		name    string
		arrival func(r *rand.Rand, i int, sent int64) int64
	}{
		{"swapped pairs", func(_ *rand.Rand, i int, sent int64) int64 {
			if i%2 == 0 {
				return sent + 40*estMs // arrives after its successor
			}
			return sent + 20*estMs
		}},
		{"random order", func(r *rand.Rand, _ int, sent int64) int64 { return sent + r.Int63n(200*estMs) }},
		{"clock jumps", func(r *rand.Rand, i int, sent int64) int64 {
			if (i/50)%2 == 1 {
				return sent - 10*estS // receiver clock went back for a while
			}
			return sent + 20*estMs + r.Int63n(3*estMs)
		}},
		{"identical arrivals", func(_ *rand.Rand, _ int, _ int64) int64 { return 7 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(3))
			e := newEstimator(800_000, 100_000, 3_000_000)
			var acks []ack
			seq := 0
			for fb := 0; fb < 200; fb++ {
				acks = acks[:0]
				for j := 0; j < 10; j++ {
					sent := int64(seq) * 8 * estMs
					acks = append(acks, ack{sent: simSendBase + sent, arrived: tc.arrival(r, seq, sent), size: simPacket, received: r.Intn(20) != 0})
					seq++
				}
				e.onFeedback(simSendBase+int64(seq)*8*estMs+50*estMs, acks)
				st := e.stats()
				if estBadStats(st) || e.target() < 100_000 || e.target() > 3_000_000 {
					t.Fatalf("feedback %d: target %d, stats %+v", fb, e.target(), st)
				}
			}
		})
	}
}

func TestEstimatorClamp(t *testing.T) {
	cases := []struct {
		name              string
		initial, min, max int
		wantTarget        int
		wantMin, wantMax  int
	}{
		{"initial above max", 5_000_000, 100_000, 2_000_000, 2_000_000, 100_000, 2_000_000},
		{"initial below min", 10_000, 100_000, 2_000_000, 100_000, 100_000, 2_000_000},
		{"max below min", 500_000, 300_000, 200_000, 300_000, 300_000, 300_000},
		{"negative min", -5, -100, 1_000, 0, 0, 1_000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEstimator(tc.initial, tc.min, tc.max)
			if got := e.target(); got != tc.wantTarget {
				t.Fatalf("target %d, want %d", got, tc.wantTarget)
			}
			if st := e.stats(); st.TargetBps != tc.wantTarget || st.State != "normal" {
				t.Fatalf("stats %+v", st)
			}
			if int(e.minBps) != tc.wantMin || int(e.maxBps) != tc.wantMax {
				t.Fatalf("bounds [%v, %v], want [%d, %d]", e.minBps, e.maxBps, tc.wantMin, tc.wantMax)
			}
		})
	}
}

// estBenchFeedback is one steady-state feedback of 20 acks (1200 B every 5 ms,
// i.e. about 2 Mbit/s) advanced in place, as the caller reuses its slice.
type estBenchFeedback struct {
	acks []ack
	now  int64
}

func newEstBenchFeedback() *estBenchFeedback {
	b := &estBenchFeedback{acks: make([]ack, 20), now: simSendBase}
	for i := range b.acks {
		b.acks[i] = ack{size: simPacket, received: i != 7}
	}
	return b
}

func (b *estBenchFeedback) next() []ack {
	for i := range b.acks {
		s := b.now + int64(i)*5*estMs
		b.acks[i].sent = s
		// up to 1 ms of deterministic jitter, so the filter does real work
		b.acks[i].arrived = s - simSendBase + 30*estMs + (s/estMs*7919)%estMs
	}
	b.now += 100 * estMs
	return b.acks
}

func TestEstimatorNoAllocs(t *testing.T) {
	e := newEstimator(1_000_000, 50_000, 10_000_000)
	b := newEstBenchFeedback()
	for i := 0; i < 50; i++ {
		e.onFeedback(b.now, b.next())
	}
	if n := testing.AllocsPerRun(100, func() { e.onFeedback(b.now, b.next()) }); n != 0 {
		t.Fatalf("onFeedback allocates %.1f times per call", n)
	}
}

func BenchmarkEstimatorFeedback(b *testing.B) {
	e := newEstimator(1_000_000, 50_000, 10_000_000)
	f := newEstBenchFeedback()
	for i := 0; i < 50; i++ {
		e.onFeedback(f.now, f.next())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.onFeedback(f.now, f.next())
	}
}

// TestEstimatorStaleFeedbackCuts: feedback only about packets that left the
// send history (the path holds seconds of queue) cuts the estimate like an
// overuse, at most once per estReduceInterval.
func TestEstimatorStaleFeedbackCuts(t *testing.T) {
	e := newEstimator(2_000_000, 100_000, 5_000_000)
	now := int64(10 * estS)
	e.onStale(now)
	if got := e.target(); got != 1_700_000 {
		t.Fatalf("after one stale feedback: %d, want 1.7M", got)
	}
	e.onStale(now + 50*estMs) // too soon
	if got := e.target(); got != 1_700_000 {
		t.Fatalf("second cut within %d ns: %d", estReduceInterval, got)
	}
	for i := 1; i <= 30; i++ {
		e.onStale(now + int64(i)*estReduceInterval)
	}
	if got := e.target(); got != 100_000 {
		t.Fatalf("after many stale feedbacks: %d, want the minimum", got)
	}
	if st := e.stats(); st.Decreases != 31 {
		t.Errorf("decreases %d, want 31", st.Decreases)
	}
}
