package sfu

import (
	"errors"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
)

// TestNACKFromCache drops one video packet on the way to the subscriber; the
// test publisher has no NACK responder, so the packet can only come back from
// the SFU's layer cache.
func TestNACKFromCache(t *testing.T) {
	v := newEnv(t, testConfig())
	a, aVideo, _ := v.publisher("07192", stdLayers, 15)

	var count atomic.Int32
	var dropped atomic.Int32 // seq+1 of the dropped packet, 0 = none yet
	sp := v.peer("sub")
	sc := newClient(t, sp, "sub", clientOpts{dropFn: func(pt uint8, seq uint16) bool {
		if pt != 96 || dropped.Load() != 0 {
			return false
		}
		if count.Add(1) == 40 {
			dropped.Store(int32(seq) + 1)
			return true
		}
		return false
	}})
	slot, err := sp.AddSlot("tile-1", webrtc.RTPCodecTypeVideo)
	must(t, err)
	must(t, slot.SetSource(aVideo, LayerHigh))
	rec := sc.recorder("tile-1")
	waitFor(t, 15*time.Second, "a dropped packet", func() bool { return dropped.Load() != 0 })
	seq := uint16(dropped.Load() - 1)
	d := waitFor(t, 10*time.Second, "retransmission of the dropped packet", func() bool {
		for _, p := range rec.snapshot() {
			if p.seq == seq {
				return true
			}
		}
		return false
	})
	st := slot.Stats()
	t.Logf("dropped seq %d recovered after %v; slot stats %+v", seq, d, st)
	if st.NACKed == 0 {
		t.Errorf("no retransmission counted")
	}
	sc.close()
	a.close()
	must(t, v.e.Close())
	checkGoroutines(t, v.base)
}

// TestLayerDemand checks OnLayerDemand: unwatched layers are paused after the
// debounce, the base layer is kept while anyone watches, and a paused layer
// comes back when requested (the test publisher really pauses/resumes).
func TestLayerDemand(t *testing.T) {
	v := newEnv(t, testConfig())
	var pub *client
	var pubMu sync.Mutex
	v.onDemand = func(peer, rid string, needed bool) {
		pubMu.Lock()
		c := pub
		pubMu.Unlock()
		if c == nil || peer != c.code {
			return
		}
		if needed {
			c.paused.Delete(rid)
		} else {
			c.paused.Store(rid, true)
		}
	}
	p := v.peer("07192")
	c := newClient(t, p, "07192", clientOpts{})
	pubMu.Lock()
	pub = c
	pubMu.Unlock()
	c.publish(stdLayers, 15)
	var video *UpTrack
	waitFor(t, 10*time.Second, "tracks", func() bool {
		video, _ = p.Tracks()
		return video != nil && video.numLayers() == 3
	})
	for _, rid := range RIDs {
		waitFor(t, 5*time.Second, "pause of unwatched "+rid, func() bool {
			n, ok := v.lastDemand("07192", rid)
			return ok && !n
		})
	}
	sp := v.peer("console")
	sc := newClient(t, sp, "console", clientOpts{})
	slot, err := sp.AddSlot("tile-1", webrtc.RTPCodecTypeVideo)
	must(t, err)
	must(t, slot.SetSource(video, LayerLow))
	waitFor(t, 5*time.Second, "q needed", func() bool { n, _ := v.lastDemand("07192", "q"); return n })
	rec := sc.recorder("tile-1")
	waitFor(t, 15*time.Second, "q keyframe", func() bool { return lastKeyWidth(rec.snapshot()) == 320 })
	if n, _ := v.lastDemand("07192", "f"); n {
		t.Fatal("f needed while only q is watched")
	}

	start := time.Now()
	slot.SetRequestedLayer(LayerHigh)
	waitFor(t, 5*time.Second, "f needed", func() bool { n, _ := v.lastDemand("07192", "f"); return n })
	d := waitFor(t, 15*time.Second, "f keyframe after resume", func() bool { return lastKeyWidth(rec.snapshot()) == 1280 })
	t.Logf("resume of paused f until its keyframe: %v", time.Since(start))
	_ = d
	if n, _ := v.lastDemand("07192", "h"); n {
		t.Error("h needed while q and f are watched")
	}

	start = time.Now()
	slot.SetRequestedLayer(LayerLow)
	pd := waitFor(t, 5*time.Second, "f paused again", func() bool { n, _ := v.lastDemand("07192", "f"); return !n })
	t.Logf("pause after %v (PauseDelay 300ms)", pd)
	if pd < 250*time.Millisecond {
		t.Errorf("pause not debounced: %v", pd)
	}
	if n, _ := v.lastDemand("07192", "q"); !n {
		t.Error("base layer not needed while watched")
	}
	// flapping inside the debounce window does not pause
	v.mu.Lock()
	nEvents := len(v.demand)
	v.mu.Unlock()
	slot.SetRequestedLayer(LayerMid)
	time.Sleep(100 * time.Millisecond)
	slot.SetRequestedLayer(LayerLow)
	time.Sleep(100 * time.Millisecond)
	slot.SetRequestedLayer(LayerMid)
	time.Sleep(600 * time.Millisecond)
	v.mu.Lock()
	for _, e := range v.demand[nEvents:] {
		if e.rid == "h" && !e.needed {
			t.Errorf("h paused while flapping")
		}
	}
	v.mu.Unlock()

	// nobody watching: everything pauses
	must(t, slot.SetSource(nil, 0))
	waitFor(t, 5*time.Second, "q paused", func() bool { n, _ := v.lastDemand("07192", "q"); return !n })

	sc.close()
	c.close()
	must(t, v.e.Close())
	checkGoroutines(t, v.base)
}

