package sfu

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/record"
)

// tapRec is a test TapSink: what a recording tap received.
type tapRec struct {
	mu        sync.Mutex
	packets   int
	ssrcs     map[uint32]bool
	keyWidth  int
	seqs      []uint16
	reports   int
	lastNTP   uint64
	refilled  atomic.Bool
	refillSeq uint16
}

func (r *tapRec) TapRTP(p *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ssrcs == nil {
		r.ssrcs = map[uint32]bool{}
	}
	r.packets++
	r.ssrcs[p.SSRC] = true
	r.seqs = append(r.seqs, p.SequenceNumber)
	if info, ok := parseVP8(p.Payload); ok && info.keyframe && info.width > 0 {
		r.keyWidth = info.width
	}
	if p.SequenceNumber == r.refillSeq {
		r.refilled.Store(true)
	}
}

func (r *tapRec) TapSenderReport(ntp uint64, _ uint32) {
	r.mu.Lock()
	r.reports++
	r.lastNTP = ntp
	r.mu.Unlock()
}

func (r *tapRec) snap() (packets, keyWidth, reports, ssrcs int, lastSeq uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.seqs); n > 0 {
		lastSeq = r.seqs[n-1]
	}
	return r.packets, r.keyWidth, r.reports, len(r.ssrcs), lastSeq
}

// A recording tap (issue "the record", 1): it receives the top layer's
// original packets and its sender reports, counts as a watcher so the top
// layer is resumed (and only it), gets a keyframe, refills from the cache,
// and lets the layer pause again when closed.
func TestRecordTap(t *testing.T) {
	v := newEnv(t, testConfig())
	c, video, audio := v.publisher("07192", stdLayers, 15)
	for _, rid := range RIDs {
		waitFor(t, 5*time.Second, "pause of unwatched "+rid, func() bool {
			n, ok := v.lastDemand("07192", rid)
			return ok && !n
		})
	}
	vs, as := &tapRec{}, &tapRec{}
	start := time.Now()
	vt := video.Tap(LayerHigh, vs)
	at := audio.Tap(LayerHigh, as) // audio: its only layer
	if at.Layer() != 0 {
		t.Errorf("audio tap layer %d", at.Layer())
	}
	waitFor(t, 5*time.Second, "f needed for the tap", func() bool { n, _ := v.lastDemand("07192", "f"); return n })
	d := waitFor(t, 15*time.Second, "a 1280-wide keyframe at the tap", func() bool { _, w, _, _, _ := vs.snap(); return w == 1280 })
	t.Logf("tap: f resumed and its keyframe arrived %v after the tap started (%v waiting)", time.Since(start), d)
	if n, _ := v.lastDemand("07192", "q"); n {
		t.Error("q needed by a tap of f")
	}
	if n, _ := v.lastDemand("07192", "h"); n {
		t.Error("h needed by a tap of f")
	}
	waitFor(t, 10*time.Second, "sender reports at both taps", func() bool {
		_, _, vr, _, _ := vs.snap()
		_, _, ar, _, _ := as.snap()
		return vr > 0 && ar > 0
	})
	waitFor(t, 5*time.Second, "audio packets", func() bool { n, _, _, _, _ := as.snap(); return n > 10 })
	n, _, reports, ssrcs, last := vs.snap()
	t.Logf("video tap: %d packets, %d sender reports, %d SSRC(s)", n, reports, ssrcs)
	if ssrcs != 1 {
		t.Errorf("video tap got %d SSRCs, want the top layer's only", ssrcs)
	}
	// Refill: a packet the tap saw is still in the layer's cache.
	vs.refilled.Store(false)
	vs.mu.Lock()
	vs.refillSeq = last
	vs.mu.Unlock()
	if got := vt.Refill(last, 1); got != 1 || !vs.refilled.Load() {
		t.Errorf("refill of %d: %d packets, delivered %v", last, got, vs.refilled.Load())
	}
	if !vt.RequestKeyframe() {
		// Rate-limited by PLIInterval: a later one goes out.
		time.Sleep(v.e.cfg.PLIInterval + 50*time.Millisecond)
		if !vt.RequestKeyframe() {
			t.Error("keyframe request not sent")
		}
	}

	vt.Close()
	at.Close()
	waitFor(t, 5*time.Second, "f paused after the tap closed", func() bool { n, _ := v.lastDemand("07192", "f"); return !n })
	n1, _, _, _, _ := vs.snap()
	time.Sleep(300 * time.Millisecond)
	if n2, _, _, _, _ := vs.snap(); n2 != n1 {
		t.Errorf("closed tap still fed: %d → %d packets", n1, n2)
	}
	c.close()
}

