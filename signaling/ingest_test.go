package signaling

import (
	"errors"
	"strings"
	"testing"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/wire"
)

// TestWHIPWHEPRoomRouting: a WHIP publisher becomes the program when it
// publishes (and the command room online); a WHEP viewer gets only the slots
// it negotiated and is never an endpoint in presence.
func TestWHIPWHEPRoomRouting(t *testing.T) {
	r := testRoom("07192")
	r.sessionID = "s1"
	r.addExt("whip:22#1", extPeer{program: true})
	r.addExt("whep:obs#2", extPeer{slots: []string{SlotProgramVideo, SlotProgramAudio}})
	if got := r.Presence(CommandCode); got != wire.StateOffline {
		t.Fatalf("command room before the WHIP track: %s", got)
	}
	r.published("whip:22#1")
	if p := r.programPeer(); p != "whip:22#1" {
		t.Fatalf("program = %q", p)
	}
	if got := r.Presence(CommandCode); got != wire.StateConnected {
		t.Fatalf("command room with a WHIP program: %s", got)
	}
	r.floor = "07192"
	st := r.policyState()
	st.Peers["07192"] = "07192#3"
	routes := st.Route()
	v := routes["whep:obs#2"]
	if v[SlotProgramVideo].Source != "whip:22#1" || v[SlotProgramAudio].Source != "whip:22#1" {
		t.Fatalf("viewer routes: %v", v)
	}
	if _, ok := v[SlotFloorVideo]; ok {
		t.Fatalf("a viewer without floor slots got the floor: %v", v)
	}
	if _, ok := routes["whip:22#1"]; ok {
		t.Fatalf("the WHIP publisher is a subscriber: %v", routes)
	}
	for _, e := range r.presenceSnapshot().Endpoints {
		if strings.Contains(e.Code, "whep") || strings.Contains(e.Code, "whip") {
			t.Fatalf("presence lists %q", e.Code)
		}
	}
	for st, n := range r.Counts() {
		if st != wire.StateConnected && n != 0 {
			t.Fatalf("counts %v", r.Counts())
		}
	}
	r.dropExt("whip:22#1")
	if p := r.programPeer(); p != "" {
		t.Fatalf("program after DELETE = %q", p)
	}
}

func TestWHIPWHEPSDPHelpers(t *testing.T) {
	f, err := parseFrag("a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n")
	if err != nil || f.ufrag != "abcd" || len(f.cands) != 1 || f.cands[0].mid != "0" ||
		f.cands[0].line != "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host" {
		t.Fatalf("parseFrag: %+v %v", f, err)
	}
	if _, err := parseFrag("hello"); !errors.Is(err, ErrIngestBadSDP) {
		t.Fatalf("garbage fragment: %v", err)
	}
	offer := "v=0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldpwd\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=candidate:x\r\na=end-of-candidates\r\n"
	ro := restartOffer(offer, "new1", "newpwd")
	if iceAttr(ro, "ice-ufrag") != "new1" || iceAttr(ro, "ice-pwd") != "newpwd" || strings.Contains(ro, "candidate") {
		t.Fatalf("restartOffer: %q", ro)
	}
	af := answerFragment("v=0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\nm=video 9 X 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\na=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\n")
	if !strings.Contains(af, "a=ice-ufrag:u\r\n") || !strings.Contains(af, "a=candidate:1") || strings.Contains(af, "rtpmap") {
		t.Fatalf("answerFragment: %q", af)
	}
	if !etagMatches(`"abc"`, `"abc"`) || !etagMatches(`W/"abc", "x"`, `"abc"`) || etagMatches(`"abd"`, `"abc"`) {
		t.Fatal("etagMatches")
	}
	if _, err := checkIngestOffer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n", true); !errors.Is(err, ErrIngestBadSDP) {
		t.Fatalf("a recvonly WHIP offer: %v", err)
	}
	if !CanWHIP(auth.Principal{EndpointCode: CommandCode}) || CanWHIP(auth.Principal{EndpointCode: "07192"}) ||
		CanWHIP(auth.Principal{Username: "d", Role: auth.RoleDuty}) || CanWHIP(auth.Principal{Username: "l", Role: auth.RoleLeader, District: "207"}) ||
		!CanWHIP(auth.Principal{Username: "l", Role: auth.RoleLeader}) {
		t.Fatal("CanWHIP")
	}
	if !CanWHEP(auth.Principal{Username: "o", Role: auth.RoleObserver}) || CanWHEP(auth.Principal{Username: "o", Role: auth.RoleObserver, District: "207"}) ||
		CanWHEP(auth.Principal{EndpointCode: CommandCode}) || !CanWHEP(auth.Principal{Wall: "press-1"}) ||
		CanWHIP(auth.Principal{Wall: "press-1"}) {
		t.Fatal("CanWHEP")
	}
}
