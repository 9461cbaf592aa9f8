package replay

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// endpoints holds the synthetic endpoints of the run, by code.
type endpoints struct {
	mu          sync.Mutex
	clients     map[string]*client.Client
	ready       map[string]chan struct{} // closed when the endpoint has joined (or failed to)
	joined      atomic.Int64
	media       atomic.Int64 // joined with a media path up
	failed      atomic.Int64
	mediaFailed atomic.Int64 // no media path within a minute
	joins       client.Hist  // to welcome (signalling only) or to media connected
}

func (e *endpoints) readyChan(code string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ready == nil {
		e.ready, e.clients = map[string]chan struct{}{}, map[string]*client.Client{}
	}
	ch, ok := e.ready[code]
	if !ok {
		ch = make(chan struct{})
		e.ready[code] = ch
	}
	return ch
}

// droppedAt is when the replay dropped code's link, if it did.
func (r *runner) droppedAt(code string) (time.Time, bool) {
	v, ok := r.dropped.Load(code)
	if !ok {
		return time.Time{}, false
	}
	return v.(time.Time), true
}

// back waits for an endpoint whose link is down to return: at a high speed, the
// real minimum of an outage outlasts the scenario's, and the room cannot give
// the floor to an endpoint that is away.
func (r *runner) back(code string) error {
	ch, ok := r.down.Load(code)
	if !ok {
		return nil
	}
	select {
	case <-ch.(chan struct{}):
		return nil
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("endpoint %s has not returned from its outage", code)
	}
}

// get waits (up to timeout) for the endpoint to have joined.
func (e *endpoints) get(code string, timeout time.Duration) (*client.Client, error) {
	select {
	case <-e.readyChan(code):
	case <-time.After(timeout):
		return nil, fmt.Errorf("endpoint %s has not joined", code)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.clients[code]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("endpoint %s failed to join", code)
}

// noAddress keeps a signalling-only endpoint from offering any ICE candidate,
// so it never has a media path (presence stays joined).
func noAddress(net.IP) bool { return false }

// join dials one endpoint with its join link's token.
func (r *runner) join(ctx context.Context, code string) {
	ch := r.eps.readyChan(code)
	defer close(ch)
	media := r.mediaCodes[code]
	o := client.Options{URL: r.srv.URL, Token: r.srv.Tokens[code], Publish: media}
	if !media {
		o.IPFilter = noAddress
	}
	// A media endpoint restores itself, as a browser does, when the server drops
	// it (a slow reader on a loaded machine); not one whose outage the scenario
	// plays, nor a signalling-only one (it would restart ICE for a media path it
	// never has).
	o.AutoReconnect = media && !r.outageCodes[code]
	start := time.Now()
	c, err := client.Dial(ctx, o)
	if err != nil {
		r.eps.failed.Add(1)
		r.fail("join "+code, err)
		return
	}
	if media {
		// No media path in time is the machine's load, not the log's: a figure.
		if err := c.WaitConnected(60 * time.Second); err != nil {
			r.eps.mediaFailed.Add(1)
			r.o.Log.Warn("replay: no media path", "code", code, "err", err)
		} else {
			r.eps.media.Add(1)
		}
	}
	if r.outageCodes[code] {
		r.bg.Add(1)
		go func() { defer r.bg.Done(); r.watch(ctx, code, c) }()
	}
	r.eps.joins.Record(time.Since(start))
	r.eps.joined.Add(1)
	r.eps.mu.Lock()
	r.eps.clients[code] = c
	r.eps.mu.Unlock()
}

// dialConsole joins the command room: a leader's console, the program when it
// publishes.
func (r *runner) dialConsole(ctx context.Context) error {
	o := client.Options{URL: r.srv.URL, Token: r.lead.token, Role: wire.RoleConsole, Publish: r.o.Media != "none",
		AutoReconnect: true}
	c, err := client.Dial(ctx, o)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	r.console = c
	if o.Publish {
		if err := c.WaitConnected(30 * time.Second); err != nil {
			return fmt.Errorf("console media: %w", err)
		}
	}
	return nil
}

// leaderAction sends one leader action from the console and waits for its ack.
func (r *runner) leaderAction(typ, code string) error {
	var payload any
	if code != "" {
		payload = map[string]string{"code": code}
	}
	since := time.Now()
	id, err := sendWhenUp(r.console, typ, payload)
	if err != nil {
		return err
	}
	var refused string
	err = client.WaitFor(func() bool {
		for _, m := range r.console.Messages(wire.TypeError) {
			if m.ID == id && !m.At.Before(since) {
				refused = string(m.Payload)
				return true
			}
		}
		for _, m := range r.console.Messages(wire.TypeAck) {
			if m.ID == id && !m.At.Before(since) {
				return true
			}
		}
		return false
	}, 15*time.Second)
	if err != nil {
		return fmt.Errorf("%s %s: no ack: %w", typ, code, err)
	}
	if refused != "" {
		return fmt.Errorf("%s %s refused: %s", typ, code, refused)
	}
	return nil
}

// watch restores an endpoint whose outage the scenario plays (it has no
// AutoReconnect, so that the replay's drop stays down) when it loses its link
// at any other time, as the others restore themselves, until the play ends.
func (r *runner) watch(ctx context.Context, code string, c *client.Client) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.playDone:
			return
		case <-t.C:
		}
		r.outageMu.Lock()
		if _, down := r.down.Load(code); !down && c.State() == client.StateDisconnected {
			if err := c.Reconnect(ctx); err != nil {
				r.o.Log.Warn("replay: reconnect", "code", code, "err", err)
			}
		}
		r.outageMu.Unlock()
	}
}

