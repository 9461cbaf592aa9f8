package signaling

import (
	"testing"

	"github.com/opscenter/opscenter/media"
)

// The relayed parent floor is the node's floor while it has none of its own;
// a floor given at the node wins; the relay itself receives nothing.
func TestPolicyRelayFloor(t *testing.T) {
	st := &PolicyState{SessionActive: true, Program: "p22", RelayFloor: "whip:uplink#9",
		Muted: map[string]bool{}, Peers: map[string]string{"22": "p22", "07192": "p1", "07195": "p2"},
		Subscribers: []Subscriber{{PeerID: "p22", Code: "22", Console: true}, {PeerID: "p1", Code: "07192"},
			{PeerID: "p2", Code: "07195"}, {PeerID: "whep:wall#3", Only: []string{SlotProgramVideo, SlotFloorVideo}}}}
	relay := Route{"whip:uplink#9", media.LayerHigh}
	r := st.Route()
	for _, peer := range []string{"p22", "p1", "p2", "whep:wall#3"} {
		if got := r[peer][SlotFloorVideo]; got != relay {
			t.Errorf("%s floor video %+v, want the relayed floor", peer, got)
		}
	}
	if got := r["p1"][SlotFloorAudio]; got.Source != "whip:uplink#9" {
		t.Errorf("floor audio %+v, want the relayed floor's", got)
	}
	if _, ok := r["whep:wall#3"][SlotFloorAudio]; ok {
		t.Error("a WHEP viewer got a slot it did not negotiate")
	}
	if _, ok := r["whip:uplink#9"]; ok {
		t.Error("the relay is no subscriber")
	}

	// A floor given at the node wins; its holder sees no relayed floor either.
	st.Floor = "07195"
	r = st.Route()
	if got := r["p1"][SlotFloorVideo]; got.Source != "p2" {
		t.Errorf("with a local floor, 07192's floor video %+v, want 07195's", got)
	}
	if _, ok := r["p2"][SlotFloorVideo]; ok {
		t.Error("the local floor holder gets a floor")
	}

	// No session: no floor of either kind.
	st.Floor, st.SessionActive = "", false
	if _, ok := st.Route()["p1"][SlotFloorVideo]; ok {
		t.Error("a relayed floor without a session")
	}
}
