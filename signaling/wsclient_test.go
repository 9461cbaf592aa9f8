package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/opscenter/opscenter/wire"
)

// wsClient is a hand-driven /ws client: it sends exactly what a test says and
// records everything the server sends, raw and decoded. For tests that need
// control the synthetic client does not give (bad SDP, raw JSON checks).
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn

	mu     sync.Mutex
	cond   *sync.Cond
	msgs   []wsMsg
	closed bool
	status websocket.StatusCode
}

type wsMsg struct {
	env wire.Envelope
	raw []byte
}

func dialWS(t *testing.T, l *live, token string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+token)
	ws, _, err := websocket.Dial(ctx, strings.Replace(l.a.URL(), "http://", "ws://", 1)+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	c := &wsClient{t: t, ws: ws}
	c.cond = sync.NewCond(&c.mu)
	t.Cleanup(func() { _ = ws.CloseNow() })
	go c.read()
	return c
}

func (c *wsClient) read() {
	for {
		_, b, err := c.ws.Read(context.Background())
		c.mu.Lock()
		if err != nil {
			c.closed, c.status = true, websocket.CloseStatus(err)
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		var env wire.Envelope
		_ = json.Unmarshal(b, &env)
		c.msgs = append(c.msgs, wsMsg{env: env, raw: b})
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// send writes one message; payload nil sends none.
func (c *wsClient) send(typ, id string, payload any) {
	c.t.Helper()
	env := wire.Envelope{Type: typ, ID: id}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			c.t.Fatal(err)
		}
		env.Payload = b
	}
	b, _ := json.Marshal(env)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("send %s: %v", typ, err)
	}
}

// mark is the position after the messages received so far.
func (c *wsClient) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// wait returns the first message at or after position from that matches, or
// fails the test after timeout.
func (c *wsClient) wait(from int, what string, match func(wire.Envelope) bool) wsMsg {
	c.t.Helper()
	m, err := c.waitErr(from, 10*time.Second, match)
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	return m
}

func (c *wsClient) waitErr(from int, timeout time.Duration, match func(wire.Envelope) bool) (wsMsg, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; ; {
		for ; i < len(c.msgs); i++ {
			if match(c.msgs[i].env) {
				return c.msgs[i], nil
			}
		}
		if c.closed {
			return wsMsg{}, fmt.Errorf("connection closed (%d) after %d messages", c.status, len(c.msgs))
		}
		if time.Now().After(deadline) {
			var types []string
			for _, m := range c.msgs[from:] {
				types = append(types, m.env.Type+"#"+m.env.ID)
			}
			return wsMsg{}, fmt.Errorf("not received within %v; got %v", timeout, types)
		}
		c.cond.Wait()
	}
}

// reply waits for the reply to request id: any message with that id.
func (c *wsClient) reply(from int, id string) wsMsg {
	c.t.Helper()
	return c.wait(from, "reply to "+id, func(e wire.Envelope) bool { return e.ID == id })
}

// expectAck waits for the reply to id and checks it is an ack of typ.
func (c *wsClient) expectAck(from int, id, typ string) {
	c.t.Helper()
	m := c.reply(from, id)
	if m.env.Type != wire.TypeAck {
		c.t.Fatalf("%s (id %s) answered with %s", typ, id, m.raw)
	}
	var a wire.AckMsg
	if err := json.Unmarshal(m.env.Payload, &a); err != nil || a.Type != typ {
		c.t.Fatalf("ack for %s: %s", typ, m.raw)
	}
}

// expectError waits for the reply to id and checks it is an error with code.
func (c *wsClient) expectError(from int, id, code string) wire.ErrorMsg {
	c.t.Helper()
	m := c.reply(from, id)
	var e wire.ErrorMsg
	_ = json.Unmarshal(m.env.Payload, &e)
	if m.env.Type != wire.TypeError || e.Code != code || e.ID != id {
		c.t.Fatalf("request %s: got %s, want error %s", id, m.raw, code)
	}
	return e
}

// join sends join and returns the welcome.
func (c *wsClient) join(role string) wsMsg {
	c.t.Helper()
	from := c.mark()
	c.send(wire.TypeJoin, "join", wire.JoinMsg{Role: role})
	m := c.reply(from, "join")
	if m.env.Type != wire.TypeWelcome {
		c.t.Fatalf("join answered with %s", m.raw)
	}
	return m
}
