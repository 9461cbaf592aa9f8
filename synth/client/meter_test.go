package client

import (
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/opscenter/opscenter/synth/media"
)

// videoPackets marshals one keyframe and a few delta frames of a layer sent at t0.
func videoPackets(t testing.TB, t0 time.Time, frames int) [][]byte {
	t.Helper()
	v := media.NewVideo(media.VideoConfig{Code: "07192", RID: "f", Width: 1280, Height: 720, FPS: 30, Bitrate: 1_500_000, SSRC: 7})
	var out [][]byte
	for f := 0; f < frames; f++ {
		err := v.NextFrame(t0, func(p *rtp.Packet) error {
			_ = p.Header.SetExtension(4, []byte("f"))
			b, err := p.Marshal()
			out = append(out, b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestMeterCounts(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	pkts := videoPackets(t, t0, 5)
	var m Meter
	var tr meterTrack
	var bytes uint64
	for i, b := range pkts {
		if i == 2 || i == 3 { // two lost
			continue
		}
		m.count(&tr, b, t0.Add(3*time.Millisecond))
		bytes += uint64(len(b))
	}
	m.count(&tr, pkts[1], t0.Add(3*time.Millisecond)) // a late duplicate: counted, expects nothing more
	got, exp := m.Packets.Load(), m.Expected.Load()
	if want := uint64(len(pkts) - 1); got != want || exp != uint64(len(pkts)) {
		t.Errorf("packets %d expected %d, want %d and %d", got, exp, want, len(pkts))
	}
	if m.Bytes.Load() != bytes+uint64(len(pkts[1])) {
		t.Errorf("bytes %d", m.Bytes.Load())
	}
	d := m.Delay.Snap()
	if d.Count() != got {
		t.Errorf("delay observations %d, packets %d", d.Count(), got)
	}
	if q := d.Quantile(0.5); q < 3*time.Millisecond || q > 4*time.Millisecond {
		t.Errorf("delay p50 %v, want about 3 ms", q)
	}
	m.count(&tr, pkts[0][:8], t0) // a runt is ignored
	if m.Packets.Load() != got {
		t.Error("runt counted")
	}
}

// The per-packet receive path of the load generator allocates nothing.
func TestMeterAllocationFree(t *testing.T) {
	pkts := videoPackets(t, time.Now(), 3)
	var m Meter
	var tr meterTrack
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		m.count(&tr, pkts[i%len(pkts)], time.Now())
		i++
	}); a != 0 {
		t.Errorf("%.1f allocations per packet, want 0", a)
	}
}

// go test ./synth/client -run '^$' -bench Meter -benchmem: 0 allocs/op.
func BenchmarkMeterCount(b *testing.B) {
	pkts := videoPackets(b, time.Now(), 3)
	var m Meter
	var tr meterTrack
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.count(&tr, pkts[i%len(pkts)], time.Now())
	}
}

func TestHist(t *testing.T) {
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	s := h.Snap()
	if s.Count() != 1000 {
		t.Fatalf("count %d", s.Count())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := s.Quantile(c.q)
		if got < c.want || got > c.want*115/100 {
			t.Errorf("q%.2f = %v, want about %v", c.q, got, c.want)
		}
	}
	var empty HistSnap
	if empty.Quantile(0.5) != 0 {
		t.Error("empty quantile")
	}
}
