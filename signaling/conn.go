package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/wire"
)

// outMsg is one entry of a connection's send queue. With a close code, the writer
// closes the WebSocket after writing data (if any).
type outMsg struct {
	data        []byte
	closeCode   websocket.StatusCode
	closeReason string
}

// conn is one WebSocket connection. Goroutines: the reader (frames → in), the
// writer (out → socket, with a write deadline), the pinger, and the loop that owns
// the connection's state and runs the handlers one at a time. Other goroutines
// talk to it only through send (never blocks) and post.
type conn struct {
	svc     *Service
	ws      *websocket.Conn
	p       auth.Principal
	staffID int64     // the staff account's id, 0 for endpoints
	authAt  time.Time // when its credential was checked (the upgrade)
	ctx     context.Context
	cancel  context.CancelFunc
	out     *sendQueue
	in      chan []byte
	ctl     chan func()
	closing atomic.Bool
	clean   atomic.Bool // the peer closed the WebSocket cleanly, or sent leave

	// Set by the loop before the room sees the connection, then read-only.
	peerID  string
	code    string // endpoint code; "22" for staff consoles
	role    string
	program bool // may publish the program (endpoint 22's device, a leader's console)
	leader  bool
	scope   func(code string) bool // a district-scoped console's view (scope.go); nil: everything
	peer    MediaPeer

	// Loop-owned. The negotiation state (the outstanding subscriber offer, the
	// last publisher offer and answer) is the media peer's, not copied here.
	joined bool
}

func newConn(s *Service, ws *websocket.Conn, p auth.Principal) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &conn{svc: s, ws: ws, p: p, staffID: p.UserID, authAt: time.Now(), ctx: ctx, cancel: cancel,
		out: newSendQueue(s.cfg.SendQueue), in: make(chan []byte, 16), ctl: make(chan func(), 64)}
	if p.IsEndpoint() {
		c.staffID = 0
	}
	return c
}

// encode marshals one server message.
func encode(typ, id string, payload any) []byte {
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			panic(fmt.Sprintf("signaling: marshal %s: %v", typ, err)) // our own types: a bug
		}
		raw = b
	}
	b, err := json.Marshal(wire.Envelope{Type: typ, ID: id, Payload: raw})
	if err != nil {
		panic(fmt.Sprintf("signaling: marshal envelope: %v", err))
	}
	return b
}

// send queues a message; a client whose queue is full is disconnected.
func (c *conn) send(typ, id string, payload any) { c.sendRaw(encode(typ, id, payload)) }

func (c *conn) sendRaw(b []byte) {
	if c.closing.Load() {
		return
	}
	if !c.out.push(&outMsg{data: b}) {
		c.svc.log.Warn("signaling: slow client disconnected", "peer", c.peerID, "actor", c.p.Actor())
		c.abort()
	}
}

// sendErr queues an error message.
func (c *conn) sendErr(code, msg, id string) {
	c.send(wire.TypeError, id, wire.ErrorMsg{Code: code, Message: msg, ID: id})
}

// closeAfter queues a close (after everything already queued, such as an error).
func (c *conn) closeAfter(code websocket.StatusCode, reason string) {
	if c.closing.Swap(true) {
		return
	}
	if !c.out.push(&outMsg{closeCode: code, closeReason: reason}) {
		c.abort()
	}
}

// abort drops the connection at once.
func (c *conn) abort() {
	c.closing.Store(true)
	c.cancel()
	go func() { _ = c.ws.CloseNow() }()
}

