package harness

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/internal/config"
)

// Settings are the OPSCENTER_* overrides every server a harness starts gets,
// in a process (Start) or in this one (StartApp): HTTP on httpAddr (its public
// URL to match, for join links and Origin checks), metrics on metricsAddr,
// free media ports, and its state files (audit journal, live state,
// recordings) under dir, so parallel servers never share one.
func Settings(dir, httpAddr, metricsAddr string) []string {
	return []string{
		"OPSCENTER_HTTP_ADDR=" + httpAddr,
		"OPSCENTER_HTTP_PUBLIC_URL=http://" + httpAddr,
		"OPSCENTER_METRICS_ADDR=" + metricsAddr,
		"OPSCENTER_MEDIA_UDP_PORT=0",
		"OPSCENTER_MEDIA_TCP_PORT=0",
		"OPSCENTER_MEDIA_TURN_PORT=0",
		"OPSCENTER_DATABASE_JOURNAL_PATH=" + filepath.Join(dir, "audit.journal"),
		"OPSCENTER_LIVE_STATE_PATH=" + filepath.Join(dir, "live-state.json"),
		"OPSCENTER_RECORDING_DIR=" + filepath.Join(dir, "recordings"),
	}
}

// AppOptions say how to start a server in this process.
type AppOptions struct {
	Dir    string               // state files (Settings)
	DSN    string               // its database
	Mutate func(*config.Config) // edits the configuration last, if not nil
	Log    *slog.Logger
}

// StartApp runs opscenter in this process with Settings (a free HTTP port,
// metrics on a free port) on an existing database: what apptest gives tests.
func StartApp(ctx context.Context, o AppOptions) (*app.App, error) {
	// Pick the port first so the public URL matches it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := config.Load("", Settings(o.Dir, addr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if o.Mutate != nil {
		o.Mutate(&cfg)
	}
	a, err := app.Start(ctx, cfg, o.Log, app.Options{DSN: o.DSN})
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	return a, nil
}
