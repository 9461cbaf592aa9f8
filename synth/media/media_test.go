package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestVideoFrames(t *testing.T) {
	for _, tc := range []struct {
		rid     string
		w, h    int
		bitrate int
	}{{"q", 320, 180, 150_000}, {"h", 640, 360, 500_000}, {"f", 1280, 720, 1_500_000}} {
		v := NewVideo(VideoConfig{Code: "07192", RID: tc.rid, Width: tc.w, Height: tc.h, Bitrate: tc.bitrate, SSRC: 42})
		now := time.Unix(1700000000, 0)
		var bytes, frames, keys int
		var lastSeq uint16
		first := true
		for f := 0; f < 90; f++ { // 3 s at 30 fps
			ts := now.Add(time.Duration(f) * time.Second / 30)
			startSeen := false
			err := v.NextFrame(ts, func(p *rtp.Packet) error {
				if len(p.Payload) > 1200 {
					t.Fatalf("payload %d > 1200", len(p.Payload))
				}
				if !first && p.SequenceNumber != lastSeq+1 {
					t.Fatalf("seq gap %d -> %d", lastSeq, p.SequenceNumber)
				}
				first = false
				lastSeq = p.SequenceNumber
				m, ok := ParseMarker(p.Payload)
				if !ok || m.Code != "07192" || m.RID != tc.rid || !m.SentAt.Equal(ts) || m.Kind != 'v' {
					t.Fatalf("marker %+v ok=%v", m, ok)
				}
				if w, h, ok := ParseVP8Keyframe(p.Payload); ok {
					if w != tc.w || h != tc.h {
						t.Fatalf("keyframe %dx%d", w, h)
					}
					keys++
				}
				if _, start, _, _ := vp8Headers(p.Payload); start {
					if startSeen {
						t.Fatal("two frame starts")
					}
					startSeen = true
				}
				bytes += len(p.Payload)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !startSeen {
				t.Fatal("frame without start")
			}
			frames++
		}
		rate := bytes * 8 / 3
		t.Logf("%s: %d bit/s, %d keyframes", tc.rid, rate, keys)
		if rate < tc.bitrate*7/10 || rate > tc.bitrate*2 {
			t.Errorf("%s: rate %d far from %d", tc.rid, rate, tc.bitrate)
		}
		if keys != 1 { // first frame + interval 3 s (frame 90 not reached)
			t.Errorf("%s: %d keyframes", tc.rid, keys)
		}
		v.RequestKeyframe()
		got := false
		_ = v.NextFrame(now.Add(3100*time.Millisecond), func(p *rtp.Packet) error {
			if _, _, ok := ParseVP8Keyframe(p.Payload); ok {
				got = true
			}
			return nil
		})
		if !got {
			t.Error("no keyframe after RequestKeyframe")
		}
	}
}

func TestAudio(t *testing.T) {
	a := NewAudio(AudioConfig{Code: "22", LevelExtID: 3, SSRC: 7})
	a.SetLevel(10)
	now := time.Now()
	err := a.NextPacket(now, func(p *rtp.Packet) error {
		m, ok := ParseMarker(p.Payload)
		if !ok || m.Code != "22" || m.Kind != 'a' || m.RID != "" {
			t.Fatalf("marker %+v", m)
		}
		ext := p.GetExtension(3)
		if len(ext) != 1 || ext[0]&0x7f != 10 || ext[0]&0x80 == 0 {
			t.Fatalf("level ext %v", ext)
		}
		if len(p.Payload) != 100 {
			t.Fatalf("size %d", len(p.Payload))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0x80}, {0x90, 0x80}, {0x90, 0x80, 0x80}, {0x90, 0x80, 0x80, 1, 0}, []byte("OPSMshort")} {
		if _, ok := ParseMarker(b); ok {
			t.Errorf("marker in %v", b)
		}
		if _, _, ok := ParseVP8Keyframe(b); ok {
			t.Errorf("keyframe in %v", b)
		}
	}
}

func BenchmarkVideoFrame(b *testing.B) {
	v := NewVideo(VideoConfig{Code: "07192", RID: "f", Width: 1280, Height: 720, Bitrate: 1_500_000, SSRC: 1})
	now := time.Now()
	n := 0
	emit := func(p *rtp.Packet) error { n += len(p.Payload); return nil }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = v.NextFrame(now, emit)
	}
	b.SetBytes(int64(n / max(b.N, 1)))
}

func BenchmarkAudioPacket(b *testing.B) {
	a := NewAudio(AudioConfig{Code: "07192", LevelExtID: 1})
	now := time.Now()
	emit := func(*rtp.Packet) error { return nil }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = a.NextPacket(now, emit)
	}
}

func BenchmarkParseMarker(b *testing.B) {
	v := NewVideo(VideoConfig{Code: "07192", RID: "f", Width: 1280, Height: 720, SSRC: 1})
	var payload []byte
	_ = v.NextFrame(time.Now(), func(p *rtp.Packet) error {
		if payload == nil {
			payload = append([]byte(nil), p.Payload...)
		}
		return nil
	})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := ParseMarker(payload); !ok {
			b.Fatal("no marker")
		}
	}
}

// SentAt finds the send time in whole marshalled packets: a keyframe's first
// packet (descriptor and keyframe header before the marker), with a header
// extension, and audio; and nothing in a short or foreign packet.
func TestSentAt(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	var pkts []*rtp.Packet
	keep := func(p *rtp.Packet) error { pkts = append(pkts, p.Clone()); return nil }
	v := NewVideo(VideoConfig{Code: "07192", RID: "f", Width: 1280, Height: 720, Bitrate: 1_500_000, SSRC: 1})
	if err := v.NextFrame(now, keep); err != nil {
		t.Fatal(err)
	}
	a := NewAudio(AudioConfig{Code: "07192", LevelExtID: 1, Level: 30, SSRC: 2})
	if err := a.NextPacket(now, keep); err != nil {
		t.Fatal(err)
	}
	if len(pkts) < 2 {
		t.Fatalf("%d packets", len(pkts))
	}
	_ = pkts[0].Header.SetExtension(3, []byte("f"))
	for i, p := range pkts {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := SentAt(b)
		if !ok || !got.Equal(now) {
			t.Errorf("packet %d (ext %v): SentAt = %v, %v; want %v", i, p.Extension, got, ok, now)
		}
		if _, ok := SentAt(b[:14]); ok {
			t.Errorf("packet %d: marker found in a short packet", i)
		}
	}
	if _, ok := SentAt(make([]byte, 200)); ok {
		t.Error("marker found in zeros")
	}
}
