package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/journal"
	"github.com/opscenter/opscenter/store"
)

// ErrFenced ends a process that was active and found, after losing its lock
// connection, that the standby had taken over: it must not act as active.
var ErrFenced = errors.New("this process lost the node to its standby")

// Node is one process of a node: the App alone, or, with standby.enabled, one
// of a standby pair. The pair shares a PostgreSQL; the process holding the
// node's advisory lock (store.NodeLock) runs the App, the other serves only
// /healthz, /readyz and 503 answers naming the active one, and starts the App
// when it wins the lock.
type Node struct {
	cfg config.Config
	log *slog.Logger
	opt Options

	app     atomic.Pointer[App]
	active  atomic.Bool
	handler atomic.Pointer[http.Handler] // the App's, once active

	// Standby pair only.
	lock      *store.NodeLock
	st        *store.Store // reads the active process's address
	activeURL atomic.Pointer[string]
	ln        net.Listener
	srv       *http.Server
	metrics   *http.Server // the standby's /metrics (opscenter_active 0)
	fenced    chan struct{}
	fenceOnce sync.Once
	cancel    context.CancelFunc
	loopDone  chan struct{}
	stopOnce  sync.Once

	journalStop func() // ends the standby's drain of this process's journal (nil: none)

	// Takeover timing, for logs; the last lock warning (warnLock). Loop only.
	lockedAt, servingAt, lastLockWarn time.Time
}

// StartNode starts this process: the App at once without standby, or the
// election with it (the App starts when this process holds the lock).
func StartNode(ctx context.Context, cfg config.Config, log *slog.Logger, opt Options) (*Node, error) {
	n := &Node{cfg: cfg, log: log, opt: opt, fenced: make(chan struct{})}
	if !cfg.Standby.Enabled {
		a, err := Start(ctx, cfg, log, opt)
		if err != nil {
			return nil, err
		}
		n.app.Store(a)
		n.active.Store(true)
		a.Registry.MustRegister(n.activeGauge())
		return n, nil
	}
	if err := n.startPair(ctx); err != nil {
		n.Stop(context.Background())
		return nil, err
	}
	return n, nil
}

// App is the running App, nil while standby.
func (n *Node) App() *App { return n.app.Load() }

// Active says whether this process is the node's active one.
func (n *Node) Active() bool { return n.active.Load() }

// Fenced is closed when this process lost the node to the other one; the
// caller stops it (opscenter serve exits).
func (n *Node) Fenced() <-chan struct{} { return n.fenced }

// URL is this process's base URL.
func (n *Node) URL() string {
	if n.ln == nil {
		return n.App().URL()
	}
	scheme := "http"
	if n.cfg.HTTP.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + n.ln.Addr().String()
}

