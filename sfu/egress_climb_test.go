package sfu

import (
	"math/rand"
	"testing"
	"time"
)

// The climb simulator: one subscriber watching one simulcast source at the
// top layer (plus audio). The estimator and the allocator's probe state
// machine run on simulated time; what the server sends is what the
// allocator chose (app-limited, like the real SFU), a layer switch takes
// effect at the next keyframe. The receiver may be busy: it stamps arrivals
// only when it gets the CPU (bursty, late stamps) and its feedback is late
// the same way.

type climbConfig struct {
	start    int                   // initial estimate, bit/s
	capacity func(t int64) float64 // bottleneck bit/s (nil = quiet loopback)
	busy     bool                  // receiver stalls 0-150 ms out of every 200 ms
	loss     float64
	duration int64
	seed     int64
}

type climbSample struct {
	t        int64 // ns since start
	target   int   // estimate
	layer    int   // layer forwarded
	allocTgt int   // allocator target layer
}

var climbLayers = [3]int{150_000, 500_000, 1_500_000}

const climbAudio = 40_000

func simulateClimb(t *testing.T, c climbConfig) []climbSample {
	t.Helper()
	rng := rand.New(rand.NewSource(c.seed + 7))
	e := newEstimator(c.start, 100_000, 10_000_000)
	base := time.Unix(1_700_000_000, 0)
	pr := probeState{interval: probeMinInterval, next: base.Add(probeFirst)}
	in := []allocSlot{{requested: 2, layers: 3, active: [3]bool{true, true, true}, bitrate: climbLayers}}
	out := make([]allocResult, 1)
	prev := []int{-1}

	// The busy receiver: in each 200 ms period it is descheduled for a
	// random 0-150 ms at the start; arrivals then are stamped when it runs.
	stallEnd := map[int64]int64{}
	stamp := func(a int64) int64 {
		if !c.busy {
			return a
		}
		p := a / (200 * estMs)
		end, ok := stallEnd[p]
		if !ok {
			end = p*200*estMs + rng.Int63n(150*estMs)
			stallEnd[p] = end
		}
		if a < end {
			return end + (a%estMs)/10 // the backlog is read within a few µs of each other
		}
		return a
	}

	layer, pending, switchAt := 0, 0, int64(-1)
	var (
		samples  []climbSample
		queue    []simPkt
		acks     []ack
		nextSend int64
		nextFb   = simFeedback
		nextAl   int64
		linkFree int64
	)
	for nextSend < c.duration {
		switch {
		case nextAl <= nextSend && nextAl <= nextFb:
			budget := e.target()*9/10 - audioReserve
			pr.step(base.Add(time.Duration(nextAl)), in, prev, budget, out)
			prev[0] = out[0].target
			if out[0].target != layer && out[0].target != pending {
				pending, switchAt = out[0].target, nextAl+300*estMs // PLI → keyframe
			}
			samples = append(samples, climbSample{t: nextAl, target: e.target(), layer: layer, allocTgt: out[0].target})
			nextAl += 500 * estMs
		case nextSend <= nextFb:
			if switchAt >= 0 && nextSend >= switchAt {
				layer, switchAt = pending, -1
			}
			p := simPkt{sent: nextSend, dropped: rng.Float64() < c.loss}
			dep := nextSend
			if c.capacity != nil {
				dep = max(nextSend, linkFree) + int64(simPacket*8/c.capacity(nextSend)*1e9)
				linkFree = dep
			}
			p.arrived = stamp(dep + simProp)
			queue = append(queue, p)
			rate := float64(climbLayers[layer] + climbAudio)
			nextSend += int64(simPacket * 8 / rate * 1e9)
		default:
			// The receiver sends feedback when it runs: late and bursty
			// when it is busy; it reports what it has stamped by then.
			at := stamp(nextFb)
			last := -1
			for i, p := range queue {
				if !p.dropped && p.arrived > at {
					break
				}
				last = i
			}
			acks = acks[:0]
			for _, p := range queue[:last+1] {
				a := ack{sent: simSendBase + p.sent, size: simPacket, received: !p.dropped}
				if a.received {
					a.arrived = simRecvBase + p.arrived
				}
				acks = append(acks, a)
			}
			queue = queue[last+1:]
			e.onFeedback(simSendBase+at+simProp, acks)
			nextFb += simFeedback
		}
	}
	return samples
}

// topCost is the estimate at which the allocator gives the top layer.
func topCost() int { return (climbLayers[2] + audioReserve) * 10 / 9 }

// TestClimbBusyReceiver: on a quiet link, a subscriber whose receiver is
// busy (late, bursty arrival stamps and feedback, no loss) gets the top
// layer within a few seconds, whether it starts high or was pushed down to
// the low layer; and a busy receiver alone never pushes it down.
func TestClimbBusyReceiver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start int
	}{{"start at the default 2.5M", 2_500_000}, {"start on the low layer", 250_000}} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := int64(0); seed < 3; seed++ {
				s := simulateClimb(t, climbConfig{start: tc.start, busy: true, duration: 30 * estS, seed: seed})
				reached := int64(-1)
				for _, x := range s {
					if x.target >= topCost() && x.layer == 2 {
						reached = x.t
						break
					}
				}
				t.Logf("seed %d: top layer with an estimate >= %d at %.1f s (final estimate %d)", seed, topCost(), simSecs(reached), s[len(s)-1].target)
				if reached < 0 || reached > 8*estS {
					t.Fatalf("seed %d: top layer not reached within 8 s (at %.1f s)", seed, simSecs(reached))
				}
				for _, x := range s {
					if x.t > reached && (x.allocTgt < 2 || x.target < topCost()) {
						t.Fatalf("seed %d: dropped at %.1f s to layer %d, estimate %d (busy receiver, no congestion)", seed, simSecs(x.t), x.allocTgt, x.target)
					}
				}
			}
		})
	}
}

// TestClimbRealCongestion: with the same busy receiver, a bottleneck below
// the top layer (rising delay, acked rate below the sent rate) or heavy loss
// still lowers the estimate and keeps the slot off the top layer.
func TestClimbRealCongestion(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  climbConfig
	}{
		{"bottleneck 700k", climbConfig{start: 2_500_000, busy: true, capacity: func(int64) float64 { return 700e3 }, duration: 30 * estS}},
		{"20% loss", climbConfig{start: 2_500_000, busy: true, loss: 0.2, duration: 30 * estS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := simulateClimb(t, tc.cfg)
			top := 0
			for _, x := range s {
				if x.t >= 15*estS && x.layer == 2 && x.allocTgt == 2 {
					top++
				}
			}
			l := s[len(s)-1]
			t.Logf("final estimate %d, layer %d; top layer in %d of the last %d allocations", l.target, l.layer, top, len(s)/2)
			if l.target >= topCost() {
				t.Fatalf("estimate %d still carries the top layer under congestion", l.target)
			}
			if top > len(s)/6 { // probes may try the top layer briefly, with back-off
				t.Fatalf("top layer in %d allocations after 15 s under congestion", top)
			}
		})
	}
}
