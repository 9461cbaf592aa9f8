package sfu

import (
	"time"

	"github.com/pion/webrtc/v3"
)

// A peer's allocator: twice a second and on every control change it turns
// the estimate into a layer per slot (the pure part is egress_alloc.go).

// allocEvery is the period of a peer's allocation tick (sender reports every
// second tick).
const allocEvery = 500 * time.Millisecond

// startTicks arms the peer's periodic work on a runtime timer: a function the
// timer runs on a goroutine of its own only while it works, so an idle peer
// keeps no goroutine (it was one goroutine and one ticker per peer). A tick
// that blocks (a write to a stalled ICE-TCP leg) delays only this peer.
func (p *Peer) startTicks() {
	p.tickMu.Lock()
	p.tickT = time.AfterFunc(allocEvery, p.tick)
	p.tickMu.Unlock()
}

// tick: loss window, reallocation, and every second the sender reports. The
// next one is armed when this one ends, so ticks of one peer never overlap.
func (p *Peer) tick() {
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	if p.tickStopped {
		return
	}
	p.lossWin.add(p.publisherCounters(nanotime()))
	p.reallocate()
	if p.ticks++; p.ticks%2 == 0 {
		p.sendReports()
	}
	p.tickT.Reset(allocEvery)
}

// stopTicks stops the ticks; a tick running now finishes first.
func (p *Peer) stopTicks() {
	p.tickMu.Lock()
	p.tickStopped = true
	p.tickT.Stop()
	p.tickMu.Unlock()
}

// reallocate recomputes every slot's layer from requests, the bandwidth
// estimate and layer availability. Runs on control paths and twice a second.
func (p *Peer) reallocate() {
	p.allocMu.Lock()
	defer p.allocMu.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	slots := append([]*Slot(nil), p.slots...)
	p.mu.Unlock()

	now := time.Now()
	nowNs := nanotime()
	est := p.estimate()
	budget := est * 9 / 10

	type vs struct {
		s   *Slot
		src *UpTrack
	}
	var videos []vs
	var in []allocSlot
	for _, s := range slots {
		s.mu.Lock()
		src, req, muted := s.source, s.requested, s.muted
		s.mu.Unlock()
		if s.kind == webrtc.RTPCodecTypeAudio {
			if src == nil || muted {
				s.setAllocation(-1, nil)
				continue
			}
			s.setAllocation(0, src.layer(0))
			budget -= audioReserve
			continue
		}
		if src == nil || muted {
			s.setAllocation(-1, nil)
			continue
		}
		a := allocSlot{requested: req, layers: src.numLayers()}
		for i := 0; i < 3; i++ {
			if l := src.layer(i); l != nil {
				a.active[i] = l.active(nowNs)
				a.bitrate[i] = l.meter.bitrate(nowNs)
			}
		}
		videos = append(videos, vs{s, src})
		in = append(in, a)
	}
	prev := make([]int, len(videos))
	for i, v := range videos {
		prev[i] = int(v.s.target.Load())
	}
	out := make([]allocResult, len(in))
	p.probe.step(now, in, prev, budget, out)
	for i, v := range videos {
		r := out[i]
		l := v.src.layer(r.effective)
		if l == nil {
			for j := 0; j < 3 && l == nil; j++ {
				l = v.src.layer(j)
			}
		}
		v.s.setAllocation(r.target, l)
	}
	// Re-ask for keyframes of pending switches (rate-limited per layer).
	for _, s := range slots {
		if d := s.desired.Load(); d != nil && d != s.current.Load() && s.dt.binding.Load() != nil && p.subReady.Load() {
			d.requestPLI(false)
		}
	}
}
