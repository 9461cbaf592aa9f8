package uplink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// The province's program is what the nation sees of province 22: its tile on
// the national console, and the floor when the nation gives it the floor.
func TestProvinceProgramGoesUp(t *testing.T) {
	tr := startTree(t)
	waitUp(t, tr, "join", 20*time.Second)
	natLead := tr.parent.User("nat-lead", auth.RoleLeader)
	startSession(t, natLead, "Bầu cử 23/5/2021 (toàn quốc)")
	startSession(t, tr.child.User("qn-lead", auth.RoleLeader), "Bầu cử 23/5/2021 (Quảng Ninh)")

	// The province's command room publishes its program (the marker says 22).
	dialT(t, tr.child, "22", client.Options{Role: wire.RoleConsole, Publish: true, NoAudio: true})
	// The nation's console watches province 22 on a tile.
	console, err := client.Dial(t.Context(), client.Options{URL: tr.parent.URL(), Token: natLead.Token, Role: wire.RoleConsole})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(console.Close)
	slot := 0
	start := time.Now()
	if _, err := console.Send(wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{{Code: "22", Slot: &slot, Visible: true, Size: "small"}}}); err != nil {
		t.Fatal(err)
	}
	err = client.WaitFor(func() bool {
		for s, st := range console.Received("22", time.Time{}) {
			if strings.HasPrefix(s, "tile_") && st.Keyframes > 0 {
				return true
			}
		}
		return false
	}, 20*time.Second)
	if err != nil {
		t.Fatalf("the nation's console never saw the province's program on a tile: %v (slots %+v)", err, console.Recorder().Slots())
	}
	t.Logf("the province's program on the nation's tile (with a keyframe) after %v", time.Since(start))

	// The floor, given by the nation to 22, carries the province's program to
	// the other provinces (01).
	other := dialT(t, tr.parent, "01", client.Options{})
	given := time.Now()
	if _, err := console.Send(wire.TypeGiveFloor, wire.CodeMsg{Code: "22"}); err != nil {
		t.Fatal(err)
	}
	err = client.WaitFor(func() bool {
		return !other.Recorder().FirstFrom(signaling.SlotFloorVideo, "22", given).IsZero()
	}, 20*time.Second)
	if err != nil {
		t.Fatalf("01 never received the province's program as the floor: %v", err)
	}
	t.Logf("floor to 22 at the nation → the province's program at 01 after %v", other.Recorder().FirstFrom(signaling.SlotFloorVideo, "22", given).Sub(given))
}
