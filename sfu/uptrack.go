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

// UpTrack is one published track (one publisher, one kind, one transceiver).
// Video may have up to three simulcast layers keyed by rid (q=0, h=1, f=2);
// a non-simulcast track has a single layer 0.
type UpTrack struct {
	e      *Engine
	peer   *Peer
	id     string
	mid    string
	kind   webrtc.RTPCodecType
	layers [3]atomic.Pointer[upLayer]

	mu       sync.Mutex // guards watchers and demand state (control path only)
	watchers map[*Slot]struct{}
	taps     atomic.Pointer[[]*Tap] // copy on write under mu (tap.go)
	demand   [3]demandState
	gone     bool

	level     atomic.Uint64 // smoothed audio level (float64 bits), audio only
	resumedAt atomic.Int64  // nanotime of the last resume of a paused layer
}

type demandState struct {
	needed   bool        // current computed demand
	reported bool        // last value given to OnLayerDemand
	timer    *time.Timer // pending pause report
}

// PeerID is the id of the publishing peer.
func (t *UpTrack) PeerID() string { return t.peer.id }

// ID is the track id (the publisher's transceiver mid).
func (t *UpTrack) ID() string { return t.id }

// Kind is audio or video.
func (t *UpTrack) Kind() webrtc.RTPCodecType { return t.kind }

// Simulcast reports whether the track has rid-keyed layers.
func (t *UpTrack) Simulcast() bool {
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil && l.rid != "" {
			return true
		}
	}
	return false
}

// Layers returns a snapshot of the layers' statistics (index = layer).
func (t *UpTrack) Layers() []LayerStats {
	now := nanotime()
	var out []LayerStats
	t.mu.Lock()
	watchers := len(t.watchers)
	demand := t.demand
	t.mu.Unlock()
	for i := range t.layers {
		l := t.layers[i].Load()
		if l == nil {
			continue
		}
		out = append(out, LayerStats{
			RID:      l.rid,
			Width:    int(l.width.Load()),
			Height:   int(l.height.Load()),
			Bitrate:  l.meter.bitrate(now),
			Packets:  l.packets.Load(),
			Lost:     l.lost.Load(),
			Active:   l.active(now),
			Needed:   demand[i].needed,
			Watchers: watchers,
		})
	}
	return out
}

// published reports the track's last media RTP arrival (nanotime, 0 =
// none), whether all of its layers are paused on purpose, and the last
// resume (nanotime, 0 = never).
func (t *UpTrack) published() (last int64, paused bool, resumed int64) {
	t.mu.Lock()
	demand := t.demand
	t.mu.Unlock()
	known, pausedN := 0, 0
	for i := range t.layers {
		l := t.layers[i].Load()
		if l == nil {
			continue
		}
		last = max(last, l.lastPacket.Load())
		known++
		if t.kind == webrtc.RTPCodecTypeVideo && l.rid != "" && !demand[i].reported {
			pausedN++
		}
	}
	return last, known > 0 && pausedN == known, t.resumedAt.Load()
}

// AudioLevel returns the smoothed audio level 0..1 (audio tracks only).
func (t *UpTrack) AudioLevel() float64 { return math.Float64frombits(t.level.Load()) }

func (t *UpTrack) layer(i int) *upLayer {
	if i < 0 || i > 2 {
		return nil
	}
	return t.layers[i].Load()
}

func (t *UpTrack) numLayers() int {
	n := 0
	for i := range t.layers {
		if t.layers[i].Load() != nil {
			n = i + 1
		}
	}
	if n == 0 && t.kind == webrtc.RTPCodecTypeVideo {
		n = 1
	}
	return n
}

func layerIndex(rid string) int {
	switch rid {
	case "h", "m", "mid", "1":
		return 1
	case "f", "hi", "high", "2":
		return 2
	default:
		return 0
	}
}

// addWatcher / removeWatcher keep the set of slots whose source is t.
func (t *UpTrack) addWatcher(s *Slot) {
	t.mu.Lock()
	if t.watchers == nil {
		t.watchers = make(map[*Slot]struct{})
	}
	t.watchers[s] = struct{}{}
	t.mu.Unlock()
}

func (t *UpTrack) removeWatcher(s *Slot) {
	t.mu.Lock()
	delete(t.watchers, s)
	t.mu.Unlock()
	t.updateDemand()
}

// updateDemand recomputes which layers some watcher targets and reports
// changes through Hooks.OnLayerDemand: resumes at once, pauses after
// Config.PauseDelay without demand. The base layer is needed whenever any
// unmuted watcher exists, so that switches are fast.
func (t *UpTrack) updateDemand() {
	if t.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	var resumed []*upLayer
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return
	}
	var need [3]bool
	for s := range t.watchers {
		tl := int(s.target.Load())
		if tl < 0 {
			continue
		}
		need[0] = true
		if tl <= 2 {
			need[tl] = true
		}
	}
	if tp := t.taps.Load(); tp != nil {
		for _, x := range *tp {
			need[x.layer] = true // a recording needs its layer, not the base
		}
	}
	for i := range t.demand {
		l := t.layers[i].Load()
		if l == nil || l.rid == "" {
			continue
		}
		d := &t.demand[i]
		d.needed = need[i]
		if d.needed {
			if d.timer != nil {
				d.timer.Stop()
				d.timer = nil
			}
			if !d.reported {
				d.reported = true
				resumed = append(resumed, l)
			}
			continue
		}
		if d.reported && d.timer == nil {
			idx, rid := i, l.rid
			d.timer = time.AfterFunc(t.e.cfg.PauseDelay, func() {
				t.mu.Lock()
				dd := &t.demand[idx]
				fire := dd.timer != nil && !dd.needed && dd.reported && !t.gone
				dd.timer = nil
				if fire {
					dd.reported = false
				}
				t.mu.Unlock()
				if fire {
					t.e.reportDemand(t.peer.id, rid, false)
				}
			})
		}
	}
	t.mu.Unlock()
	if len(resumed) > 0 {
		t.resumedAt.Store(nanotime())
	}
	// Hooks run outside the lock so they may call back into the engine.
	for _, l := range resumed {
		t.e.reportDemand(t.peer.id, l.rid, true)
		l.requestPLI(true)
	}
}

// close marks the track gone and detaches every watcher.
func (t *UpTrack) close() {
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return
	}
	t.gone = true
	for i := range t.demand {
		if t.demand[i].timer != nil {
			t.demand[i].timer.Stop()
			t.demand[i].timer = nil
		}
	}
	watchers := make([]*Slot, 0, len(t.watchers))
	for s := range t.watchers {
		watchers = append(watchers, s)
	}
	t.mu.Unlock()
	for _, s := range watchers {
		s.sourceGone(t)
	}
}

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
	slotsMu sync.Mutex
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
func (l *upLayer) fanout(seq uint16, flags uint8, at int64, payload []byte, ts uint32) {
	sp := l.slots.Load()
	if sp == nil || len(*sp) == 0 {
		return
	}
	e := l.track.e
	e.batch.begin()
	direct := 0
	for _, s := range *sp {
		if s.enqueue(l, seq, flags, at, payload, ts) {
			direct++
		}
	}
	e.batch.end()
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
