package sfu

import (
	"time"

	"github.com/pion/webrtc/v3"
)

// A peer's allocator: twice a second and on every control change it turns
// the estimate into a layer per slot (the pure part is egress_alloc.go).

func (p *Peer) allocLoop() {
	defer p.wg.Done()
	tk := time.NewTicker(500 * time.Millisecond)
	defer tk.Stop()
	tick := 0
	for {
		select {
		case <-p.done:
			return
		case <-tk.C:
			p.lossWin.add(p.publisherCounters(nanotime()))
			p.reallocate()
			if tick++; tick%2 == 0 {
				p.sendReports()
			}
		}
	}
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
