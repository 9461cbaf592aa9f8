package signaling

import (
	"reflect"
	"testing"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/wire"
)

// TestPolicyScopedConsole: a district's console gets the program and the floor, its
// own units' tiles and roll-call audio, and nothing of another district's, even when
// its tiles name one (the signaling refuses that earlier; the policy holds anyway).
func TestPolicyScopedConsole(t *testing.T) {
	s := &Service{parents: map[string]string{"195": "22", "06760": "195", "06763": "195", "207": "22", "07192": "207"}}
	sees := s.scopeOf(auth.Principal{Username: "hoa", Role: auth.RoleLeader, District: "195"})
	if s.scopeOf(auth.Principal{Username: "lan", Role: auth.RoleLeader}) != nil {
		t.Fatal("an unscoped console has a scope")
	}
	for code, want := range map[string]bool{"22": true, "195": true, "06760": true, "207": false, "07192": false, "": false, "99999": false} {
		if sees(code) != want {
			t.Errorf("district 195 sees %q: %v, want %v", code, !want, want)
		}
	}
	subs, peers := eps("06760", "06763", "07192")
	peers[CommandCode] = "22#p"
	tiles := []Tile{{Slot: 0, Code: "06760"}, {Slot: 1, Code: "07192"}, {Slot: 2, Code: "06763", Large: true}}
	dist := Subscriber{PeerID: "staff:hoa#1", Code: CommandCode, Console: true, Tiles: tiles, Sees: sees}
	prov := Subscriber{PeerID: "staff:lan#2", Code: CommandCode, Console: true, Tiles: tiles}
	st := PolicyState{SessionActive: true, Program: "22#p", Floor: "07192", RollCall: true, Muted: map[string]bool{},
		Peers: peers, Subscribers: append([]Subscriber{dist, prov}, subs...)}
	got := st.Route()
	floor := Routes{SlotProgramVideo: {"22#p", media.LayerHigh}, SlotFloorVideo: {"07192#p", media.LayerHigh}, SlotFloorAudio: {"07192#p", 0}}
	want := Routes{TileSlot(0): {"06760#p", media.LayerLow}, TileSlot(2): {"06763#p", media.LayerHigh},
		AuxAudioSlot(0): {"06760#p", 0}, AuxAudioSlot(1): {"06763#p", 0}}
	for k, v := range floor {
		want[k] = v
	}
	if !reflect.DeepEqual(got[dist.PeerID], want) {
		t.Errorf("district console routes:\n got %v\nwant %v", got[dist.PeerID], want)
	}
	// The province's console watches and hears everyone (the floor holder's audio is
	// on the floor slot, so the roll call's aux slots are the other two).
	if r := got[prov.PeerID]; r[TileSlot(1)].Source != "07192#p" || len(r) != len(want)+1 {
		t.Errorf("province console routes: %v", r)
	}
}

// TestScopeSnapshot: a district console's welcome state keeps its own units' hands
// and mutes, and shows another district's private line as closed.
func TestScopeSnapshot(t *testing.T) {
	s := &Service{parents: map[string]string{"195": "22", "06760": "195", "207": "22", "07192": "207"}}
	c := &conn{scope: s.scopeOf(auth.Principal{Username: "hoa", Role: auth.RoleDuty, District: "195"})}
	pl := "07192"
	got := c.scopeSnapshot(wire.Snapshot{Hands: []string{"07192", "06760"}, MutedCodes: []string{"06760", "07192"}, PrivateLine: &pl})
	if !reflect.DeepEqual(got.Hands, []string{"06760"}) || !reflect.DeepEqual(got.MutedCodes, []string{"06760"}) || got.PrivateLine != nil {
		t.Fatalf("scoped snapshot: %+v", got)
	}
	m := c.scopePresence(wire.PresenceSnapshotMsg{Endpoints: []wire.PresenceMsg{{Code: "22"}, {Code: "195"}, {Code: "207"}, {Code: "07192"}, {Code: "06760"}}})
	var codes []string
	for _, p := range m.Endpoints {
		codes = append(codes, p.Code)
	}
	if !reflect.DeepEqual(codes, []string{"22", "195", "06760"}) {
		t.Fatalf("scoped presence snapshot: %v", codes)
	}
}
