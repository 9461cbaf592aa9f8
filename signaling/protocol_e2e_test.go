package signaling_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/wire"
)

// leaderAudit are the audit actions of the leader actions refused below.
var leaderAudit = []string{"floor.given", "floor.revoked", "private_line.opened", "roll_call.started",
	"unmute.requested", "endpoint.muted", "endpoint.removed"}

func leaderEvents(t *testing.T, l *live) int {
	n := 0
	for _, a := range leaderAudit {
		n += auditCount(t, l, a, "")
	}
	return n
}

// TestRefusedActionsRecordNothing: a leader action is validated, then recorded,
// then applied. Refused ones (no session, offline or unknown target) get an error
// carrying the request id and write no audit event; accepted ones get an ack
// carrying it and write one.
func TestRefusedActionsRecordNothing(t *testing.T) {
	l := startLive(t)
	codes := l.communes(2)
	online, offline := codes[0], codes[1]
	ep := dialWS(t, l, l.a.Endpoint(online).Token)
	ep.join(wire.RoleEndpoint)
	lead := dialWS(t, l, l.leader.Token)
	lead.join(wire.RoleConsole)
	n := 0
	refuse := func(typ string, payload any, code string) {
		t.Helper()
		n++
		f, id := lead.mark(), fmt.Sprintf("a%d", n)
		lead.send(typ, id, payload)
		e := lead.expectError(f, id, code)
		t.Logf("%s %v → %s: %s", typ, payload, code, e.Message)
	}
	accept := func(typ string, payload any) {
		t.Helper()
		n++
		f, id := lead.mark(), fmt.Sprintf("a%d", n)
		lead.send(typ, id, payload)
		lead.expectAck(f, id, typ)
	}

	// No session in progress.
	refuse(wire.TypeGiveFloor, wire.CodeMsg{Code: online}, wire.ErrNoSession)
	refuse(wire.TypeRevokeFloor, nil, wire.ErrNoSession)
	refuse(wire.TypePrivateLineOpen, wire.CodeMsg{Code: online}, wire.ErrNoSession)
	refuse(wire.TypeRollCallStart, nil, wire.ErrNoSession)
	if k := leaderEvents(t, l); k != 0 {
		t.Fatalf("%d audit events for actions refused with no session", k)
	}

	f := lead.mark()
	l.startSession()
	lead.wait(f, "session message", func(e wire.Envelope) bool { return e.Type == wire.TypeSession })

	// Bad targets: one code for each kind of fault.
	refuse(wire.TypeGiveFloor, wire.CodeMsg{Code: offline}, wire.ErrOffline)
	refuse(wire.TypePrivateLineOpen, wire.CodeMsg{Code: offline}, wire.ErrOffline)
	refuse(wire.TypeRequestUnmute, wire.CodeMsg{Code: offline}, wire.ErrOffline)
	for _, code := range []string{signaling.CommandCode, "99999"} {
		refuse(wire.TypeGiveFloor, wire.CodeMsg{Code: code}, wire.ErrUnknownCode)
		refuse(wire.TypeMute, wire.CodeMsg{Code: code}, wire.ErrUnknownCode)
		refuse(wire.TypeRemove, wire.CodeMsg{Code: code}, wire.ErrUnknownCode)
	}
	refuse(wire.TypeGiveFloor, wire.CodeMsg{}, wire.ErrBadPayload)
	if k := leaderEvents(t, l); k != 0 {
		t.Fatalf("%d audit events for refused actions", k)
	}
	if floor := ep.msgsOf(wire.TypeFloor); len(floor) != 0 {
		t.Fatalf("refused actions changed the floor: %v", floor)
	}

	// Accepted: acknowledged, recorded once, applied.
	f = ep.mark()
	accept(wire.TypeGiveFloor, wire.CodeMsg{Code: online})
	if k := auditCount(t, l, "floor.given", online); k != 1 {
		t.Fatalf("%d floor.given events for %s, want 1", k, online)
	}
	ep.wait(f, "floor message", func(e wire.Envelope) bool { return e.Type == wire.TypeFloor })
	accept(wire.TypeMute, wire.CodeMsg{Code: offline}) // mutes hold for offline endpoints
	accept(wire.TypeRevokeFloor, nil)
	if k := leaderEvents(t, l); k != 3 {
		t.Fatalf("%d audit events after three accepted actions", k)
	}
}

func (c *wsClient) msgsOf(typ string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.env.Type == typ {
			out = append(out, string(m.raw))
		}
	}
	return out
}

