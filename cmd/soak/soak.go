package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// Options configure one soak run.
type Options struct {
	Duration    time.Duration
	Endpoints   int
	ChurnPerMin float64
	FloorEvery  time.Duration
	FPS         int
	Warmup      time.Duration
	Window      time.Duration

	URL, MetricsURL, TokensCSV, LeaderUser, LeaderPassword string
	Repo                                                   string
	Keep                                                   bool
	JSON                                                   string
	ProfilePrefix                                          string // save pprof text profiles as PREFIX-{goroutine,heap}-{start,end}.txt
}

// Report is the outcome.
type Report struct {
	Endpoints   int           `json:"endpoints"`
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	Joins       int64         `json:"churn_joins"`
	Leaves      int64         `json:"churn_leaves"`
	FloorMoves  int64         `json:"floor_moves"`
	Start       Sample        `json:"start"`
	End         Sample        `json:"end"`
	ConnectedAt int           `json:"connected_at_end"`
	Failures    []string      `json:"failures"`
	Profiles    []string      `json:"profiles,omitempty"` // goroutine and heap profiles, start and end
	ServerLog   string        `json:"server_log,omitempty"`
}

// Text is the human summary.
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %d endpoints for %v after a %v warm-up; over both, churn %d joins / %d leaves, %d floor changes\n",
		r.Endpoints, r.Duration.Round(time.Second), r.Warmup.Round(time.Second), r.Joins, r.Leaves, r.FloorMoves)
	fmt.Fprintf(&b, "  start: %v\n  end:   %v\n", r.Start, r.End)
	if r.Start.Goroutines > 0 {
		fmt.Fprintf(&b, "  change: goroutines %+.2f%%, heap %+.1f%%, RSS %+.1f MiB\n",
			100*(r.End.Goroutines-r.Start.Goroutines)/r.Start.Goroutines,
			100*(r.End.HeapAlloc-r.Start.HeapAlloc)/r.Start.HeapAlloc, (r.End.RSS-r.Start.RSS)/mib)
	}
	fmt.Fprintf(&b, "  endpoints connected at the end: %d of %d\n", r.ConnectedAt, r.Endpoints)
	if len(r.Failures) == 0 {
		b.WriteString("  PASS")
	} else {
		b.WriteString("  FAIL:\n    " + strings.Join(r.Failures, "\n    "))
	}
	return b.String()
}

// Light simulcast layers: the soak is about leaks over time, not throughput, and
// one generator process on a shared 2-core machine must keep 190 publishers going.
var soakLayers = []client.Layer{
	{RID: "q", Width: 320, Height: 180, Bitrate: 40_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 80_000},
	{RID: "f", Width: 1280, Height: 720, Bitrate: 150_000},
}

// fleet is the synthetic endpoints, by code.
type fleet struct {
	mu      sync.Mutex
	clients map[string]*client.Client
}

func (f *fleet) get(code string) *client.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clients[code]
}

func (f *fleet) set(code string, c *client.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c == nil {
		delete(f.clients, code)
	} else {
		f.clients[code] = c
	}
}

func (f *fleet) connected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.clients {
		if c.State() == client.StateConnected {
			n++
		}
	}
	return n
}

func (f *fleet) closeAll() {
	f.mu.Lock()
	l := make([]*client.Client, 0, len(f.clients))
	for _, c := range f.clients {
		l = append(l, c)
	}
	f.clients = map[string]*client.Client{}
	f.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, c := range l {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); c.Close() }()
	}
	wg.Wait()
}

