package uplink_test

import (
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/uplink"
	"github.com/opscenter/opscenter/wire"
)

// The nation gives the floor to province 01; province 22's communes see 01 as
// their floor while 22's program source is the parent, a floor given at 22
// wins over it, and it ends when the nation takes the floor back or 22 takes
// its own program back.
func TestParentFloorReachesCommune(t *testing.T) {
	tr := startTree(t)
	waitUp(t, tr, "join", 20*time.Second)
	natLead := tr.parent.User("nat-lead", auth.RoleLeader)
	startSession(t, natLead, "Bầu cử 23/5/2021 (toàn quốc)")
	qnLead := tr.child.User("qn-lead", auth.RoleLeader)
	startSession(t, qnLead, "Bầu cử 23/5/2021 (Quảng Ninh)")
	natConsole, err := client.Dial(t.Context(), client.Options{URL: tr.parent.URL(), Token: natLead.Token, Role: wire.RoleConsole})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(natConsole.Close)
	qnConsole, err := client.Dial(t.Context(), client.Options{URL: tr.child.URL(), Token: qnLead.Token, Role: wire.RoleConsole})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(qnConsole.Close)
	send := func(c *client.Client, typ string, payload any) time.Time {
		t.Helper()
		at := time.Now()
		if _, err := c.Send(typ, payload); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		return at
	}

	// Province 01 at the nation publishes (its marker says 01, audio too); a
	// commune of 22 watches; another commune of 22 can be given 22's own floor.
	dialT(t, tr.parent, "01", client.Options{Publish: true})
	commune := dialT(t, tr.child, "07192", client.Options{})
	local := dialT(t, tr.child, "07195", client.Options{Publish: true, NoAudio: true})
	if err := local.WaitConnected(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	rec := commune.Recorder()
	floorFrom := func(code string, since time.Time, what string) time.Duration {
		t.Helper()
		err := client.WaitFor(func() bool { return !rec.FirstFrom(signaling.SlotFloorVideo, code, since).IsZero() }, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: the commune's floor never came from %s: %v (slots %+v)", what, code, err, rec.Slots())
		}
		return rec.FirstFrom(signaling.SlotFloorVideo, code, since).Sub(since)
	}
	// floorStops waits until the commune's floor video has been silent for
	// 600 ms and returns when its last packet came, after since.
	floorStops := func(since time.Time, what string) time.Duration {
		t.Helper()
		var last time.Time
		err := client.WaitFor(func() bool {
			s, _ := rec.Slot(signaling.SlotFloorVideo)
			last = s.LastAt
			return time.Since(last) > 600*time.Millisecond
		}, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: the commune's floor never stopped (slot %+v)", what, rec.Slots()[signaling.SlotFloorVideo])
		}
		return max(last.Sub(since), 0)
	}

	// flowing checks that the commune's floor still carries 01 a while later.
	flowing := func(what string) {
		t.Helper()
		time.Sleep(400 * time.Millisecond)
		if st, _ := rec.Slot(signaling.SlotFloorVideo); st.Current != "01" || time.Since(st.LastAt) > 300*time.Millisecond {
			t.Fatalf("%s: the commune's floor is not flowing from 01: current %q, last packet %v ago", what, st.Current, time.Since(st.LastAt))
		}
	}

	// 1. The nation gives 01 the floor while 22's program is its own: the
	// uplink receives it and follows the holder, but relays nothing.
	given := send(natConsole, wire.TypeGiveFloor, wire.CodeMsg{Code: "01"})
	err = client.WaitFor(func() bool {
		c := tr.child.Uplink.Client()
		return c != nil && !c.Recorder().FirstFrom(signaling.SlotFloorVideo, "01", given).IsZero()
	}, 20*time.Second)
	if err != nil {
		t.Fatalf("the uplink never received the nation's floor from 01: %v", err)
	}
	if holder, relayed := tr.child.Uplink.ParentFloor(); holder != "01" || relayed {
		t.Fatalf("parent floor %q relayed %v, want 01 not relayed (program source own)", holder, relayed)
	}
	time.Sleep(300 * time.Millisecond)
	if st, ok := rec.Slot(signaling.SlotFloorVideo); ok && st.Sources["01"].Packets > 0 {
		t.Fatalf("the parent's floor reached the commune with the program source own: %+v", st)
	}

	// 2. 22 takes the parent's program: the parent's floor comes down with it.
	switched := send(qnConsole, wire.TypeProgramSource, wire.ProgramSourceMsg{Source: uplink.SourceParent})
	t.Logf("FIGURE program_source parent → the nation's floor (01) at the commune: %v", floorFrom("01", switched, "switch"))
	if holder, relayed := tr.child.Uplink.ParentFloor(); holder != "01" || !relayed {
		t.Fatalf("parent floor %q relayed %v, want 01 relayed", holder, relayed)
	}
	err = client.WaitFor(func() bool { return !rec.FirstFrom(signaling.SlotFloorAudio, "01", switched).IsZero() }, 10*time.Second)
	if err != nil {
		t.Fatalf("the floor's audio from 01 never reached the commune: %v", err)
	}
	// A keyframe comes down too (the node's request goes up the uplink).
	err = client.WaitFor(func() bool {
		st, _ := rec.Slot(signaling.SlotFloorVideo)
		return st.Sources["01"].Keyframes > 0
	}, 10*time.Second)
	if err != nil {
		t.Fatalf("no keyframe from 01 on the commune's floor: %v", err)
	}

	// 3. A floor given at 22 wins over the relayed one, and gives it back.
	localAt := send(qnConsole, wire.TypeGiveFloor, wire.CodeMsg{Code: "07195"})
	t.Logf("FIGURE local floor (07195) over the relayed one at the commune: %v", floorFrom("07195", localAt, "local floor"))
	time.Sleep(500 * time.Millisecond)
	if st, _ := rec.Slot(signaling.SlotFloorVideo); st.Current != "07195" {
		t.Fatalf("the commune's floor is %q while 22's own floor is 07195", st.Current)
	}
	backAt := send(qnConsole, wire.TypeRevokeFloor, struct{}{})
	t.Logf("FIGURE local floor taken back → the relayed floor (01) again: %v", floorFrom("01", backAt, "relayed floor back"))

	flowing("relayed floor back")

	// 4. The nation takes the floor back: the relay ends, the commune's floor stops.
	revoked := send(natConsole, wire.TypeRevokeFloor, struct{}{})
	err = client.WaitFor(func() bool { h, r := tr.child.Uplink.ParentFloor(); return h == "" && !r }, 5*time.Second)
	if err != nil {
		h, r := tr.child.Uplink.ParentFloor()
		t.Fatalf("after the nation's revoke: parent floor %q relayed %v", h, r)
	}
	t.Logf("FIGURE the nation takes the floor back → the province's relay ended: %v", time.Since(revoked))
	t.Logf("FIGURE the nation takes the floor back → the commune's last floor packet after it: %v (0: before it)", floorStops(revoked, "revoke"))
	if tr.child.Live.RelayFloor() != "" {
		t.Fatal("the province still has a relayed floor")
	}

	// 5. The floor given again at the nation reaches the commune (source parent).
	again := send(natConsole, wire.TypeGiveFloor, wire.CodeMsg{Code: "01"})
	t.Logf("FIGURE the nation gives 01 the floor → 01 at the commune (two hops): %v", floorFrom("01", again, "floor again"))

	flowing("floor again")

	// 6. 22 takes its own program back: the relayed floor ends with it.
	own := send(qnConsole, wire.TypeProgramSource, wire.ProgramSourceMsg{Source: uplink.SourceOwn})
	t.Logf("FIGURE program_source own → the commune's last relayed floor packet after it: %v (0: before it)", floorStops(own, "source own"))
	if h, r := tr.child.Uplink.ParentFloor(); h != "01" || r {
		t.Fatalf("after source own: parent floor %q relayed %v, want 01 not relayed", h, r)
	}
}
