package sfu

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opscenter/opscenter/synth/media"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// fakeWriter is a webrtc.TrackLocalWriter for unit tests.
type fakeWriter struct {
	block chan struct{} // if non-nil, WriteRTP blocks until it is closed
	mu    sync.Mutex
	seqs  []uint16
	n     atomic.Int64
}

func (w *fakeWriter) WriteRTP(h *rtp.Header, _ []byte) (int, error) {
	if w.block != nil {
		<-w.block
	}
	w.mu.Lock()
	w.seqs = append(w.seqs, h.SequenceNumber)
	w.mu.Unlock()
	w.n.Add(1)
	return 0, nil
}

func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }

type unitRig struct {
	e     *Engine
	layer *upLayer
}

func newUnitRig() *unitRig {
	e := &Engine{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e.cfg.setDefaults()
	e.cfg.WriterQueue = 64
	pub := &Peer{e: e, id: "pub", log: e.log}
	tr := &UpTrack{e: e, peer: pub, kind: webrtc.RTPCodecTypeVideo}
	l := &upLayer{track: tr, cache: newPacketCache(512)}
	tr.layers[0].Store(l)
	return &unitRig{e: e, layer: l}
}

func (r *unitRig) slot(w webrtc.TrackLocalWriter) *Slot {
	sp := &Peer{e: r.e, id: "sub", log: r.e.log}
	sp.subReady.Store(true)
	s := &Slot{peer: sp, kind: webrtc.RTPCodecTypeVideo, closed: make(chan struct{}), dt: &downTrack{}}
	s.dt.binding.Store(&binding{ssrc: 1, pt: 96, w: w})
	s.desired.Store(r.layer)
	s.syncAttachments()
	return s
}

// ingest plays the reader goroutine: cache + fan-out.
func (r *unitRig) ingest(p *rtp.Packet) {
	info, _ := parseVP8(p.Payload)
	var flags uint8
	if info.start {
		flags |= flagStart
	}
	if info.keyframe {
		flags |= flagKeyframe
	}
	if r.layer.cache.insert(p.SequenceNumber, p.Timestamp, flags, p.Payload) {
		r.layer.fanout(p.SequenceNumber, flags, nanotime(), p.Payload, p.Timestamp)
	}
}

// TestSlowSubscriberDoesNotBlock: one subscriber's writer is stuck (think of
// a stalled ICE-TCP socket); the publisher path and the other subscriber
// keep going, the stuck one drops.
func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	r := newUnitRig()
	stuck := &fakeWriter{block: make(chan struct{})}
	fast := &fakeWriter{}
	s1 := r.slot(stuck)
	s2 := r.slot(fast)

	v := media.NewVideo(media.VideoConfig{Code: "22", RID: "f", Width: 1280, Height: 720, Bitrate: 1_500_000, KeyframeInterval: time.Second, SSRC: 9})
	start := time.Now()
	total := 0
	now := time.Unix(0, 0)
	for f := 0; f < 300; f++ {
		now = now.Add(33 * time.Millisecond)
		_ = v.NextFrame(now, func(p *rtp.Packet) error {
			r.ingest(p)
			total++
			return nil
		})
		time.Sleep(200 * time.Microsecond) // let the fast writer drain
	}
	feed := time.Since(start)
	t.Logf("fed %d packets in %v (includes %v of sleeps)", total, feed, 300*200*time.Microsecond)
	if feed > 5*time.Second {
		t.Fatalf("publisher path blocked: %v", feed)
	}
	waitFor(t, 5*time.Second, "fast subscriber drained", func() bool { return fast.n.Load() >= int64(total)*9/10 })
	t.Logf("fast: %d written, %d dropped; stuck: %d dropped", fast.n.Load(), s2.dropped.Load(), s1.dropped.Load())
	if s1.dropped.Load() == 0 {
		t.Error("stuck subscriber dropped nothing")
	}
	fast.mu.Lock()
	for i := 1; i < len(fast.seqs); i++ {
		if fast.seqs[i] != fast.seqs[i-1]+1 {
			t.Errorf("fast subscriber seq gap %d -> %d", fast.seqs[i-1], fast.seqs[i])
			break
		}
	}
	fast.mu.Unlock()
	close(stuck.block)
	s1.close()
	s2.close()
	s1.wg.Wait()
	s2.wg.Wait()
}

