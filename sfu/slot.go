package sfu

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v2"
	"github.com/pion/webrtc/v3"
)

// Slot is a stable outgoing track of a subscriber (one transceiver, one
// SSRC) whose source can be switched at runtime without renegotiation.
//
// Switching source or layer takes effect at the next keyframe of the new
// source layer (a PLI is requested); audio switches at once. Sequence
// numbers and timestamps are rewritten so the subscriber sees one continuous
// stream.
type Slot struct {
	peer *Peer
	name string
	kind webrtc.RTPCodecType
	dt   *downTrack

	sender *webrtc.RTPSender
	queue  chan qentry
	// wmu guards ws. The writer goroutine holds it per queued entry; a
	// publisher reader holds it while it writes to this slot directly (see
	// enqueue). It is per slot and only contended during a layer switch,
	// when two layer readers feed one slot.
	wmu sync.Mutex
	ws  writerState
	// The writer goroutine starts on the first queued entry: slots whose
	// subscriber is on UDP are written directly and never need it.
	startMu  sync.Mutex
	writerUp atomic.Bool

	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu        sync.Mutex // control path: source, request, attachments
	source    *UpTrack
	requested int
	muted     bool
	attached  []*upLayer

	target     atomic.Int32            // allocation target layer, -1 = none (drives demand)
	desired    atomic.Pointer[upLayer] // layer to forward, nil = gated
	current    atomic.Pointer[upLayer] // layer being forwarded (set by the writer)
	needResync atomic.Bool             // dropping until the next keyframe

	packets, bytes, dropped, nacked, switches atomic.Uint64
	lastTS                                    atomic.Uint32 // last RTP timestamp sent (sender reports)
	lastAt                                    atomic.Int64  // when, nanotime
	meter                                     rateMeter     // writer-owned
	rrLoss, rrJitter                          atomic.Uint64
	rrRTT                                     atomic.Int64
	rrTime                                    atomic.Int64
}

// queue entry operations
const (
	opMedia = iota
	opNACK
)

type qentry struct {
	layer *upLayer
	at    int64 // nanotime when the reader got the packet (media only)
	seq   uint16
	blp   uint16
	flags uint8
	op    uint8
}

// Name is the slot name given to AddSlot (also the track and stream id).
func (s *Slot) Name() string { return s.name }

// Kind is audio or video.
func (s *Slot) Kind() webrtc.RTPCodecType { return s.kind }

// Source returns the current source track (nil when gated).
func (s *Slot) Source() *UpTrack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.source
}

// SetSource switches the slot to track t (nil = gate off, nothing is sent)
// and sets the requested layer. It never renegotiates.
func (s *Slot) SetSource(t *UpTrack, requestedLayer int) error {
	if t != nil && t.kind != s.kind {
		return fmt.Errorf("%w: slot %s is %s, track is %s", ErrKindMismatch, s.name, s.kind, t.kind)
	}
	if s.isClosed() {
		return ErrClosed
	}
	if t != nil {
		t.mu.Lock()
		gone := t.gone
		t.mu.Unlock()
		if gone {
			return fmt.Errorf("%w: track of %s has ended", ErrClosed, t.peer.id)
		}
	}
	s.mu.Lock()
	old := s.source
	s.source = t
	s.requested = clampLayer(requestedLayer)
	s.mu.Unlock()
	if old != t {
		if old != nil {
			old.removeWatcher(s)
		}
		if t != nil {
			t.addWatcher(s)
		}
	}
	s.peer.reallocate()
	return nil
}

// SetRequestedLayer sets the layer signaling wants for this slot (0..2). The
// effective layer is min(requested, bandwidth, available).
func (s *Slot) SetRequestedLayer(l int) {
	s.mu.Lock()
	s.requested = clampLayer(l)
	s.mu.Unlock()
	s.peer.reallocate()
}

// SetMuted gates the slot without forgetting its source.
func (s *Slot) SetMuted(m bool) {
	s.mu.Lock()
	s.muted = m
	s.mu.Unlock()
	s.peer.reallocate()
}

