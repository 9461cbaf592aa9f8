package sfu

import (
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v2/vnet"
	"github.com/pion/webrtc/v3"
)

// TestBandwidthCapsLayer runs the SFU, a publisher and a subscriber on a Pion
// virtual network. The subscriber's downlink goes through a 600 kbit/s token
// bucket; GCC (TWCC feedback from the subscriber) must bring its slot down to
// the low layer although it requests the high one.
func TestBandwidthCapsLayer(t *testing.T) {
	lf := logging.NewDefaultLoggerFactory()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", LoggerFactory: lf})
	must(t, err)
	mkNet := func(ip string) *vnet.Net {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		must(t, err)
		return n
	}
	srvNet, pubNet, subNet := mkNet("10.0.0.1"), mkNet("10.0.0.2"), mkNet("10.0.0.3")
	must(t, wan.AddNet(srvNet))
	must(t, wan.AddNet(pubNet))
	const capBps = 600_000
	tbf, err := vnet.NewTokenBucketFilter(subNet, vnet.TBFRate(capBps), vnet.TBFMaxBurst(20*vnet.KBit))
	must(t, err)
	must(t, wan.AddNet(tbf))
	must(t, wan.Start())

	cfg := testConfig()
	cfg.Interfaces = nil
	cfg.VNet = srvNet
	v := newEnv(t, cfg)
	p := v.peer("07192")
	pub := newClient(t, p, "07192", clientOpts{vnet: pubNet})
	pub.publish(stdLayers, 15)
	var video *UpTrack
	waitFor(t, 15*time.Second, "tracks", func() bool {
		video, _ = p.Tracks()
		return video != nil && video.numLayers() == 3
	})

	sp := v.peer("commune")
	sc := newClient(t, sp, "commune", clientOpts{vnet: subNet})
	slot, err := sp.AddSlot("program-video", webrtc.RTPCodecTypeVideo)
	must(t, err)
	must(t, slot.SetSource(video, LayerHigh))
	rec := sc.recorder("program-video")

	start := time.Now()
	waitFor(t, 15*time.Second, "first video", func() bool { return len(rec.snapshot()) > 0 })
	sawHigher := false
	var stableSince time.Time
	deadline := start.Add(40 * time.Second)
	for {
		st := sp.Stats()
		eff := slot.Stats().EffectiveLayer
		if eff > 0 {
			sawHigher = true
			stableSince = time.Time{}
		} else if eff == 0 && stableSince.IsZero() {
			stableSince = time.Now()
		}
		t.Logf("t=%4.1fs estimate %7d bit/s, out %7d bit/s, layer %d, loss %.2f",
			time.Since(start).Seconds(), st.EstimateBps, st.BitrateOut, eff, st.Subscriber.Loss)
		if !stableSince.IsZero() && time.Since(stableSince) > 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot did not settle on the low layer under a %d bit/s cap", capBps)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("settled on layer q after %v (started higher: %v)", time.Since(start)-3*time.Second, sawHigher)
	// what actually arrives is the q layer
	pk := rec.snapshot()
	last := pk[len(pk)-1]
	if last.rid != "q" {
		t.Errorf("last packet from layer %q", last.rid)
	}
	if w := lastKeyWidth(pk); w != 320 {
		t.Errorf("last keyframe width %d", w)
	}
	sc.close()
	pub.close()
	must(t, v.e.Close())
	must(t, wan.Stop())
	must(t, tbf.Close())
	checkGoroutines(t, v.base)
}
