package uplink_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/uplink"
	"github.com/opscenter/opscenter/wire"
)

// roster01 is a small roster of Hà Nội (01): the province, one district and
// two communes (as faulttest's -tree.full writes it).
const roster01 = "code\tname\tkind\tunit_type\tparent_code\n" +
	"01\tThành phố Hà Nội\tprovince\tThành phố\t\n" +
	"001\tQuận Ba Đình\tdistrict\tQuận\t01\n" +
	"00001\tPhường Phúc Xá\tcommune\tPhường\t001\n" +
	"00004\tPhường Trúc Bạch\tcommune\tPhường\t001\n"

// tree2 is a national node (00) with two province nodes, 22 (Quảng Ninh, the
// embedded roster) and 01 (Hà Nội, roster01): three servers, three databases.
type tree2 struct {
	nat, qn, hn *apptest.App
}

// startTree2 starts the nation, then both provinces with the nation's join
// link for their own code as their parent.
func startTree2(t *testing.T) *tree2 {
	t.Helper()
	nat := apptest.Start(t, nationConfig)
	parent := func(code string) config.Parent {
		return config.Parent{URL: nat.URL(), JoinLink: nat.URL() + "/join#t=" + nat.Endpoint(code).Token,
			ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second, SyncInterval: 200 * time.Millisecond}
	}
	qn := apptest.Start(t, func(c *config.Config) { c.Parent = parent("22") })
	file := filepath.Join(t.TempDir(), "01.tsv")
	if err := os.WriteFile(file, []byte(roster01), 0o600); err != nil {
		t.Fatal(err)
	}
	hn := apptest.Start(t, func(c *config.Config) {
		c.Roster.ProvinceCode, c.Roster.File = "01", file
		c.Parent = parent("01")
	})
	return &tree2{nat: nat, qn: qn, hn: hn}
}

// waitUp waits until both uplinks are connected and the nation counts both
// provinces online.
func (tr *tree2) waitUp(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	up := func(a *apptest.App, code string) bool {
		st := a.Uplink.Status()
		return st.State == uplink.StateConnected && st.Code == code && tr.nat.Live.Presence(code) == wire.StateConnected
	}
	if err := client.WaitFor(func() bool { return up(tr.qn, "22") && up(tr.hn, "01") }, timeout); err != nil {
		t.Fatalf("uplinks: 22 %+v (nation sees %q), 01 %+v (nation sees %q): %v",
			tr.qn.Uplink.Status(), tr.nat.Live.Presence("22"), tr.hn.Uplink.Status(), tr.nat.Live.Presence("01"), err)
	}
	return time.Since(start)
}

// consoleT dials a console as a staff user of a node.
func consoleT(t *testing.T, a *apptest.App, user *apptest.Client) *client.Client {
	t.Helper()
	c, err := client.Dial(t.Context(), client.Options{URL: a.URL(), Token: user.Token, Role: wire.RoleConsole})
	if err != nil {
		t.Fatalf("console at %s: %v", a.URL(), err)
	}
	t.Cleanup(c.Close)
	return c
}

