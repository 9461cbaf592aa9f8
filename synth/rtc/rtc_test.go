package rtc

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v3"
)

// A publisher built from these pieces offers what a browser does: VP8 and
// Opus, three simulcast rids, and the mid, rid and audio-level extensions.
func TestPublisherOffer(t *testing.T) {
	me, ir, err := BrowserMediaEngine()
	if err != nil {
		t.Fatal(err)
	}
	se := Settings([]webrtc.NetworkType{webrtc.NetworkTypeUDP4}, []string{"lo"})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sender, tracks, err := AddSimulcast(pc, "synth-07192", []string{"q", "h", "f"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 3 || tracks[2].RID() != "f" || sender == nil {
		t.Fatalf("%d tracks", len(tracks))
	}
	if _, _, err := AddOpus(pc, "synth-07192"); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"VP8/90000", "opus/48000/2", "a=rid:q send", "a=rid:f send", "a=simulcast:send q;h;f",
		"urn:ietf:params:rtp-hdrext:sdes:mid", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "urn:ietf:params:rtp-hdrext:ssrc-audio-level"} {
		if !strings.Contains(offer.SDP, want) {
			t.Errorf("offer lacks %q", want)
		}
	}
}
