package sfu

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
)

type env struct {
	t      *testing.T
	e      *Engine
	mu     sync.Mutex
	demand []demandEvent
	base   int
	// onDemand, if set, is also called for demand events (e.g. to pause the test publisher).
	onDemand func(peer, rid string, needed bool)
}

type demandEvent struct {
	peer, rid string
	needed    bool
	at        time.Time
}

func newEnv(t *testing.T, cfg Config) *env {
	v := &env{t: t, base: runtime.NumGoroutine()}
	e, err := NewEngine(cfg, testLogger(), Hooks{
		OnLayerDemand: func(peer, rid string, needed bool) {
			v.mu.Lock()
			v.demand = append(v.demand, demandEvent{peer, rid, needed, time.Now()})
			f := v.onDemand
			v.mu.Unlock()
			if f != nil {
				f(peer, rid, needed)
			}
		},
	})
	must(t, err)
	v.e = e
	t.Cleanup(func() { _ = e.Close() })
	return v
}

func (v *env) lastDemand(peer, rid string) (needed, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := len(v.demand) - 1; i >= 0; i-- {
		if d := v.demand[i]; d.peer == peer && d.rid == rid {
			return d.needed, true
		}
	}
	return false, false
}

func (v *env) peer(id string) *Peer {
	p, err := v.e.NewPeer(id)
	must(v.t, err)
	return p
}

// publisher creates a peer publishing simulcast and waits for its tracks.
func (v *env) publisher(id string, layers []layerSpec, fps int) (*client, *UpTrack, *UpTrack) {
	p := v.peer(id)
	c := newClient(v.t, p, id, clientOpts{})
	c.publish(layers, fps)
	var video, audio *UpTrack
	waitFor(v.t, 10*time.Second, "published tracks of "+id, func() bool {
		video, audio = p.Tracks()
		return video != nil && audio != nil && video.numLayers() == len(layers)
	})
	return c, video, audio
}