// sendWhenUp sends one message, waiting for a client that is reconnecting (its
// own AutoReconnect, or after a fault) to be back first.
func sendWhenUp(c *client.Client, typ string, payload any) (string, error) {
	var err error
	for range 3 {
		up := func() bool { st := c.State(); return st == client.StateConnected || st == client.StateJoined }
		if err = client.WaitFor(up, 30*time.Second); err != nil {
			return "", fmt.Errorf("%s: the connection is not back: %w", typ, err)
		}
		var id string
		if id, err = c.Send(typ, payload); err == nil {
			return id, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return "", fmt.Errorf("%s: %w", typ, err)
}

// outage drops an endpoint's link (no clean close) and brings it back after the
// scenario's duration, or after the server's threshold plus the offline timer
// in real time if that is longer, so the outage incident opens at any speed.
func (r *runner) outage(ctx context.Context, o *OutageSpec) error {
	c, err := r.eps.get(o.Code, 60*time.Second)
	if err != nil {
		return err
	}
	hold := max(time.Duration(float64(o.For.Duration)/r.o.Speed), r.threshold+offlineTimer+3*time.Second)
	back := make(chan struct{})
	r.outageMu.Lock()
	r.down.Store(o.Code, back)
	r.dropped.Store(o.Code, time.Now())
	c.Drop()
	r.outageMu.Unlock()
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		defer func() { r.down.Delete(o.Code); close(back) }()
		select {
		case <-ctx.Done():
			return
		case <-time.After(hold):
		}
		if err := c.Reconnect(ctx); err != nil {
			r.fail("outage return "+o.Code, err)
			return
		}
		if r.mediaCodes[o.Code] {
			if err := c.WaitConnected(30 * time.Second); err != nil {
				r.fail("outage return media "+o.Code, err)
			}
		}
	}()
	return nil
}

func (r *runner) closeClients() {
	r.eps.mu.Lock()
	cs := make([]*client.Client, 0, len(r.eps.clients))
	for _, c := range r.eps.clients {
		cs = append(cs, c)
	}
	r.eps.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); c.Close(); <-sem }()
	}
	wg.Wait()
	if r.console != nil {
		r.console.Close()
	}
}
