package sfu

import (
	"time"

	"github.com/pion/rtcp"
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
	est := p.est.target()
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

// onTWCC feeds one transport-wide feedback packet to the estimator. A
// compound RTCP packet reaches the RTCP loop of every slot whose SSRC it
// names, so repeats of the last feedback are skipped.
func (p *Peer) onTWCC(fb *rtcp.TransportLayerCC) {
	key := int32(fb.FbPktCount)<<16 | int32(fb.BaseSequenceNumber)
	p.estMu.Lock()
	defer p.estMu.Unlock()
	if key == p.fbKey {
		return
	}
	p.fbKey = key
	now := nanotime()
	p.acks = p.tw.acks(now, fb, p.acks[:0])
	known := false
	for i := range p.acks {
		known = known || p.acks[i].sent != 0
	}
	if !known && len(p.acks) > 0 {
		p.est.onStale(now)
		return
	}
	p.est.onFeedback(now, p.acks)
}

// sendReports sends a sender report for every slot that has sent media:
// receivers use them for lip sync and to report round-trip times.
func (p *Peer) sendReports() {
	p.mu.Lock()
	pc := p.sub
	slots := append([]*Slot(nil), p.slots...)
	p.mu.Unlock()
	if pc == nil || !p.subReady.Load() {
		return
	}
	now := time.Now()
	ntp := toNTP(now) // wall time: the receiver maps it to its own NTP clock
	mono := nanotime()
	var pkts []rtcp.Packet
	for _, s := range slots {
		b := s.dt.binding.Load()
		n := s.packets.Load()
		if b == nil || n == 0 {
			continue
		}
		clock := int64(90000)
		if s.kind == webrtc.RTPCodecTypeAudio {
			clock = 48000
		}
		elapsed := mono - s.lastAt.Load()
		pkts = append(pkts, &rtcp.SenderReport{
			SSRC:        b.ssrc,
			NTPTime:     ntp,
			RTPTime:     s.lastTS.Load() + uint32(elapsed*clock/int64(time.Second)),
			PacketCount: uint32(n),
			OctetCount:  uint32(s.bytes.Load()),
		})
		if len(pkts) == 32 { // keep the compound packet within one MTU
			_ = pc.WriteRTCP(pkts)
			pkts = pkts[:0]
		}
	}
	if len(pkts) > 0 {
		_ = pc.WriteRTCP(pkts)
	}
}

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