// The tree tests with two real province nodes under one national
// node, each with synthetic communes: program up from both provinces, the
// nation's program and floor two hops down, a directive to all provinces
// acknowledged from both desks and passed on, turnout from both provinces.
func TestTwoProvinces(t *testing.T) {
	tr := startTree2(t)
	t.Logf("both uplinks up after %v", tr.waitUp(t, 20*time.Second))
	natLead := tr.nat.User("nat-lead", auth.RoleLeader)
	qnLead := tr.qn.User("qn-lead", auth.RoleLeader)
	hnLead := tr.hn.User("hn-lead", auth.RoleLeader)
	startSession(t, natLead, "Bầu cử 23/5/2021 (toàn quốc)")
	startSession(t, qnLead, "Bầu cử 23/5/2021 (Quảng Ninh)")
	startSession(t, hnLead, "Bầu cử 23/5/2021 (Hà Nội)")
	// The desks' duty officers, before the media flows (bcrypt under -race on
	// a busy machine is slow).
	qnDuty := tr.qn.User("qn-duty", auth.RoleDuty)
	hnDuty := tr.hn.User("hn-duty", auth.RoleDuty)

	// Media: each command room publishes its program (its marker says its
	// code); two communes at each province watch.
	dialT(t, tr.nat, "00", client.Options{Role: wire.RoleConsole, Publish: true, NoAudio: true})
	dialT(t, tr.qn, "22", client.Options{Role: wire.RoleConsole, Publish: true, NoAudio: true})
	dialT(t, tr.hn, "01", client.Options{Role: wire.RoleConsole, Publish: true, NoAudio: true})
	hop1 := &delays{source: "00"} // a province endpoint of the nation (02, a stand-in): one hop
	dialT(t, tr.nat, "02", client.Options{OnRTP: hop1.onRTP})
	hop2 := &delays{source: "00"} // a commune of 22: two hops
	qnCommune := dialT(t, tr.qn, "07192", client.Options{OnRTP: hop2.onRTP})
	dialT(t, tr.qn, "07195", client.Options{})
	hnCommune := dialT(t, tr.hn, "00001", client.Options{})
	dialT(t, tr.hn, "00004", client.Options{})

	t.Run("program up from both provinces", func(t *testing.T) { twoTiles(t, tr, natLead) })
	t.Run("nation's program and floor two hops down", func(t *testing.T) {
		twoHopsDown(t, tr, natLead, qnLead, qnCommune, hnCommune, hop1, hop2)
	})
	t.Run("directive to all provinces", func(t *testing.T) { directiveToAll(t, tr, natLead, qnDuty, hnDuty) })
	t.Run("turnout from both provinces", func(t *testing.T) { turnoutFromBoth(t, tr, natLead) })
}

// twoTiles: the national console sees each province's program on a tile,
// identified by the province command room's marker.
func twoTiles(t *testing.T, tr *tree2, natLead *apptest.Client) {
	console := consoleT(t, tr.nat, natLead)
	s0, s1 := 0, 1
	start := time.Now()
	if _, err := console.Send(wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{
		{Code: "22", Slot: &s0, Visible: true, Size: "small"},
		{Code: "01", Slot: &s1, Visible: true, Size: "small"},
	}}); err != nil {
		t.Fatal(err)
	}
	at := map[string]time.Duration{}
	err := client.WaitFor(func() bool {
		for _, code := range []string{"22", "01"} {
			if _, ok := at[code]; ok {
				continue
			}
			for s, st := range console.Received(code, start) {
				if strings.HasPrefix(s, "tile_") && st.Keyframes > 0 {
					at[code] = time.Since(start)
				}
			}
		}
		return len(at) == 2
	}, 20*time.Second)
	if err != nil {
		t.Fatalf("the nation's console saw tiles with keyframes from %v only: %v (slots %+v)", at, err, console.Recorder().Slots())
	}
	// Each tile carries its own province: 22's program never on 01's tile.
	for code, other := range map[string]string{"22": "01", "01": "22"} {
		tiles := map[string]bool{}
		for s := range console.Received(code, start) {
			if strings.HasPrefix(s, "tile_") {
				tiles[s] = true
			}
		}
		for s := range console.Received(other, start) {
			if tiles[s] {
				t.Fatalf("%s and %s on the same tile %s", code, other, s)
			}
		}
	}
	t.Logf("FIGURE each province's program on the nation's tile (first keyframe): 22 %v, 01 %v", at["22"], at["01"])
}

