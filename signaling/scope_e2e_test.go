package signaling_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// District authority on /ws: district A is 195 (Cẩm Phả), district B is 207 (Cô Tô).
const (
	scopeDistA = "195"
	scopeDistB = "207"
)

// scopedToken creates a staff account limited to district, logs it in and returns
// its bearer token.
func scopedToken(t *testing.T, l *live, name string, role auth.Role, district string) string {
	t.Helper()
	pw := "password-" + name + "-long"
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.a.Store.CreateScopedUser(context.Background(), "test", name, role, district, h); err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	l.a.Anon().Do("POST", "/api/v1/auth/login", map[string]string{"username": name, "password": pw}, &out, 200)
	return out.Token
}

// communesOf lists n communes of a district, from the roster.
func communesOf(t *testing.T, l *live, district string, n int) []string {
	t.Helper()
	eps, err := l.a.Store.ListEndpoints(context.Background(), store.EndpointFilter{Kind: store.KindCommune, District: district})
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) < n {
		t.Fatalf("district %s has %d communes, need %d", district, len(eps), n)
	}
	var out []string
	for _, e := range eps[:n] {
		out = append(out, e.Code)
	}
	return out
}

// mentions lists the messages of the given types that name one of codes (as a
// JSON string anywhere in the payload).
func mentions(c *client.Client, codes []string, types ...string) []string {
	var out []string
	for _, typ := range types {
		for _, m := range c.Messages(typ) {
			for _, code := range codes {
				if strings.Contains(string(m.Payload), `"`+code+`"`) {
					out = append(out, typ+" "+string(m.Payload))
				}
			}
		}
	}
	return out
}

