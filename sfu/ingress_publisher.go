package sfu

import (
	"github.com/pion/webrtc/v3"
)

// A publisher leg's tracks arriving (Pion's OnTrack: one reader goroutine
// per layer) and ending.

// peerIngress is a Peer's publisher-leg state (embedded in Peer); the
// published tracks themselves are Peer.tracks, under Peer.mu.
type peerIngress struct {
	pubRTCP rtcpSink   // RTCP arrivals on the publisher leg (ingress_rtcptap.go)
	lossWin lossWindow // recent publisher loss (sampled by allocLoop)
}

func (p *Peer) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	kind := remote.Kind()
	mid := ""
	if tr := recv.RTPTransceiver(); tr != nil {
		mid = tr.Mid()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	var t *UpTrack
	for _, x := range p.tracks {
		if x.mid == mid && x.kind == kind {
			t = x
		}
	}
	isNew := t == nil
	if isNew {
		t = &UpTrack{e: p.e, peer: p, id: mid, mid: mid, kind: kind}
		// Copy on write: readers (publisherCounters) walk p.tracks unlocked.
		p.tracks = append(p.tracks[:len(p.tracks):len(p.tracks)], t)
	}
	p.mu.Unlock()

	idx := layerIndex(remote.RID())
	size := p.e.cfg.PacketCacheSize
	switch {
	case kind == webrtc.RTPCodecTypeAudio:
		size = 64
	case remote.RID() != "":
		size >>= 2 - idx // q: 1/4, h: 1/2, f: full
	}
	l := &upLayer{
		track:  t,
		index:  idx,
		rid:    remote.RID(),
		remote: remote,
		recv:   recv,
		ssrc:   uint32(remote.SSRC()),
		cache:  newPacketCache(size),
	}
	if kind == webrtc.RTPCodecTypeAudio {
		l.audioLevelID = audioLevelExtID(recv.GetParameters())
	}
	t.mu.Lock()
	t.demand[idx].reported = true // the client starts with every encoding on
	t.mu.Unlock()
	t.layers[idx].Store(l)
	p.log.Debug("track", "kind", kind.String(), "mid", mid, "rid", remote.RID(), "ssrc", l.ssrc)

	p.e.goReader(func() {
		l.readLoop()
		p.layerEnded(t, l)
	})
	if isNew {
		if f := p.e.hooks.Load().OnTrack; f != nil {
			f(p.id, t)
		}
	}
	t.updateDemand()
	t.reallocateWatchers()
}

// layerEnded runs when a layer's reader stops; when every layer of the track
// has stopped, the track is gone.
func (p *Peer) layerEnded(t *UpTrack, l *upLayer) {
	t.layers[l.index].CompareAndSwap(l, nil)
	for i := range t.layers {
		if t.layers[i].Load() != nil {
			t.reallocateWatchers()
			return
		}
	}
	p.mu.Lock()
	for i, x := range p.tracks {
		if x == t {
			// Copy on write, never shift in place: see onTrack.
			p.tracks = append(append(make([]*UpTrack, 0, len(p.tracks)-1), p.tracks[:i]...), p.tracks[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	t.close()
	if f := p.e.hooks.Load().OnTrackGone; f != nil {
		f(p.id, t)
	}
}