// TestRepliesAndWelcome checks what a client written from docs/protocol.md
// relies on: every message with an id gets a reply with that id (its own reply
// type, ack, or an error, rate_limited included); welcome.state always carries
// session_id and muted_codes; a staff console's code is "22"; presence_snapshot
// carries stats only when there are some.
func TestRepliesAndWelcome(t *testing.T) {
	l := startLive(t)
	codes := l.communes(2)
	ep := dialWS(t, l, l.a.Endpoint(codes[0]).Token)
	w := ep.join(wire.RoleEndpoint)
	var raw struct {
		Payload struct {
			State map[string]json.RawMessage `json:"state"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(w.raw, &raw); err != nil {
		t.Fatal(err)
	}
	if v, ok := raw.Payload.State["session_id"]; !ok || string(v) != "null" {
		t.Errorf("welcome.state.session_id with no session: %s (present %v), want null", v, ok)
	}
	if v, ok := raw.Payload.State["muted_codes"]; !ok || string(v) != "[]" {
		t.Errorf("welcome.state.muted_codes with none muted: %s (present %v), want []", v, ok)
	}

	for i, tc := range []struct {
		typ     string
		payload any
		reply   string // message type, or an error code
	}{
		{wire.TypeMuteState, wire.MuteStateMsg{Audio: true, Video: true}, wire.TypeAck},
		{wire.TypeLowerHand, nil, wire.TypeAck},
		{wire.TypeLayerRequest, wire.LayerRequestMsg{Slot: signaling.SlotFloorVideo, Layer: 1}, wire.TypeAck},
		{wire.TypeRaiseHand, nil, wire.ErrNoSession},
		{wire.TypeUnmuteAccept, nil, wire.ErrNoUnmuteAsked},
		{wire.TypeGiveFloor, wire.CodeMsg{Code: codes[1]}, wire.ErrForbidden},
		{wire.TypePing, nil, wire.TypePong},
	} {
		id := fmt.Sprintf("m%d", i)
		f := ep.mark()
		ep.send(tc.typ, id, tc.payload)
		switch tc.reply {
		case wire.TypeAck:
			ep.expectAck(f, id, tc.typ)
		case wire.TypePong:
			if m := ep.reply(f, id); m.env.Type != wire.TypePong {
				t.Errorf("ping answered with %s", m.raw)
			}
		default:
			ep.expectError(f, id, tc.reply)
		}
	}
	// No id, no ack.
	f := ep.mark()
	ep.send(wire.TypeLowerHand, "", nil)
	ep.send(wire.TypePing, "after", nil)
	ep.reply(f, "after")
	if acks := ep.msgsOf(wire.TypeAck); len(acks) != 3 {
		t.Errorf("%d acks, want 3 (a message without id gets none): %v", len(acks), acks)
	}

	// A staff console is the command room's code, and gets the roster's presence
	// with stats only where there are stats.
	lead := dialWS(t, l, l.leader.Token)
	f = lead.mark()
	var wm wire.WelcomeMsg
	_ = json.Unmarshal(lead.join(wire.RoleConsole).env.Payload, &wm)
	if wm.Code != signaling.CommandCode || wm.Role != wire.RoleConsole || !wm.Leader {
		t.Errorf("staff console welcome: code %q role %q leader %v", wm.Code, wm.Role, wm.Leader)
	}
	snap := lead.wait(f, "presence_snapshot", func(e wire.Envelope) bool { return e.Type == wire.TypePresenceSnapshot })
	var ps struct {
		Payload struct {
			Endpoints []map[string]json.RawMessage `json:"endpoints"`
		} `json:"payload"`
	}
	_ = json.Unmarshal(snap.raw, &ps)
	for _, e := range ps.Payload.Endpoints {
		if s, ok := e["stats"]; ok {
			var st wire.StatEntry
			if json.Unmarshal(s, &st) != nil || st.Code == "" {
				t.Errorf("presence_snapshot entry %s has an empty stats object", e["code"])
			}
		}
	}
	if len(ps.Payload.Endpoints) == 0 {
		t.Fatal("empty presence_snapshot")
	}

	// rate_limited names the dropped request.
	rl := dialWS(t, l, l.a.Endpoint(codes[1]).Token)
	for i := 0; i < 150; i++ {
		rl.send(wire.TypePing, fmt.Sprintf("b%d", i), nil)
	}
	m := rl.wait(0, "rate_limited", func(e wire.Envelope) bool { return e.Type == wire.TypeError })
	var em wire.ErrorMsg
	_ = json.Unmarshal(m.env.Payload, &em)
	if em.Code != wire.ErrRateLimited || !strings.HasPrefix(em.ID, "b") || m.env.ID != em.ID {
		t.Errorf("rate limit error %s, want rate_limited with the request's id", m.raw)
	}

	// leave with an id: the ack, then a normal close.
	f = ep.mark()
	ep.send(wire.TypeLeave, "bye", nil)
	ep.expectAck(f, "bye", wire.TypeLeave)
	waitT(t, "close 1000 after leave", 10*time.Second, func() bool {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return ep.closed && ep.status == websocket.StatusNormalClosure
	})
}