// twoHopsDown: 22 takes the nation's program (two hops to its commune, the
// delay each hop adds measured); the nation gives 01 the floor, and 22's
// commune sees 01's program as its floor, while 01's own commune keeps 01's
// program.
func twoHopsDown(t *testing.T, tr *tree2, natLead, qnLead *apptest.Client, qnCommune, hnCommune *client.Client,
	hop1, hop2 *delays) {
	natConsole := consoleT(t, tr.nat, natLead)
	qnConsole := consoleT(t, tr.qn, qnLead)
	rec := qnCommune.Recorder()
	first := func(c *client.Client, slot, code string, since time.Time, what string) time.Duration {
		t.Helper()
		err := client.WaitFor(func() bool { return !c.Recorder().FirstFrom(slot, code, since).IsZero() }, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: %s never came from %s: %v (slots %+v)", what, slot, code, err, c.Recorder().Slots())
		}
		return c.Recorder().FirstFrom(slot, code, since).Sub(since)
	}
	first(qnCommune, signaling.SlotProgramVideo, "22", time.Time{}, "22's own program at its commune")
	first(hnCommune, signaling.SlotProgramVideo, "01", time.Time{}, "01's own program at its commune")

	switched := time.Now()
	if _, err := qnConsole.Send(wire.TypeProgramSource, wire.ProgramSourceMsg{Source: uplink.SourceParent}); err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE program_source parent at 22 → the nation's program (00) at 22's commune: %v",
		first(qnCommune, signaling.SlotProgramVideo, "00", switched, "parent's program"))
	if _, err := qnConsole.WaitMessage(wire.TypeUplink, switched, 10*time.Second, func(e wire.Envelope) bool {
		var m wire.UplinkMsg
		return json.Unmarshal(e.Payload, &m) == nil && m.ProgramSource == uplink.SourceParent && m.Code == "22"
	}); err != nil {
		t.Fatalf("22's console is told of the switch: %v", err)
	}

	hop1.reset()
	hop2.reset()
	time.Sleep(3 * time.Second)
	n1, m1, p1 := hop1.stats()
	n2, m2, p2 := hop2.stats()
	if n1 == 0 || n2 == 0 {
		t.Fatalf("no program packets measured: one hop %d, two hops %d", n1, n2)
	}
	t.Logf("FIGURE the nation's program, capture → a province endpoint of the nation (02, one hop): %d packets, median %v, p95 %v", n1, m1, p1)
	t.Logf("FIGURE the nation's program, capture → 22's commune 07192 (two hops, with 01 a node too): %d packets, median %v, p95 %v", n2, m2, p2)
	t.Logf("FIGURE the second hop (22's uplink relay + 22's SFU) adds: median %v, p95 %v", m2-m1, p2-p1)
	// Loopback, three SFUs: 5× a 100 ms goal per hop (times raceSlow: -race
	// makes media about 8× slower).
	if m1 > raceSlow*500*time.Millisecond || m2 > raceSlow*time.Second {
		t.Fatalf("the nation's program takes %v (one hop), %v (two hops), median", m1, m2)
	}

	// The nation gives 01 the floor: 01's program (its command room's marker,
	// up 01's uplink) reaches 22's commune through 22's uplink.
	given := time.Now()
	if _, err := natConsole.Send(wire.TypeGiveFloor, wire.CodeMsg{Code: "01"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE the nation gives the floor to 01 (a province node) → 01's program at 22's commune: %v",
		first(qnCommune, signaling.SlotFloorVideo, "01", given, "floor to 01"))
	if holder, relayed := tr.qn.Uplink.ParentFloor(); holder != "01" || !relayed {
		t.Fatalf("22's parent floor %q relayed %v, want 01 relayed", holder, relayed)
	}
	err := client.WaitFor(func() bool {
		st, _ := rec.Slot(signaling.SlotFloorVideo)
		return st.Sources["01"].Keyframes > 0
	}, 10*time.Second)
	if err != nil {
		t.Fatalf("no keyframe from 01 on 22's commune's floor: %v", err)
	}
	// It keeps flowing: more of 01's packets a second later.
	before, _ := rec.Slot(signaling.SlotFloorVideo)
	time.Sleep(time.Second)
	if st, _ := rec.Slot(signaling.SlotFloorVideo); st.Current != "01" || st.Sources["01"].Packets <= before.Sources["01"].Packets {
		t.Fatalf("22's commune's floor is not flowing from 01: current %q, packets %d then %d",
			st.Current, before.Sources["01"].Packets, st.Sources["01"].Packets)
	}
	// 01 keeps its own program (source own): none of its communes gets the
	// nation's program or a floor relayed from the parent.
	if h, relayed := tr.hn.Uplink.ParentFloor(); relayed {
		t.Fatalf("01 relays the parent's floor (%q) with its program source own", h)
	}
	if !hnCommune.Recorder().FirstFrom(signaling.SlotProgramVideo, "00", time.Time{}).IsZero() {
		t.Fatal("the nation's program reached 01's commune with 01's program source own")
	}

	// Clean up for what follows: the nation takes the floor back, 22 its program.
	revoked := time.Now()
	if _, err := natConsole.Send(wire.TypeRevokeFloor, struct{}{}); err != nil {
		t.Fatal(err)
	}
	if err := client.WaitFor(func() bool { h, r := tr.qn.Uplink.ParentFloor(); return h == "" && !r }, 5*time.Second); err != nil {
		h, r := tr.qn.Uplink.ParentFloor()
		t.Fatalf("after the nation's revoke: 22's parent floor %q relayed %v", h, r)
	}
	t.Logf("FIGURE the nation takes the floor back → 22's relay ended: %v", time.Since(revoked))
	own := time.Now()
	if _, err := qnConsole.Send(wire.TypeProgramSource, wire.ProgramSourceMsg{Source: uplink.SourceOwn}); err != nil {
		t.Fatal(err)
	}
	first(qnCommune, signaling.SlotProgramVideo, "22", own, "22's own program back")
	// The relay ends (the program comes back) before the uplink records the
	// new source: wait for the status rather than read it once.
	if err := client.WaitFor(func() bool { return tr.qn.Uplink.Status().ProgramSource == uplink.SourceOwn }, 5*time.Second); err != nil {
		t.Fatalf("22's uplink status %+v", tr.qn.Uplink.Status())
	}
}

