package sfu

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// A Tap is a server-side subscriber of one published track that receives the
// publisher's original packets of one layer, as they arrive, plus that
// layer's RTCP sender reports. The recording of the program and the floor is
// made from taps (see package recording): the timestamps and sequence
// numbers are the publisher's, continuous within the layer, so no rewriting
// is needed, and the sender reports put audio and video on one timeline.
//
// A tap counts as a watcher of its layer: the layer is not paused while the
// tap exists, and its packet cache is kept (Tap.Refill answers from it).
//
// The sink is called on the layer's reader goroutine, after the packet went
// into the cache and before the fan-out: it must not block and should not
// allocate (record.Recorder's Write methods copy into a preallocated slot and
// never block). Retransmissions that fill a hole are passed too.
type Tap struct {
	track *UpTrack
	layer int // simulcast layer fed (0 for audio and non-simulcast video)
	sink  TapSink

	closed atomic.Bool
	// standby: the tap takes its layer's packets when they flow but does not
	// ask for the layer (SetStandby), so an unwatched layer stays paused.
	standby atomic.Bool

	mu  sync.Mutex // Refill's buffer; held while the sink runs, → packetCache.mu
	buf [maxCachedPayload]byte
	pkt rtp.Packet
}

// TapSink receives a tap's packets and sender reports.
type TapSink interface {
	// TapRTP gets each packet; p and its payload are reused after the call.
	TapRTP(p *rtp.Packet)
	// TapSenderReport gets each RTCP sender report of the layer: the 64-bit
	// NTP time and the RTP timestamp it corresponds to.
	TapSenderReport(ntpTime uint64, rtpTime uint32)
}

// Tap starts feeding sink with the packets of layer (clamped to 0..2; audio
// and a non-simulcast video track have only layer 0, which is fed whatever
// layer is asked). Close the tap to stop.
func (t *UpTrack) Tap(layer int, sink TapSink) *Tap { return t.tap(layer, sink, false) }

// StandbyTap is Tap on standby (see SetStandby): it asks for nothing yet.
func (t *UpTrack) StandbyTap(layer int, sink TapSink) *Tap { return t.tap(layer, sink, true) }

func (t *UpTrack) tap(layer int, sink TapSink, standby bool) *Tap {
	layer = min(max(layer, 0), LayerHigh)
	if t.kind != webrtc.RTPCodecTypeVideo {
		layer = 0
	}
	tp := &Tap{track: t, layer: layer, sink: sink}
	tp.standby.Store(standby)
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		tp.closed.Store(true)
		return tp
	}
	old := t.taps.Load()
	var next []*Tap
	if old != nil {
		next = append(next, *old...)
	}
	next = append(next, tp)
	t.taps.Store(&next)
	t.mu.Unlock()
	t.peer.pubRTCP.taps.Add(1)
	t.updateDemand()
	if l := tp.source(); l != nil && !standby {
		l.requestPLI(true) // a recording starts at a keyframe
	}
	return tp
}

// SetStandby stops (true) or starts again (false) the tap asking for its
// layer. A recording follows the best layer that flows: it asks for the top
// one and the one it writes, and for every layer while the one it writes has
// stopped, without keeping layers nobody watches unpaused the rest of the time.
func (tp *Tap) SetStandby(on bool) {
	if tp.standby.Swap(on) != on && !tp.closed.Load() {
		tp.track.updateDemand()
	}
}

// Track is the tapped track.
func (tp *Tap) Track() *UpTrack { return tp.track }

// Layer is the tapped layer.
func (tp *Tap) Layer() int { return tp.layer }

// Close stops the tap. The sink is not called once Close has returned,
// except by a fan-out already under way (at most one packet per layer).
func (tp *Tap) Close() {
	if !tp.closed.CompareAndSwap(false, true) {
		return
	}
	t := tp.track
	t.mu.Lock()
	if old := t.taps.Load(); old != nil {
		next := make([]*Tap, 0, len(*old))
		for _, x := range *old {
			if x != tp {
				next = append(next, x)
			}
		}
		t.taps.Store(&next)
	}
	t.mu.Unlock()
	t.peer.pubRTCP.taps.Add(-1)
	t.updateDemand()
}

// feeds reports whether the tap takes the packets of layer l: its own layer,
// or the only layer of a track without simulcast.
func (tp *Tap) feeds(l *upLayer) bool {
	return l.index == tp.layer || l.rid == ""
}

