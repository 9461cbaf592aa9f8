// Command soak runs opscenter for a long time under a full province's load and checks
// that it does not leak: 190 synthetic endpoints (13 districts + 177 communes)
// publishing simulcast video and audio, the command room publishing the program, a
// leader's console moving the floor, and churn of a few joins and leaves per minute.
// It scrapes the server's /metrics (go_goroutines, go_memstats_heap_alloc_bytes,
// process_resident_memory_bytes) after a warm-up and at the end, and fails (exit 1)
// when goroutines moved more than 2%, the heap more than 20%, or RSS grew by 20 MiB or
// more per 30 minutes.
//
// By default it builds ./cmd/opscenter, starts a private PostgreSQL and the server in
// a temporary folder, and removes them afterwards (-keep keeps the folder and the
// server log). With -url it soaks a server that runs already (then -tokens and the
// leader's credentials are needed).
//
//	go run ./cmd/soak -duration 30m
//	SOAK_DURATION=5m SOAK_ENDPOINTS=60 ./scripts/soak.sh
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	def := 30 * time.Minute
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak: SOAK_DURATION:", err)
			return 2
		}
		def = d
	}
	var o Options
	flag.DurationVar(&o.Duration, "duration", def, "how long to run after the warm-up (env SOAK_DURATION)")
	flag.IntVar(&o.Endpoints, "n", envInt("SOAK_ENDPOINTS", 190), "synthetic endpoints (env SOAK_ENDPOINTS; the roster has 190 besides the command room)")
	flag.Float64Var(&o.ChurnPerMin, "churn", 5, "joins and leaves per minute")
	flag.DurationVar(&o.FloorEvery, "floor-every", 30*time.Second, "the leader gives the floor to the next endpoint this often (0: never)")
	flag.IntVar(&o.FPS, "fps", 5, "video frame rate of the synthetic endpoints")
	flag.DurationVar(&o.Warmup, "warmup", 5*time.Minute, "run (with churn and floor changes) after everyone joined before the start figures: RSS settles in the first minutes as buffers and the GC's heap goal grow to their working size")
	flag.DurationVar(&o.Window, "window", 20*time.Second, "scrape window for each of the start and end figures")
	flag.StringVar(&o.URL, "url", "", "soak a running server at this base URL (default: start one)")
	flag.StringVar(&o.MetricsURL, "metrics-url", "http://127.0.0.1:9090/metrics", "with -url: the server's /metrics (its metrics.addr listener)")
	flag.StringVar(&o.TokensCSV, "tokens", "", "with -url: CSV from `opscenter endpoint token --all --rotate`")
	flag.StringVar(&o.LeaderUser, "leader-user", "", "with -url: a leader's login")
	flag.StringVar(&o.LeaderPassword, "leader-password", os.Getenv("SOAK_LEADER_PASSWORD"), "with -url: the leader's password (env SOAK_LEADER_PASSWORD)")
	flag.StringVar(&o.Repo, "repo", ".", "module root, where go build runs")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary folder (server log, data)")
	flag.StringVar(&o.JSON, "json", "", "also write the figures as JSON to this file")
	flag.StringVar(&o.ProfilePrefix, "profiles", "", "save the server's goroutine and heap profiles at start and end as PREFIX-NAME-WHEN.txt")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Soak(ctx, o, logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	fmt.Println(rep.Text())
	if o.JSON != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.JSON, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
		}
	}
	if len(rep.Failures) > 0 {
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s soak: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}
