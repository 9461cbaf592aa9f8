// Package app wires opscenter together: config → store → media → signaling → web.
// main uses it, and so do the in-process tests, so both run the same server.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/opscenter/opscenter/configs"
	"github.com/opscenter/opscenter/eventbus"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/internal/pgembed"
	"github.com/opscenter/opscenter/journal"
	"github.com/opscenter/opscenter/recording"
	"github.com/opscenter/opscenter/sfu"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/uplink"
	"github.com/opscenter/opscenter/web"
)

// App is a running opscenter.
type App struct {
	Config  config.Config
	Store   *store.Store
	Hub     *eventbus.Hub
	Web     *web.Server
	Live    *signaling.Service
	Media   *sfu.Engine // the media engine Live drives (built here, closed after Live)
	Journal *journal.Journal
	Log     *slog.Logger
	DSN     string
	// Registry holds the app's metrics (served on metrics.addr).
	Registry *prometheus.Registry

	// Recordings runs the video record; the media plane feeds it (see package recording).
	Recordings *recording.Manager
	// MediaRecorder feeds Recordings from the media plane (nil when recording is off).
	MediaRecorder *MediaRecorder
	// Uplink is the link to the parent node (nil for a root node: no parent configured).
	Uplink *uplink.Uplink

	httpLn     net.Listener
	httpSrv    *http.Server
	metricsLn  net.Listener
	metricsSrv *http.Server
	pg         *pgembed.Server
	cancel     context.CancelFunc
	done       chan struct{}

	journalDone chan struct{}
	stopOnce    sync.Once
}

// Options are start-time choices that are not configuration.
type Options struct {
	// DSN, when set, overrides the configured database (tests pass their own).
	DSN string
	// Listener, when set, is an HTTP listener the caller serves (a standby
	// pair's Node): Start serves nothing itself and hands its handler to Mount.
	Listener net.Listener
	Mount    func(http.Handler)
	// LiveStore, when set, keeps the live state instead of the store (a
	// standby pair's, fenced by the node's term).
	LiveStore signaling.LiveStateStore
}

