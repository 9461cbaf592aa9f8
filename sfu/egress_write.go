package sfu

import (
	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"
	"github.com/pion/webrtc/v3"
)

// writerState is owned by the writer goroutine.
type writerState struct {
	cur *upLayer
	rw  rewriter
	buf []byte
	hdr rtp.Header
	ext [2]byte // transport-wide sequence number extension
	// own SRTP output (egress_downlink.go)
	sdl  *downlink
	sgcm *srtpGCM      // AES-128-GCM legs (egress_srtpgcm.go)
	sctx *srtp.Context // other profiles
	out  []byte
	// batch, while a spreader worker writes this slot (set under wmu by
	// enqueue, nil otherwise): the worker's own sendmmsg batch, which the
	// worker flushes at the end of its part of the fan-out. nil means the
	// engine socket's shared batch.
	batch *sendBatch
}

// srtpOverhead bounds what SRTP adds to a packet (GCM tag 16, CM/HMAC 10).
const srtpOverhead = 16

// writer returns the writer state, initialising it on first use (call with wmu held).
func (s *Slot) writer() *writerState {
	st := &s.ws
	if st.buf == nil {
		st.buf = make([]byte, maxCachedPayload)
		st.out = make([]byte, maxCachedPayload+64+srtpOverhead)
		if s.kind == webrtc.RTPCodecTypeVideo {
			st.rw = newRewriter(90000, 3000)
		} else {
			st.rw = newRewriter(48000, 960)
		}
	}
	return st
}

// writeMedia rewrites and writes one media packet. On the direct path the
// payload and timestamp are the packet as read; on the queued path (payload
// nil) they are copied out of the layer's cache. It reports whether the
// packet was written.
func (s *Slot) writeMedia(st *writerState, e qentry, payload []byte, ts uint32, now int64) bool {
	desired := s.desired.Load()
	if desired == nil {
		if st.cur != nil {
			st.cur = nil
			s.current.Store(nil)
			s.syncAttachments()
		}
		return false
	}
	b := s.dt.binding.Load()
	if b == nil {
		return false
	}
	l := e.layer
	switching := l != st.cur || e.flags&flagResync != 0
	if switching {
		if l != desired && l != st.cur {
			return false
		}
		if s.kind == webrtc.RTPCodecTypeVideo && e.flags&flagKeyframe == 0 {
			return false // wait for a keyframe of the new layer
		}
		if !s.peer.subReady.Load() {
			return false // a keyframe sent before DTLS is up would be lost
		}
	}
	flags := e.flags
	if payload == nil {
		n, cts, cflags, ok := l.cache.get(e.seq, st.buf)
		if !ok {
			return false
		}
		payload, ts, flags = st.buf[:n], cts, cflags
	}
	if switching {
		st.rw.startEpoch(e.seq, ts, now)
		if l != st.cur {
			st.cur = l
			s.current.Store(l)
			s.switches.Add(1)
			s.syncAttachments()
		}
	}
	return s.write(st, b, e.seq, ts, flags, payload, now)
}

func (s *Slot) write(st *writerState, b *binding, srcSeq uint16, srcTS uint32, flags uint8, payload []byte, now int64) bool {
	seq, ts, ok := st.rw.rewrite(srcSeq, srcTS, now)
	if !ok {
		return false
	}
	s.send(st, b, seq, ts, flags, payload)
	s.meter.add(now, len(payload)+12)
	return true
}

// send builds the header (with the leg's transport-wide sequence number),
// encrypts and writes one packet. Once the leg's DTLS is up it encrypts with
// the slot's own SRTP context and writes the datagram itself (egress_downlink.go):
// on UDP into the engine socket's batch, else through Pion's endpoint.
// Before that, or if the keys could not be read, it uses Pion's writer.
func (s *Slot) send(st *writerState, b *binding, seq uint16, ts uint32, flags uint8, payload []byte) {
	p := s.peer
	now := nanotime()
	h := &st.hdr
	h.Version = 2
	h.Padding = false
	h.Extension = false
	h.Extensions = h.Extensions[:0]
	h.Marker = flags&flagMarker != 0
	h.PayloadType = b.pt
	h.SequenceNumber = seq
	h.Timestamp = ts
	h.SSRC = b.ssrc
	size := 12 + len(payload)
	if b.twcc != 0 {
		size += 8
		tw := p.tw.record(now, size)
		st.ext[0], st.ext[1] = byte(tw>>8), byte(tw)
		_ = h.SetExtension(b.twcc, st.ext[:]) // reuses h.Extensions: no allocation
	}
	if dl := p.down.Load(); dl != nil && st.ownSRTP(dl) {
		if !s.sendOwn(st, dl, payload) {
			return
		}
	} else if _, err := b.w.WriteRTP(h, payload); err != nil {
		return
	}
	s.lastTS.Store(ts)
	s.lastAt.Store(now)
	s.packets.Add(1)
	s.bytes.Add(uint64(len(payload)))
	p.e.fwdPackets.Add(1)
	p.e.fwdBytes.Add(uint64(len(payload)))
}

// ownSRTP makes sure the writer has an SRTP context for the leg's keys.
func (st *writerState) ownSRTP(dl *downlink) bool {
	if st.sdl == dl {
		return st.sgcm != nil || st.sctx != nil
	}
	st.sdl, st.sgcm, st.sctx = dl, nil, nil
	var err error
	if dl.profile == srtp.ProtectionProfileAeadAes128Gcm {
		st.sgcm, err = newSRTPGCM(dl.key, dl.salt)
	} else {
		st.sctx, err = dl.newContext()
	}
	return err == nil
}

// sendOwn marshals, encrypts in place and writes one packet.
func (s *Slot) sendOwn(st *writerState, dl *downlink, payload []byte) bool {
	h := &st.hdr
	hl, err := h.MarshalTo(st.out)
	if err != nil || hl+len(payload)+srtpOverhead > len(st.out) {
		return false
	}
	n := hl + copy(st.out[hl:], payload)
	var pkt []byte
	if st.sgcm != nil {
		pkt = st.sgcm.seal(st.out, hl, n, h.SSRC, h.SequenceNumber)
	} else if pkt, err = st.sctx.EncryptRTP(st.out, st.out[:n], h); err != nil {
		return false
	}
	if addr := dl.udp.Load(); addr != nil && s.peer.e.batch != nil {
		if st.batch != nil {
			err = s.peer.e.batch.writeBatched(st.batch, pkt, addr)
		} else {
			_, err = s.peer.e.batch.WriteTo(pkt, addr)
		}
	} else {
		_, err = dl.ep.Write(pkt)
	}
	return err == nil
}

func (s *Slot) writeNACK(st *writerState, e qentry) {
	cur := st.cur
	b := s.dt.binding.Load()
	if cur == nil || b == nil {
		return
	}
	for i := 0; i < 17; i++ {
		if i > 0 && e.blp&(1<<(i-1)) == 0 {
			continue
		}
		out := e.seq + uint16(i)
		src, ok := st.rw.sourceSeq(out)
		if !ok {
			continue
		}
		n, ts, flags, ok := cur.cache.get(src, st.buf)
		if !ok {
			continue
		}
		s.send(st, b, out, st.rw.mapTS(ts), flags, st.buf[:n])
		s.nacked.Add(1)
	}
}
