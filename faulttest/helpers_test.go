package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// Light layers keep several publishers affordable on a 2-core machine.
var testLayers = []client.Layer{
	{RID: "q", Width: 320, Height: 180, Bitrate: 60_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 120_000},
	{RID: "f", Width: 1280, Height: 720, Bitrate: 250_000},
}

// skipOrFail skips, except in CI where a skipped test is a failure.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// needFirewall returns true when iptables can be used, and skips (fails in CI) otherwise.
func needFirewall(t *testing.T) {
	t.Helper()
	if ok, why := CanFirewall(); !ok {
		skipOrFail(t, "this test blocks the endpoint's direct media path with iptables: %s", why)
	}
}

// rig is a running server with a session in progress, the command room publishing
// the program and a leader's console watching presence.
type rig struct {
	t       *testing.T
	a       *apptest.App
	lead    *apptest.Client // REST as the leader
	console *client.Client  // the leader's console (/ws)
	cmd     *client.Client  // endpoint 22, publishing the program
	sessID  string
}

func newRig(t *testing.T, a *apptest.App) *rig {
	t.Helper()
	r := &rig{t: t, a: a, lead: a.User("lead", auth.RoleLeader)}
	r.sessID = uuid.NewString()
	now := time.Now().UTC()
	r.lead.Do("POST", "/api/v1/sessions", map[string]any{"id": r.sessID, "title": "Bầu cử 23/5/2021",
		"planned_start": now, "planned_end": now.Add(12 * time.Hour)}, nil, 201)
	r.lead.Do("POST", "/api/v1/sessions/"+r.sessID+"/start", nil, nil, 200)
	r.cmd = r.dial(client.Options{URL: a.URL(), Token: a.Endpoint(signaling.CommandCode).Token,
		Role: wire.RoleConsole, Publish: true})
	r.console = r.dial(client.Options{URL: a.URL(), Token: r.lead.Token, Role: wire.RoleConsole})
	return r
}

// dial connects a synthetic client with the test layers and closes it at the end.
func (r *rig) dial(o client.Options) *client.Client {
	r.t.Helper()
	if o.Layers == nil {
		o.Layers = testLayers
	}
	if o.FPS == 0 {
		o.FPS = 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, o)
	if err != nil {
		r.t.Fatalf("dial: %v", err)
	}
	r.t.Cleanup(c.Close)
	return c
}

func communes(t *testing.T, st *store.Store, n int) []string {
	t.Helper()
	eps, err := st.ListEndpoints(context.Background(), store.EndpointFilter{Kind: store.KindCommune})
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) < n {
		t.Fatalf("roster has %d communes, need %d", len(eps), n)
	}
	var out []string
	for _, e := range eps[:n] {
		out = append(out, e.Code)
	}
	return out
}

func waitT(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if err := client.WaitFor(cond, timeout); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return time.Since(start)
}

func send(t *testing.T, c *client.Client, typ string, payload any) {
	t.Helper()
	if _, err := c.Send(typ, payload); err != nil {
		t.Fatalf("send %s: %v", typ, err)
	}
}

// presenceChange is one presence message a console received.
type presenceChange struct {
	At    time.Time
	State string
}

// presenceOf lists the presence changes of code received by c at or after since.
func presenceOf(c *client.Client, code string, since time.Time) []presenceChange {
	var out []presenceChange
	for _, m := range c.Messages(wire.TypePresence) {
		var p wire.PresenceMsg
		if m.At.Before(since) || json.Unmarshal(m.Payload, &p) != nil || p.Code != code {
			continue
		}
		out = append(out, presenceChange{m.At, p.State})
	}
	return out
}

func fmtChanges(l []presenceChange, since time.Time) string {
	var b strings.Builder
	for i, c := range l {
		if i > 0 {
			b.WriteString(" → ")
		}
		fmt.Fprintf(&b, "%s@%.1fs", c.State, c.At.Sub(since).Seconds())
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return b.String()
}

// firstState returns when state first arrived in l (ok false if never).
func firstState(l []presenceChange, state string) (time.Time, bool) {
	for _, c := range l {
		if c.State == state {
			return c.At, true
		}
	}
	return time.Time{}, false
}

// packetsFrom is how many packets c has received from source on slot (ever).
func packetsFrom(c *client.Client, source, slot string) int {
	return c.Received(source, time.Time{})[slot].Packets
}

func keyframesFrom(c *client.Client, source, slot string) int {
	return c.Received(source, time.Time{})[slot].Keyframes
}

// flowSampler samples, every 20 ms, how many packets of source on slot each client
// has received, to measure rates and the longest silence (gap).
type flowSampler struct {
	stop chan struct{}
	done chan struct{}
	res  map[string]flowResult
}

type flowResult struct {
	Packets   int
	Keyframes int
	MaxGap    time.Duration
	Dur       time.Duration
	RID       string // simulcast layer of the last packet (from its marker)
}

func (f flowResult) Rate() float64 { return float64(f.Packets) / f.Dur.Seconds() }

func (f flowResult) String() string {
	return fmt.Sprintf("%d pkts (%.1f/s), %d keyframes, longest gap %v, layer %q", f.Packets, f.Rate(), f.Keyframes, f.MaxGap.Round(10*time.Millisecond), f.RID)
}

// measureFlow samples for d and returns, per client name, what arrived from source on slot.
func measureFlow(clients map[string]*client.Client, source, slot string, d time.Duration) map[string]flowResult {
	type st struct {
		p0, k0, last int
		lastAt       time.Time
		gap          time.Duration
	}
	start := time.Now()
	s := map[string]*st{}
	for n, c := range clients {
		p := packetsFrom(c, source, slot)
		s[n] = &st{p0: p, k0: keyframesFrom(c, source, slot), last: p, lastAt: start}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for now := range tick.C {
		for n, c := range clients {
			x := s[n]
			if p := packetsFrom(c, source, slot); p != x.last {
				x.last, x.lastAt = p, now
			} else if g := now.Sub(x.lastAt); g > x.gap {
				x.gap = g
			}
		}
		if now.Sub(start) >= d {
			break
		}
	}
	dur := time.Since(start)
	out := map[string]flowResult{}
	for n, c := range clients {
		x := s[n]
		out[n] = flowResult{Packets: packetsFrom(c, source, slot) - x.p0, Keyframes: keyframesFrom(c, source, slot) - x.k0, MaxGap: x.gap, Dur: dur,
			RID: c.Received(source, time.Time{})[slot].LastRID}
	}
	return out
}