func TestForwardLayersAndSwitch(t *testing.T) {
	v := newEnv(t, testConfig())
	a, aVideo, aAudio := v.publisher("07192", stdLayers, 15)
	b, bVideo, _ := v.publisher("207", stdLayers, 15)

	a.audio.SetLevel(3) // A talks, B is silent
	sp := v.peer("sub")
	sc := newClient(t, sp, "sub", clientOpts{})
	slot, err := sp.AddSlot("program-video", webrtc.RTPCodecTypeVideo)
	must(t, err)
	aslot, err := sp.AddSlot("program-audio", webrtc.RTPCodecTypeAudio)
	must(t, err)
	must(t, slot.SetSource(aVideo, LayerLow))
	must(t, aslot.SetSource(aAudio, 0))
	if err := aslot.SetSource(aVideo, 0); !errors.Is(err, ErrKindMismatch) {
		t.Fatalf("kind mismatch: %v", err)
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sub stats: %+v", sp.Stats())
			t.Logf("A stats: %+v", v.e.Peer("07192").Stats())
			t.Logf("PLIs at A: q=%d h=%d f=%d", a.pliCount("q"), a.pliCount("h"), a.pliCount("f"))
		}
	})
	rec := sc.recorder("program-video")
	arec := sc.recorder("program-audio")
	d := waitFor(t, 15*time.Second, "low layer keyframe", func() bool { return lastKeyWidth(rec.snapshot()) == 320 })
	t.Logf("first keyframe (320) after %v", d)
	waitFor(t, 10*time.Second, "audio from A", func() bool {
		pk := arec.snapshot()
		return len(pk) > 10 && pk[len(pk)-1].code == "07192"
	})

	waitFor(t, 10*time.Second, "active speaker A", func() bool {
		id, lvl := v.e.ActiveSpeaker()
		return id == "07192" && lvl > 0.5
	})
	if l := v.e.Peer("207").AudioLevel(); l > 0.1 {
		t.Errorf("silent B has level %.2f", l)
	}

	// Layer switch up to f, then down to h: each at a keyframe, seq continuous.
	for _, step := range []struct {
		layer, width int
	}{{LayerHigh, 1280}, {LayerMid, 640}} {
		before := len(rec.snapshot())
		start := time.Now()
		slot.SetRequestedLayer(step.layer)
		waitFor(t, 10*time.Second, "keyframe of new layer", func() bool {
			pk := rec.snapshot()
			return lastKeyWidth(pk[before:]) == step.width
		})
		t.Logf("layer switch to %d took %v", step.width, time.Since(start))
		pk := rec.snapshot()
		for i := before; i < len(pk); i++ {
			if pk[i].keyW == step.width {
				if !seqContinuousAt(pk, i) {
					t.Errorf("seq not continuous at layer switch: %d after %d", pk[i].seq, pk[i-1].seq)
				}
				if i > 0 && pk[i-1].rid == pk[i].rid {
					t.Errorf("previous packet already from new layer")
				}
				// no packet of the new layer before its keyframe
				for j := before; j < i; j++ {
					if pk[j].rid == RIDs[step.layer] {
						t.Errorf("packet of new layer before its keyframe")
						break
					}
				}
				break
			}
		}
		if st := slot.Stats(); st.EffectiveLayer != step.layer {
			t.Errorf("effective layer %d, want %d", st.EffectiveLayer, step.layer)
		}
	}

	// Switch source A → B (floor change): B's marker arrives, stream continuous.
	before := len(rec.snapshot())
	start := time.Now()
	must(t, slot.SetSource(bVideo, LayerMid))
	sw := waitFor(t, 10*time.Second, "B's video", func() bool {
		pk := rec.snapshot()
		return len(pk) > before && pk[len(pk)-1].code == "207"
	})
	t.Logf("source switch A→B took %v (PLIs to B/h: %d)", sw, b.pliCount("h"))
	if sw > 5*time.Second {
		t.Errorf("switch too slow: %v", sw)
	}
	pk := rec.snapshot()
	for i := before; i < len(pk); i++ {
		if pk[i].code == "207" {
			if pk[i].keyW != 640 {
				t.Errorf("first packet from B is not a 640 keyframe start: %+v", pk[i])
			}
			if !seqContinuousAt(pk, i) {
				t.Errorf("seq not continuous at source switch")
			}
			if d := pk[i].ts - pk[i-1].ts; int32(d) <= 0 || d > 90000*5 {
				t.Errorf("ts step at switch %d", d)
			}
			break
		}
	}
	_ = start

	// Gate off: nothing more arrives.
	must(t, slot.SetSource(nil, 0))
	time.Sleep(300 * time.Millisecond)
	n1 := len(rec.snapshot())
	time.Sleep(500 * time.Millisecond)
	if n2 := len(rec.snapshot()); n2 != n1 {
		t.Errorf("gated slot still forwarding: %d → %d", n1, n2)
	}

	st := sp.Stats()
	t.Logf("subscriber stats: %+v", st)
	if st.Subscriber.State != "connected" || len(st.Slots) != 2 {
		t.Errorf("stats: %+v", st)
	}
	pst := v.e.Peer("07192").Stats()
	t.Logf("publisher stats: in %d bit/s, layers %+v", pst.BitrateIn, pst.Video)
	if time.Since(pst.Publisher.LastRTCP) > 5*time.Second {
		t.Errorf("no RTCP from the publisher: %v", pst.Publisher.LastRTCP)
	}
	if n := v.e.Peer("07192").pubRTCP.packets.Load(); n == 0 {
		t.Errorf("publisher RTCP tap saw no packets")
	}
	if pst.Publisher.RecentLoss > 0.01 {
		t.Errorf("recent publisher loss %.3f on loopback", pst.Publisher.RecentLoss)
	}
	if pst.BitrateIn < 500_000 || len(pst.Video) != 3 || pst.Video[2].Width != 1280 {
		t.Errorf("publisher stats: %+v", pst)
	}
	if a.pliCount("q")+a.pliCount("f")+a.pliCount("h") == 0 {
		t.Errorf("no PLI reached the publisher")
	}

	t.Logf("PLIs at A: q=%d h=%d f=%d", a.pliCount("q"), a.pliCount("h"), a.pliCount("f"))
	sc.close()
	a.close()
	b.close()
	must(t, v.e.Close())
	checkGoroutines(t, v.base)
}