// source is the layer the tap is fed from now (nil if it has not arrived).
func (tp *Tap) source() *upLayer {
	t := tp.track
	if l := t.layers[tp.layer].Load(); l != nil {
		return l
	}
	if l := t.layers[0].Load(); l != nil && l.rid == "" {
		return l
	}
	return nil
}

// Flowing reports whether the tapped layer has had a packet in the last 1.5 s.
// A publisher may never send its top layer (a small camera sends two), or
// drop it when its uplink is short: the recording follows the best layer
// that flows, so it checks its taps with this.
func (tp *Tap) Flowing() bool {
	if tp.closed.Load() {
		return false
	}
	l := tp.source()
	return l != nil && l.active(nanotime())
}

// RequestKeyframe sends a PLI to the publisher of the tapped layer (rate
// limited per layer, Config.PLIInterval). It may block briefly on the
// publisher's RTCP write: call it off any media goroutine.
func (tp *Tap) RequestKeyframe() bool {
	if tp.closed.Load() {
		return false
	}
	if l := tp.source(); l != nil {
		return l.requestPLI(true)
	}
	return false
}

// Refill passes to the sink the packets first..first+n-1 that the layer's
// packet cache still holds (a hole in what the sink got, e.g. dropped by a
// full queue) and returns how many it found. Safe from any goroutine; it does
// not block on media.
func (tp *Tap) Refill(first uint16, n int) int {
	if tp.closed.Load() || n <= 0 {
		return 0
	}
	l := tp.source()
	if l == nil {
		return 0
	}
	n = min(n, l.cache.size)
	tp.mu.Lock()
	defer tp.mu.Unlock()
	found := 0
	for i := 0; i < n; i++ {
		seq := first + uint16(i)
		m, ts, flags, ok := l.cache.get(seq, tp.buf[:])
		if !ok {
			continue
		}
		tp.pkt.Header = rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, SSRC: l.ssrc,
			Marker: flags&flagMarker != 0}
		tp.pkt.Payload = tp.buf[:m]
		tp.sink.TapRTP(&tp.pkt)
		found++
	}
	return found
}

// tapsOf reports whether a tap takes layer l's packets (lock-free).
func (t *UpTrack) tapsOf(l *upLayer) bool {
	tp := t.taps.Load()
	if tp == nil {
		return false
	}
	for _, x := range *tp {
		if x.feeds(l) {
			return true
		}
	}
	return false
}

// feedTaps hands a packet of layer l to the taps that take it. Called on the
// reader goroutine: one atomic load when nothing is tapped, no allocation.
func (l *upLayer) feedTaps(p *rtp.Packet) {
	tp := l.track.taps.Load()
	if tp == nil {
		return
	}
	for _, x := range *tp {
		if x.feeds(l) && !x.closed.Load() {
			x.sink.TapRTP(p)
		}
	}
}

// senderReports passes the sender reports in a compound RTCP packet from a
// publisher to the taps of the layers they describe. It parses the headers
// in place (no allocation): RTCP from a publisher is a few packets a second.
func (p *Peer) senderReports(b []byte) {
	for len(b) >= 4 {
		size := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if size > len(b) {
			return
		}
		if b[1] == 200 && size >= 28 { // SR: header, SSRC, NTP (8), RTP ts, counts
			ssrc := binary.BigEndian.Uint32(b[4:8])
			ntp := binary.BigEndian.Uint64(b[8:16])
			rtpTS := binary.BigEndian.Uint32(b[16:20])
			p.senderReport(ssrc, ntp, rtpTS)
		}
		b = b[size:]
	}
}

func (p *Peer) senderReport(ssrc uint32, ntp uint64, rtpTS uint32) {
	p.mu.Lock()
	tracks := p.tracks // copy on write (onTrack, layerEnded)
	p.mu.Unlock()
	for _, t := range tracks {
		tp := t.taps.Load()
		if tp == nil || len(*tp) == 0 {
			continue
		}
		for i := range t.layers {
			l := t.layers[i].Load()
			if l == nil || l.ssrc != ssrc {
				continue
			}
			for _, x := range *tp {
				if x.feeds(l) && !x.closed.Load() {
					x.sink.TapSenderReport(ntp, rtpTS)
				}
			}
			return
		}
	}
}