// Start brings opscenter up and serves HTTP in the background. Stop undoes it.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger, opt Options) (*App, error) {
	a := &App{Config: cfg, Log: log, done: make(chan struct{})}
	if cfg.Live.StatePath != "" {
		log.Warn("live.state_path is ignored: the live state is kept in PostgreSQL", "state_path", cfg.Live.StatePath)
	}
	ok := false
	defer func() {
		if !ok {
			a.Stop(context.Background())
		}
	}()
	var err error
	if a.DSN, err = a.database(ctx, opt); err != nil {
		return nil, err
	}
	if a.Store, err = store.Open(ctx, a.DSN, cfg.Database.MaxConns); err != nil {
		return nil, err
	}
	if err := LoadRoster(ctx, a.Store, cfg.Roster, log); err != nil {
		return nil, err
	}
	if a.Journal, err = journal.Open(cfg.Database.JournalPath, a.Store, log); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.Hub = eventbus.New(a.Store, a.DSN, log)
	a.journalDone = make(chan struct{})
	go func() { a.Journal.Run(runCtx); close(a.journalDone) }()
	go func() { a.Hub.Run(runCtx); close(a.done) }()

	reg := prometheus.NewRegistry()
	a.Registry = reg
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	j := a.Journal
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "opscenter_audit_journal_pending",
		Help: "Live-session audit events queued on disk, waiting for PostgreSQL."}, func() float64 { return float64(j.Pending()) }))
	if a.Recordings, err = startRecording(ctx, cfg.Recording, a.Store, a.Journal, reg, log); err != nil {
		return nil, err
	}
	var rec signaling.Recorder
	if cfg.Recording.Enabled && a.Recordings != nil {
		a.MediaRecorder = &MediaRecorder{Manager: a.Recordings, Log: log}
		rec = a.MediaRecorder
	}
	var turn signaling.TURN
	if a.Media, turn, err = startMedia(cfg.Media, log); err != nil {
		return nil, err
	}
	// The media plane's forwarding counters and in-server delay.
	if err := reg.Register(a.Media.Collector()); err != nil {
		return nil, fmt.Errorf("media metrics: %w", err)
	}
	var liveStore signaling.LiveStateStore = a.Store
	if opt.LiveStore != nil {
		liveStore = opt.LiveStore
	}
	if a.Live, err = signaling.New(ctx, signaling.Deps{Store: a.Store, Audit: a.Journal, Hub: a.Hub, Log: log, Registry: reg,
		LiveStore: liveStore,
		Recorder:  rec,
		Media:     mediaEngine{a.Media},
		TURN:      turn,
		Config: signaling.Config{PublicURL: cfg.HTTP.PublicURL, AllowedOrigins: cfg.HTTP.AllowedOrigins,
			OutageIncidentAfter: cfg.Live.OutageIncidentAfter, RecordPrivateLine: cfg.Recording.PrivateLine,
			NodeURLs: cfg.NodeURLsOrPublic(), RootCode: cfg.Roster.ProvinceCode}}); err != nil {
		return nil, err
	}
	connectMedia(a.Media, a.Live.MediaHooks())
	log.Info("media listening", "udp", a.Media.UDPPort(), "tcp", a.Media.TCPPort(), "turn", a.Media.TURNPort())
	a.Web = web.New(web.Deps{Store: a.Store, Hub: a.Hub, Config: cfg, Log: log, Registry: reg,
		Presence: a.Live, Live: a.Live, Ingest: a.Live})

	if opt.Listener != nil {
		a.httpLn = opt.Listener
		opt.Mount(a.Web.Handler())
	} else if err := a.serveHTTP(); err != nil {
		return nil, err
	}
	if err := a.serveMetrics(); err != nil {
		return nil, err
	}
	if err := a.startUplink(reg); err != nil {
		return nil, err
	}
	log.Info("opscenter serving", "http", a.httpLn.Addr().String(), "public_url", cfg.HTTP.PublicURL)
	ok = true
	return a, nil
}

