package web

import (
	"testing"

	"github.com/pion/webrtc/v3"
)

func TestWHIPLinkHeaders(t *testing.T) {
	got := iceLinks([]webrtc.ICEServer{{URLs: []string{"turn:203.0.113.5:3478?transport=udp"}, Username: "1700000000:whip:22#1", Credential: "c2VjcmV0"}})
	want := `<turn:203.0.113.5:3478?transport=udp>; rel="ice-server"; username="1700000000:whip:22#1"; credential="c2VjcmV0"; credential-type="password"`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("Link headers:\n%q\nwant\n%q", got, want)
	}
	if got := iceLinks(nil); len(got) != 0 {
		t.Fatalf("no TURN: %q", got)
	}
}