// senderReports parses compound RTCP in place and hands each SR to the taps
// of the layer whose SSRC it names.
func TestRecordTapSenderReportParse(t *testing.T) {
	e := &Engine{}
	p := &Peer{e: e}
	tr := &UpTrack{e: e, peer: p, kind: webrtc.RTPCodecTypeVideo}
	l := &upLayer{track: tr, index: 0, ssrc: 4242, cache: newPacketCache(16)}
	tr.layers[0].Store(l)
	p.tracks = []*UpTrack{tr}
	s := &tapRec{}
	taps := []*Tap{{track: tr, layer: 0, sink: s}}
	tr.taps.Store(&taps)
	b, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.SenderReport{SSRC: 1, NTPTime: 1, RTPTime: 1}, // another stream
		&rtcp.SenderReport{SSRC: 4242, NTPTime: 0x1122334455667788, RTPTime: 99},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 4242,
			Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "x"}}}}},
	})
	must(t, err)
	p.senderReports(b)
	p.senderReports(b[:len(b)-3]) // cut short: the whole packets before the cut still count
	if s.reports != 2 || s.lastNTP != 0x1122334455667788 {
		t.Errorf("reports %d, last NTP %x", s.reports, s.lastNTP)
	}
	if a := testing.AllocsPerRun(100, func() { p.senderReports(b) }); a != 0 {
		t.Errorf("senderReports allocates %v per compound packet", a)
	}
}

// recorderSink is the production shape of a tap sink: write to a
// record.Recorder (the app's MediaRecorder adds one atomic load).
type recorderSink struct {
	rec atomic.Pointer[record.Recorder]
}

func (s *recorderSink) TapRTP(p *rtp.Packet) {
	if r := s.rec.Load(); r != nil {
		_ = r.WriteVideoRTP(p)
	}
}
func (s *recorderSink) TapSenderReport(uint64, uint32) {}

// BenchmarkRecordTapFeed measures what a recording tap adds to the reader's
// per-packet path (feedTaps → sink → record.Recorder.WriteVideoRTP): run with
// -benchmem; 0 allocs/op is the requirement. The recorder's own goroutine
// runs too; its work (reassembly, muxing) is not on the forwarding path, so
// the benchmark feeds delta frames only, which it drops until a keyframe.
// BenchmarkRecordTapNone is the same packet without a tap.
func BenchmarkRecordTapFeed(b *testing.B) { benchTap(b, true) }
func BenchmarkRecordTapNone(b *testing.B) { benchTap(b, false) }

func benchTap(b *testing.B, tapped bool) {
	tr := &UpTrack{kind: webrtc.RTPCodecTypeVideo}
	l := &upLayer{track: tr, index: LayerHigh, rid: "f"}
	tr.layers[LayerHigh].Store(l)
	if tapped {
		rec, err := record.NewWriter(filepath.Join(b.TempDir(), "b.webm"), record.WithSync(false),
			record.WithKeyframeInterval(0))
		if err != nil {
			b.Fatal(err)
		}
		defer rec.Close()
		s := &recorderSink{}
		s.rec.Store(rec)
		taps := []*Tap{{track: tr, layer: LayerHigh, sink: s}}
		tr.taps.Store(&taps)
	}
	pz := rtp.NewPacketizer(1200, 96, 1, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)
	frame := make([]byte, 3000)
	frame[0] = 1 // delta frame
	pkts := pz.Packetize(frame, 3000)
	var p rtp.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src := pkts[i%len(pkts)]
		p.Header = src.Header
		p.SequenceNumber = uint16(i)
		p.Timestamp = uint32(i/len(pkts)) * 3000
		p.Payload = src.Payload
		l.feedTaps(&p)
	}
}
