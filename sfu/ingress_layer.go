package sfu

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// upLayer is one simulcast layer (or the only stream) of an UpTrack. Its
// reader goroutine owns buf/pkt and the stats fields marked "reader".
type upLayer struct {
	track  *UpTrack
	index  int
	rid    string
	remote *webrtc.TrackRemote
	recv   *webrtc.RTPReceiver
	ssrc   uint32
	cache  *packetCache

	// fan-out: copy-on-write slice of slots attached to this layer.
	slotsMu sync.Mutex // serialises attach/detach; a leaf, taken under Slot.mu
	slots   atomic.Pointer[[]*Slot]

	pli rateLimiter

	packets    atomic.Uint64
	lost       atomic.Uint64
	width      atomic.Int32
	height     atomic.Int32
	lastPacket atomic.Int64
	recovered  atomic.Uint64 // gaps later filled (RTX or late arrival)
	jitter     atomic.Uint64 // float64 bits, in RTP ticks
	meter      rateMeter

	// reader-owned
	highest     uint16
	haveFirst   bool
	lastTransit int64
	jit         float64

	audioLevelID uint8
	spread       spreadState // reader-owned: parts of a split fan-out (ingress_spread.go)
}

func (l *upLayer) active(now int64) bool {
	return now-l.lastPacket.Load() < int64(1500*time.Millisecond)
}

func (l *upLayer) attach(s *Slot) {
	l.slotsMu.Lock()
	defer l.slotsMu.Unlock()
	old := l.slots.Load()
	var cur []*Slot
	if old != nil {
		cur = *old
	}
	for _, x := range cur {
		if x == s {
			return
		}
	}
	next := make([]*Slot, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, s)
	l.slots.Store(&next)
}

// hasSlots reports whether any slot is attached (lock-free).
func (l *upLayer) hasSlots() bool {
	sp := l.slots.Load()
	return sp != nil && len(*sp) > 0
}

func (l *upLayer) detach(s *Slot) {
	l.slotsMu.Lock()
	defer l.slotsMu.Unlock()
	old := l.slots.Load()
	if old == nil {
		return
	}
	next := make([]*Slot, 0, len(*old))
	for _, x := range *old {
		if x != s {
			next = append(next, x)
		}
	}
	l.slots.Store(&next)
}

// requestPLI asks the publisher for a keyframe on this layer, at most once
// per Config.PLIInterval (force bypasses nothing but is logged differently).
func (l *upLayer) requestPLI(_ bool) bool {
	if l.track.kind != webrtc.RTPCodecTypeVideo {
		return false
	}
	if !l.pli.allow(nanotime(), l.track.e.cfg.PLIInterval) {
		return false
	}
	pc := l.track.peer.publisherPC()
	if pc == nil || l.ssrc == 0 {
		return false
	}
	_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
	return true
}