// directiveToAll: a national directive to all provinces lands in both
// provinces' logs; each desk acknowledges; the nation's matrix shows both;
// 01 passes it on to its communes, and a commune acknowledges.
func directiveToAll(t *testing.T, tr *tree2, nat, qnDuty, hnDuty *apptest.Client) {
	id := uuid.NewString()
	text := "Các tỉnh, thành phố báo cáo tỷ lệ cử tri đi bầu trước 15 giờ"
	issued := time.Now()
	var d store.Directive
	nat.Do("POST", "/api/v1/directives", map[string]any{"id": id, "text": text, "targets": map[string]any{"all": true}}, &d, 201)
	if len(d.Receipts) != 63 {
		t.Fatalf("a directive to all at the nation: %d receipts, want 63 provinces", len(d.Receipts))
	}

	// Down: each province's log holds it, from the parent, with one receipt:
	// the province itself.
	arrived := map[string]time.Duration{}
	desks := map[string]*apptest.Client{"22": qnDuty, "01": hnDuty}
	err := client.WaitFor(func() bool {
		for code, duty := range desks {
			if _, ok := arrived[code]; ok {
				continue
			}
			var local store.Directive
			if st, _ := duty.Do("GET", "/api/v1/directives/"+id, nil, &local, 0); st != 200 {
				continue
			}
			arrived[code] = time.Since(issued)
			if local.Text != text || local.IssuedBy != store.ParentPrefix+"user:nat-lead" ||
				len(local.Receipts) != 1 || local.Receipts[0].EndpointCode != code {
				t.Fatalf("%s's copy: %+v", code, local)
			}
		}
		return len(arrived) == 2
	}, 25*time.Second)
	if err != nil {
		t.Fatalf("the directive reached only %v: %v", arrived, err)
	}
	t.Logf("FIGURE directive to all issued at the nation → in the province's log: 22 %v, 01 %v", arrived["22"], arrived["01"])

	// Up: both desks acknowledge; the nation's matrix shows both by the
	// provinces themselves, and no other province.
	acked := time.Now()
	for code, duty := range desks {
		duty.Do("POST", "/api/v1/directives/"+id+"/ack", map[string]any{"endpoint_code": code, "via": "in_person"}, nil, 200)
	}
	matrix := func() map[string]store.Receipt {
		var d store.Directive
		nat.Do("GET", "/api/v1/directives/"+id, nil, &d, 200)
		m := map[string]store.Receipt{}
		for _, r := range d.Receipts {
			m[r.EndpointCode] = r
		}
		return m
	}
	ackedAt := map[string]time.Duration{}
	err = client.WaitFor(func() bool {
		for code, r := range matrix() {
			if _, ok := ackedAt[code]; !ok && r.AckedAt != nil {
				ackedAt[code] = time.Since(acked)
			}
		}
		return len(ackedAt) >= 2
	}, 25*time.Second)
	if err != nil {
		t.Fatalf("the nation's matrix shows acknowledged %v: %v", ackedAt, err)
	}
	t.Logf("FIGURE acknowledged at both desks → the nation's receipts: 22 %v, 01 %v", ackedAt["22"], ackedAt["01"])
	m := matrix()
	for _, code := range []string{"22", "01"} {
		if r := m[code]; r.AckedAt == nil || r.AckedBy != "endpoint:"+code || r.AckVia != store.AckViaApp {
			t.Fatalf("the nation's receipt of %s: %+v", code, r)
		}
	}
	for code, r := range m {
		if code != "22" && code != "01" && r.AckedAt != nil {
			t.Fatalf("%s acknowledged at the nation: %+v", code, r)
		}
	}

	// Pass-on at 01: its desk directs all its units, linked to the original;
	// its commune reads the link and acknowledges; 01's matrix shows it.
	passID := uuid.NewString()
	var pass store.Directive
	hnDuty.Do("POST", "/api/v1/directives", map[string]any{"id": passID, "text": "Chuyển chỉ đạo của Trung ương: " + text,
		"targets": map[string]any{"all": true}, "relayed_from": id}, &pass, 201)
	if pass.RelayedFrom == nil || *pass.RelayedFrom != id || len(pass.Receipts) != 3 {
		t.Fatalf("01's pass-on: %+v", pass)
	}
	commune := tr.hn.Endpoint("00001")
	var mine struct{ Directives []store.Directive }
	commune.Do("GET", "/api/v1/directives", nil, &mine, 200)
	if len(mine.Directives) != 1 || mine.Directives[0].ID != passID || mine.Directives[0].RelayedFrom == nil || *mine.Directives[0].RelayedFrom != id {
		t.Fatalf("01's commune's directives: %+v", mine.Directives)
	}
	commune.Do("POST", "/api/v1/directives/"+passID+"/ack", map[string]any{}, nil, 200)
	var local store.Directive
	hnDuty.Do("GET", "/api/v1/directives/"+passID, nil, &local, 200)
	for _, r := range local.Receipts {
		if (r.EndpointCode == "00001") != (r.AckedAt != nil) {
			t.Fatalf("01's pass-on receipts: %+v", local.Receipts)
		}
	}
	// 22's communes got nothing of 01's pass-on.
	tr.qn.Endpoint("07192").Do("GET", "/api/v1/directives", nil, &mine, 200)
	if len(mine.Directives) != 0 {
		t.Fatalf("22's commune's directives: %+v", mine.Directives)
	}
}

