package signaling_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// Audio settles within this after a routing change (gating is one reconcile
// away; packets already in flight are a few ms). 5x what it takes on a quiet box.
const audioSettle = 700 * time.Millisecond

// quietWindow waits for routing to settle, then records for a window and
// returns its start (pass it to audioSources).
func quietWindow() time.Time {
	time.Sleep(audioSettle)
	w := time.Now()
	time.Sleep(time.Second) // ~50 audio packets per source
	return w
}

// hears reports whether c received audio from src at or after since.
func hears(c *client.Client, src string, since time.Time) bool {
	return audioSources(c, since)[src]
}

// waitHears waits until c hears every code in srcs, and returns how long it took.
func waitHears(t *testing.T, what string, c *client.Client, since time.Time, srcs ...string) time.Duration {
	t.Helper()
	return waitT(t, what, 15*time.Second, func() bool {
		got := audioSources(c, since)
		for _, s := range srcs {
			if !got[s] {
				return false
			}
		}
		return true
	})
}

func payloadOf[T any](t *testing.T, env wire.Envelope) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(env.Payload, &v); err != nil {
		t.Fatalf("%s payload %s: %v", env.Type, env.Payload, err)
	}
	return v
}

// auditCount counts audit events with this action (and entity id, when not "").
func auditCount(t *testing.T, l *live, action, entityID string) int {
	t.Helper()
	evs, err := l.a.Store.EventsAfter(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Action == action && (entityID == "" || e.EntityID == entityID) {
			n++
		}
	}
	return n
}

