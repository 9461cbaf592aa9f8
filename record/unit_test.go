package record

import (
	"testing"
)

func TestJitterReorderAndLoss(t *testing.T) {
	j := newJitter(4, 0)
	var got []uint16
	var lost int
	push := func(seqs ...uint16) {
		for _, q := range seqs {
			if j.push(&slot{seq: q}) != pushOK {
				t.Fatalf("push %d refused", q)
			}
			for {
				s, l := j.pop(false)
				if s == nil {
					break
				}
				got, lost = append(got, s.seq), lost+l
			}
		}
	}
	push(65534, 0, 65535, 1) // reordered across the wrap
	push(3, 4, 5, 6)         // 2 is missing: waited for, then skipped
	want := []uint16{65534, 65535, 0, 1, 3, 4, 5, 6}
	if len(got) != len(want) || lost != 1 {
		t.Fatalf("got %v lost %d, want %v lost 1", got, lost, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if j.push(&slot{seq: 2}) != pushLate {
		t.Error("a packet after its turn was accepted")
	}
	if j.push(&slot{seq: 5000}) != pushJump {
		t.Error("a jump was accepted")
	}
}

func TestJitterSpan(t *testing.T) {
	j := newJitter(100, 9000) // 100 ms at 90 kHz
	j.push(&slot{seq: 1, ts: 0})
	if s, _ := j.pop(false); s == nil {
		t.Fatal("first packet held")
	}
	j.push(&slot{seq: 3, ts: 3000})
	j.push(&slot{seq: 4, ts: 6000})
	if s, _ := j.pop(false); s != nil {
		t.Fatal("hole skipped before the span ran out")
	}
	j.push(&slot{seq: 5, ts: 12001})
	if s, l := j.pop(false); s == nil || s.seq != 3 || l != 1 {
		t.Fatalf("got %+v lost %d, want 3 after 1 lost", s, l)
	}
}

func TestTimelineSenderReports(t *testing.T) {
	tl := newTimeline()
	// Video starts; audio's first packet arrives when video is 300 ms in.
	tl.extend(Video, 1000)
	tl.extend(Video, 1000+27000)
	a := tl.extend(Audio, 5000)
	if got := tl.ms(Audio, a); got != 300 {
		t.Fatalf("before reports audio starts at %d ms, want where video is (300)", got)
	}
	// The reports say audio's first packet was sampled 40 ms after video's.
	tl.senderReport(Video, ntp(100.0), 1000+90000)  // video at 1 s = 100.0 s wall
	tl.senderReport(Audio, ntp(100.04), 5000+48000) // audio at 1 s of its own = 100.04 s
	if got := tl.ms(Audio, a); got != 40 {
		t.Fatalf("after reports audio starts at %d ms, want 40", got)
	}
	if got := tl.ms(Video, tl.extend(Video, 1000+90000)); got != 1000 {
		t.Fatalf("video moved: %d", got)
	}
	// RTP timestamps wrap.
	tl2 := newTimeline()
	tl2.extend(Video, 0xFFFFFF00)
	if got := tl2.ms(Video, tl2.extend(Video, 0x00000100+90000-0x200)); got != 1000 {
		t.Fatalf("across the wrap: %d ms", got)
	}
}

func ntp(sec float64) uint64 {
	whole := uint64(sec)
	frac := uint64((sec - float64(whole)) * (1 << 32))
	return whole<<32 | frac
}

func TestVP8KeyframeSize(t *testing.T) {
	// Frame tag (keyframe), start code, 1280x720 with scale bits set.
	b := []byte{0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x00, 0x45, 0xd0, 0x42}
	w, h, ok := vp8KeyframeSize(b)
	if !ok || w != 1280 || h != 720 {
		t.Fatalf("got %dx%d %v", w, h, ok)
	}
	b[0] |= 1 // interframe
	if _, _, ok := vp8KeyframeSize(b); ok {
		t.Fatal("interframe parsed as keyframe")
	}
}
