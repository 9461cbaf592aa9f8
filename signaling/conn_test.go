package signaling_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// rawDial opens /ws without joining.
func rawDial(t *testing.T, l *live, token string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+token)
	ws, _, err := websocket.Dial(ctx, strings.Replace(l.a.URL(), "http://", "ws://", 1)+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

// readUntil reads messages until one of type typ arrives.
func readUntil(t *testing.T, ws *websocket.Conn, typ string) wire.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		var env wire.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if env.Type == typ {
			return env
		}
	}
}

func TestBadInput(t *testing.T) {
	l := startLive(t)
	codes := l.communes(2)
	bystander := l.endpoint(codes[1])
	c := l.dial(l.a.Endpoint(codes[0]).Token, wire.RoleEndpoint, false)

	expect := func(what, code string, send func()) {
		t.Helper()
		since := time.Now()
		send()
		e, err := c.WaitError(code, since, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: no %s error: %v", what, code, err)
		}
		t.Logf("%s → error %s: %s", what, e.Code, e.Message)
		// The connection and the server stay up.
		pingSince := time.Now()
		id, _ := c.Send(wire.TypePing, nil)
		if _, err := c.WaitMessage(wire.TypePong, pingSince, 5*time.Second, func(env wire.Envelope) bool { return env.ID == id }); err != nil {
			t.Fatalf("after %s the connection stopped answering: %v", what, err)
		}
	}
	expect("malformed JSON", wire.ErrBadJSON, func() { _ = c.SendRaw([]byte(`{"type": "join",`)) })
	expect("unknown type", wire.ErrUnknownType, func() { _, _ = c.Send("teleport", nil) })
	expect("bad payload", wire.ErrBadPayload, func() { _ = c.SendRaw([]byte(`{"type":"mute_state","payload":{"audio":"loud"}}`)) })
	expect("invalid SDP", wire.ErrInvalidSDP, func() {
		_, _ = c.Send(wire.TypePublishOffer, wire.SDPMsg{SDP: "v=0 this is not SDP"})
	})
	expect("leader action from an endpoint", wire.ErrForbidden, func() {
		_, _ = c.Send(wire.TypeGiveFloor, wire.CodeMsg{Code: codes[0]})
	})
	expect("answer without offer", wire.ErrBadState, func() {
		_, _ = c.Send(wire.TypeSubscriberAnswer, wire.SDPMsg{SDP: "v=0"})
	})

	// A join without a role: error, and the connection stays up for a proper join.
	ws := rawDial(t, l, l.a.Endpoint(codes[0]).Token)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","payload":{}}`))
	var em wire.ErrorMsg
	_ = json.Unmarshal(readUntil(t, ws, wire.TypeError).Payload, &em)
	if em.Code != wire.ErrMissingRole {
		t.Fatalf("join without role: %+v", em)
	}
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":"p1"}`))
	readUntil(t, ws, wire.TypePong)
	ws.CloseNow()

	// Oversized: an error, then close 1009.
	since := time.Now()
	_ = c.SendRaw([]byte(`{"type":"ping","payload":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`))
	if _, err := c.WaitError(wire.ErrTooLarge, since, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitT(t, "close 1009", 10*time.Second, func() bool {
		closed, st := c.Closed()
		return closed && st == websocket.StatusMessageTooBig
	})

	// The others were not affected.
	since = time.Now()
	id, _ := bystander.Send(wire.TypePing, nil)
	if _, err := bystander.WaitMessage(wire.TypePong, since, 5*time.Second, func(e wire.Envelope) bool { return e.ID == id }); err != nil {
		t.Fatal(err)
	}
	l.endpoint(codes[0]) // and the server takes new connections
}

func TestRateLimit(t *testing.T) {
	l := startLive(t)
	c := l.dial(l.a.Endpoint(l.communes(1)[0]).Token, wire.RoleEndpoint, false)
	since := time.Now()
	for i := 0; i < 400; i++ {
		if c.SendRaw([]byte(`{"type":"ping"}`)) != nil {
			break
		}
	}
	if _, err := c.WaitError(wire.ErrRateLimited, since, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitT(t, "close on abuse", 10*time.Second, func() bool {
		closed, st := c.Closed()
		return closed && st == websocket.StatusPolicyViolation
	})
}

func TestSecondDeviceReplacesFirst(t *testing.T) {
	l := startLive(t)
	code := l.communes(1)[0]
	tok := l.a.Endpoint(code).Token
	first := l.dial(tok, wire.RoleEndpoint, true)
	if err := first.WaitConnected(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	second := l.dial(tok, wire.RoleEndpoint, true)
	if !second.Welcome().Replaced {
		t.Error("the new device's welcome does not say it replaced one")
	}
	for name, c := range map[string]*client.Client{"old": first, "new": second} {
		env, err := c.WaitMessage(wire.TypeReplaced, since, 5*time.Second, nil)
		if err != nil {
			t.Fatalf("%s device not told: %v", name, err)
		}
		var m wire.ReplacedMsg
		_ = json.Unmarshal(env.Payload, &m)
		if m.You != name {
			t.Errorf("%s device told you=%q", name, m.You)
		}
	}
	waitT(t, "old device closed", 10*time.Second, func() bool {
		closed, st := first.Closed()
		return closed && st == signaling.StatusReplaced
	})
	if err := second.WaitConnected(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitT(t, "presence connected", 10*time.Second, func() bool { return l.a.Live.Presence(code) == wire.StateConnected })
}

func TestResume(t *testing.T) {
	l := startLive(t)
	l.startSession()
	codes := l.communes(3)
	lead := l.dial(l.leader.Token, wire.RoleConsole, false)
	eps := l.dialMany(codes)
	a, b, watcher := eps[codes[0]], eps[codes[1]], eps[codes[2]]
	for _, c := range eps {
		if err := c.WaitConnected(15 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: codes[0]})
	send(t, lead, wire.TypeMute, wire.CodeMsg{Code: codes[1]})
	send(t, b, wire.TypeRaiseHand, nil)
	waitT(t, "floor video", 10*time.Second, func() bool {
		return watcher.Received(codes[0], time.Time{})[signaling.SlotFloorVideo].Keyframes > 0
	})

	// Both drop the WebSocket and the ICE path at once.
	a.Drop()
	b.Drop()
	waitT(t, "server notices", 10*time.Second, func() bool { return l.a.Live.Presence(codes[0]) != wire.StateConnected })
	t.Logf("presence after the drop: %s", l.a.Live.Presence(codes[0]))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := b.Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	ws := b.Welcome().State
	if !ws.Muted || !ws.HandRaised || !contains(ws.Hands, codes[1]) {
		t.Errorf("b's state not resumed: %+v", ws)
	}
	wa := a.Welcome().State
	if wa.Floor == nil || *wa.Floor != codes[0] {
		t.Errorf("a's floor not resumed: %+v", wa)
	}
	d := waitT(t, "floor media resumes", 15*time.Second, func() bool {
		return !watcher.Recorder().FirstFrom(signaling.SlotFloorVideo, codes[0], t0).IsZero()
	})
	t.Logf("floor video from the returning holder reached others %v after reconnecting", d)
	waitT(t, "presence connected again", 15*time.Second, func() bool {
		return l.a.Live.Presence(codes[0]) == wire.StateConnected && l.a.Live.Presence(codes[1]) == wire.StateConnected
	})
	// Still muted: b's audio reaches no one.
	time.Sleep(time.Second)
	for _, c := range []*client.Client{a, watcher} {
		if n := c.Received(codes[1], t0); len(n) > 0 {
			for slot := range n {
				if signaling.SlotIsAudio(slot) {
					t.Errorf("muted %s heard on %s after resuming", codes[1], slot)
				}
			}
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