// serveHTTP listens on http.addr and serves the web handler.
func (a *App) serveHTTP() error {
	cfg, log := a.Config, a.Log
	var err error
	if a.httpLn, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	a.httpSrv = &http.Server{Handler: a.Web.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		var err error
		if cfg.HTTP.TLSCert != "" {
			err = a.httpSrv.ServeTLS(a.httpLn, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		} else {
			err = a.httpSrv.Serve(a.httpLn)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// database returns the DSN to use, starting the embedded server when none is given,
// and runs the migrations.
func (a *App) database(ctx context.Context, opt Options) (string, error) {
	dsn := opt.DSN
	if dsn == "" {
		dsn = a.Config.Database.URL
	}
	if dsn == "" {
		pg, err := pgembed.Start(ctx, pgembed.Options{
			DataDir: a.Config.Database.DataDir, FallbackDir: a.Config.Database.FallbackDataDir, Logger: a.Log})
		if err != nil {
			return "", fmt.Errorf("embedded PostgreSQL: %w", err)
		}
		a.pg = pg
		if err := EnsureDatabase(ctx, pg); err != nil {
			return "", err
		}
		dsn = pg.DSN("opscenter")
	}
	err := store.Migrate(ctx, dsn, func(seq int32, name string) {
		a.Log.Info("applying migration", "seq", seq, "name", name)
	})
	return dsn, err
}

// serveMetrics starts the /metrics listener, when one is configured.
func (a *App) serveMetrics() error {
	addr := a.Config.Metrics.Addr
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (metrics.addr): %w", addr, err)
	}
	a.metricsLn = ln
	a.metricsSrv = &http.Server{Handler: a.Web.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := a.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("metrics server stopped", "err", err)
		}
	}()
	a.Log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// MetricsURL is the URL of /metrics, or "" when metrics are off.
func (a *App) MetricsURL() string {
	if a.metricsLn == nil {
		return ""
	}
	return "http://" + a.metricsLn.Addr().String() + "/metrics"
}

// HTTPAddr is the address actually listened on (port 0 picks a free one).
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// URL is the base URL of the running server.
func (a *App) URL() string {
	scheme := "http"
	if a.Config.HTTP.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + a.HTTPAddr()
}

// Stop shuts down in reverse order and stops the embedded database last.
func (a *App) Stop(ctx context.Context) {
	a.stopOnce.Do(func() { a.stop(ctx, false) })
}

// Kill stops the app the way a crash would look to its clients and its state
// files: connections are cut without close frames, and the live state file and
// the journal are left as they are (tests of kill -9 recovery).
func (a *App) Kill() {
	a.stopOnce.Do(func() { a.stop(context.Background(), true) })
}

func (a *App) stop(ctx context.Context, crash bool) {
	if a.Uplink != nil {
		a.Uplink.Close() // first: the parent sees this node leave, not vanish
	}
	if a.Live != nil {
		a.Live.FreezeState() // what follows is tear-down, not a change of the session
	}
	if crash && a.httpSrv != nil {
		_ = a.httpSrv.Close()
	} else if a.httpSrv != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := a.httpSrv.Shutdown(sctx); err != nil {
			_ = a.httpSrv.Close()
		}
		cancel()
	}
	if a.metricsSrv != nil {
		_ = a.metricsSrv.Close()
	}
	if a.Live != nil {
		if err := a.Live.Close(); err != nil {
			a.Log.Error("stop live session", "err", err)
		}
	}
	if a.Media != nil { // after Live: its connections close their peers first
		if err := a.Media.Close(); err != nil {
			a.Log.Error("stop media", "err", err)
		}
	}
	if a.Recordings != nil {
		a.Recordings.Close() // media has stopped: finish the files and close their rows
	}
	if a.cancel != nil {
		a.cancel()
		<-a.done
		if a.journalDone != nil {
			<-a.journalDone
		}
	}
	if a.Journal != nil {
		if err := a.Journal.Close(); err != nil {
			a.Log.Error("close audit journal", "err", err)
		}
	}
	if a.Store != nil {
		a.Store.Close()
	}
	if a.pg != nil {
		if err := a.pg.Stop(ctx); err != nil {
			a.Log.Error("stop PostgreSQL", "err", err)
		}
	}
}

// MediaConfig turns the media section of the config into the engine's config.
func MediaConfig(m config.Media) sfu.Config {
	c := sfu.DefaultConfig()
	c.UDPPort, c.TCPPort = m.UDPPort, m.TCPPort
	c.PublicIPs = m.PublicIPs
	c.IncludeLoopback = m.IncludeLoopback
	if len(m.NetworkTypes) > 0 {
		c.NetworkTypes = m.NetworkTypes
	}
	c.Interfaces = m.Interfaces
	c.FanoutSpread = m.FanoutSpread
	c.TURN.Enabled, c.TURN.Port = m.TURN.Enabled, m.TURN.Port
	c.TURN.Secret, c.TURN.Username, c.TURN.Password = m.TURN.Secret, m.TURN.Username, m.TURN.Password
	if m.TURN.Realm != "" {
		c.TURN.Realm = m.TURN.Realm
	}
	return c
}

// LoadRoster loads the configured roster file, or the embedded one for the date.
func LoadRoster(ctx context.Context, st *store.Store, rc config.Roster, log *slog.Logger) error {
	var f fs.File
	var err error
	name := rc.File
	if name == "" {
		name = fmt.Sprintf("roster/%s-%s.tsv", rc.ProvinceCode, rc.Date)
		f, err = configs.Rosters.Open(name)
	} else {
		f, err = os.Open(name)
	}
	if err != nil {
		return fmt.Errorf("roster %s: %w", name, err)
	}
	defer f.Close()
	entries, err := store.ParseRoster(f)
	if err != nil {
		return fmt.Errorf("roster %s: %w", name, err)
	}
	res, err := st.LoadRoster(ctx, rc.Date, entries)
	if err != nil {
		return err
	}
	log.Info("roster loaded", "file", name, "date", rc.Date, "endpoints", len(entries),
		"added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged)
	return nil
}