// TestDropToKeyframeResync: after queue overflow a video slot drops until the
// next keyframe and continues with contiguous sequence numbers.
func TestDropToKeyframeResync(t *testing.T) {
	r := newUnitRig()
	w := &fakeWriter{block: make(chan struct{})}
	s := r.slot(w)
	v := media.NewVideo(media.VideoConfig{Code: "22", Width: 320, Height: 180, Bitrate: 600_000, KeyframeInterval: -1, SSRC: 3})
	now := time.Unix(0, 0)
	frame := func() {
		now = now.Add(33 * time.Millisecond)
		_ = v.NextFrame(now, func(p *rtp.Packet) error { r.ingest(p); return nil })
	}
	frame() // keyframe
	for i := 0; i < 100 && !s.needResync.Load(); i++ {
		frame()
	}
	if !s.needResync.Load() {
		t.Fatal("queue never overflowed")
	}
	close(w.block) // writer unblocks and drains
	waitFor(t, 5*time.Second, "queue drained", func() bool { return len(s.q()) == 0 })
	before := w.n.Load()
	frame() // interframe: still dropped
	time.Sleep(50 * time.Millisecond)
	if w.n.Load() != before {
		t.Fatal("interframe forwarded while waiting for a keyframe")
	}
	v.RequestKeyframe()
	frame()
	frame()
	waitFor(t, 5*time.Second, "resync at keyframe", func() bool { return w.n.Load() > before+2 })
	w.mu.Lock()
	seqs := append([]uint16(nil), w.seqs...)
	w.mu.Unlock()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("seq gap after resync at %d: %d -> %d", i, seqs[i-1], seqs[i])
		}
	}
	s.close()
	s.wg.Wait()
}

// BenchmarkFanout measures the reader-side cost of caching and fanning one
// packet out to 100 subscribers (writers drain concurrently).
func BenchmarkFanout(b *testing.B) {
	r := newUnitRig()
	r.e.cfg.WriterQueue = 1024
	var slots []*Slot
	for i := 0; i < 100; i++ {
		slots = append(slots, r.slot(&fakeWriter{}))
	}
	runFanoutBench(b, r, slots)
}

// directSlot is a slot whose subscriber path is UDP: readers write to it inline.
func (r *unitRig) directSlot(w webrtc.TrackLocalWriter) *Slot {
	s := r.slot(w)
	s.peer.subDirect.Store(true)
	return s
}

// TestDirectPathWritesInline: with a UDP subscriber path the reader writes
// during the fan-out itself (no queue), sequence numbers stay continuous,
// and the in-server delay is recorded once per fan-out.
func TestDirectPathWritesInline(t *testing.T) {
	r := newUnitRig()
	w := &fakeWriter{}
	s := r.directSlot(w)
	v := media.NewVideo(media.VideoConfig{Code: "22", Width: 320, Height: 180, Bitrate: 300_000, KeyframeInterval: -1, SSRC: 3})
	now := time.Unix(0, 0)
	total := 0
	for f := 0; f < 30; f++ {
		now = now.Add(33 * time.Millisecond)
		_ = v.NextFrame(now, func(p *rtp.Packet) error { r.ingest(p); total++; return nil })
		if got := w.n.Load(); got != int64(total) {
			t.Fatalf("after %d packets %d written: not inline", total, got)
		}
	}
	if n := r.e.fwdDelay.count.Load(); n != uint64(total) {
		t.Errorf("delay recorded %d times for %d fan-outs", n, total)
	}
	w.mu.Lock()
	for i := 1; i < len(w.seqs); i++ {
		if w.seqs[i] != w.seqs[i-1]+1 {
			t.Fatalf("seq gap %d -> %d", w.seqs[i-1], w.seqs[i])
		}
	}
	w.mu.Unlock()
	if st := r.e.ForwardStats(); st.Packets != uint64(total) || st.DelayP99 <= 0 {
		t.Errorf("forward stats %+v", st)
	}
	s.close()
	s.wg.Wait()
}

