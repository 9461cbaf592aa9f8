package faulttest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// The full version of TestTreeStandby (docs/operations.md, "A tree with a
// standby: the full test"): a second province (01) and more endpoints.
var treeFull = flag.Bool("tree.full", false, "TestTreeStandby: a second province node and more endpoints")

// The uplink's goal after a takeover: the parent sees the province again within
// the clients' goal (issue #15); the test allows 5×.
const uplinkGoal = reconnectGoal

// treeMember describes one `opscenter serve` process of the tree on port,
// with its own database dsn and its own journal.
func treeMember(t *testing.T, dir, name, dsn string, extra ...string) *pairMember {
	t.Helper()
	port := freeUDPPort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	return &pairMember{name: name, url: url, log: filepath.Join(dir, name+".log"), env: append([]string{
		"OPSCENTER_DATABASE_URL=" + dsn,
		fmt.Sprintf("OPSCENTER_HTTP_ADDR=127.0.0.1:%d", port),
		"OPSCENTER_HTTP_PUBLIC_URL=" + url,
		"OPSCENTER_METRICS_ADDR=127.0.0.1:0",
		fmt.Sprintf("OPSCENTER_MEDIA_UDP_PORT=%d", freeUDPPort(t)),
		fmt.Sprintf("OPSCENTER_MEDIA_TCP_PORT=%d", freeUDPPort(t)),
		"OPSCENTER_DATABASE_JOURNAL_PATH=" + filepath.Join(dir, name, "audit.journal"),
		"OPSCENTER_RECORDING_ENABLED=false", // the pair's recordings are TestStandbyTakesOverAfterKill9's
		"OPSCENTER_LOG_LEVEL=info",
	}, extra...)}
}

// parentEnv points a node at its parent with the join link the parent issued
// for code (its endpoint token, as `opscenter` links and the desk hand out).
func parentEnv(t *testing.T, parent *store.Store, parentURL, code string) []string {
	t.Helper()
	tok, err := parent.IssueEndpointToken(context.Background(), "test", code)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"OPSCENTER_PARENT_URL=" + parentURL, "OPSCENTER_PARENT_JOIN_LINK=" + parentURL + "/join#t=" + tok,
		"OPSCENTER_PARENT_RECONNECT_MIN=100ms", "OPSCENTER_PARENT_RECONNECT_MAX=1s", "OPSCENTER_PARENT_SYNC_INTERVAL=200ms"}
}

// openStore opens a store on dsn for the test's own reads and credentials.
func openStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// login creates a user in st and logs in at base.
func login(t *testing.T, st *store.Store, base, name string, role auth.Role) *rest {
	t.Helper()
	pw := "password-" + name + "-long"
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "test", name, role, h); err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	(&rest{base: base}).do(t, "POST", "/api/v1/auth/login", map[string]string{"username": name, "password": pw}, &out, 200)
	return &rest{base: base, token: out.Token}
}

// startTreeSession starts a session at a node as its leader.
func startTreeSession(t *testing.T, lead *rest, title string) string {
	t.Helper()
	id, now := uuid.NewString(), time.Now().UTC()
	lead.do(t, "POST", "/api/v1/sessions", map[string]any{"id": id, "title": title,
		"planned_start": now.Add(-time.Hour), "planned_end": now.Add(12 * time.Hour)}, nil, 201)
	lead.do(t, "POST", "/api/v1/sessions/"+id+"/start", nil, nil, 200)
	return id
}

// lastPresence is the last presence state of code a console received, from a
// presence message or a presence snapshot.
func lastPresence(c *client.Client, code string) string {
	var state string
	var at time.Time
	if l := presenceOf(c, code, time.Time{}); len(l) > 0 {
		state, at = l[len(l)-1].State, l[len(l)-1].At
	}
	for _, m := range c.Messages(wire.TypePresenceSnapshot) {
		var snap wire.PresenceSnapshotMsg
		if m.At.Before(at) || json.Unmarshal(m.Payload, &snap) != nil {
			continue
		}
		for _, p := range snap.Endpoints {
			if p.Code == code {
				state, at = p.State, m.At
			}
		}
	}
	return state
}

// directiveCopies counts the directives with id in a node's log.
func directiveCopies(t *testing.T, r *rest, id string) int {
	t.Helper()
	var all struct{ Directives []store.Directive }
	r.do(t, "GET", "/api/v1/directives", nil, &all, 200)
	n := 0
	for _, d := range all.Directives {
		if d.ID == id {
			n++
		}
	}
	return n
}

