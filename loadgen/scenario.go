// Package loadgen drives opscenter with synthetic endpoints (real Pion
// WebRTC peers speaking the real /ws protocol with real credentials) and
// measures the server process: CPU, RSS, forwarded packets and bits,
// packets per server CPU-second, in-server and end-to-end forwarding delay,
// loss and time to join. cmd/loadgen is its command line.
package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// Config is one run.
type Config struct {
	Scenario    string        // province, nation, fanout, joinstorm, ceiling
	N           int           // fanout: subscribers; joinstorm: endpoints; province: endpoints (default 190); nation: child uplinks (default 63)
	Duration    time.Duration // measurement window
	Warmup      time.Duration // after everyone receives, before measuring
	FloorEvery  time.Duration // province, nation: floor change interval (default 30 s)
	Tiles       int           // province: console tiles (default 49); nation: default N
	FPS         int           // video frame rate (default 30)
	Publish     bool          // joinstorm: endpoints also publish
	JoinWithin  time.Duration // joinstorm: spread of the joins (default 1 s)
	Server      harness.Options
	CPUProfile  string // write a server CPU profile of the measurement window here
	HeapProfile string // write a server heap profile at the end of the window here
	Logf        func(string, ...any)
}

// Result is the figures of one run (one table row, one JSON object).
type Result struct {
	Scenario  string  `json:"scenario"`
	N         int     `json:"n"`
	Endpoints int     `json:"endpoints"` // synthetic endpoints connected
	Seconds   float64 `json:"seconds"`   // measurement window

	ServerCores      float64 `json:"server_cores"`
	ServerRSSMiB     float64 `json:"server_rss_mib"`
	ServerPeakRSSMiB float64 `json:"server_peak_rss_mib"`
	FwdPPS           float64 `json:"forwarded_pps"`
	FwdMbps          float64 `json:"forwarded_mbps"` // RTP payload + 12-byte header
	PktsPerCPUSec    float64 `json:"packets_per_cpu_second"`
	InServerP50Us    float64 `json:"in_server_delay_p50_us"`
	InServerP99Us    float64 `json:"in_server_delay_p99_us"`
	InServerP999Us   float64 `json:"in_server_delay_p999_us"`
	E2EP50Ms         float64 `json:"e2e_delay_p50_ms"`
	E2EP99Ms         float64 `json:"e2e_delay_p99_ms"`
	E2EP999Ms        float64 `json:"e2e_delay_p999_ms"`
	RecvPPS          float64 `json:"received_pps"`
	Loss             float64 `json:"loss"`
	ServerDropped    uint64  `json:"server_dropped"`
	JoinP50Ms        float64 `json:"join_p50_ms,omitempty"`
	JoinP99Ms        float64 `json:"join_p99_ms,omitempty"`
	JoinFailed       int     `json:"join_failed,omitempty"`
	GenCores         float64 `json:"generator_cores"`
	Limit            string  `json:"limit,omitempty"` // why a fanout progression stopped
	Load             string  `json:"load"`            // /proc/loadavg at the start
	// Recording is what the server recorded (read after it stopped); nil if
	// the run failed.
	Recording *RecordingFigures `json:"recording,omitempty"`
}

type run struct {
	cfg   Config
	srv   *harness.Server
	meter client.Meter
	eps   []*endpoint
	mu    sync.Mutex
	logf  func(string, ...any)
}

