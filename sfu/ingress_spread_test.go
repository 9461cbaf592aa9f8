package sfu

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/opscenter/opscenter/synth/media"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"
	"github.com/pion/webrtc/v3"
)

// spreadPackets makes count video packets (one keyframe first) for ingest.
func spreadPackets(count int) []*rtp.Packet {
	v := media.NewVideo(media.VideoConfig{Code: "22", Width: 640, Height: 360, Bitrate: 800_000, KeyframeInterval: -1, SSRC: 3})
	var pkts []*rtp.Packet
	now := time.Unix(0, 0)
	for len(pkts) < count {
		now = now.Add(33 * time.Millisecond)
		_ = v.NextFrame(now, func(p *rtp.Packet) error { pkts = append(pkts, p.Clone()); return nil })
	}
	return pkts[:count]
}

// TestSpreadFanoutOrder: with the fan-out split across workers, every slot
// gets every packet, in order and with continuous sequence numbers, and the
// in-server delay is still recorded once per fan-out; over slot counts
// around the threshold, thresholds from "always split" to "never", and
// more workers than cores. workers=gone is a pool whose workers have
// exited, standing for workers that never get a core: the reader takes
// every part back, and the offers left in the channel are stale. Run it
// with -race: the parts hand the reader's buffer to the workers.
func TestSpreadFanoutOrder(t *testing.T) {
	pkts := spreadPackets(120)
	for _, n := range []int{1, 7, 33, 64, 190} {
		for _, threshold := range []int{1, 4, 32, 1000} {
			for _, workers := range []string{"1", "3", "gone"} {
				t.Run(fmt.Sprintf("n=%d/threshold=%d/workers=%s", n, threshold, workers), func(t *testing.T) {
					r := newUnitRig()
					switch workers {
					case "gone":
						r.e.spread = newSpreader(nil, 1, threshold)
						r.e.spread.stop()
					case "1":
						r.e.spread = newSpreader(nil, 1, threshold)
						defer r.e.spread.stop()
					case "3":
						r.e.spread = newSpreader(nil, 3, threshold)
						defer r.e.spread.stop()
					}
					ws := make([]*fakeWriter, n)
					slots := make([]*Slot, n)
					for i := range ws {
						ws[i] = &fakeWriter{}
						slots[i] = r.directSlot(ws[i])
					}
					for _, p := range pkts {
						r.ingest(p)
					}
					for i, w := range ws {
						w.mu.Lock()
						seqs := w.seqs
						w.mu.Unlock()
						if len(seqs) != len(pkts) {
							t.Fatalf("slot %d got %d packets of %d", i, len(seqs), len(pkts))
						}
						for j := 1; j < len(seqs); j++ {
							if seqs[j] != seqs[j-1]+1 {
								t.Fatalf("slot %d: seq %d after %d", i, seqs[j], seqs[j-1])
							}
						}
					}
					if c := r.e.fwdDelay.count.Load(); c != uint64(len(pkts)) {
						t.Errorf("delay recorded %d times for %d fan-outs", c, len(pkts))
					}
					if got, want := r.e.fwdPackets.Load(), uint64(n*len(pkts)); got != want {
						t.Errorf("forwarded %d, want %d", got, want)
					}
					for _, s := range slots {
						s.close()
						s.wg.Wait()
					}
				})
			}
		}
	}
}

// loopbackRig is a unit rig whose engine writes through a real batched UDP
// socket to one loopback receiver per slot, on the own SRTP output
// (AES-GCM), as in production.
type loopbackRig struct {
	*unitRig
	slots []*Slot
	rx    []*net.UDPConn
}

func newLoopbackRig(tb testing.TB, n int) *loopbackRig {
	r := &loopbackRig{unitRig: newUnitRig()}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pc.Close() })
	r.e.batch = newBatchConn(pc)
	for i := 0; i < n; i++ {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadBuffer(1 << 20)
		r.rx = append(r.rx, c)
		s := r.slot(&fakeWriter{})
		dl := testDownlink(tb, srtp.ProtectionProfileAeadAes128Gcm, discard{})
		dl.udp.Store(c.LocalAddr().(*net.UDPAddr))
		s.peer.down.Store(dl)
		s.peer.subDirect.Store(true)
		bd := s.dt.binding.Load()
		s.dt.binding.Store(&binding{ssrc: bd.ssrc, pt: bd.pt, twcc: 3, w: bd.w})
		r.slots = append(r.slots, s)
	}
	tb.Cleanup(func() {
		for _, s := range r.slots {
			s.close()
			s.wg.Wait()
		}
	})
	return r
}

// TestSpreadFanoutSocket: through the workers' own sendmmsg batches, every
// receiver gets every packet in order on a real socket.
func TestSpreadFanoutSocket(t *testing.T) {
	const n = 64
	pkts := spreadPackets(40)
	r := newLoopbackRig(t, n)
	if r.e.batch.raw == nil {
		t.Skip("no sendmmsg batching on this platform")
	}
	r.e.spread = newSpreader(r.e.batch, 2, 8)
	defer r.e.spread.stop()
	for _, p := range pkts {
		r.ingest(p)
	}
	buf := make([]byte, 1500)
	for i, c := range r.rx {
		var prev uint16
		for j := range pkts {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, _, err := c.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("receiver %d: packet %d: %v", i, j, err)
			}
			var h rtp.Header
			if _, err := h.Unmarshal(buf[:m]); err != nil {
				t.Fatalf("receiver %d: packet %d: %v", i, j, err)
			}
			if j > 0 && h.SequenceNumber != prev+1 {
				t.Fatalf("receiver %d: seq %d after %d", i, h.SequenceNumber, prev)
			}
			prev = h.SequenceNumber
		}
	}
	if got, want := r.e.batch.sent.Load(), uint64(n*len(pkts)); got != want || r.e.batch.errs.Load() != 0 {
		t.Errorf("batched %d datagrams (errors %d), want %d", got, r.e.batch.errs.Load(), want)
	}
}

