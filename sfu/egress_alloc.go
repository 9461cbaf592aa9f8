package sfu

import (
	"time"
)

// Layer allocation: which simulcast layer each video slot of one subscriber
// gets. Pure functions, so they can be table-tested.

// defaultLayerBitrate is assumed for layers that have not been measured yet
// (paused or just started): about 180p, 360p and 720p.
var defaultLayerBitrate = [3]int{150_000, 500_000, 1_500_000}

// allocSlot is the input for one video slot.
type allocSlot struct {
	requested int     // requested layer, -1 = slot gated
	layers    int     // number of layers the source publishes (1..3)
	active    [3]bool // layer currently receiving packets
	bitrate   [3]int  // measured ingress bitrate, 0 = unknown
}

// allocResult is the output for one video slot.
type allocResult struct {
	target    int  // layer wanted given request and bandwidth (drives layer demand), -1 = none
	effective int  // layer to forward now (target, or the best active below it), -1 = none
	limited   bool // bandwidth kept the slot below its request
}

func layerCost(s *allocSlot, l int) int {
	if b := s.bitrate[l]; b > 0 {
		return b
	}
	return defaultLayerBitrate[l]
}

func clampRequest(s *allocSlot) int {
	r := s.requested
	if r < 0 {
		return -1
	}
	if r >= s.layers {
		r = s.layers - 1
	}
	if r > 2 {
		r = 2
	}
	return r
}

// allocate distributes budget (bit/s) over slots, in slot order (earlier
// slots have priority). Every watched slot gets at least layer 0; slots are
// then upgraded one layer at a time while the budget allows.
func allocate(slots []allocSlot, budget int, out []allocResult) {
	for i := range slots {
		s := &slots[i]
		r := clampRequest(s)
		if r < 0 {
			out[i] = allocResult{target: -1, effective: -1}
			continue
		}
		out[i] = allocResult{target: 0}
		budget -= layerCost(s, 0)
	}
	for changed := true; changed; {
		changed = false
		for i := range slots {
			s := &slots[i]
			r := clampRequest(s)
			t := out[i].target
			if t < 0 || t >= r {
				continue
			}
			extra := layerCost(s, t+1) - layerCost(s, t)
			if extra <= budget {
				budget -= extra
				out[i].target = t + 1
				changed = true
			}
		}
	}
	for i := range slots {
		s := &slots[i]
		t := out[i].target
		if t < 0 {
			continue
		}
		out[i].limited = t < clampRequest(s)
		out[i].effective = effectiveLayer(s, t)
	}
}

// effectiveLayer is the best active layer at or below target; if none is
// active, the lowest active layer above it; if nothing is active, target
// itself (the switch happens when its packets start flowing).
func effectiveLayer(s *allocSlot, target int) int {
	for l := target; l >= 0; l-- {
		if s.active[l] {
			return l
		}
	}
	for l := target + 1; l < s.layers && l < 3; l++ {
		if s.active[l] {
			return l
		}
	}
	return target
}

type probeState struct {
	active   bool
	until    time.Time
	next     time.Time
	interval time.Duration
}

const (
	// Probing is how a subscriber with headroom climbs: the estimator never
	// estimates far above what is sent, so a capped slot must try the next
	// layer. Probe early and often while probes succeed (a climb from the
	// low to the top layer takes two probes), back off only on failure.
	probeFirst       = 1 * time.Second
	probeMinInterval = 3 * time.Second
	probeMaxInterval = 80 * time.Second
	probeDuration    = 4 * time.Second
	audioReserve     = 40_000
)

// step allocates budget over in (into out) and runs the probe state machine
// at time now. prev holds each slot's previous target (-1 = none). Pure but
// for pr, so tests drive it with simulated time.
func (pr *probeState) step(now time.Time, in []allocSlot, prev []int, budget int, out []allocResult) {
	allocate(in, budget, out)
	limited := false
	for _, r := range out {
		limited = limited || r.limited
	}
	if pr.active {
		// The probe succeeded once the estimate carries the probed
		// allocation: end it early then, so the next layer can be tried at
		// once; after probeDuration without that it failed.
		probed := make([]allocResult, len(in))
		allocate(in, probeBudget(in, out, budget), probed)
		cost := 0
		for i, r := range probed {
			if r.target >= 0 {
				cost += layerCost(&in[i], r.target)
			}
		}
		switch {
		case budget >= cost:
			pr.active = false
			pr.interval = probeMinInterval
			pr.next = now
		case now.After(pr.until):
			pr.active = false
			pr.interval = min(pr.interval*2, probeMaxInterval)
			pr.next = now.Add(pr.interval)
		}
	}
	if !pr.active && limited && !now.Before(pr.next) {
		pr.active = true
		pr.until = now.Add(probeDuration)
	}
	if pr.active {
		allocate(in, probeBudget(in, out, budget), out)
		return
	}
	for i, r := range out {
		if i < len(prev) && prev[i] >= 0 && r.target >= 0 && r.target < prev[i] {
			if n := now.Add(pr.interval); n.After(pr.next) {
				pr.next = n // downgraded by the estimate: back off probing
			}
		}
	}
}

// probeBudget is the budget a probe tries: 1.5× the budget, and at least
// enough for the first limited slot's next layer. The estimator never
// estimates much above what is sent (1.5× the acked rate), and the top
// layer costs about three times the middle one, so 1.5× alone would never
// get a slot that was pushed down back to the top layer.
func probeBudget(in []allocSlot, out []allocResult, budget int) int {
	b := budget * 3 / 2
	for i, r := range out {
		if !r.limited || r.target < 0 || r.target+1 >= in[i].layers {
			continue
		}
		if need := budget + layerCost(&in[i], r.target+1) - layerCost(&in[i], r.target); need > b {
			b = need
		}
		break
	}
	return b
}