// Run executes one scenario with a fresh server and returns its figures.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.FPS == 0 {
		cfg.FPS = 30
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 5 * time.Second
	}
	if cfg.Duration == 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.FloorEvery == 0 {
		cfg.FloorEvery = 30 * time.Second
	}
	if cfg.Scenario == "nation" {
		nationDefaults(&cfg)
	}
	if cfg.Tiles == 0 {
		cfg.Tiles = 49
	}
	if cfg.JoinWithin == 0 {
		cfg.JoinWithin = time.Second
	}
	if cfg.N == 0 {
		cfg.N = 190
	}
	if cfg.Scenario == "ceiling" { // no server: the bare loop (ceiling.go)
		return ceilingRun(ctx, cfg)
	}
	res := Result{Scenario: cfg.Scenario, N: cfg.N, Load: loadavg()}
	so := cfg.Server
	so.Logf = cfg.Logf
	if cfg.Scenario == "fanout" || cfg.Scenario == "joinstorm" {
		so.Communes = cfg.N
	}
	srv, err := harness.Start(ctx, so)
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	r := &run{cfg: cfg, srv: srv, logf: cfg.Logf}
	defer r.closeAll()
	switch cfg.Scenario {
	case "fanout":
		err = r.fanout(ctx, &res)
	case "province":
		err = r.province(ctx, &res)
	case "nation":
		err = r.nation(ctx, &res)
	case "joinstorm":
		err = r.joinstorm(ctx, &res)
	default:
		err = fmt.Errorf("unknown scenario %q", cfg.Scenario)
	}
	if err != nil {
		return res, err
	}
	// The server closes its recordings when it stops; then they are read.
	r.closeAll()
	srv.Terminate()
	rf, err := scanRecordings(srv.RecordingDir())
	if err != nil {
		return res, fmt.Errorf("recordings: %w", err)
	}
	res.Recording = &rf
	return res, nil
}

func (r *run) closeAll() {
	r.mu.Lock()
	eps := r.eps
	r.eps = nil
	r.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, e := range eps {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); e.Close(); <-sem }()
	}
	wg.Wait()
}

// dialMany joins codes with bounded parallelism (or spread evenly over
// within, for the join storm) and returns the endpoints that joined.
func (r *run) dialMany(ctx context.Context, codes []string, publish bool, within time.Duration) ([]*endpoint, int) {
	return r.dialManyWith(ctx, codes, client.Options{Publish: publish}, within)
}