// BenchmarkFanoutSpread: one packet's fan-out to N slots on the own SRTP
// output, serial against split across the spreader (which, as in the
// Engine, has GOMAXPROCS-1 helpers: run with -cpu 1,2). sink=discard stops
// at our SRTP (no socket); sink=loopback sends through a real batched
// socket to one receiver per slot, so the kernel's share is in. ns/op is
// the fan-out's length: the in-server delay of a packet meeting an idle
// reader. Receivers are not read; once their buffers are full the kernel
// drops at the very end of delivery, which costs about the same.
//
// mode=split splits at any size (threshold 1): with n=8..50 it is how the
// default threshold was chosen.
func BenchmarkFanoutSpread(b *testing.B) {
	for _, sink := range []string{"discard", "loopback"} {
		for _, n := range []int{8, 16, 32, 50, 190, 400} {
			for _, mode := range []string{"serial", "spread", "split"} {
				if (n < 2*defaultFanoutSpread) != (mode == "split") && mode != "serial" {
					continue // spread is serial below two parts; split only for small n
				}
				b.Run(fmt.Sprintf("sink=%s/n=%d/%s", sink, n, mode), func(b *testing.B) {
					var r *unitRig
					var slots []*Slot
					if sink == "loopback" {
						lr := newLoopbackRig(b, n)
						r, slots = lr.unitRig, lr.slots
					} else {
						r = newUnitRig()
						for i := 0; i < n; i++ {
							s := r.slot(&fakeWriter{})
							s.peer.down.Store(testDownlink(b, srtp.ProtectionProfileAeadAes128Gcm, discard{}))
							s.peer.subDirect.Store(true)
							bd := s.dt.binding.Load()
							s.dt.binding.Store(&binding{ssrc: bd.ssrc, pt: bd.pt, twcc: 3, w: bd.w})
							slots = append(slots, s)
						}
					}
					switch mode {
					case "spread":
						r.e.spread = newSpreader(r.e.batch, spreadWorkers(), 0)
					case "split":
						r.e.spread = newSpreader(r.e.batch, spreadWorkers(), 1)
					}
					defer r.e.spread.stop()
					runFanoutBench(b, r, slots)
					if sp := r.e.spread; sp != nil {
						// the share of offered parts a worker ran (the rest the reader took back)
						if h, k := sp.helped.Load(), sp.keptBack.Load(); h+k > 0 {
							b.ReportMetric(float64(h)/float64(h+k), "helped")
						}
					}
				})
			}
		}
	}
}

// TestSpreadFanoutNoAllocs: a split fan-out allocates nothing per packet
// once the layer's parts exist.
func TestSpreadFanoutNoAllocs(t *testing.T) {
	r := newUnitRig()
	r.e.spread = newSpreader(nil, 2, 4)
	defer r.e.spread.stop()
	for i := 0; i < 40; i++ {
		s := r.directSlot(&fakeWriter{})
		s.peer.down.Store(testDownlink(t, srtp.ProtectionProfileAeadAes128Gcm, discard{}))
		defer func() { s.close(); s.wg.Wait() }()
	}
	pkts := spreadPackets(200)
	r.ingest(pkts[0])
	i := 1
	allocs := testing.AllocsPerRun(100, func() {
		r.ingest(pkts[i])
		i++
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per split fan-out", allocs)
	}
}

// TestSpreadFanoutEngine: on a real engine (Pion subscribers on loopback,
// the own SRTP output, the batched socket) with every fan-out split, each
// subscriber receives the layer continuously, with no gap or reordering.
func TestSpreadFanoutEngine(t *testing.T) {
	cfg := testConfig()
	cfg.FanoutSpread = 1
	v := newEnv(t, cfg)
	if v.e.spread == nil { // GOMAXPROCS = 1: give it a helper anyway
		v.e.spread = newSpreader(v.e.batch, 1, 1) // stopped by Engine.Close
	}
	_, video, _ := v.publisher("07192", stdLayers, 15)
	const subs = 4
	var recs []*recorder
	for i := 0; i < subs; i++ {
		id := fmt.Sprintf("sub%d", i)
		sp := v.peer(id)
		sc := newClient(t, sp, id, clientOpts{})
		slot, err := sp.AddSlot("tile", webrtc.RTPCodecTypeVideo)
		must(t, err)
		must(t, slot.SetSource(video, LayerLow))
		recs = append(recs, sc.recorder("tile"))
	}
	for i, rec := range recs {
		waitFor(t, 20*time.Second, fmt.Sprintf("subscriber %d: 60 packets", i), func() bool { return len(rec.snapshot()) >= 60 })
	}
	for i, rec := range recs {
		pk := rec.snapshot()
		for j := 1; j < len(pk); j++ {
			if !seqContinuousAt(pk, j) {
				t.Fatalf("subscriber %d: seq %d at %d after %d", i, pk[j].seq, j, pk[j-1].seq)
			}
		}
	}
}
