package sfu

import (
	"testing"
	"time"

	"github.com/opscenter/opscenter/synth/media"
	"github.com/pion/rtp"
)

func TestParseVP8(t *testing.T) {
	var key, inter []byte
	v := media.NewVideo(media.VideoConfig{Code: "207", RID: "h", Width: 640, Height: 360, Bitrate: 300_000, SSRC: 5})
	_ = v.NextFrame(time.Now(), func(p *rtp.Packet) error {
		if key == nil {
			key = append([]byte(nil), p.Payload...)
		}
		return nil
	})
	_ = v.NextFrame(time.Now(), func(p *rtp.Packet) error {
		if inter == nil {
			inter = append([]byte(nil), p.Payload...)
		}
		return nil
	})
	cases := []struct {
		name string
		in   []byte
		want vp8Info
		ok   bool
	}{
		{"empty", nil, vp8Info{}, false},
		{"short ext", []byte{0x90}, vp8Info{}, false},
		{"short pictureid", []byte{0x90, 0x80, 0x80}, vp8Info{}, false},
		{"start no header", []byte{0x10}, vp8Info{}, false},
		{"continuation", []byte{0x00, 1, 2, 3}, vp8Info{}, true},
		{"minimal interframe", []byte{0x10, 0x01, 0, 0}, vp8Info{start: true}, true},
		{"minimal keyframe", []byte{0x10, 0x00, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00}, vp8Info{start: true, keyframe: true, width: 320, height: 180}, true},
		{"keyframe bad start code", []byte{0x10, 0x00, 0, 0, 0x9d, 0x01, 0x2b, 0x40, 0x01, 0xb4, 0x00}, vp8Info{start: true, keyframe: true}, true},
		{"7-bit picture id + tl0 + tid", []byte{0x90, 0xe0, 0x05, 0x07, 0x40, 0x01, 0, 0}, vp8Info{start: true}, true},
		{"partition 1 not start", []byte{0x11, 0x00, 0, 0}, vp8Info{}, true},
		{"synthetic keyframe", key, vp8Info{start: true, keyframe: true, width: 640, height: 360}, true},
		{"synthetic interframe", inter, vp8Info{start: true}, true},
	}
	for _, c := range cases {
		got, ok := parseVP8(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%s: got %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseVP8(f *testing.F) {
	f.Add([]byte{0x90, 0x80, 0x80, 1, 0, 0, 0, 0x9d, 0x01, 0x2a, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) { parseVP8(b) })
}

func TestRewriterContinuity(t *testing.T) {
	rw := newRewriter(90000, 3000)
	now := int64(1e9)
	type pk struct {
		seq uint16
		ts  uint32
	}
	var out []pk
	emit := func(seq uint16, ts uint32) {
		s, tt, ok := rw.rewrite(seq, ts, now)
		if !ok {
			t.Fatalf("rejected %d", seq)
		}
		out = append(out, pk{s, tt})
	}
	// source A: seq 65530.. (wraps), ts 1000
	rw.startEpoch(65530, 1000, now)
	for i := 0; i < 10; i++ {
		emit(65530+uint16(i), 1000+uint32(i/2)*3000)
		now += 16e6
	}
	// reordered packet of the epoch still maps
	if s, _, ok := rw.rewrite(65535, 4000, now); !ok || s != out[5].seq {
		t.Fatalf("reordered: %d %v", s, ok)
	}
	// switch to source B after 100 ms: seq 100, ts 5_000_000
	now += 100e6
	rw.startEpoch(100, 5_000_000, now)
	if _, _, ok := rw.rewrite(99, 4_997_000, now); ok {
		t.Fatal("packet before epoch start accepted")
	}
	for i := 0; i < 5; i++ {
		emit(100+uint16(i), 5_000_000+uint32(i)*3000)
	}
	for i := 1; i < len(out); i++ {
		if out[i].seq != out[i-1].seq+1 {
			t.Fatalf("seq not continuous at %d: %d -> %d", i, out[i-1].seq, out[i].seq)
		}
		if d := int32(out[i].ts - out[i-1].ts); d < 0 {
			t.Fatalf("ts went back at %d", i)
		}
	}
	// ts step at the switch ≈ 100ms+16ms of wall time = 10440 ticks
	step := out[10].ts - out[9].ts
	if step < 9000 || step > 12000 {
		t.Fatalf("ts step at switch %d", step)
	}
	// NACK mapping: only current epoch
	if src, ok := rw.sourceSeq(out[12].seq); !ok || src != 102 {
		t.Fatalf("sourceSeq = %d %v", src, ok)
	}
	if _, ok := rw.sourceSeq(out[3].seq); ok {
		t.Fatal("old epoch seq mapped")
	}
	if _, ok := rw.sourceSeq(out[14].seq + 1); ok {
		t.Fatal("future seq mapped")
	}
	// immediate switch: minimum delta applies
	rw.startEpoch(7, 0, now)
	s, ts, _ := rw.rewrite(7, 0, now)
	if s != out[14].seq+1 || ts-out[14].ts != 3000 {
		t.Fatalf("immediate switch: seq %d ts step %d", s, ts-out[14].ts)
	}
	// long epoch: the window start trails, late packets still map
	for i := 0; i < 70000; i++ {
		rw.rewrite(uint16(7+i), uint32(i)*10, now)
	}
	if _, _, ok := rw.rewrite(uint16(69997&0xffff), 0, now); !ok {
		t.Fatal("late packet in long epoch rejected")
	}
}

func TestPacketCache(t *testing.T) {
	c := newPacketCache(100) // rounds to 128
	if c.size != 128 {
		t.Fatalf("size %d", c.size)
	}
	buf := make([]byte, 1500)
	payload := []byte{1, 2, 3}
	if _, _, _, ok := c.get(5, buf); ok {
		t.Fatal("empty cache hit")
	}
	// wraparound of sequence numbers
	for i := 0; i < 300; i++ {
		seq := uint16(65500 + i)
		payload[0] = byte(i)
		if !c.insert(seq, uint32(i), flagStart, payload) {
			t.Fatalf("insert %d", seq)
		}
	}
	if c.insert(uint16((65500+299)&0xffff), 0, 0, payload) {
		t.Fatal("duplicate accepted")
	}
	newest := uint16((65500 + 299) & 0xffff)
	for back := 0; back < 300; back++ {
		seq := newest - uint16(back)
		n, ts, flags, ok := c.get(seq, buf)
		if back < 128 {
			if !ok || n != 3 || buf[0] != byte(299-back) || ts != uint32(299-back) || flags != flagStart {
				t.Fatalf("get %d (back %d): ok=%v n=%d b=%d", seq, back, ok, n, buf[0])
			}
		} else if ok {
			t.Fatalf("evicted %d still present", seq)
		}
	}
	// a very old packet must not overwrite a newer entry
	if c.insert(newest-200, 0, 0, payload) {
		t.Fatal("too-old insert accepted")
	}
	if !c.has(newest - 72) { // same index as newest-200
		t.Fatal("newer entry overwritten")
	}
	// out-of-order late arrival within the window fills a hole
	c2 := newPacketCache(64)
	c2.insert(10, 0, 0, payload)
	c2.insert(12, 0, 0, payload)
	if !c2.insert(11, 0, 0, payload) || !c2.has(11) {
		t.Fatal("hole not filled")
	}
	if c2.insert(13, 0, 0, make([]byte, maxCachedPayload+1)) {
		t.Fatal("oversize accepted")
	}
}

func BenchmarkPacketCache(b *testing.B) {
	c := newPacketCache(512)
	payload := make([]byte, 1200)
	buf := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for i := 0; i < b.N; i++ {
		seq := uint16(i)
		c.insert(seq, uint32(i), 0, payload)
		c.get(seq-100, buf)
	}
}

func TestAllocate(t *testing.T) {
	all := [3]bool{true, true, true}
	rates := [3]int{150_000, 500_000, 1_500_000}
	cases := []struct {
		name   string
		slots  []allocSlot
		budget int
		want   []allocResult
	}{
		{"plenty", []allocSlot{{requested: 2, layers: 3, active: all, bitrate: rates}}, 5_000_000,
			[]allocResult{{target: 2, effective: 2}}},
		{"request caps", []allocSlot{{requested: 1, layers: 3, active: all, bitrate: rates}}, 5_000_000,
			[]allocResult{{target: 1, effective: 1}}},
		{"600k gets q", []allocSlot{{requested: 2, layers: 3, active: all, bitrate: [3]int{150_000, 600_000, 1_500_000}}}, 540_000,
			[]allocResult{{target: 0, effective: 0, limited: true}}},
		{"1M gets h", []allocSlot{{requested: 2, layers: 3, active: all, bitrate: rates}}, 1_000_000,
			[]allocResult{{target: 1, effective: 1, limited: true}}},
		{"nothing still gets base", []allocSlot{{requested: 2, layers: 3, active: all, bitrate: rates}}, 0,
			[]allocResult{{target: 0, effective: 0, limited: true}}},
		{"gated", []allocSlot{{requested: -1, layers: 3, active: all}}, 1_000_000,
			[]allocResult{{target: -1, effective: -1}}},
		{"single layer source", []allocSlot{{requested: 2, layers: 1, active: [3]bool{true}}}, 5_000_000,
			[]allocResult{{target: 0, effective: 0}}},
		{"paused f: forward h meanwhile", []allocSlot{{requested: 2, layers: 3, active: [3]bool{true, true, false}, bitrate: rates}}, 5_000_000,
			[]allocResult{{target: 2, effective: 1}}},
		{"only f active", []allocSlot{{requested: 0, layers: 3, active: [3]bool{false, false, true}}}, 5_000_000,
			[]allocResult{{target: 0, effective: 2}}},
		{"nothing active", []allocSlot{{requested: 1, layers: 3}}, 5_000_000,
			[]allocResult{{target: 1, effective: 1}}},
		{"priority order", []allocSlot{
			{requested: 2, layers: 3, active: all, bitrate: rates},
			{requested: 2, layers: 3, active: all, bitrate: rates},
		}, 2_000_000, []allocResult{{target: 2, effective: 2}, {target: 1, effective: 1, limited: true}}},
		{"unknown bitrate uses defaults", []allocSlot{{requested: 2, layers: 3, active: all}}, 700_000,
			[]allocResult{{target: 1, effective: 1, limited: true}}},
	}
	for _, c := range cases {
		out := make([]allocResult, len(c.slots))
		allocate(c.slots, c.budget, out)
		for i := range out {
			if out[i] != c.want[i] {
				t.Errorf("%s[%d]: got %+v want %+v", c.name, i, out[i], c.want[i])
			}
		}
	}
}

func TestRateLimiter(t *testing.T) {
	var l rateLimiter
	base := int64(10e9)
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {100 * time.Millisecond, false}, {499 * time.Millisecond, false}, {500 * time.Millisecond, true}, {600 * time.Millisecond, false}, {2 * time.Second, true}}
	for _, s := range steps {
		if got := l.allow(base+int64(s.at), 500*time.Millisecond); got != s.want {
			t.Errorf("at %v: got %v", s.at, got)
		}
	}
}

func TestRTTFromReport(t *testing.T) {
	now := time.Now()
	sent := now.Add(-80 * time.Millisecond)
	lsr := uint32(toNTP(sent) >> 16)
	dlsr := uint32(30 * 65536 / 1000) // 30 ms held by the receiver
	rtt := rttFromReport(now, lsr, dlsr)
	if rtt < 45*time.Millisecond || rtt > 55*time.Millisecond {
		t.Fatalf("rtt %v", rtt)
	}
}

func TestLossWindow(t *testing.T) {
	if got := lossFraction(90, 10, 0); got != 0.1 {
		t.Errorf("lossFraction(90,10,0) = %v", got)
	}
	if got := lossFraction(90, 10, 10); got != 0 {
		t.Errorf("fully repaired = %v", got)
	}
	if got := lossFraction(0, 0, 0); got != 0 {
		t.Errorf("empty = %v", got)
	}
	var w lossWindow
	sec := int64(time.Second)
	// 10 s of clean traffic, then 2 s with 20% gaps, half of them repaired.
	var cur lossSample
	for i := 0; i <= 20; i++ {
		cur.at = int64(i) * sec / 2
		cur.packets += 25
		w.add(cur)
	}
	if got := w.recent(cur); got != 0 {
		t.Errorf("clean window = %v", got)
	}
	for i := 0; i < 4; i++ {
		cur.at += sec / 2
		cur.packets += 20
		cur.lost += 5
		cur.recovered += 2
		w.add(cur)
	}
	got := w.recent(cur)
	// window = the last 4 s: 4 clean samples (100 pkts) + 4 lossy (80 pkts, 20 gaps, 8 repaired)
	want := 12.0 / 200.0
	if got < want-0.001 || got > want+0.001 {
		t.Errorf("recent loss = %v, want %v", got, want)
	}
}

func TestPacketCacheRelease(t *testing.T) {
	c := newPacketCache(64)
	if c.allocated.Load() {
		t.Fatal("allocated before the first insert")
	}
	c.insert(10, 900, 0, []byte("abc"))
	if !c.allocated.Load() || !c.has(10) {
		t.Fatal("insert did not allocate")
	}
	c.release()
	if c.allocated.Load() || c.has(10) {
		t.Fatal("release kept the buffers")
	}
	buf := make([]byte, 16)
	if _, _, _, ok := c.get(10, buf); ok {
		t.Fatal("get after release")
	}
	// After a release the cache starts over: an older sequence number is fine.
	if !c.insert(5, 450, 0, []byte("xy")) || !c.has(5) {
		t.Fatal("insert after release")
	}
}