// TestScopedConsoleE2E: a district leader's console, against real Pion clients,
// sees only its district's presence, health, hands, mutes and private line (the
// program and the floor excepted), cannot watch another district's endpoint nor
// hear it in a roll call, and is refused every session-control message.
func TestScopedConsoleE2E(t *testing.T) {
	l := startLive(t)
	l.startSession()
	inA := communesOf(t, l, scopeDistA, 2)
	b := communesOf(t, l, scopeDistB, 1)[0]
	a1, a2 := inA[0], inA[1]
	start := time.Now()
	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	eps := l.dialMany([]string{a1, a2, b})
	lead := l.dial(l.leader.Token, wire.RoleConsole, false)
	dc := l.dial(scopedToken(t, l, "lead195", auth.RoleLeader, scopeDistA), wire.RoleConsole, false)
	for _, c := range append([]*client.Client{cmd, lead, dc}, eps[a1], eps[a2], eps[b]) {
		if err := c.WaitConnected(30 * time.Second); err != nil {
			t.Fatalf("media: %v", err)
		}
	}
	t.Logf("3 endpoints, the command device and two consoles connected in %v", time.Since(start))
	hidden := []string{b, scopeDistB}

	// The welcome: not a leader, limited to A; the snapshot has A's units and 22.
	w := dc.Welcome()
	if w.Leader || w.District != scopeDistA || w.Role != wire.RoleConsole {
		t.Fatalf("scoped welcome: leader %v district %q role %s", w.Leader, w.District, w.Role)
	}
	if lw := lead.Welcome(); !lw.Leader || lw.District != "" {
		t.Fatalf("unscoped welcome: %+v", lw)
	}
	snaps := dc.Messages(wire.TypePresenceSnapshot)
	if len(snaps) == 0 {
		t.Fatal("no presence snapshot")
	}
	snap := payloadOf[wire.PresenceSnapshotMsg](t, snaps[len(snaps)-1].Envelope)
	got := map[string]string{}
	for _, p := range snap.Endpoints {
		got[p.Code] = p.State
	}
	if got[signaling.CommandCode] == "" || got[scopeDistA] == "" || got[a1] == "" || got[b] != "" || got[scopeDistB] != "" {
		t.Fatalf("scoped presence snapshot: %v", got)
	}
	if len(got) >= 100 {
		t.Fatalf("scoped presence snapshot has %d units, want district %s's only", len(got), scopeDistA)
	}
	all := payloadOf[wire.PresenceSnapshotMsg](t, lead.Messages(wire.TypePresenceSnapshot)[0].Envelope)
	if len(all.Endpoints) != 191 {
		t.Fatalf("unscoped presence snapshot has %d units", len(all.Endpoints))
	}

	// Hands: B, then A. The province sees both in order; the district its own.
	t0 := time.Now()
	queue := func(c *client.Client, want []string) {
		t.Helper()
		if _, err := c.WaitMessage(wire.TypeHands, t0, 10*time.Second, func(e wire.Envelope) bool {
			return slices.Equal(payloadOf[wire.HandsMsg](t, e).Queue, want)
		}); err != nil {
			t.Fatalf("hands %v: %v", want, err)
		}
	}
	send(t, eps[b], wire.TypeRaiseHand, nil)
	queue(lead, []string{b}) // the two connections' hands are ordered by the server, not by the test
	send(t, eps[a1], wire.TypeRaiseHand, nil)
	queue(lead, []string{b, a1})
	queue(dc, []string{a1})

	// The health board: the district's console gets stats of its own units only.
	if _, err := dc.WaitMessage(wire.TypeStats, t0, 10*time.Second, func(e wire.Envelope) bool {
		return len(payloadOf[wire.StatsMsg](t, e).Endpoints) > 0
	}); err != nil {
		t.Fatalf("scoped console has no stats: %v", err)
	}

	// Session control is refused, with a clear error, and nothing is applied.
	for _, m := range []struct {
		typ     string
		payload any
	}{
		{wire.TypeGiveFloor, wire.CodeMsg{Code: a1}},
		{wire.TypeRevokeFloor, nil},
		{wire.TypeMute, wire.CodeMsg{Code: a1}},
		{wire.TypeMuteAll, nil},
		{wire.TypeRequestUnmute, wire.CodeMsg{Code: a1}},
		{wire.TypePrivateLineOpen, wire.CodeMsg{Code: a1}},
		{wire.TypePrivateLineClose, nil},
		{wire.TypeRollCallStart, nil},
		{wire.TypeRollCallStop, nil},
		{wire.TypeRemove, wire.CodeMsg{Code: a1}},
		{wire.TypeSessionEnd, nil},
	} {
		t1 := time.Now()
		id, err := dc.Send(m.typ, m.payload)
		if err != nil {
			t.Fatal(err)
		}
		e, err := dc.WaitError(wire.ErrForbidden, t1, 5*time.Second)
		if err != nil || e.ID != id || !strings.Contains(e.Message, "province") {
			t.Fatalf("%s from the scoped console: %+v, %v", m.typ, e, err)
		}
	}
	for _, action := range []string{"floor.given", "endpoint.muted", "endpoint.muted_all", "private_line.opened", "roll_call.started", "endpoint.removed"} {
		if n := auditCount(t, l, action, ""); n != 0 {
			t.Fatalf("%d %s events after the scoped console's refused actions", n, action)
		}
	}
	var cur store.Session
	l.leader.Do("GET", "/api/v1/sessions/current", nil, &cur, 200)
	if cur.ID != l.sessID {
		t.Fatalf("session after session_end from the scoped console: %+v", cur)
	}

	// Tiles: another district's endpoint is refused (as if it did not exist), and
	// nothing of the request applies; its own units are watched.
	t2 := time.Now()
	id, err := dc.Send(wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{
		{Code: a1, Visible: true, Size: "small"}, {Code: b, Visible: true, Size: "small"}}})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := dc.WaitError(wire.ErrUnknownCode, t2, 5*time.Second); err != nil || e.ID != id {
		t.Fatalf("tile of %s: %+v, %v", b, e, err)
	}
	send(t, dc, wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{
		{Code: a1, Visible: true, Size: "small"}, {Code: a2, Visible: true, Size: "small"}}})
	d := waitT(t, "scoped console tiles of its communes", 20*time.Second, func() bool {
		return dc.Received(a1, t2)["tile_0"].Keyframes > 0 && dc.Received(a2, t2)["tile_1"].Keyframes > 0
	})
	t.Logf("scoped console watches %s and %s after %v", a1, a2, d)

	// Mutes and the private line with B are the province's business: the district's
	// console is told nothing of B (the line shows as closed), but all of A.
	t3 := time.Now()
	send(t, lead, wire.TypeMute, wire.CodeMsg{Code: b})
	send(t, lead, wire.TypeMute, wire.CodeMsg{Code: a2})
	if _, err := dc.WaitMessage(wire.TypeMute, t3, 5*time.Second, func(e wire.Envelope) bool {
		return payloadOf[wire.MuteMsg](t, e).Code == a2
	}); err != nil {
		t.Fatalf("scoped console not told of %s's mute: %v", a2, err)
	}
	send(t, lead, wire.TypePrivateLineOpen, wire.CodeMsg{Code: b})
	if _, err := lead.WaitMessage(wire.TypePrivateLine, t3, 5*time.Second, func(e wire.Envelope) bool {
		p := payloadOf[wire.PrivateLineMsg](t, e)
		return p.Code != nil && *p.Code == b
	}); err != nil {
		t.Fatal(err)
	}
	if env, err := dc.WaitMessage(wire.TypePrivateLine, t3, 5*time.Second, nil); err != nil ||
		payloadOf[wire.PrivateLineMsg](t, env).Code != nil {
		t.Fatalf("scoped console's private line with %s: %s, %v", b, env.Payload, err)
	}
	// A console of the district joining now gets the same view in its welcome:
	// hands, mutes and the private line of its own units only.
	dc2 := l.dial(scopedToken(t, l, "duty195", auth.RoleDuty, scopeDistA), wire.RoleConsole, false)
	if st := dc2.Welcome().State; !slices.Equal(st.Hands, []string{a1}) || !slices.Equal(st.MutedCodes, []string{a2}) || st.PrivateLine != nil {
		t.Fatalf("scoped welcome state: hands %v, muted %v, private line %v", st.Hands, st.MutedCodes, st.PrivateLine)
	}
	if st := lead.Welcome().State; len(st.Hands) != 0 { // joined before: the check above is not vacuous
		t.Fatalf("unscoped console's welcome: %+v", st)
	}
	dc2.Close()
	send(t, lead, wire.TypePrivateLineClose, nil)
	// B's microphone comes back (asked and accepted) for the roll call; a2 stays muted.
	t35 := time.Now()
	send(t, lead, wire.TypeRequestUnmute, wire.CodeMsg{Code: b})
	if _, err := eps[b].WaitMessage(wire.TypeUnmuteRequest, t35, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	send(t, eps[b], wire.TypeUnmuteAccept, nil)
	if _, err := lead.WaitMessage(wire.TypeMute, t35, 5*time.Second, func(e wire.Envelope) bool {
		m := payloadOf[wire.MuteMsg](t, e)
		return m.Code == b && !m.Muted
	}); err != nil {
		t.Fatal(err)
	}

	// The roll call: the district's console hears its own open microphones only.
	send(t, lead, wire.TypeRollCallStart, nil)
	t4 := time.Now()
	waitHears(t, "the province hears B and A in the roll call", lead, t4, b, a1)
	waitHears(t, "the district hears A in the roll call", dc, t4, a1)
	rw := quietWindow()
	if hears(dc, b, rw) {
		t.Errorf("the scoped console hears %s of district %s in the roll call", b, scopeDistB)
	}
	send(t, lead, wire.TypeRollCallStop, nil)

	// The floor is for everyone: given to B, the district sees and hears it.
	t5 := time.Now()
	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: b})
	if _, err := dc.WaitMessage(wire.TypeFloor, t5, 5*time.Second, func(e wire.Envelope) bool {
		p := payloadOf[wire.FloorMsg](t, e)
		return p.Code != nil && *p.Code == b
	}); err != nil {
		t.Fatalf("scoped console not told of the floor: %v", err)
	}
	waitT(t, "floor video of "+b+" on the scoped console", 15*time.Second, func() bool {
		return dc.Received(b, t5)[signaling.SlotFloorVideo].Keyframes > 0
	})
	// Its own tile request naming B stays refused though B holds the floor.
	t6 := time.Now()
	id, _ = dc.Send(wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{{Code: b, Visible: true}}})
	if e, err := dc.WaitError(wire.ErrUnknownCode, t6, 5*time.Second); err != nil || e.ID != id {
		t.Fatalf("tile of the floor holder %s: %+v, %v", b, e, err)
	}
	for slot := range dc.Received(b, time.Time{}) {
		if strings.HasPrefix(slot, "tile_") || strings.HasPrefix(slot, "aux_audio_") {
			t.Errorf("scoped console received %s's media on %s", b, slot)
		}
	}

	// B leaves: the province sees it go offline; the district is never told.
	t7 := time.Now()
	eps[b].Close()
	waitPresence(t, lead, "province", b, wire.StateOffline, "", t7, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // what would have gone to both is sent in one pass
	if m := mentions(dc, hidden, wire.TypePresence, wire.TypePresenceSnapshot, wire.TypeHands,
		wire.TypeMute, wire.TypeStats, wire.TypePrivateLine); len(m) > 0 {
		t.Fatalf("the scoped console was told about district %s: %v", scopeDistB, m)
	}
	if m := mentions(lead, []string{b}, wire.TypePresence, wire.TypeHands, wire.TypeMute); len(m) == 0 {
		t.Fatal("the unscoped console was told nothing of B (the check above proves nothing)")
	}
}