// Soak runs the whole thing and returns the report (err: it could not run at all).
func Soak(ctx context.Context, o Options, logf func(string, ...any)) (*Report, error) {
	if o.FPS <= 0 {
		o.FPS = 5
	}
	var t *target
	var err error
	if o.URL != "" {
		t, err = externalTarget(ctx, o)
	} else {
		t, err = startServer(ctx, o, logf)
	}
	if err != nil {
		return nil, err
	}
	defer t.stop()
	rep := &Report{Endpoints: min(o.Endpoints, len(t.Codes)), Warmup: o.Warmup, ServerLog: t.LogPath}
	codes := t.Codes[:rep.Endpoints]
	metricsURL := t.Metrics

	sessID := uuid.NewString()
	now := time.Now().UTC()
	if err := harness.API(ctx, t.URL, "POST", "/api/v1/sessions", t.Leader, map[string]any{"id": sessID, "title": "soak",
		"planned_start": now, "planned_end": now.Add(13 * time.Hour)}, nil); err != nil {
		return nil, err
	}
	if err := harness.API(ctx, t.URL, "POST", "/api/v1/sessions/"+sessID+"/start", t.Leader, nil, nil); err != nil {
		return nil, err
	}
	dial := func(token, role string, publish bool) (*client.Client, error) {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return client.Dial(dctx, client.Options{URL: t.URL, Token: token, Role: role, Publish: publish,
			Layers: soakLayers, FPS: o.FPS, AutoReconnect: true})
	}
	program, err := dial(t.Tokens[signaling.CommandCode], wire.RoleConsole, true)
	if err != nil {
		return nil, fmt.Errorf("command room: %w", err)
	}
	defer program.Close()
	console, err := dial(t.Leader, wire.RoleConsole, false)
	if err != nil {
		return nil, fmt.Errorf("leader console: %w", err)
	}
	defer console.Close()

	fl := &fleet{clients: map[string]*client.Client{}}
	defer fl.closeAll()
	joinStart := time.Now()
	var wg sync.WaitGroup
	var dialErrs atomic.Int64
	sem := make(chan struct{}, 4)
	for _, code := range codes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial(t.Tokens[code], wire.RoleEndpoint, true)
			if err != nil {
				dialErrs.Add(1)
				logf("join %s: %v", code, err)
				return
			}
			fl.set(code, c)
		}()
	}
	wg.Wait()
	if n := dialErrs.Load(); n > 0 {
		return nil, fmt.Errorf("%d endpoints could not join", n)
	}
	if !waitUntil(ctx, 3*time.Minute, func() bool { return fl.connected() == len(codes) }) {
		return nil, fmt.Errorf("only %d of %d endpoints connected 3 min after joining", fl.connected(), len(codes))
	}
	logf("%d endpoints joined and connected in %v; warming up %v (with churn and floor changes)", len(codes), time.Since(joinStart).Round(time.Second), o.Warmup)

	// Churn and floor changes start with the warm-up, so the start figures
	// are taken in the same regime as the end ones: the first floor changes
	// and rejoins allocate caches and buffers that then stay in use.
	bgCtx, bgCancel := context.WithCancel(ctx)
	defer bgCancel()
	var bg sync.WaitGroup
	if o.ChurnPerMin > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			churn(bgCtx, o, codes, t, fl, dial, rep, logf)
		}()
	}
	if o.FloorEvery > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			tk := time.NewTicker(o.FloorEvery)
			defer tk.Stop()
			for i := 0; ; i++ {
				select {
				case <-bgCtx.Done():
					return
				case <-tk.C:
				}
				if _, err := console.Send(wire.TypeGiveFloor, wire.CodeMsg{Code: codes[i%len(codes)]}); err == nil {
					atomic.AddInt64(&rep.FloorMoves, 1)
				}
			}
		}()
	}
	if !sleepCtx(ctx, o.Warmup) {
		return nil, ctx.Err()
	}
	if rep.Start, err = window(ctx, metricsURL, o.Window); err != nil {
		return nil, err
	}
	logf("start: %v", rep.Start)
	profiles := func(when string) {
		if t.Admin == "" || o.ProfilePrefix == "" {
			return
		}
		for _, name := range []string{"goroutine", "heap"} {
			f := fmt.Sprintf("%s-%s-%s.txt", o.ProfilePrefix, name, when)
			if err := saveProfile(ctx, t, name, f); err != nil {
				logf("profile %s: %v", name, err)
				continue
			}
			rep.Profiles = append(rep.Profiles, f)
		}
	}
	profiles("start")

	// The run: progress lines while churn and floor changes go on.
	runStart := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	tk := time.NewTicker(time.Minute)
progress:
	for {
		select {
		case <-runCtx.Done():
			break progress
		case <-tk.C:
			s, err := scrape(ctx, metricsURL)
			if err != nil {
				logf("%v: scrape: %v", time.Since(runStart).Round(time.Second), err)
				continue
			}
			logf("%v: %d/%d connected; %v", time.Since(runStart).Round(time.Second), fl.connected(), len(codes), s)
		}
	}
	tk.Stop()
	bgCancel()
	bg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.Duration = time.Since(runStart)
	// Let churned endpoints finish coming back, then measure the same population.
	waitUntil(ctx, 2*time.Minute, func() bool { return fl.connected() == len(codes) })
	sleepCtx(ctx, 10*time.Second)
	rep.ConnectedAt = fl.connected()
	if rep.End, err = window(ctx, metricsURL, o.Window); err != nil {
		return nil, err
	}
	logf("end: %v", rep.End)
	profiles("end")
	rep.Failures = check(rep.Start, rep.End, rep.Duration, DefaultLimits)
	if rep.ConnectedAt != len(codes) {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d of %d endpoints connected at the end", rep.ConnectedAt, len(codes)))
	}
	return rep, nil
}

// churn makes ChurnPerMin leaves and joins a minute: a random endpoint leaves
// cleanly and joins again 2 s later with a new connection.
func churn(ctx context.Context, o Options, codes []string, t *target, fl *fleet,
	dial func(string, string, bool) (*client.Client, error), rep *Report, logf func(string, ...any)) {
	every := time.Duration(float64(time.Minute) / o.ChurnPerMin)
	tk := time.NewTicker(every)
	defer tk.Stop()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		code := codes[rng.IntN(len(codes))]
		c := fl.get(code)
		if c == nil {
			continue
		}
		fl.set(code, nil)
		c.Close()
		atomic.AddInt64(&rep.Leaves, 1)
		// If the run ends meanwhile, still rejoin, so the end figures see everyone.
		sleepCtx(ctx, 2*time.Second)
		nc, err := dial(t.Tokens[code], wire.RoleEndpoint, true)
		if err != nil {
			logf("churn: rejoin %s: %v", code, err)
			continue
		}
		fl.set(code, nc)
		atomic.AddInt64(&rep.Joins, 1)
	}
}

// window scrapes every 2 s for d and summarizes.
func window(ctx context.Context, url string, d time.Duration) (Sample, error) {
	var l []Sample
	end := time.Now().Add(d)
	for {
		s, err := scrape(ctx, url)
		if err != nil {
			return Sample{}, err
		}
		l = append(l, s)
		if time.Now().After(end) || !sleepCtx(ctx, 2*time.Second) {
			break
		}
	}
	return summarize(l), nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// waitUntil polls cond every 250 ms for at most d.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || !sleepCtx(ctx, 250*time.Millisecond) {
			return cond()
		}
	}
	return true
}
