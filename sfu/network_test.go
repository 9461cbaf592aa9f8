package sfu

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/media"
)

// TestICETCPAndTURN: a publisher reaching the engine over ICE-TCP only, and a
// subscriber reaching it only through the embedded TURN server (relay policy).
func TestICETCPAndTURN(t *testing.T) {
	cfg := testConfig()
	cfg.TCPPort = 0
	cfg.NetworkTypes = []string{"udp4", "tcp4"}
	cfg.TURN = TURNConfig{Enabled: true, Port: 0, Secret: "s3cret", RelayIP: "127.0.0.1"}
	v := newEnv(t, cfg)
	if v.e.UDPPort() == 0 || v.e.TCPPort() == 0 || v.e.TURNPort() == 0 {
		t.Fatalf("ports: udp %d tcp %d turn %d", v.e.UDPPort(), v.e.TCPPort(), v.e.TURNPort())
	}
	t.Logf("ports: udp %d tcp %d turn %d", v.e.UDPPort(), v.e.TCPPort(), v.e.TURNPort())

	p := v.peer("cotoisland")
	pub := newClient(t, p, "cotoisland", clientOpts{tcp: true})
	pub.publish(stdLayers[:1], 15) // single-layer (non-simulcast) video over TCP
	var video *UpTrack
	waitFor(t, 15*time.Second, "tracks over ICE-TCP", func() bool {
		video, _ = p.Tracks()
		return video != nil
	})
	if video.Simulcast() {
		t.Error("single-layer track reported as simulcast")
	}

	user, pass := media.TURNCredentials("s3cret", "07192", time.Hour)
	servers := v.e.ICEServers("127.0.0.1", user, pass)
	sp := v.peer("sub")
	sc := newClient(t, sp, "sub", clientOpts{pcCfg: webrtc.Configuration{ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay}})
	slot, err := sp.AddSlot("floor-video", webrtc.RTPCodecTypeVideo)
	must(t, err)
	must(t, slot.SetSource(video, LayerHigh))
	rec := sc.recorder("floor-video")
	d := waitFor(t, 20*time.Second, "video through TURN", func() bool { return lastKeyWidth(rec.snapshot()) == 320 })
	t.Logf("first keyframe through TURN after %v", d)
	if got := slot.Stats().EffectiveLayer; got != 0 {
		t.Errorf("effective layer %d for a single-layer source", got)
	}
	sc.close()
	pub.close()
	must(t, v.e.Close())
	checkGoroutines(t, v.base)
}