// receiptOf is code's receipt of directive id at a node ("" EndpointCode: none).
func receiptOf(r *rest, id, code string) store.Receipt {
	var d store.Directive
	if st, raw := r.try("GET", "/api/v1/directives/"+id, nil); st != 200 || json.Unmarshal(raw, &d) != nil {
		return store.Receipt{}
	}
	for _, rc := range d.Receipts {
		if rc.EndpointCode == code {
			return rc
		}
	}
	return store.Receipt{}
}

// duplicateEvents lists the events of a log written twice: the same action on
// the same entity with the same content (the directive and live actions this
// test makes happen once each).
func duplicateEvents(t *testing.T, st *store.Store) (dups []string, n int) {
	t.Helper()
	evs, err := st.EventsAfter(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	seen, ids := map[string]int64{}, map[int64]bool{}
	for _, e := range evs {
		if ids[e.ID] {
			dups = append(dups, fmt.Sprintf("event id %d twice", e.ID))
		}
		ids[e.ID] = true
		if e.Entity != "directive" && e.Entity != "endpoint" && e.Entity != "live_session" {
			continue
		}
		k := e.Action + " " + e.Entity + " " + e.EntityID + " " + string(e.After)
		if first, dup := seen[k]; dup {
			dups = append(dups, fmt.Sprintf("%s %s (ids %d and %d)", e.Action, e.EntityID, first, e.ID))
		}
		seen[k] = e.ID
	}
	return dups, len(evs)
}

// The tree with a standby (issue #15): a national node with its own database,
// and province 22 as an active and a standby process on one shared database,
// joined to the nation with the link it issued for 22. The active province
// process is killed with SIGKILL mid-session: the standby becomes active, the
// province's endpoints come back on it, its uplink comes back (the nation sees
// 22 online again), the floor and the mute are kept, a directive of the nation
// from before the kill is in the province's log once, one from after it arrives
// and its acknowledgement reaches the nation's receipt, and neither log has an
// event twice. With -tree.full: a second province (01) that stays up through
// it all, and more endpoints.
func TestTreeStandby(t *testing.T) {
	ctx := context.Background()
	full := *treeFull
	nCommunes := 3
	if full {
		nCommunes = 10
	}
	bin := buildBinary(t)
	dir := t.TempDir()

	// The nation: its own database, the national roster (root 00).
	natDSN := storetest.DSN(t)
	natSt := openStore(t, natDSN)
	nat := treeMember(t, dir, "nation", natDSN, "OPSCENTER_ROSTER_PROVINCE_CODE=00")
	startPairMember(t, bin, nat, 200)
	natLead := login(t, natSt, nat.url, "nat-lead", auth.RoleLeader)
	startTreeSession(t, natLead, "Bầu cử 23/5/2021 (toàn quốc)")
	natConsole := (&rig{t: t}).dial(reconnecting(nat.url, natLead.token, wire.RoleConsole, false))

	// Province 22: A active, B standby, one shared database that outlives both.
	provDSN := storetest.DSN(t)
	provSt := openStore(t, provDSN)
	up22 := parentEnv(t, natSt, nat.url, "22")
	mA := treeMember(t, dir, "22-A", provDSN, up22...)
	mB := treeMember(t, dir, "22-B", provDSN, up22...)
	for _, m := range []*pairMember{mA, mB} {
		m.env = append(m.env, "OPSCENTER_STANDBY_ENABLED=true", "OPSCENTER_STANDBY_NODE_URLS="+mA.url+","+mB.url,
			"OPSCENTER_STANDBY_POLL_INTERVAL=1s")
	}
	pA := startPairMember(t, bin, mA, 200)
	startPairMember(t, bin, mB, 503)

	// Full: province 01, a node of its own (a small roster of its own).
	var m01 *pairMember
	others := map[string]*client.Client{} // province 01's endpoints (full)
	if full {
		roster := filepath.Join(dir, "01.tsv")
		tsv := "code\tname\tkind\tunit_type\tparent_code\n01\tThành phố Hà Nội\tprovince\tThành phố\t\n" +
			"001\tQuận Ba Đình\tdistrict\tQuận\t01\n00001\tPhường Phúc Xá\tcommune\tPhường\t001\n" +
			"00004\tPhường Trúc Bạch\tcommune\tPhường\t001\n"
		if err := os.WriteFile(roster, []byte(tsv), 0o600); err != nil {
			t.Fatal(err)
		}
		dsn01 := storetest.DSN(t)
		m01 = treeMember(t, dir, "01", dsn01, append(parentEnv(t, natSt, nat.url, "01"),
			"OPSCENTER_ROSTER_PROVINCE_CODE=01", "OPSCENTER_ROSTER_FILE="+roster)...)
		startPairMember(t, bin, m01, 200)
		st01 := openStore(t, dsn01)
		startTreeSession(t, login(t, st01, m01.url, "hn-lead", auth.RoleLeader), "Bầu cử 23/5/2021 (Hà Nội)")
		for _, code := range []string{"00001", "00004"} {
			others[code] = (&rig{t: t}).dial(reconnecting(m01.url, endpointToken(t, st01, code), wire.RoleEndpoint, true))
		}
	}
	waitT(t, "the nation sees the provinces online, 01's endpoints connected", 30*time.Second, func() bool {
		for _, c := range others {
			if c.State() != client.StateConnected {
				return false
			}
		}
		return lastPresence(natConsole, "22") == wire.StateConnected &&
			(m01 == nil || lastPresence(natConsole, "01") == wire.StateConnected)
	})

	// The province's session, its command room, its leader's console and communes.
	provLead := login(t, provSt, mA.url, "qn-lead", auth.RoleLeader)
	provDuty := login(t, provSt, mA.url, "qn-duty", auth.RoleDuty)
	sessID := startTreeSession(t, provLead, "Bầu cử 23/5/2021 (Quảng Ninh)")
	r := &rig{t: t}
	console := r.dial(reconnecting(mA.url, provLead.token, wire.RoleConsole, false))
	all := map[string]*client.Client{"22": r.dial(reconnecting(mA.url, endpointToken(t, provSt, signaling.CommandCode), wire.RoleConsole, true)),
		"console": console}
	codes := communes(t, provSt, nCommunes)
	for _, code := range codes {
		all[code] = r.dial(reconnecting(mA.url, endpointToken(t, provSt, code), wire.RoleEndpoint, true))
	}
	waitT(t, "the province's clients connected to A", 60*time.Second, allConnected(all))
	if got := console.Welcome().NodeURLs; !slices.Equal(got, []string{mA.url, mB.url}) {
		t.Fatalf("welcome node_urls %v, want [%s %s]", got, mA.url, mB.url)
	}

	// The floor and a mute at the province, saved in its live state.
	floor, muted := codes[0], codes[1]
	send(t, console, wire.TypeGiveFloor, wire.CodeMsg{Code: floor})
	send(t, console, wire.TypeMute, wire.CodeMsg{Code: muted})
	waitT(t, "the province's live state in PostgreSQL", 10*time.Second, func() bool {
		doc, _ := provSt.LoadLiveState(ctx)
		var ls signaling.LiveState
		return json.Unmarshal(doc, &ls) == nil && ls.Floor == floor && slices.Contains(ls.Muted, muted)
	})

	// A directive of the nation before the kill, in the province's log.
	directive := func(text string) string {
		id := uuid.NewString()
		natLead.do(t, "POST", "/api/v1/directives", map[string]any{"id": id, "text": text,
			"targets": map[string]any{"endpoints": []string{"22"}}}, nil, 201)
		return id
	}
	before := directive("Các tỉnh báo cáo tình hình trước 11 giờ")
	waitT(t, "the nation's first directive in the province's log", 30*time.Second, func() bool {
		st, _ := provDuty.try("GET", "/api/v1/directives/"+before, nil)
		return st == 200
	})

	// SIGKILL the active province process.
	recon0 := reconnects(all, others)
	killAt := time.Now()
	pA.kill(t)
	waitT(t, "B active (/readyz 200)", 5*takeoverGoal, func() bool { s, _ := readyz(mB.url); return s == 200 })
	takeover := time.Since(killAt)
	waitT(t, "the province's clients back, on B", 5*reconnectGoal, allBack(all, recon0, mB.url))
	back := time.Since(killAt)
	var uplinkBack time.Duration
	waitT(t, "the nation sees 22 online again", 5*uplinkGoal, func() bool {
		at, ok := firstState(presenceOf(natConsole, "22", killAt), wire.StateConnected)
		uplinkBack = at.Sub(killAt)
		return ok && lastPresence(natConsole, "22") == wire.StateConnected
	})
	t.Logf("FIGURE tree standby (%d province clients%s): B active %v after A's SIGKILL (goal %v); clients back on B %v (goal %v); "+
		"the nation sees 22 online again %v (goal %v)", len(all), map[bool]string{true: fmt.Sprintf(", province 01 with %d", len(others)), false: ""}[full],
		takeover.Round(time.Millisecond), takeoverGoal, back.Round(time.Millisecond), reconnectGoal,
		uplinkBack.Round(time.Millisecond), uplinkGoal)
	t.Logf("22 at the nation since the kill: %s", fmtChanges(presenceOf(natConsole, "22", killAt), killAt))
	if takeover > 5*takeoverGoal || back > 5*reconnectGoal || uplinkBack > 5*uplinkGoal {
		t.Errorf("takeover %v (limit %v), clients back %v (limit %v), uplink back %v (limit %v)",
			takeover, 5*takeoverGoal, back, 5*reconnectGoal, uplinkBack, 5*uplinkGoal)
	}
	if m01 != nil {
		if l := presenceOf(natConsole, "01", killAt); len(l) > 0 {
			t.Errorf("province 01 at the nation changed during 22's takeover: %s", fmtChanges(l, killAt))
		}
	}
	for code, c := range others {
		if c.Reconnects() != recon0[code] || c.State() != client.StateConnected {
			t.Errorf("01's endpoint %s: %d reconnects during 22's takeover, state %s", code, c.Reconnects()-recon0[code], c.State())
		}
	}

	// The floor and the mute were kept.
	w := console.Welcome().State
	if w.SessionID == nil || *w.SessionID != sessID {
		t.Errorf("session after the takeover %v, want %s", w.SessionID, sessID)
	}
	if w.Floor == nil || *w.Floor != floor {
		t.Errorf("floor after the takeover %s, want %s", strp(w.Floor), floor)
	}
	if !slices.Contains(w.MutedCodes, muted) || !all[muted].Welcome().State.Muted {
		t.Errorf("%s not muted after the takeover (console: %v)", muted, w.MutedCodes)
	}
	floorVideoFlows(t, map[string]*client.Client{codes[2]: all[codes[2]]}, floor, time.Now(), "after the takeover")

	// A directive after the takeover reaches B; its acknowledgement there reaches
	// the nation's receipt.
	provDuty.base = mB.url
	after := directive("Các tỉnh báo cáo kết quả kiểm phiếu sơ bộ")
	issued := time.Now()
	waitT(t, "the nation's second directive in the province's log (B)", 5*uplinkGoal, func() bool {
		st, _ := provDuty.try("GET", "/api/v1/directives/"+after, nil)
		return st == 200
	})
	down := time.Since(issued)
	acked := time.Now()
	provDuty.do(t, "POST", "/api/v1/directives/"+after+"/ack", map[string]any{"endpoint_code": "22", "via": "in_person"}, nil, 200)
	waitT(t, "the acknowledgement at the nation's receipt", 5*uplinkGoal, func() bool {
		return receiptOf(natLead, after, "22").AckedAt != nil
	})
	t.Logf("directive after the takeover: in the province's log %v after it was issued; acknowledged → the nation's receipt %v",
		down.Round(time.Millisecond), time.Since(acked).Round(time.Millisecond))

	// Nothing lost, nothing twice, in either log.
	time.Sleep(time.Second) // a few more directive syncs
	for _, id := range []string{before, after} {
		if n := directiveCopies(t, provDuty, id); n != 1 {
			t.Errorf("directive %s: %d copies in the province's log", id, n)
		}
		if n := directiveCopies(t, natLead, id); n != 1 {
			t.Errorf("directive %s: %d copies in the nation's log", id, n)
		}
	}
	for _, l := range []struct {
		name string
		st   *store.Store
	}{{"province", provSt}, {"nation", natSt}} {
		d, n := duplicateEvents(t, l.st)
		if len(d) > 0 {
			t.Errorf("the %s's log has events twice: %s", l.name, strings.Join(d, "; "))
		}
		t.Logf("the %s's log: %d events, none twice", l.name, n)
	}
	if b, _ := os.ReadFile(mB.log); !strings.Contains(string(b), "opscenter: active") {
		t.Errorf("B's log does not record its takeover")
	}
}