// BenchmarkFanoutDirect: the reader-side cost of fanning one packet out to
// 100 UDP subscribers written inline (fake writers: no SRTP, no socket).
func BenchmarkFanoutDirect(b *testing.B) {
	r := newUnitRig()
	var slots []*Slot
	for i := 0; i < 100; i++ {
		slots = append(slots, r.directSlot(&fakeWriter{}))
	}
	runFanoutBench(b, r, slots)
}

// TestIdleWriterExits: a queued-path writer goroutine exits after WriterIdle without
// work and a new one starts for the next packet, with nothing lost or reordered.
func TestIdleWriterExits(t *testing.T) {
	r := newUnitRig()
	r.e.cfg.WriterIdle = 50 * time.Millisecond
	w := &fakeWriter{}
	s := r.slot(w)
	v := media.NewVideo(media.VideoConfig{Code: "22", RID: "f", Width: 640, Height: 360, Bitrate: 300_000, KeyframeInterval: time.Second, SSRC: 9})
	now := time.Unix(0, 0)
	total := 0
	burst := func() {
		for f := 0; f < 5; f++ {
			now = now.Add(33 * time.Millisecond)
			_ = v.NextFrame(now, func(p *rtp.Packet) error {
				r.ingest(p)
				total++
				return nil
			})
		}
	}
	for round := 0; round < 3; round++ {
		burst()
		if !s.writerUp.Load() {
			t.Fatalf("round %d: no writer while packets are queued", round)
		}
		waitFor(t, 5*time.Second, "burst written", func() bool { return w.n.Load() == int64(total) })
		waitFor(t, 5*time.Second, "idle writer gone", func() bool { return !s.writerUp.Load() })
	}
	w.mu.Lock()
	for i := 1; i < len(w.seqs); i++ {
		if w.seqs[i] != w.seqs[i-1]+1 {
			t.Errorf("seq gap %d -> %d across writer restarts", w.seqs[i-1], w.seqs[i])
			break
		}
	}
	w.mu.Unlock()
	s.close()
	s.wg.Wait()
}

// runFanoutBench feeds 720p VP8 packets through the rig's layer b.N times
// (one op = one packet fanned out to every slot), then closes the slots.
func runFanoutBench(b *testing.B, r *unitRig, slots []*Slot) {
	v := media.NewVideo(media.VideoConfig{Code: "22", Width: 1280, Height: 720, Bitrate: 1_500_000, KeyframeInterval: -1, SSRC: 3})
	var pkts []*rtp.Packet
	now := time.Unix(0, 0)
	for len(pkts) < 1000 {
		now = now.Add(33 * time.Millisecond)
		_ = v.NextFrame(now, func(p *rtp.Packet) error { c := p.Clone(); pkts = append(pkts, c); return nil })
	}
	// One fan-out first: each slot's writer state (buffers, SRTP context)
	// is made on its first packet, which is not the per-packet cost.
	pkts[0].SequenceNumber = 0xffff
	r.ingest(pkts[0])
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		p.SequenceNumber = uint16(i)
		r.ingest(p)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(slots)), "ns/subscriber")
	// CPU of the whole process per op (every core, kernel included): with
	// the fan-out split, wall time per op falls but this should not rise.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	for _, s := range slots {
		s.close()
		s.wg.Wait()
	}
}