// Stats returns a snapshot of the slot's statistics.
func (s *Slot) Stats() SlotStats {
	s.mu.Lock()
	st := SlotStats{Name: s.name, Kind: s.kind.String(), RequestedLayer: s.requested, Muted: s.muted}
	if s.source != nil {
		st.Source = s.source.peer.id
	}
	s.mu.Unlock()
	st.EffectiveLayer = -1
	if c := s.current.Load(); c != nil {
		st.EffectiveLayer = c.index
	}
	st.Packets = s.packets.Load()
	st.Bytes = s.bytes.Load()
	st.Dropped = s.dropped.Load()
	st.NACKed = s.nacked.Load()
	return st
}

func clampLayer(l int) int {
	if l < 0 {
		return 0
	}
	if l > 2 {
		return 2
	}
	return l
}

func (s *Slot) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// sourceGone is called when the source track ends.
func (s *Slot) sourceGone(t *UpTrack) {
	s.mu.Lock()
	if s.source == t {
		s.source = nil
	}
	s.mu.Unlock()
	s.peer.reallocate()
}

// setAllocation applies the allocator's decision (called with the peer's
// allocation lock held, never from a reader goroutine).
func (s *Slot) setAllocation(target int, l *upLayer) {
	changedTarget := s.target.Swap(int32(target)) != int32(target)
	prev := s.desired.Swap(l)
	if prev != l {
		s.syncAttachments()
		if l != nil && l != s.current.Load() {
			l.requestPLI(false)
		}
	}
	if changedTarget || prev != l {
		s.mu.Lock()
		src := s.source
		s.mu.Unlock()
		if src != nil {
			src.updateDemand()
		}
		if prev != nil && prev.track != src {
			prev.track.updateDemand()
		}
	}
}

// syncAttachments makes the slot attached exactly to the current and the
// desired layer (the desired one so its keyframe can be caught).
func (s *Slot) syncAttachments() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var want [2]*upLayer
	if !s.isClosed() {
		want = [2]*upLayer{s.current.Load(), s.desired.Load()}
	}
	keep := s.attached[:0]
	for _, l := range s.attached {
		if l == want[0] || l == want[1] {
			keep = append(keep, l)
		} else {
			l.detach(s)
		}
	}
	s.attached = keep
	for _, w := range want {
		if w == nil {
			continue
		}
		found := false
		for _, l := range s.attached {
			if l == w {
				found = true
				break
			}
		}
		if !found {
			w.attach(s)
			s.attached = append(s.attached, w)
		}
	}
}

// enqueue is called by publisher reader goroutines. It never blocks on the
// network for a slow subscriber:
//   - direct path: when the subscriber's media path is UDP (a datagram send
//     that cannot stall on one peer) and nothing is queued for the slot, the
//     reader rewrites and writes the packet itself (payload and ts are the
//     packet as read; no copy, no goroutine hop). It reports true.
//   - queued path (ICE-TCP, or while the queue drains): the packet goes to the
//     slot's writer goroutine; when the queue is full the packet is dropped,
//     and video then drops until the next keyframe (the writer re-syncs there,
//     so the output stays continuous).
func (s *Slot) enqueue(l *upLayer, seq uint16, flags uint8, at int64, payload []byte, ts uint32) bool {
	video := s.kind == webrtc.RTPCodecTypeVideo
	resync := false
	if video && s.needResync.Load() {
		if flags&flagKeyframe == 0 {
			s.dropped.Add(1)
			s.peer.e.fwdDropped.Add(1)
			return false
		}
		resync = true
		flags |= flagResync
	}
	if payload != nil && s.peer.subDirect.Load() && len(s.queue) == 0 {
		s.wmu.Lock()
		s.writeMedia(s.writer(), qentry{layer: l, seq: seq, flags: flags, at: at}, payload, ts, at)
		s.wmu.Unlock()
		if resync {
			s.needResync.Store(false)
		}
		return true
	}
	s.startWriter()
	select {
	case s.queue <- qentry{layer: l, seq: seq, flags: flags, at: at}:
		if resync {
			s.needResync.Store(false)
		}
	default:
		s.dropped.Add(1)
		s.peer.e.fwdDropped.Add(1)
		if video && flags&flagRTX == 0 && !s.needResync.Swap(true) {
			if c := s.current.Load(); c != nil {
				c.requestPLI(false)
			}
		}
	}
	return false
}