// TestLiveActionsE2E runs the command room's live actions against real Pion
// clients and PostgreSQL: private line, roll call, unmute request, directive
// push, remove and session end. One app and one set of clients serve every
// step (they run in this order; each leaves the session as it found it).
func TestLiveActionsE2E(t *testing.T) {
	l := startLive(t)
	l.startSession()
	codes := l.communes(5)
	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	lead := l.dial(l.leader.Token, wire.RoleConsole, false)
	start := time.Now()
	eps := l.dialMany(codes)
	for code, c := range eps {
		if err := c.WaitConnected(30 * time.Second); err != nil {
			t.Fatalf("%s media: %v", code, err)
		}
	}
	if err := lead.WaitConnected(30 * time.Second); err != nil {
		t.Fatalf("leader console media: %v", err)
	}
	// Every endpoint hears the program before anything else is judged.
	waitT(t, "program audio everywhere", 20*time.Second, func() bool {
		for _, c := range eps {
			if c.Received(signaling.CommandCode, time.Time{})[signaling.SlotProgramAudio].Packets == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%d endpoints, the command device and a leader console connected in %v", len(eps), time.Since(start))
	// The leader console watches every endpoint large, so no layer is paused here
	// (pausing has its own test).
	var tiles []wire.TileMsg
	for _, c := range codes {
		tiles = append(tiles, wire.TileMsg{Code: c, Visible: true, Size: "large"})
	}
	send(t, lead, wire.TypeVisibility, wire.VisibilityMsg{Tiles: tiles})
	waitT(t, "leader console tiles", 20*time.Second, func() bool {
		for _, code := range codes {
			ok := false
			for slot, st := range lead.Received(code, time.Time{}) {
				if strings.HasPrefix(slot, "tile_") && st.Keyframes > 0 {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	})

	// Baseline: no floor, no private line, no roll call: the consoles hear no
	// endpoint and the endpoints hear only the program.
	w := quietWindow()
	for _, c := range []*client.Client{lead, cmd} {
		if got := audioSources(c, w); len(got) != 0 {
			t.Fatalf("console hears %v with no floor, private line or roll call", got)
		}
	}
	for code, c := range eps {
		for src := range audioSources(c, w) {
			if src != signaling.CommandCode {
				t.Fatalf("%s hears %s before any action", code, src)
			}
		}
	}

	t.Run("PrivateLine", func(t *testing.T) {
		x := codes[0]
		t0 := time.Now()
		send(t, lead, wire.TypePrivateLineOpen, wire.CodeMsg{Code: x})
		env, err := eps[x].WaitMessage(wire.TypePrivateLine, t0, 5*time.Second, nil)
		if err != nil {
			t.Fatalf("%s not told of its private line: %v", x, err)
		}
		if m := payloadOf[wire.PrivateLineMsg](t, env); m.Code == nil || *m.Code != x {
			t.Errorf("%s got private_line %s", x, env.Payload)
		}
		for code, c := range eps {
			if code != x && len(c.Messages(wire.TypePrivateLine)) > 0 {
				t.Errorf("%s (not on the line) was told of the private line", code)
			}
		}
		d := waitHears(t, "the leader console hears "+x, lead, t0, x)
		t.Logf("leader console hears %s %v after private_line_open", x, d)
		waitHears(t, "the command device hears "+x, cmd, t0, x)
		w := quietWindow()
		if !hears(eps[x], signaling.CommandCode, w) {
			t.Errorf("%s on the private line does not hear the command room (22)", x)
		}
		if !hears(lead, x, w) {
			t.Errorf("the leader console stopped hearing %s during the line", x)
		}
		for code, c := range eps {
			for src := range audioSources(c, w) {
				if src != signaling.CommandCode {
					t.Errorf("%s hears %s during the private line", code, src)
				}
			}
		}
		for src := range audioSources(lead, w) {
			if src != x {
				t.Errorf("the leader console hears %s during the private line with %s", src, x)
			}
		}

		t1 := time.Now()
		send(t, lead, wire.TypePrivateLineClose, nil)
		if _, err := eps[x].WaitMessage(wire.TypePrivateLine, t1, 5*time.Second, func(e wire.Envelope) bool {
			return payloadOf[wire.PrivateLineMsg](t, e).Code == nil
		}); err != nil {
			t.Errorf("%s not told the line closed: %v", x, err)
		}
		w = quietWindow()
		for _, c := range []*client.Client{lead, cmd} {
			if hears(c, x, w) {
				t.Errorf("a console still hears %s after private_line_close", x)
			}
		}
		for code, c := range eps {
			if hears(c, x, w) && code != x {
				t.Errorf("%s hears %s after the line closed", code, x)
			}
		}
		if n, m := auditCount(t, l, "private_line.opened", x), auditCount(t, l, "private_line.closed", x); n != 1 || m != 1 {
			t.Errorf("audit: %d private_line.opened, %d private_line.closed for %s, want 1 and 1", n, m, x)
		}
	})

	t.Run("RollCall", func(t *testing.T) {
		t0 := time.Now()
		send(t, lead, wire.TypeRollCallStart, nil)
		for code, c := range eps {
			if _, err := c.WaitMessage(wire.TypeRollCall, t0, 5*time.Second, func(e wire.Envelope) bool {
				return payloadOf[wire.RollCallMsg](t, e).Active
			}); err != nil {
				t.Errorf("%s not told of the roll call: %v", code, err)
			}
		}
		d := waitHears(t, "the leader console hears every endpoint", lead, t0, codes...)
		t.Logf("leader console hears all %d endpoints %v after roll_call_start", len(codes), d)
		waitHears(t, "the command device hears every endpoint", cmd, t0, codes...)
		w := quietWindow()
		heard := audioSources(lead, w)
		for _, code := range codes {
			if !heard[code] {
				t.Errorf("the leader console does not hear %s during the roll call", code)
			}
		}
		// Open mic is for the consoles: endpoints still hear only the program.
		for code, c := range eps {
			for src := range audioSources(c, w) {
				if src != signaling.CommandCode {
					t.Errorf("%s hears %s during the roll call (consoles only)", code, src)
				}
			}
		}

		t1 := time.Now()
		send(t, lead, wire.TypeRollCallStop, nil)
		if _, err := lead.WaitMessage(wire.TypeRollCall, t1, 5*time.Second, func(e wire.Envelope) bool {
			return !payloadOf[wire.RollCallMsg](t, e).Active
		}); err != nil {
			t.Errorf("roll call stop not announced: %v", err)
		}
		w = quietWindow()
		for _, c := range []*client.Client{lead, cmd} {
			if got := audioSources(c, w); len(got) != 0 {
				t.Errorf("a console still hears %v after roll_call_stop", got)
			}
		}
		if n := auditCount(t, l, "roll_call.started", ""); n != 1 {
			t.Errorf("%d roll_call.started audit events, want 1", n)
		}
	})

	t.Run("RequestUnmute", func(t *testing.T) {
		x, watcher := codes[1], eps[codes[2]]
		// Mute x, give it the floor: its video goes out, its audio does not.
		t0 := time.Now()
		send(t, lead, wire.TypeMute, wire.CodeMsg{Code: x})
		if _, err := eps[x].WaitMessage(wire.TypeMute, t0, 5*time.Second, nil); err != nil {
			t.Fatalf("%s not told of its mute: %v", x, err)
		}
		// Without a request, the endpoint cannot lift its own mute.
		t1 := time.Now()
		send(t, eps[x], wire.TypeUnmuteAccept, nil)
		if _, err := eps[x].WaitError(wire.ErrNoUnmuteAsked, t1, 5*time.Second); err != nil {
			t.Errorf("unmute_accept without a request: %v", err)
		}
		send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: x})
		waitT(t, "floor video of "+x, 15*time.Second, func() bool {
			return !watcher.Recorder().FirstFrom(signaling.SlotFloorVideo, x, t1).IsZero()
		})
		w := quietWindow()
		for code, c := range eps {
			if hears(c, x, w) {
				t.Errorf("%s hears muted %s (it holds the floor)", code, x)
			}
		}
		if hears(lead, x, w) {
			t.Errorf("the console hears muted %s", x)
		}

		// A request to an endpoint that is not connected is refused, and not audited.
		ghost := l.communes(6)[5]
		t2 := time.Now()
		send(t, lead, wire.TypeRequestUnmute, wire.CodeMsg{Code: ghost})
		if _, err := lead.WaitError(wire.ErrOffline, t2, 5*time.Second); err != nil {
			t.Errorf("request_unmute to offline %s: %v", ghost, err)
		}
		if n := auditCount(t, l, "unmute.requested", ghost); n != 0 {
			t.Errorf("%d unmute.requested events for the refused request to %s", n, ghost)
		}

		t3 := time.Now()
		send(t, lead, wire.TypeRequestUnmute, wire.CodeMsg{Code: x})
		env, err := eps[x].WaitMessage(wire.TypeUnmuteRequest, t3, 5*time.Second, nil)
		if err != nil {
			t.Fatalf("%s got no unmute_request: %v", x, err)
		}
		if m := payloadOf[wire.UnmuteRequestMsg](t, env); m.By != "user:lead" {
			t.Errorf("unmute_request by %q, want user:lead", m.By)
		}
		t.Logf("unmute_request reached %s in %v", x, time.Since(t3))
		// The request alone changes nothing: still silent.
		w = quietWindow()
		if hears(watcher, x, w) {
			t.Errorf("%s was heard before it accepted", x)
		}
		t4 := time.Now()
		send(t, eps[x], wire.TypeUnmuteAccept, nil)
		if _, err := lead.WaitMessage(wire.TypeMute, t4, 5*time.Second, func(e wire.Envelope) bool {
			m := payloadOf[wire.MuteMsg](t, e)
			return m.Code == x && !m.Muted
		}); err != nil {
			t.Errorf("the console was not told %s is unmuted: %v", x, err)
		}
		waitT(t, "everyone hears "+x+" after unmute_accept", 15*time.Second, func() bool {
			for code, c := range eps {
				if code != x && !hears(c, x, t4) {
					return false
				}
			}
			return hears(lead, x, t4)
		})
		t.Logf("%s (floor) heard by every endpoint and the console %v after unmute_accept", x, time.Since(t4))
		// The request is used up: a second accept is refused.
		t5 := time.Now()
		send(t, eps[x], wire.TypeUnmuteAccept, nil)
		if _, err := eps[x].WaitError(wire.ErrNoUnmuteAsked, t5, 5*time.Second); err != nil {
			t.Errorf("second unmute_accept: %v", err)
		}
		if n, m := auditCount(t, l, "unmute.requested", x), auditCount(t, l, "mute.lifted", x); n != 1 || m != 1 {
			t.Errorf("audit: %d unmute.requested, %d mute.lifted for %s, want 1 and 1", n, m, x)
		}
		send(t, lead, wire.TypeRevokeFloor, nil)
		w = quietWindow()
		for code, c := range eps {
			if hears(c, x, w) {
				t.Errorf("%s still hears %s after the floor was revoked", code, x)
			}
		}
	})

	t.Run("Directive", func(t *testing.T) {
		x, other := codes[3], codes[4]
		duty := l.a.User("duty", auth.RoleDuty)
		id := uuid.NewString()
		t0 := time.Now()
		var dir store.Directive
		duty.Do("POST", "/api/v1/directives", map[string]any{"id": id, "text": "Báo cáo tiến độ bầu cử trước 11:00",
			"targets": map[string]any{"endpoints": []string{x}}}, &dir, 201)
		posted := time.Since(t0)
		env, err := eps[x].WaitMessage(wire.TypeDirective, t0, 10*time.Second, nil)
		if err != nil {
			t.Fatalf("%s got no directive: %v", x, err)
		}
		var at time.Time
		for _, m := range eps[x].Messages(wire.TypeDirective) {
			if !m.At.Before(t0) {
				at = m.At
				break
			}
		}
		d := at.Sub(t0)
		t.Logf("directive pushed to %s %v after the POST started (POST took %v; limit 5 s)", x, d, posted)
		if d > 5*time.Second {
			t.Errorf("directive took %v to reach %s", d, x)
		}
		m := payloadOf[wire.DirectiveMsg](t, env)
		var doc struct {
			ID          string   `json:"id"`
			Text        string   `json:"text"`
			TargetCodes []string `json:"target_codes"`
		}
		if err := json.Unmarshal(m.Directive, &doc); err != nil {
			t.Fatalf("directive document %s: %v", m.Directive, err)
		}
		if doc.ID != id || !slices.Contains(doc.TargetCodes, x) || doc.Text == "" || m.EventID == 0 {
			t.Errorf("directive message %s, want id %s for %s", env.Payload, id, x)
		}
		// The receipt records the delivery.
		var got store.Directive
		dd := waitT(t, "delivered_at recorded", 10*time.Second, func() bool {
			duty.Do("GET", "/api/v1/directives/"+id, nil, &got, 200)
			for _, r := range got.Receipts {
				if r.EndpointCode == x && r.DeliveredAt != nil {
					return true
				}
			}
			return false
		})
		t.Logf("delivered_at recorded %v after the push", dd)
		if len(got.Receipts) != 1 {
			t.Errorf("receipts %+v, want one for %s", got.Receipts, x)
		}
		// Nobody else was sent it.
		time.Sleep(500 * time.Millisecond)
		for code, c := range eps {
			if code != x && len(c.Messages(wire.TypeDirective)) > 0 {
				t.Errorf("%s (not a target) received the directive", code)
			}
		}
		if len(eps[other].Messages(wire.TypeDirective)) != 0 {
			t.Errorf("%s received a directive", other)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		y := codes[4]
		t0 := time.Now()
		send(t, eps[y], wire.TypeRaiseHand, nil)
		if _, err := lead.WaitMessage(wire.TypeHands, t0, 5*time.Second, func(e wire.Envelope) bool {
			return slices.Contains(payloadOf[wire.HandsMsg](t, e).Queue, y)
		}); err != nil {
			t.Fatalf("hand of %s not queued: %v", y, err)
		}
		t1 := time.Now()
		send(t, lead, wire.TypeRemove, wire.CodeMsg{Code: y})
		env, err := eps[y].WaitMessage(wire.TypeRemoved, t1, 5*time.Second, nil)
		if err != nil {
			t.Fatalf("%s not told it was removed: %v", y, err)
		}
		if m := payloadOf[wire.RemovedMsg](t, env); m.By != "user:lead" {
			t.Errorf("removed by %q", m.By)
		}
		var status int
		waitT(t, "removed endpoint closed", 10*time.Second, func() bool {
			closed, st := eps[y].Closed()
			status = int(st)
			return closed
		})
		t.Logf("%s closed with %d %v after remove", y, status, time.Since(t1))
		if status != int(signaling.StatusRemoved) {
			t.Errorf("close status %d, want %d", status, signaling.StatusRemoved)
		}
		waitT(t, y+" offline", 5*time.Second, func() bool {
			return l.a.Live.Presence(y) == wire.StateOffline
		})
		t.Logf("%s offline %v after remove", y, time.Since(t1))
		if _, err := lead.WaitMessage(wire.TypePresence, t1, 5*time.Second, func(e wire.Envelope) bool {
			m := payloadOf[wire.PresenceMsg](t, e)
			return m.Code == y && m.State == wire.StateOffline
		}); err != nil {
			t.Errorf("consoles not told %s is offline: %v", y, err)
		}
		if _, err := lead.WaitMessage(wire.TypeHands, t1, 5*time.Second, func(e wire.Envelope) bool {
			return !slices.Contains(payloadOf[wire.HandsMsg](t, e).Queue, y)
		}); err != nil {
			t.Errorf("hand of %s not cleared: %v", y, err)
		}
		var list struct {
			Endpoints []struct{ Code, Presence string } `json:"endpoints"`
		}
		l.leader.Do("GET", "/api/v1/endpoints", nil, &list, 200)
		found := false
		for _, e := range list.Endpoints {
			if e.Code == y {
				found = true
				if e.Presence != wire.StateOffline {
					t.Errorf("GET /api/v1/endpoints shows %s %s", y, e.Presence)
				}
			}
		}
		if !found {
			t.Errorf("%s not in GET /api/v1/endpoints", y)
		}
		evs, err := l.a.Store.EventsAfter(context.Background(), 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		ok := false
		for _, e := range evs {
			if e.Action == "endpoint.removed" && e.EntityID == y && e.Actor == "user:lead" && e.SessionID != nil && *e.SessionID == l.sessID {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no endpoint.removed audit event for %s by user:lead in the session", y)
		}
		delete(eps, y) // closed; its cleanup still runs
	})

	t.Run("SessionEnd", func(t *testing.T) {
		a, b, c := codes[0], codes[1], codes[2]
		t0 := time.Now()
		send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: a})
		send(t, eps[b], wire.TypeRaiseHand, nil)
		send(t, lead, wire.TypePrivateLineOpen, wire.CodeMsg{Code: c})
		waitT(t, "floor, hand and line applied", 15*time.Second, func() bool {
			_, e1 := lead.WaitMessage(wire.TypeHands, t0, 0, func(e wire.Envelope) bool {
				return slices.Contains(payloadOf[wire.HandsMsg](t, e).Queue, b)
			})
			return e1 == nil && hears(lead, c, t0) && hears(eps[b], a, t0)
		})

		t1 := time.Now()
		send(t, lead, wire.TypeSessionEnd, nil)
		for code, cl := range eps {
			if _, err := cl.WaitMessage(wire.TypeSession, t1, 10*time.Second, func(e wire.Envelope) bool {
				return payloadOf[wire.SessionMsg](t, e).State == "none"
			}); err != nil {
				t.Fatalf("%s not told the session ended: %v", code, err)
			}
			if _, err := cl.WaitMessage(wire.TypeFloor, t1, 5*time.Second, func(e wire.Envelope) bool {
				return payloadOf[wire.FloorMsg](t, e).Code == nil
			}); err != nil {
				t.Errorf("%s: floor not cleared: %v", code, err)
			}
			if _, err := cl.WaitMessage(wire.TypeHands, t1, 5*time.Second, func(e wire.Envelope) bool {
				return len(payloadOf[wire.HandsMsg](t, e).Queue) == 0
			}); err != nil {
				t.Errorf("%s: hands not cleared: %v", code, err)
			}
		}
		if _, err := lead.WaitMessage(wire.TypePrivateLine, t1, 5*time.Second, func(e wire.Envelope) bool {
			return payloadOf[wire.PrivateLineMsg](t, e).Code == nil
		}); err != nil {
			t.Errorf("private line not cleared for the console: %v", err)
		}
		t.Logf("session_end announced to all in %v", time.Since(t1))
		if e, err := lead.WaitMessage(wire.TypeError, t0, 0, nil); err == nil {
			t.Errorf("the leader got an error: %s", e.Payload)
		}
		// The store: the session is ended.
		s, err := l.a.Store.GetSession(context.Background(), l.sessID)
		if err != nil {
			t.Fatal(err)
		}
		if s.ActualEnd == nil || s.InProgress() {
			t.Errorf("session in the store not ended: %+v", s)
		}
		if _, err := l.a.Store.CurrentSession(context.Background()); !errors.Is(err, store.ErrNoSession) {
			t.Errorf("current session after session_end: %v", err)
		}
		l.leader.Do("GET", "/api/v1/sessions/current", nil, nil, 404)
		if n := auditCount(t, l, "session.ended", l.sessID); n != 1 {
			t.Errorf("%d session.ended audit events, want 1", n)
		}
		// Connections stay: nobody was closed, presence stays connected, and the
		// floor holder's media no longer goes out, nor the private line's audio.
		w := quietWindow()
		for code, cl := range eps {
			if closed, st := cl.Closed(); closed {
				t.Errorf("%s closed (%d) by session_end", code, st)
			}
			// Still connected: paused and resumed layers are never taken for loss
			// (the synthetic publisher, like a browser, leaves no sequence gap).
			if p := l.a.Live.Presence(code); p != wire.StateConnected {
				st := l.a.Media.Peer(cl.Welcome().PeerID).Stats()
				t.Errorf("%s presence %s after session_end, want connected (publisher recent loss %.3f, layers:%s)",
					code, p, st.Publisher.RecentLoss, layersString(st.Video))
			}
			if code != a && cl.Received(a, w)[signaling.SlotFloorVideo].Packets > 0 {
				t.Errorf("%s still receives the floor video of %s", code, a)
			}
		}
		if hears(lead, c, w) {
			t.Errorf("the console still hears %s (private line) after session_end", c)
		}
		if st := lead.Welcome().State; st.SessionID == nil || *st.SessionID != l.sessID {
			t.Logf("console welcome session %v", st.SessionID)
		}
		// The connections still work: a ping is answered.
		t2 := time.Now()
		send(t, eps[a], wire.TypePing, nil)
		if _, err := eps[a].WaitMessage(wire.TypePong, t2, 5*time.Second, nil); err != nil {
			t.Errorf("%s: no pong after session_end: %v", a, err)
		}
	})
}