func (n *Node) startPair(ctx context.Context) error {
	dsn := n.opt.DSN
	if dsn == "" {
		dsn = n.cfg.Database.URL
	}
	n.opt.DSN = dsn
	if err := store.Migrate(ctx, dsn, nil); err != nil { // node_active must exist
		return err
	}
	var err error
	if n.st, err = store.Open(ctx, dsn, 2); err != nil {
		return err
	}
	n.lock = store.NewNodeLock(dsn)
	if n.ln, err = net.Listen("tcp", n.cfg.HTTP.Addr); err != nil {
		return fmt.Errorf("listen on %s: %w", n.cfg.HTTP.Addr, err)
	}
	n.opt.Listener = n.ln
	n.opt.Mount = func(h http.Handler) { n.handler.Store(&h) }

	// The first try is synchronous: the first process of a pair is active when
	// StartNode returns.
	if err := n.tryPromote(ctx); err != nil {
		return err
	}
	if !n.active.Load() {
		n.refreshActiveURL(ctx)
		if err := n.serveStandbyMetrics(); err != nil {
			return err
		}
		n.drainJournal()
		n.log.Info("opscenter standby: another process is active", "active_url", n.activeURLOr(""),
			"http", n.ln.Addr().String())
	}
	// Served only now, so the first answer already says which process is active.
	n.srv = &http.Server{Handler: n, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		var err error
		if n.cfg.HTTP.TLSCert != "" {
			err = n.srv.ServeTLS(n.ln, n.cfg.HTTP.TLSCert, n.cfg.HTTP.TLSKey)
		} else {
			err = n.srv.Serve(n.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()
	lctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.loopDone = cancel, make(chan struct{})
	go n.loop(lctx)
	return nil
}

// loop polls the lock: the standby tries to take it, the active checks it holds it.
func (n *Node) loop(ctx context.Context) {
	defer close(n.loopDone)
	t := time.NewTicker(n.cfg.Standby.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.fenced:
			return
		case <-t.C:
		}
		if n.active.Load() {
			n.checkHold(ctx)
			continue
		}
		if err := n.tryPromote(ctx); err != nil {
			n.log.Error("opscenter standby: could not start as active", "err", err)
			n.fence()
			return
		}
		if !n.active.Load() {
			n.refreshActiveURL(ctx)
		}
	}
}

// tryPromote takes the lock if it is free and starts the App.
func (n *Node) tryPromote(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ok, err := n.lock.TryLock(cctx)
	if err == nil && ok {
		// The lock is free, but the last active process may be alive and only cut
		// off from PostgreSQL for a moment (a restart of the database): then it
		// keeps the node, and takes its lock back itself.
		if act, found, _ := n.st.ActiveNode(cctx); found && act.URL != n.cfg.AdvertiseURLOrPublic() && stillActive(cctx, act.URL) {
			n.lock.Release(cctx)
			n.warnLock("opscenter standby: the lock is free but the active process still answers; leaving it the node",
				"active_url", act.URL)
			return nil
		}
		err = n.lock.Claim(cctx, n.cfg.AdvertiseURLOrPublic())
	}
	if err != nil {
		n.warnLock("opscenter standby: node lock; trying again", "err", err)
		return nil // PostgreSQL away: try again on the next poll
	}
	if !ok {
		return nil
	}
	n.lockedAt = time.Now()
	n.log.Info("opscenter: this process holds the node's lock; starting as active", "term", n.lock.Term())
	if n.metrics != nil { // the App serves metrics.addr from now on
		_ = n.metrics.Close()
		n.metrics = nil
	}
	n.stopJournal() // the App opens the journal itself
	opt := n.opt
	opt.LiveStore = termLiveStore{n.st, n.lock.Term()}
	a, err := Start(ctx, n.cfg, n.log, opt)
	if err != nil {
		n.lock.Close(context.Background())
		return err
	}
	a.Registry.MustRegister(n.activeGauge())
	n.app.Store(a)
	n.active.Store(true)
	n.servingAt = time.Now()
	n.log.Info("opscenter: active", "term", n.lock.Term(), "start_took", n.servingAt.Sub(n.lockedAt).Round(time.Millisecond))
	return nil
}

// checkHold verifies the active process still holds the lock. A lost lock
// connection (PostgreSQL restarted or unreachable) is not yet a lost node: the
// room goes on, and the lock is taken back as soon as PostgreSQL answers,
// unless the standby took over meanwhile; then this process is fenced.
func (n *Node) checkHold(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if n.lock.Held() {
		if err := n.lock.Check(cctx); err != nil {
			n.log.Error("opscenter: node lock connection lost; the room goes on while it is taken back", "err", err)
		}
		return
	}
	err := n.lock.Reacquire(cctx)
	switch {
	case err == nil:
		n.log.Info("opscenter: node lock taken back; still active", "term", n.lock.Term())
	case errors.Is(err, store.ErrSuperseded):
		n.refreshActiveURL(ctx) // the 503s name the new active process
		n.log.Error("opscenter: the standby took over while the lock was lost; stopping", "term", n.lock.Term(),
			"active_url", n.activeURLOr(""))
		n.fence()
	default:
		n.warnLock("opscenter: node lock not taken back yet", "err", err)
	}
}

// stillActive asks the last active process whether it is alive and active
// (its /healthz answers, and not as a standby), within a second.
func stillActive(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct{ Role string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body) != nil {
		return false
	}
	return body.Role != "standby"
}

// warnLock logs a failed lock attempt at most every 30 s (they come every poll
// while PostgreSQL is away).
func (n *Node) warnLock(msg string, args ...any) {
	if time.Since(n.lastLockWarn) >= 30*time.Second {
		n.lastLockWarn = time.Now()
		n.log.Warn(msg, args...)
	}
}

// fence stops acting as active: joins and the API answer 503 at once, the App
// stops, and Fenced is closed for the caller to exit.
func (n *Node) fence() {
	n.fenceOnce.Do(func() {
		n.active.Store(false)
		n.handler.Store(nil)
		if a := n.app.Swap(nil); a != nil {
			go func() { a.Stop(context.Background()); close(n.fenced) }()
			return
		}
		close(n.fenced)
	})
}

// drainJournal writes the audit events an earlier run of this process queued
// while PostgreSQL was away (it was active, died, and came back as standby),
// so they do not wait for the next promotion.
func (n *Node) drainJournal() {
	j, err := journal.Open(n.cfg.Database.JournalPath, n.st, n.log)
	if err != nil {
		n.log.Error("opscenter standby: audit journal", "err", err)
		return
	}
	if j.Pending() == 0 {
		_ = j.Close()
		return
	}
	n.log.Info("opscenter standby: writing audit events left by this process's earlier run", "pending", j.Pending())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { j.Run(ctx); close(done) }()
	n.journalStop = func() {
		cancel()
		<-done
		if err := j.Close(); err != nil {
			n.log.Error("opscenter standby: close audit journal", "err", err)
		}
	}
}

// stopJournal ends the standby's drain of the journal, if any.
func (n *Node) stopJournal() {
	if n.journalStop != nil {
		n.journalStop()
		n.journalStop = nil
	}
}

func (n *Node) refreshActiveURL(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	act, ok, err := n.st.ActiveNode(cctx)
	if err == nil && ok {
		n.activeURL.Store(&act.URL)
	}
}

func (n *Node) activeURLOr(def string) string {
	if p := n.activeURL.Load(); p != nil {
		return *p
	}
	return def
}

// ServeHTTP is the pair's handler: the App's while active, the standby's otherwise.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := n.handler.Load(); h != nil && n.active.Load() {
		(*h).ServeHTTP(w, r)
		return
	}
	active := n.activeURLOr("")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/healthz" {
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "role": "standby"})
		return
	}
	// A load balancer routes around a standby (readyz), and a client that came
	// here anyway learns where the active one is (WebSocket clients do not follow
	// redirects, so a 503 with the address, not a 307).
	if active != "" {
		w.Header().Set(ActiveURLHeader, active)
	}
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.URL.Path == "/readyz" {
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "standby", "active_url": active})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "standby",
		"message": "this process is the node's standby; use the active one", "active_url": active})
}