// writerState is owned by the writer goroutine.
type writerState struct {
	cur *upLayer
	rw  rewriter
	buf []byte
	hdr rtp.Header
	ext [2]byte // transport-wide sequence number extension
	// own SRTP output (srtpout.go)
	sdl  *downlink
	sgcm *srtpGCM      // AES-128-GCM legs (srtpgcm.go)
	sctx *srtp.Context // other profiles
	out  []byte
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

// startWriter starts the writer goroutine once (not after close).
func (s *Slot) startWriter() {
	if s.writerUp.Load() {
		return
	}
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.writerUp.Load() || s.isClosed() {
		return
	}
	s.wg.Add(1)
	go s.writeLoop()
	s.writerUp.Store(true)
}

// writeLoop drains the slot's queue. It exits after Config.WriterIdle without work:
// on UDP the fan-out writes directly and the queue only carries the odd NACK answer,
// so a writer that stayed would leave an idle goroutine behind every slot that ever
// saw a NACK (a slow climb that looks like a leak over a 12-hour day).
func (s *Slot) writeLoop() {
	defer s.wg.Done()
	writerIdle := s.peer.e.cfg.WriterIdle
	idle := time.NewTimer(writerIdle)
	defer idle.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-idle.C:
			if s.stopIdleWriter() {
				return
			}
			idle.Reset(writerIdle)
		case e := <-s.queue:
			idle.Reset(writerIdle)
			s.wmu.Lock()
			st := s.writer()
			switch e.op {
			case opMedia:
				if s.writeMedia(st, e, nil, 0, nanotime()) {
					s.peer.e.fwdDelay.record(nanotime() - e.at)
				}
			case opNACK:
				s.writeNACK(st, e)
			}
			s.wmu.Unlock()
		}
	}
}

// stopIdleWriter lets the writer exit when its queue is empty; the next enqueue
// starts a new one. It reports whether the caller must exit.
func (s *Slot) stopIdleWriter() bool {
	s.startMu.Lock()
	if len(s.queue) > 0 {
		s.startMu.Unlock()
		return false
	}
	s.writerUp.Store(false)
	s.startMu.Unlock()
	// An enqueue that saw writerUp still true just before it was cleared skipped
	// starting a writer: pick its entry up with a new one.
	if len(s.queue) > 0 {
		s.startWriter()
	}
	return true
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
// the slot's own SRTP context and writes the datagram itself (srtpout.go):
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
		_, err = s.peer.e.batch.WriteTo(pkt, addr)
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

// rtcpLoop reads the RTCP the subscriber sends about this slot: NACKs are
// answered from the publisher layer's cache, PLI/FIR are forwarded
// (rate-limited) to the publisher, RRs feed statistics, REMB feeds the BWE.
func (s *Slot) rtcpLoop() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, attr, err := s.sender.Read(buf)
		if err != nil {
			return
		}
		var pkts []rtcp.Packet
		if attr != nil {
			pkts, err = attr.GetRTCPPackets(buf[:n])
		} else {
			pkts, err = rtcp.Unmarshal(buf[:n])
		}
		if err != nil {
			continue
		}
		b := s.dt.binding.Load()
		var ssrc uint32
		if b != nil {
			ssrc = b.ssrc
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				if p.MediaSSRC != ssrc {
					continue
				}
				s.startWriter()
				for _, pair := range p.Nacks {
					select {
					case s.queue <- qentry{op: opNACK, seq: pair.PacketID, blp: uint16(pair.LostPackets)}:
					default:
						s.dropped.Add(1)
					}
				}
			case *rtcp.PictureLossIndication:
				if p.MediaSSRC == ssrc {
					s.forwardPLI()
				}
			case *rtcp.FullIntraRequest:
				if p.MediaSSRC == ssrc || p.MediaSSRC == 0 {
					s.forwardPLI()
				}
			case *rtcp.ReceiverReport:
				s.onReports(p.Reports, ssrc)
			case *rtcp.SenderReport:
				s.onReports(p.Reports, ssrc)
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				s.peer.setREMB(int(p.Bitrate))
			case *rtcp.TransportLayerCC:
				s.peer.onTWCC(p)
			}
		}
	}
}

