package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
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

// TestMain starts the test PostgreSQL cluster, except when fuzzing: fuzz targets
// need no database, and every fuzz worker process would otherwise initdb its own.
func TestMain(m *testing.M) {
	for _, a := range os.Args[1:] {
		if a == "-test.fuzzworker" || (strings.HasPrefix(a, "-test.fuzz=") && a != "-test.fuzz=") {
			os.Exit(m.Run())
		}
	}
	os.Exit(storetest.Main(m))
}

// Light layers keep 20+ publishers affordable on a 2-core machine; keyframe
// headers still carry the real sizes.
var testLayers = []client.Layer{
	{RID: "q", Width: 320, Height: 180, Bitrate: 60_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 120_000},
	{RID: "f", Width: 1280, Height: 720, Bitrate: 250_000},
}

type live struct {
	t      *testing.T
	a      *apptest.App
	leader *apptest.Client
	sessID string
}

func startLive(t *testing.T) *live {
	t.Helper()
	a := apptest.Start(t, nil)
	l := &live{t: t, a: a, leader: a.User("lead", auth.RoleLeader)}
	return l
}

func (l *live) startSession() {
	l.t.Helper()
	l.sessID = uuid.NewString()
	now := time.Now().UTC()
	l.leader.Do("POST", "/api/v1/sessions", map[string]any{"id": l.sessID, "title": "test",
		"planned_start": now, "planned_end": now.Add(12 * time.Hour)}, nil, 201)
	l.leader.Do("POST", "/api/v1/sessions/"+l.sessID+"/start", nil, nil, 200)
}

func (l *live) communes(n int) []string {
	l.t.Helper()
	eps, err := l.a.Store.ListEndpoints(context.Background(), store.EndpointFilter{Kind: store.KindCommune})
	if err != nil {
		l.t.Fatal(err)
	}
	if len(eps) < n {
		l.t.Fatalf("roster has %d communes, need %d", len(eps), n)
	}
	var out []string
	for _, e := range eps[:n] {
		out = append(out, e.Code)
	}
	return out
}

func (l *live) dial(token, role string, publish bool) *client.Client {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: l.a.URL(), Token: token, Role: role, Publish: publish,
		Layers: testLayers, FPS: 10})
	if err != nil {
		l.t.Fatalf("dial %s: %v", role, err)
	}
	l.t.Cleanup(c.Close)
	return c
}

func (l *live) endpoint(code string) *client.Client {
	return l.dial(l.a.Endpoint(code).Token, wire.RoleEndpoint, true)
}

func waitT(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if err := client.WaitFor(cond, timeout); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return time.Since(start)
}

// dialMany connects endpoints in parallel.
func (l *live) dialMany(codes []string) map[string]*client.Client {
	l.t.Helper()
	tokens := map[string]string{}
	for _, c := range codes {
		tokens[c] = l.a.Endpoint(c).Token
	}
	out := map[string]*client.Client{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(codes))
	sem := make(chan struct{}, 4)
	for _, code := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, client.Options{URL: l.a.URL(), Token: tokens[code], Publish: true, Layers: testLayers, FPS: 10})
			if err != nil {
				errs <- fmt.Errorf("%s: %w", code, err)
				return
			}
			mu.Lock()
			out[code] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, c := range out {
		l.t.Cleanup(c.Close)
	}
	close(errs)
	for err := range errs {
		l.t.Fatal(err)
	}
	return out
}

