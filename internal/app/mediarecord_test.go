package app

import (
	"path/filepath"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/opscenter/opscenter/record"
)

// A split hands over to the next file at the first packet of a keyframe.
func TestRecordVP8KeyframeStart(t *testing.T) {
	for _, pid := range []bool{false, true} {
		pz := &codecs.VP8Payloader{EnablePictureID: pid}
		key := make([]byte, 3000)
		key[0] = 0x50 // P bit clear: a keyframe
		delta := make([]byte, 3000)
		delta[0] = 0x51
		kp := pz.Payload(1200, key)
		if !vp8KeyframeStart(kp[0]) {
			t.Errorf("picture id %v: first packet of a keyframe not seen (%x)", pid, kp[0][:4])
		}
		for i, p := range kp[1:] {
			if vp8KeyframeStart(p) {
				t.Errorf("picture id %v: packet %d of a keyframe taken for its start", pid, i+1)
			}
		}
		for i, p := range pz.Payload(1200, delta) {
			if vp8KeyframeStart(p) {
				t.Errorf("picture id %v: packet %d of a delta frame taken for a keyframe", pid, i)
			}
		}
	}
	if vp8KeyframeStart(nil) || vp8KeyframeStart([]byte{0x90}) || vp8KeyframeStart([]byte{0x90, 0x80}) {
		t.Error("short payloads")
	}
}

// BenchmarkRecordSinkTapRTP is what the app's tap sink costs the sfu's reader
// per packet (run with -benchmem: 0 allocs/op): two atomic loads and
// record.Recorder.WriteVideoRTP (a copy into a preallocated slot, a
// non-blocking send). Delta frames only, so the recorder's goroutine drops
// them instead of muxing.
func BenchmarkRecordSinkTapRTP(b *testing.B) {
	rec, err := record.NewWriter(filepath.Join(b.TempDir(), "b.webm"), record.WithSync(false),
		record.WithKeyframeInterval(0))
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	r := &mediaRecording{swapped: make(chan struct{}, 1)}
	r.video.r, r.video.kind = r, record.Video
	r.cur.Store(rec)
	pz := &codecs.VP8Payloader{EnablePictureID: true}
	frame := make([]byte, 3000)
	frame[0] = 1
	payloads := pz.Payload(1200, frame)
	var p rtp.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.SequenceNumber = uint16(i)
		p.Timestamp = uint32(i/len(payloads)) * 3000
		p.Payload = payloads[i%len(payloads)]
		r.video.TapRTP(&p)
	}
}