func (s *Slot) forwardPLI() {
	if c := s.current.Load(); c != nil {
		c.requestPLI(false)
	} else if d := s.desired.Load(); d != nil {
		d.requestPLI(false)
	}
}

func (s *Slot) onReports(reports []rtcp.ReceptionReport, ssrc uint32) {
	for _, r := range reports {
		if r.SSRC != ssrc {
			continue
		}
		now := time.Now()
		s.rrLoss.Store(math.Float64bits(float64(r.FractionLost) / 256))
		clock := 90000.0
		if s.kind == webrtc.RTPCodecTypeAudio {
			clock = 48000
		}
		s.rrJitter.Store(math.Float64bits(float64(r.Jitter) / clock * 1000))
		if r.LastSenderReport != 0 {
			if rtt := rttFromReport(now, r.LastSenderReport, r.Delay); rtt > 0 {
				s.rrRTT.Store(int64(rtt))
			}
		}
		s.rrTime.Store(nanotime())
	}
}

// rttFromReport computes RTT = now - LSR - DLSR in the compact NTP format.
func rttFromReport(now time.Time, lsr, dlsr uint32) time.Duration {
	ntp := toNTP(now)
	mid := uint32(ntp >> 16)
	d := mid - lsr - dlsr
	if int32(d) <= 0 || d > 10*65536 {
		return 0
	}
	return time.Duration(uint64(d) * uint64(time.Second) >> 16)
}

func toNTP(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	s := uint64(t.Unix()) + ntpEpochOffset
	f := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return s<<32 | f
}

func (s *Slot) close() {
	s.once.Do(func() {
		s.startMu.Lock() // no writer starts after this
		close(s.closed)
		s.startMu.Unlock()
		s.desired.Store(nil)
		s.target.Store(-1)
		s.syncAttachments()
		s.mu.Lock()
		src := s.source
		s.source = nil
		s.mu.Unlock()
		if src != nil {
			src.removeWatcher(s)
		}
	})
}

// downTrack is our webrtc.TrackLocal: it records what Bind negotiated (SSRC,
// payload type, writer) so the slot writer can build headers itself.
type downTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	codec        webrtc.RTPCodecCapability
	binding      atomic.Pointer[binding]
}

type binding struct {
	id   string
	ssrc uint32
	pt   uint8
	twcc uint8 // negotiated id of the transport-wide sequence number extension (0: none)
	w    webrtc.TrackLocalWriter
}

func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, d.codec.MimeType) {
			var twcc uint8
			for _, x := range ctx.HeaderExtensions() {
				if x.URI == sdp.TransportCCURI {
					twcc = uint8(x.ID)
				}
			}
			d.binding.Store(&binding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), twcc: twcc, w: ctx.WriteStream()})
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (d *downTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	if b := d.binding.Load(); b != nil && b.id == ctx.ID() {
		d.binding.Store(nil)
	}
	return nil
}

func (d *downTrack) ID() string                       { return d.id }
func (d *downTrack) RID() string                      { return "" }
func (d *downTrack) StreamID() string                 { return d.streamID }
func (d *downTrack) Kind() webrtc.RTPCodecType        { return d.kind }
func (d *downTrack) Codec() webrtc.RTPCodecCapability { return d.codec }