func send(t *testing.T, c *client.Client, typ string, payload any) {
	t.Helper()
	if _, err := c.Send(typ, payload); err != nil {
		t.Fatalf("send %s: %v", typ, err)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// audioSources lists the sources heard on a client's audio slots since t.
func audioSources(c *client.Client, since time.Time) map[string]bool {
	out := map[string]bool{}
	for name, s := range c.Recorder().Slots() {
		if !signaling.SlotIsAudio(name) {
			continue
		}
		for code, st := range s.Sources {
			if !st.Last.Before(since) {
				out[code] = true
			}
		}
	}
	return out
}

func TestLiveSession(t *testing.T) {
	l := startLive(t)
	l.startSession()
	codes := l.communes(20)

	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	lead := l.dial(l.leader.Token, wire.RoleConsole, false)
	start := time.Now()
	eps := l.dialMany(codes)
	t.Logf("%d endpoints joined in %v", len(eps), time.Since(start))

	var tiles []wire.TileMsg
	for _, c := range codes {
		tiles = append(tiles, wire.TileMsg{Code: c, Visible: true, Size: "small"})
	}
	send(t, cmd, wire.TypeVisibility, wire.VisibilityMsg{Tiles: tiles})

	// Every endpoint receives the program (marker code 22), video and audio.
	d := waitT(t, "program everywhere", 30*time.Second, func() bool {
		for _, c := range eps {
			r := c.Received(signaling.CommandCode, time.Time{})
			if r[signaling.SlotProgramVideo].Keyframes == 0 || r[signaling.SlotProgramAudio].Packets == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("program reached all %d endpoints %v after the last join", len(eps), d)
	widths := map[int]int{}
	for _, c := range eps {
		widths[c.Received(signaling.CommandCode, time.Time{})[signaling.SlotProgramVideo].LastKeyWidth]++
	}
	// The high layer is requested; the bandwidth estimate may lower it on a busy box.
	t.Logf("program keyframe widths received (width: endpoints): %v", widths)

	// The command console receives every endpoint's low layer on a tile.
	d = waitT(t, "console tiles", 30*time.Second, func() bool {
		for _, code := range codes {
			ok := false
			for slot, st := range cmd.Received(code, time.Time{}) {
				if len(slot) > 5 && slot[:5] == "tile_" && st.LastKeyWidth == 320 {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	})
	t.Logf("console receives all %d tiles at the low layer (width 320) after %v", len(codes), d)

	// Floor changes: measure how long until every other endpoint receives the new holder.
	var all []time.Duration
	for round, holder := range []string{codes[0], codes[1], codes[2]} {
		t0 := time.Now()
		send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: holder})
		per := map[string]time.Duration{}
		waitT(t, "floor switch to "+holder, 20*time.Second, func() bool {
			for code, c := range eps {
				if code == holder {
					continue
				}
				if _, done := per[code]; done {
					continue
				}
				if at := c.Recorder().FirstFrom(signaling.SlotFloorVideo, holder, t0); !at.IsZero() {
					per[code] = at.Sub(t0)
				}
			}
			return len(per) == len(eps)-1
		})
		var ds []time.Duration
		for _, x := range per {
			ds = append(ds, x)
		}
		all = append(all, ds...)
		mx := percentile(ds, 1)
		t.Logf("floor switch %d to %s: median %v, max %v over %d endpoints", round+1, holder, percentile(ds, 0.5), mx, len(ds))
		if mx > 5*time.Second {
			t.Errorf("floor switch took %v, want < 5 s (goal 1 s)", mx)
		}
	}
	t.Logf("floor switch over all rounds: median %v, p90 %v, max %v", percentile(all, 0.5), percentile(all, 0.9), percentile(all, 1))
	holder := codes[2]

	// The floor holder's audio reaches every other endpoint and the console.
	tA := time.Now()
	waitT(t, "floor audio everywhere", 10*time.Second, func() bool {
		for code, c := range eps {
			if code != holder && c.Received(holder, tA)[signaling.SlotFloorAudio].Packets == 0 {
				return false
			}
		}
		return cmd.Received(holder, tA)[signaling.SlotFloorAudio].Packets > 0
	})
	// Nobody hears anyone but the program and the floor holder.
	time.Sleep(time.Second)
	window := time.Now()
	time.Sleep(1500 * time.Millisecond)
	for code, c := range eps {
		for src := range audioSources(c, window) {
			if src != signaling.CommandCode && src != holder {
				t.Errorf("%s hears %s without the floor", code, src)
			}
		}
	}
	for src := range audioSources(cmd, window) {
		if src != holder {
			t.Errorf("console hears %s without floor, private line or roll call", src)
		}
	}

	// Muting the holder silences it for everyone; its video stays.
	send(t, lead, wire.TypeMute, wire.CodeMsg{Code: holder})
	if _, err := eps[holder].WaitMessage(wire.TypeMute, tA, 5*time.Second, nil); err != nil {
		t.Fatalf("holder not told of the mute: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	window = time.Now()
	time.Sleep(1500 * time.Millisecond)
	for code, c := range eps {
		for src := range audioSources(c, window) {
			if src != signaling.CommandCode {
				t.Errorf("%s hears %s after it was muted", code, src)
			}
		}
		if code != holder && c.Received(holder, window)[signaling.SlotFloorVideo].Packets == 0 {
			t.Errorf("%s lost the floor video after the mute", code)
		}
	}

	// Presence: everyone connected, as the web API reports it.
	waitT(t, "presence connected", 15*time.Second, func() bool {
		for _, code := range codes {
			if l.a.Live.Presence(code) != wire.StateConnected {
				return false
			}
		}
		return true
	})
	var list struct {
		Endpoints []struct{ Code, Presence string } `json:"endpoints"`
	}
	_, raw := l.leader.Do("GET", "/api/v1/endpoints", nil, nil, 200)
	_ = json.Unmarshal(raw, &list)
	t.Logf("GET /api/v1/endpoints: %d bytes", len(raw))

	// Stats reach consoles every 2 s.
	if _, err := lead.WaitMessage(wire.TypeStats, time.Now(), 5*time.Second, nil); err != nil {
		t.Errorf("no stats for the console: %v", err)
	}
	// The leader actions were audited.
	evs, err := l.a.Store.EventsAfter(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Action == "floor.given" && e.Actor == "user:lead" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d floor.given audit events, want 3", n)
	}
}
