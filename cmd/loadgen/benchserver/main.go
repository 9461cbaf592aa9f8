// Command benchserver is the server the load generator measures: exactly
// opscenter's app.Start (what `opscenter serve` runs, configured the same way
// from OPSCENTER_* variables), plus a second, loopback-only HTTP listener for
// the benchmark: /debug/pprof/ and /sfu/forward (the media plane's forwarding
// counters and in-server delay histogram, sfu.Engine.ForwardStats). It is not
// a product binary; cmd/loadgen builds and starts it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/internal/config"
)

func main() {
	debugAddr := flag.String("debug-addr", "127.0.0.1:0", "loopback address for /debug/pprof and /sfu/forward")
	flag.Parse()
	if err := run(*debugAddr); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		os.Exit(1)
	}
}

func run(debugAddr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		return err
	}
	lvl := slog.LevelWarn
	if cfg.Log.Level == "debug" {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	a, err := app.Start(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Stop(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/sfu/forward", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Media.ForwardStats())
	})
	ln, err := net.Listen("tcp", debugAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	// The generator waits for this line.
	fmt.Printf("benchserver ready http=%s debug=%s pid=%d\n", cfg.HTTP.Addr, ln.Addr(), os.Getpid())
	<-ctx.Done()
	return nil
}