func TestInvalidSDP(t *testing.T) {
	v := newEnv(t, testConfig())
	p := v.peer("x")
	inputs := []string{"", "garbage", "v=0\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
		strings.Repeat("a=", 1000)}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 100; i++ {
		b := make([]byte, r.Intn(300))
		r.Read(b)
		inputs = append(inputs, "v=0\r\n"+string(b))
	}
	for _, in := range inputs {
		if _, err := p.PublishOffer(in); err == nil {
			t.Errorf("PublishOffer(%q) accepted", in)
		} else if !errors.Is(err, ErrInvalidSDP) {
			t.Errorf("PublishOffer: %v is not ErrInvalidSDP", err)
		}
	}
	if err := p.SetSubscriberAnswer("garbage"); !errors.Is(err, ErrInvalidSDP) {
		t.Errorf("SetSubscriberAnswer garbage: %v", err)
	}
	if err := p.SetSubscriberAnswer(inputs[3]); !errors.Is(err, ErrBadState) {
		t.Errorf("answer without offer: %v", err)
	}
	// a valid answer without an offer is a state error
	if _, err := p.AddSlot("v", webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddSlot("v", webrtc.RTPCodecTypeVideo); !errors.Is(err, ErrSlotExists) {
		t.Errorf("duplicate slot: %v", err)
	}
	if _, err := v.e.NewPeer("x"); !errors.Is(err, ErrPeerExists) {
		t.Errorf("duplicate peer: %v", err)
	}
	offer, err := p.CreateSubscriberOffer(false)
	must(t, err)
	if o, out := p.SubscriberOffer(); !out || o != offer {
		t.Errorf("SubscriberOffer: outstanding %v, the offer returned %v", out, o == offer)
	}
	// An offer asked for while one awaits its answer is owed, not made.
	if _, err := p.CreateSubscriberOffer(false); !errors.Is(err, ErrOfferOutstanding) || !errors.Is(err, ErrBadState) {
		t.Errorf("offer on an unanswered offer: %v", err)
	}
	if err := p.SetSubscriberAnswer(inputs[3]); !errors.Is(err, ErrInvalidSDP) {
		t.Errorf("bad answer: %v", err)
	}
	must(t, p.Close())
	if _, err := p.PublishOffer(offer); !errors.Is(err, ErrClosed) {
		t.Errorf("closed peer: %v", err)
	}
	must(t, v.e.Close())
	if _, err := v.e.NewPeer("y"); !errors.Is(err, ErrClosed) {
		t.Errorf("closed engine: %v", err)
	}
	checkGoroutines(t, v.base)
}

// A publish offer that Pion half-applies (Plan B: CreateAnswer fails after the
// state moved) must not strand the leg: the next good offer is answered.
func TestPublishOfferFailureDoesNotStrandLeg(t *testing.T) {
	v := newEnv(t, testConfig())
	p := v.peer("x")
	newOffer := func() string {
		pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
		must(t, err)
		t.Cleanup(func() { _ = pc.Close() })
		_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		must(t, err)
		offer, err := pc.CreateOffer(nil)
		must(t, err)
		return offer.SDP
	}
	good := newOffer()
	planB := strings.Replace(good, "a=mid:0\r\n", "a=mid:0\r\na=ssrc:111 cname:x\r\na=ssrc:222 cname:y\r\n", 1)
	if planB == good {
		t.Fatal("could not make a Plan B offer")
	}
	if _, err := p.PublishOffer(planB); !errors.Is(err, ErrInvalidSDP) {
		t.Fatalf("Plan B offer: %v, want ErrInvalidSDP", err)
	}
	if _, err := p.PublishOffer(newOffer()); err != nil {
		t.Fatalf("a good offer after a failed one: %v (the leg is stranded)", err)
	}
	must(t, p.Close())
	must(t, v.e.Close())
}
