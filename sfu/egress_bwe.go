package sfu

import (
	"time"

	"github.com/pion/rtcp"
)

// The inputs of a subscriber leg's bandwidth estimate: the estimator fed
// with TWCC feedback, a REMB from the client, and a static cap.

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