// post runs f on the connection's loop; false if the connection is gone.
func (c *conn) post(f func()) bool {
	select {
	case c.ctl <- f:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// run serves the connection until it ends.
func (c *conn) run() {
	go c.readLoop()
	done := make(chan struct{})
	go func() { c.writeLoop(); close(done) }()
	c.startPings()
	c.loop()
	c.teardown()
	select {
	case <-done:
	case <-time.After(c.svc.cfg.WriteTimeout + time.Second):
	}
}

func (c *conn) loop() {
	for {
		select {
		case b := <-c.in:
			c.dispatch(b)
		case f := <-c.ctl:
			f()
		case <-c.ctx.Done():
			return
		}
	}
}

// readLoop reads frames, enforcing the size limit and the message rate.
func (c *conn) readLoop() {
	closing := false // a close was queued after an error: let the writer finish it
	defer func() {
		if !closing {
			c.cancel()
		}
	}()
	max := int64(c.svc.cfg.MaxMessageBytes)
	c.ws.SetReadLimit(2 * max) // the library's own limit, above ours so we can answer first
	tb := newBucket(c.svc.cfg.RatePerSecond, c.svc.cfg.RateBurst)
	// Drops spend a second bucket of the same size and rate: a client that keeps
	// sending well over the rate is closed, even if a few messages slip through
	// between drops (counting drops in a row never closed a slowly read flood).
	abuse := newBucket(c.svc.cfg.RatePerSecond, c.svc.cfg.RateBurst)
	for {
		typ, rd, err := c.ws.Reader(c.ctx)
		if err != nil {
			if websocket.CloseStatus(err) != -1 {
				c.clean.Store(true)
			}
			return
		}
		b, err := io.ReadAll(io.LimitReader(rd, max+1))
		if err != nil {
			return
		}
		if int64(len(b)) > max {
			c.sendErr(wire.ErrTooLarge, fmt.Sprintf("message over %d bytes; closing", max), "")
			c.closeAfter(websocket.StatusMessageTooBig, "message too big")
			closing = true
			return
		}
		if typ != websocket.MessageText {
			c.sendErr(wire.ErrBadJSON, "binary messages are not accepted", "")
			continue
		}
		if now := time.Now(); !tb.take(now) {
			if !abuse.take(now) {
				c.sendErr(wire.ErrRateLimited, "message rate abuse; closing", envelopeID(b))
				c.closeAfter(websocket.StatusPolicyViolation, "rate limit")
				closing = true
				return
			}
			c.sendErr(wire.ErrRateLimited, fmt.Sprintf("over %.0f messages per second; message dropped", c.svc.cfg.RatePerSecond), envelopeID(b))
			continue
		}
		select {
		case c.in <- b:
		case <-c.ctx.Done():
			return
		}
	}
}

// writeLoop writes queued messages with a deadline each.
func (c *conn) writeLoop() {
	for {
		m, ok := c.out.pop()
		if !ok {
			select {
			case <-c.out.ready:
				continue
			case <-c.ctx.Done():
				return
			}
		}
		if c.ctx.Err() != nil {
			return
		}
		if m.data != nil {
			ctx, cancel := context.WithTimeout(c.ctx, c.svc.cfg.WriteTimeout)
			err := c.ws.Write(ctx, websocket.MessageText, m.data)
			cancel()
			if err != nil {
				c.abort()
				return
			}
		}
		if m.closeCode != 0 {
			_ = c.ws.Close(m.closeCode, m.closeReason) // bounded by the library (5 s)
			c.cancel()
			return
		}
	}
}

// startPings pings the client every PingInterval. Each ping runs on a
// goroutine of a runtime timer's own only while it waits for its pong (the
// library's Ping blocks until then); between pings a connection keeps no
// goroutine for them (it was a goroutine and a ticker per connection). The
// next ping is armed when a pong came back, so pings never overlap, and
// none is armed once the connection's context is done.
func (c *conn) startPings() {
	var mu sync.Mutex
	var t *time.Timer
	ping := func() {
		if c.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.svc.cfg.PingInterval)
		err := c.ws.Ping(ctx)
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.svc.log.Info("signaling: ping failed", "peer", c.peerID, "err", err)
				c.abort()
			}
			return
		}
		mu.Lock()
		t.Reset(c.svc.cfg.PingInterval)
		mu.Unlock()
	}
	mu.Lock()
	t = time.AfterFunc(c.svc.cfg.PingInterval, ping)
	mu.Unlock()
	context.AfterFunc(c.ctx, func() {
		mu.Lock()
		t.Stop()
		mu.Unlock()
	})
}

// teardown releases everything the connection held.
func (c *conn) teardown() {
	c.closing.Store(true)
	c.cancel()
	if c.joined {
		c.svc.room.leave(c, c.clean.Load())
	}
	if c.peer != nil {
		if err := c.peer.Close(); err != nil {
			c.svc.log.Debug("signaling: close peer", "peer", c.peerID, "err", err)
		}
	}
	if c.staffID != 0 {
		c.svc.room.staffRelease(c.staffID)
	}
	_ = c.ws.CloseNow()
}

// protoError is a handler's refusal, sent back as an error message.
type protoError struct{ code, msg string }

func (e *protoError) Error() string { return e.code + ": " + e.msg }

func perr(code, format string, args ...any) error {
	return &protoError{code, fmt.Sprintf(format, args...)}
}

// dispatch decodes one message and runs its handler.
func (c *conn) dispatch(b []byte) {
	var env wire.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		c.sendErr(wire.ErrBadJSON, "malformed JSON: "+err.Error(), "")
		return
	}
	h, ok := handlers[env.Type]
	if !ok {
		c.sendErr(wire.ErrUnknownType, fmt.Sprintf("unknown message type %q", env.Type), env.ID)
		return
	}
	var err error
	switch {
	case h.joined && !c.joined:
		err = perr(wire.ErrNotJoined, "send join first")
	case h.leader && !c.leader && c.p.Scoped():
		err = perr(wire.ErrForbidden, "%s is session control, which stays with the province: district %s's staff cannot use it", env.Type, c.p.District)
	case h.leader && !c.leader:
		err = perr(wire.ErrForbidden, "%s needs a leader's console", env.Type)
	default:
		err = h.fn(c, &env)
	}
	if err == nil {
		if env.ID != "" && !h.replies {
			c.send(wire.TypeAck, env.ID, wire.AckMsg{Type: env.Type})
		}
		return
	}
	var pe *protoError
	if !errors.As(err, &pe) {
		c.svc.log.Error("signaling: handler failed", "type", env.Type, "peer", c.peerID, "err", err)
		pe = &protoError{wire.ErrInternal, "internal error"}
	}
	c.sendErr(pe.code, pe.msg, env.ID)
}

// envelopeID is the request id of a message that is not dispatched (dropped by the
// rate limit), so its error still names it; "" when it has none or is not JSON.
func envelopeID(b []byte) string {
	var e struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &e)
	return e.ID
}

// bucket is a token bucket: rate tokens per second, up to burst.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate float64, burst int) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *bucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