// turnoutFromBoth: a commune reports at each province; the nation sees each
// province's own figure and their sum.
func turnoutFromBoth(t *testing.T, tr *tree2, nat *apptest.Client) {
	report := func(a *apptest.App, code string, voted int64) time.Time {
		at := time.Now()
		a.Endpoint(code).Do("POST", "/api/v1/turnout/reports", map[string]any{"id": uuid.NewString(),
			"endpoint_code": code, "as_of": at.Add(-time.Second).UTC().Truncate(time.Millisecond), "voted": voted}, nil, 201)
		return at
	}
	want := map[string]int64{"22": 500, "01": 300}
	sent := map[string]time.Time{"22": report(tr.qn, "07192", 500), "01": report(tr.hn, "00001", 300)}
	got := map[string]time.Duration{}
	err := client.WaitFor(func() bool {
		for code, v := range want {
			if _, ok := got[code]; !ok && unit(t, nat, code).Voted == v {
				got[code] = time.Since(sent[code])
			}
		}
		return len(got) == 2
	}, 25*time.Second)
	if err != nil {
		t.Fatalf("the nation sees 22 at %d, 01 at %d (want 500, 300): %v", unit(t, nat, "22").Voted, unit(t, nat, "01").Voted, err)
	}
	t.Logf("FIGURE turnout, commune report at the province → the province's figure at the nation: 22 %v, 01 %v (goal 5 s; sync_interval 200 ms)", got["22"], got["01"])
	for code, d := range got {
		if d > 25*time.Second { // goal 5 s, asserted with a 5× margin
			t.Fatalf("%s's turnout took %v to reach the nation", code, d)
		}
	}
	for code := range want {
		if u := unit(t, nat, code); u.UnitsReported != 1 || u.UnitsTotal != 1 {
			t.Fatalf("%s at the nation is one unit's report: %+v", code, u)
		}
	}
	if root := unit(t, nat, "00"); root.Voted != 800 || root.UnitsTotal != 63 || root.UnitsReported != 2 {
		t.Fatalf("the nation sums its two provinces: %+v", root)
	}
	if st := tr.hn.Uplink.Status(); st.TurnoutVoted != 300 {
		t.Fatalf("01's uplink status %+v", st)
	}
}