// dialManyWith is dialMany with every option but the token taken from o.
func (r *run) dialManyWith(ctx context.Context, codes []string, o client.Options, within time.Duration) ([]*endpoint, int) {
	out := make([]*endpoint, len(codes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 24)
	start := time.Now()
	for i, code := range codes {
		wg.Add(1)
		if within > 0 {
			time.Sleep(time.Until(start.Add(within * time.Duration(i) / time.Duration(len(codes)))))
		} else {
			sem <- struct{}{}
		}
		go func() {
			defer wg.Done()
			if within <= 0 {
				defer func() { <-sem }()
			}
			eo := o
			eo.Token = r.srv.Tokens[code]
			e, err := r.dial(ctx, eo)
			if err != nil {
				r.logf("join %s: %v", code, err)
				return
			}
			out[i] = e
		}()
	}
	wg.Wait()
	var ok []*endpoint
	for _, e := range out {
		if e != nil {
			ok = append(ok, e)
		}
	}
	return ok, len(codes) - len(ok)
}

// waitMedia waits (bounded) until every endpoint received media.
func waitMedia(eps []*endpoint, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for _, e := range eps {
			if e.FirstMedia().IsZero() {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *run) communes(n int) []string {
	var out []string
	for _, c := range r.srv.Codes {
		if len(c) == 5 && len(out) < n {
			out = append(out, c)
		}
	}
	return out
}

// nonCommand is every roster code but 22 (districts, then communes).
func (r *run) nonCommand(n int) []string {
	var out []string
	for _, c := range r.srv.Codes {
		if c != "22" && len(out) < n {
			out = append(out, c)
		}
	}
	return out
}

func (r *run) program(ctx context.Context) (*endpoint, error) {
	return r.dial(ctx, client.Options{Token: r.srv.Tokens["22"], Role: wire.RoleConsole, Publish: true, Layers: ProgramLayers})
}

func (r *run) fanout(ctx context.Context, res *Result) error {
	if _, err := r.program(ctx); err != nil {
		return fmt.Errorf("program publisher: %w", err)
	}
	subs := r.communes(r.cfg.N)
	if len(subs) < r.cfg.N {
		return fmt.Errorf("roster has %d communes, need %d", len(subs), r.cfg.N)
	}
	r.logf("fanout: %d subscribers joining", len(subs))
	eps, failed := r.dialMany(ctx, subs, false, 0)
	res.JoinFailed = failed
	res.Endpoints = len(eps)
	if m := waitMedia(eps, 60*time.Second); m > 0 {
		r.logf("fanout: %d subscribers without media after 60 s", m)
	}
	joinTimes(eps, res)
	return r.measure(ctx, res)
}

func (r *run) joinstorm(ctx context.Context, res *Result) error {
	if _, err := r.program(ctx); err != nil {
		return fmt.Errorf("program publisher: %w", err)
	}
	time.Sleep(2 * time.Second) // the program is flowing
	codes := r.nonCommand(r.cfg.N)
	r.logf("joinstorm: %d endpoints within %v", len(codes), r.cfg.JoinWithin)
	eps, failed := r.dialMany(ctx, codes, r.cfg.Publish, r.cfg.JoinWithin)
	res.JoinFailed = failed
	res.Endpoints = len(eps)
	if m := waitMedia(eps, 30*time.Second); m > 0 {
		res.JoinFailed += m
		r.logf("joinstorm: %d endpoints without media after 30 s", m)
	}
	joinTimes(eps, res)
	return r.measure(ctx, res)
}

func (r *run) province(ctx context.Context, res *Result) error {
	return r.publishing(ctx, res, "province", EndpointLayers)
}

// publishing is the province and nation scenarios: 22 publishes the program;
// N endpoints publish layers and receive program and floor; a leader's console
// watches Tiles of them at the low layer; the floor moves every FloorEvery.
func (r *run) publishing(ctx context.Context, res *Result, name string, layers []client.Layer) error {
	if _, err := r.program(ctx); err != nil {
		return fmt.Errorf("program publisher: %w", err)
	}
	codes := r.nonCommand(r.cfg.N)
	r.logf("%s: %d publishing endpoints joining", name, len(codes))
	eps, failed := r.dialManyWith(ctx, codes, client.Options{Publish: true, Layers: layers}, 0)
	res.JoinFailed = failed
	res.Endpoints = len(eps)
	console, err := r.dial(ctx, client.Options{Token: r.srv.StaffTok, Role: wire.RoleConsole})
	if err != nil {
		return fmt.Errorf("leader console: %w", err)
	}
	var tiles []wire.TileMsg
	for i := 0; i < r.cfg.Tiles && i < len(codes); i++ {
		tiles = append(tiles, wire.TileMsg{Code: codes[i], Visible: true, Size: "small"})
	}
	if _, err := console.Send(wire.TypeVisibility, wire.VisibilityMsg{Tiles: tiles}); err != nil {
		return err
	}
	floor := 0
	give := func() error {
		code := codes[len(codes)-1-floor%len(codes)] // communes first
		floor++
		_, err := console.Send(wire.TypeGiveFloor, wire.CodeMsg{Code: code})
		return err
	}
	if err := give(); err != nil {
		return err
	}
	if m := waitMedia(append(eps, console), 60*time.Second); m > 0 {
		r.logf("%s: %d endpoints without media after 60 s", name, m)
	}
	joinTimes(eps, res)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.FloorEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := give(); err != nil {
					r.logf("give_floor: %v", err)
				}
			}
		}
	}()
	err = r.measure(ctx, res)
	close(stop)
	<-done
	return err
}

func joinTimes(eps []*endpoint, res *Result) {
	var ds []time.Duration
	for _, e := range eps {
		if t := e.FirstMedia(); !t.IsZero() {
			ds = append(ds, t.Sub(e.start))
		}
	}
	res.JoinP50Ms = ms(sampleQuantile(ds, 0.5))
	res.JoinP99Ms = ms(sampleQuantile(ds, 0.99))
}