// readLoop is the per-layer reader: read, classify, cache, fan out.
func (l *upLayer) readLoop() {
	t := l.track
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	isVideo := t.kind == webrtc.RTPCodecTypeVideo
	clock := float64(l.remote.Codec().ClockRate)
	if clock == 0 {
		clock = 90000
	}
	for {
		n, attr, err := l.remote.Read(buf)
		if err != nil {
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if len(pkt.Payload) == 0 {
			continue // padding-only probe
		}
		rtx := attr != nil && attr.Get(webrtc.AttributeRtxSsrc) != nil
		now := nanotime()
		var flags uint8
		if pkt.Marker {
			flags |= flagMarker
		}
		var info vp8Info
		if isVideo {
			var ok bool
			info, ok = parseVP8(pkt.Payload)
			if !ok {
				continue
			}
			if info.start {
				flags |= flagStart
			}
			if info.keyframe && !rtx {
				flags |= flagKeyframe
			}
		}
		// Nobody attached (an unwatched or paused layer): keep the statistics,
		// but no cache (its buffers are released) and no fan-out.
		attached := l.hasSlots() || t.tapsOf(l)
		if !attached && l.cache.allocated.Load() {
			l.cache.release()
		}
		if rtx {
			// A retransmission (or a payload-carrying probe) from the publisher:
			// only useful if we never got the original.
			if !attached {
				if l.haveFirst && int16(pkt.SequenceNumber-l.highest) < 0 {
					l.recovered.Add(1)
				}
				continue
			}
			if !l.cache.insert(pkt.SequenceNumber, pkt.Timestamp, flags, pkt.Payload) {
				continue
			}
			if l.haveFirst && int16(pkt.SequenceNumber-l.highest) < 0 {
				l.recovered.Add(1) // a counted gap, repaired
			}
			l.feedTaps(&pkt)
			l.fanout(pkt.SequenceNumber, flags|flagRTX, now, pkt.Payload, pkt.Timestamp)
			continue
		}
		// media statistics
		l.packets.Add(1)
		l.lastPacket.Store(now)
		l.meter.add(now, n)
		late := false
		if !l.haveFirst {
			l.haveFirst = true
			l.highest = pkt.SequenceNumber
		} else if d := int16(pkt.SequenceNumber - l.highest); d > 0 {
			if d > 1 {
				l.lost.Add(uint64(d - 1))
			}
			l.highest = pkt.SequenceNumber
		} else {
			late = d < 0 // reordered: its gap was counted as lost
		}
		transit := now*int64(clock)/1e9 - int64(pkt.Timestamp)
		if l.lastTransit != 0 {
			d := math.Abs(float64(transit - l.lastTransit))
			if d < clock*10 {
				l.jit += (d - l.jit) / 16
				l.jitter.Store(math.Float64bits(l.jit))
			}
		}
		l.lastTransit = transit
		if info.keyframe && info.width > 0 {
			l.width.Store(int32(info.width))
			l.height.Store(int32(info.height))
		}
		if !isVideo && l.audioLevelID != 0 {
			if ext := pkt.GetExtension(l.audioLevelID); len(ext) > 0 {
				t.updateLevel(ext[0] & 0x7f)
			}
		}
		if !attached {
			if late {
				l.recovered.Add(1)
			}
			continue
		}
		if !l.cache.insert(pkt.SequenceNumber, pkt.Timestamp, flags, pkt.Payload) {
			continue // duplicate, too old or too large
		}
		if late {
			l.recovered.Add(1)
		}
		l.feedTaps(&pkt)
		l.fanout(pkt.SequenceNumber, flags, now, pkt.Payload, pkt.Timestamp)
	}
}

// fanout hands the packet to every attached slot without blocking (see
// Slot.enqueue). Datagrams written directly are sent in one batch when the
// fan-out ends (batchConn), and the in-server delay of the packet (read →
// its last datagram handed to the kernel) is recorded once per fan-out.
// A fan-out to many slots is split across cores (ingress_spread.go); it
// still returns only when every datagram has been handed to the kernel.
func (l *upLayer) fanout(seq uint16, flags uint8, at int64, payload []byte, ts uint32) {
	sp := l.slots.Load()
	if sp == nil || len(*sp) == 0 {
		return
	}
	e := l.track.e
	direct := 0
	if e.spread.split(len(*sp)) {
		direct = e.spread.fanout(&l.spread, l, *sp, seq, flags, at, payload, ts)
	} else {
		e.batch.begin()
		for _, s := range *sp {
			if s.enqueue(l, nil, seq, flags, at, payload, ts) {
				direct++
			}
		}
		e.batch.end()
	}
	if direct > 0 {
		e.fwdDelay.record(nanotime() - at)
	}
}

// updateLevel smooths the RFC 6464 level (0 = loudest, 127 = silence) into
// 0..1. Called from the audio reader goroutine only.
func (t *UpTrack) updateLevel(dBov uint8) {
	v := 1 - float64(dBov)/127
	old := math.Float64frombits(t.level.Load())
	t.level.Store(math.Float64bits(old + (v-old)*0.1))
}

func audioLevelExtID(params webrtc.RTPParameters) uint8 {
	for _, h := range params.HeaderExtensions {
		if h.URI == sdp.AudioLevelURI {
			return uint8(h.ID)
		}
	}
	return 0
}
