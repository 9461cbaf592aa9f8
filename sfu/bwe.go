package sfu

import (
	"time"

	"github.com/pion/webrtc/v3"
)

// SetMaxBitrate caps the downlink bandwidth used for layer selection
// (bit/s, 0 = no cap). Useful for known-weak links and for tests.
func (p *Peer) SetMaxBitrate(bps int) {
	p.maxBps.Store(int64(bps))
	p.reallocate()
}

func (p *Peer) setREMB(bps int) {
	p.remb.Store(int64(bps))
	p.rembTime.Store(nanotime())
}

// estimate returns the downlink estimate used for layer selection.
func (p *Peer) estimate() int {
	est := p.e.cfg.InitialBitrate
	p.mu.Lock()
	bwe := p.bwe
	p.mu.Unlock()
	if bwe != nil {
		if b := bwe.GetTargetBitrate(); b > 0 {
			est = b
		}
	}
	if t := p.rembTime.Load(); t != 0 && nanotime()-t < int64(5*time.Second) {
		if r := int(p.remb.Load()); r > 0 && r < est {
			est = r
		}
	}
	if m := int(p.maxBps.Load()); m > 0 && m < est {
		est = m
	}
	return est
}

func (p *Peer) allocLoop() {
	defer p.wg.Done()
	tk := time.NewTicker(500 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tk.C:
			p.lossWin.add(p.publisherCounters(nanotime()))
			p.reallocate()
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
	nowNs := now.UnixNano()
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
	out := make([]allocResult, len(in))
	allocate(in, budget, out)

	limited := false
	for _, r := range out {
		limited = limited || r.limited
	}
	pr := &p.probe
	if pr.active && now.After(pr.until) {
		pr.active = false
		// The probe succeeded if the estimate now carries the probed allocation.
		cost := 0
		probed := make([]allocResult, len(in))
		allocate(in, budget*3/2, probed)
		for i, r := range probed {
			if r.target >= 0 {
				cost += layerCost(&in[i], r.target)
			}
		}
		if budget >= cost {
			pr.interval = probeMinInterval
		} else {
			pr.interval = min(pr.interval*2, probeMaxInterval)
		}
		pr.next = now.Add(pr.interval)
	}
	if !pr.active && limited && now.After(pr.next) {
		pr.active = true
		pr.until = now.Add(probeDuration)
	}
	if pr.active {
		allocate(in, budget*3/2, out)
	}
	for i, v := range videos {
		r := out[i]
		l := v.src.layer(r.effective)
		if l == nil {
			for j := 0; j < 3 && l == nil; j++ {
				l = v.src.layer(j)
			}
		}
		if prev := int(v.s.target.Load()); prev >= 0 && r.target >= 0 && r.target < prev && !pr.active {
			if n := now.Add(pr.interval); n.After(pr.next) {
				pr.next = n // downgraded by the estimate: back off probing
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