// measure waits for the warm-up, then takes the window's figures.
func (r *run) measure(ctx context.Context, res *Result) error {
	r.logf("warming up %v", r.cfg.Warmup)
	select {
	case <-time.After(r.cfg.Warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	// Counters, then CPU, at both ends: the two windows have the same length.
	f0, err := r.srv.Forward(ctx)
	if err != nil {
		return fmt.Errorf("server forward stats: %w", err)
	}
	p0, err := harness.ReadProc(r.srv.PID)
	if err != nil {
		return err
	}
	g0, _ := harness.ReadProc(0)
	pk0, ex0, d0 := r.meter.Packets.Load(), r.meter.Expected.Load(), r.meter.Delay.Snap()
	t0 := time.Now()
	var profErr chan error
	if r.cfg.CPUProfile != "" {
		profErr = make(chan error, 1)
		go func() { profErr <- r.srv.Profile(ctx, r.cfg.Duration, r.cfg.CPUProfile) }()
	}
	r.logf("measuring %v", r.cfg.Duration)
	var peakRSS int64
	deadline := t0.Add(r.cfg.Duration)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Second, time.Until(deadline))):
		}
		if p, err := harness.ReadProc(r.srv.PID); err == nil && p.RSS > peakRSS {
			peakRSS = p.RSS
		}
	}
	f1, err := r.srv.Forward(ctx)
	if err != nil {
		return err
	}
	p1, err := harness.ReadProc(r.srv.PID)
	if err != nil {
		return err
	}
	g1, _ := harness.ReadProc(0)
	el := time.Since(t0).Seconds()
	pk1, ex1, d1 := r.meter.Packets.Load(), r.meter.Expected.Load(), r.meter.Delay.Snap()
	if r.cfg.HeapProfile != "" {
		if err := r.srv.HeapProfile(ctx, r.cfg.HeapProfile); err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
	}
	res.Seconds = el
	res.ServerCores = (p1.CPU - p0.CPU).Seconds() / el
	res.ServerRSSMiB = float64(max(peakRSS, p1.RSS)) / (1 << 20)
	res.ServerPeakRSSMiB = float64(p1.PeakR) / (1 << 20)
	fp := f1.Packets - f0.Packets
	res.FwdPPS = float64(fp) / el
	res.FwdMbps = float64(f1.Bytes-f0.Bytes+12*fp) * 8 / el / 1e6
	if c := (p1.CPU - p0.CPU).Seconds(); c > 0 {
		res.PktsPerCPUSec = float64(fp) / c
	}
	if len(f1.DelayBuckets) == len(f0.DelayBuckets) && len(f1.DelayBounds) == len(f1.DelayBuckets) {
		q := func(p float64) float64 {
			total := f1.DelayBuckets[len(f1.DelayBuckets)-1] - f0.DelayBuckets[len(f0.DelayBuckets)-1]
			if total == 0 {
				return 0
			}
			rank := uint64(p * float64(total))
			for i := range f1.DelayBuckets {
				if f1.DelayBuckets[i]-f0.DelayBuckets[i] > rank {
					return f1.DelayBounds[i] * 1e6
				}
			}
			return f1.DelayBounds[len(f1.DelayBounds)-1] * 1e6
		}
		res.InServerP50Us, res.InServerP99Us, res.InServerP999Us = q(0.5), q(0.99), q(0.999)
	}
	d := d1.Sub(d0)
	res.E2EP50Ms, res.E2EP99Ms, res.E2EP999Ms = ms(d.Quantile(0.5)), ms(d.Quantile(0.99)), ms(d.Quantile(0.999))
	res.RecvPPS = float64(pk1-pk0) / el
	if ex := ex1 - ex0; ex > 0 {
		got := pk1 - pk0
		if got < ex {
			res.Loss = float64(ex-got) / float64(ex)
		}
	}
	res.ServerDropped = f1.Dropped - f0.Dropped
	res.GenCores = (g1.CPU - g0.CPU).Seconds() / el
	if profErr != nil {
		if err := <-profErr; err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