// termLiveStore keeps the live state only while this process's term is the
// node's: once the standby has taken over, an old active cannot overwrite it.
type termLiveStore struct {
	st   *store.Store
	term int64
}

func (t termLiveStore) LoadLiveState(ctx context.Context) ([]byte, error) {
	return t.st.LoadLiveState(ctx)
}

func (t termLiveStore) SaveLiveState(ctx context.Context, doc []byte) error {
	return t.st.SaveLiveStateAsTerm(ctx, t.term, doc)
}

// ActiveURLHeader names the active process in a standby's 503 answers.
const ActiveURLHeader = "X-Opscenter-Active-URL"

// serveStandbyMetrics serves opscenter_active 0 on metrics.addr while standby.
func (n *Node) serveStandbyMetrics() error {
	addr := n.cfg.Metrics.Addr
	if addr == "" {
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.activeGauge())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (metrics.addr): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	n.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = n.metrics.Serve(ln) }()
	return nil
}

// Stop stops the App (if active) and leaves the node, releasing the lock.
func (n *Node) Stop(ctx context.Context) {
	n.stopOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
			<-n.loopDone
		}
		n.active.Store(false)
		if a := n.app.Swap(nil); a != nil {
			a.Stop(ctx)
		}
		if n.srv != nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := n.srv.Shutdown(sctx); err != nil {
				_ = n.srv.Close()
			}
			cancel()
		} else if n.ln != nil { // StartNode failed before serving
			_ = n.ln.Close()
		}
		if n.metrics != nil {
			_ = n.metrics.Close()
		}
		n.stopJournal()
		if n.lock != nil {
			n.lock.Close(ctx) // after the App: the standby starts only once this one has stopped
		}
		if n.st != nil {
			n.st.Close()
		}
	})
}

func (n *Node) activeGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "opscenter_active",
		Help: "1 while this process is its node's active one, 0 while standby (a standby pair)."},
		func() float64 { return boolFloat(n.active.Load()) })
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
