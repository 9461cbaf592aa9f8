// Command loadgen measures opscenter under load with synthetic endpoints:
// real Pion WebRTC peers that speak the product's /ws protocol with real
// credentials (join tokens from `opscenter endpoint token --all --rotate`, a
// leader from `opscenter user add`). It builds and starts the server itself
// (pinned with taskset, fresh database), runs a scenario, prints a table and
// optionally writes the same figures as JSON, then stops everything.
//
//	go run ./cmd/loadgen -scenario fanout -n 50,190,400,800 -duration 30s
//	go run ./cmd/loadgen -scenario province -duration 60s -json out.json
//	go run ./cmd/loadgen -scenario joinstorm -n 190
//	go run ./cmd/loadgen -scenario nation -n 34,63 -duration 20s
//
// Scenarios: province (22 publishes a 1.5 Mbit/s 3-layer program, 190
// endpoints publish ~100/400/1200 kbit/s layers, a leader's console watches
// 49 low-layer tiles, the floor moves every 30 s); nation (a national node:
// 22 publishes the program, N = 63 child uplinks each publish a 1.5 Mbit/s
// 3-layer program and receive program and floor, a console watches all N at
// the low layer, the floor moves every 30 s); fanout (22 publishes, N
// communes receive the top layer + audio; with several N it stops at loss
// > 1%, e2e p99 > 20 ms or the generator above 0.9 core); joinstorm (N
// endpoints join within 1 s: time from signaling to first media); ceiling
// (no server: only the SFU's unavoidable work for fanout's N, an AES-GCM
// seal per subscriber key and sendmmsg to N loopback sockets, on the
// server's core; fanout's pkt/CPU-s over ceiling's is "% of the ceiling").
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/loadgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	if loadgen.CeilingSenderRequested() { // the ceiling scenario's sender, re-executed by loadgen.Run
		return loadgen.CeilingSenderMain(os.Stdin, os.Stdout)
	}
	scenario := flag.String("scenario", "fanout", "province, nation, fanout, joinstorm or ceiling")
	ns := flag.String("n", "", "endpoints (fanout: subscribers, comma-separated progression; default fanout 50,190,400,800, nation 63, others 190)")
	dur := flag.Duration("duration", 30*time.Second, "measurement window")
	warm := flag.Duration("warmup", 5*time.Second, "warm-up before measuring")
	fps := flag.Int("fps", 30, "video frame rate")
	floor := flag.Duration("floor-every", 30*time.Second, "province, nation: floor change interval")
	publish := flag.Bool("publish", false, "joinstorm: endpoints also publish")
	srvCPU := flag.Int("server-cpu", 0, "core for the server (taskset), -1 = unpinned")
	genCPU := flag.Int("gen-cpu", 1, "core for the generator (taskset), -1 = unpinned")
	jsonOut := flag.String("json", "", "write the figures as JSON to this file")
	mdOut := flag.String("markdown", "", "append the figures as a markdown table (header and rows) to this file")
	cpuProf := flag.String("cpuprofile", "", "write the server's CPU profile of the (last) measurement window here")
	heapProf := flag.String("heapprofile", "", "write the server's heap profile at the end of the (last) measurement window here")
	dbURL := flag.String("database-url", os.Getenv("OPSCENTER_DATABASE_URL"), "PostgreSQL for the server (empty: embedded, fresh temp data dir)")
	repo := flag.String("repo", ".", "opscenter module root (where go build runs)")
	keep := flag.Bool("keep", false, "keep the server's temp dir (logs)")
	quiet := flag.Bool("q", false, "no progress lines on stderr")
	keepGoing := flag.Bool("keep-going", false, "fanout: run every N even after a limit was reached")
	srvEnv := flag.String("server-env", "", "extra environment for the server process, comma-separated KEY=VALUE (e.g. GOMEMLIMIT=90MiB)")
	recording := flag.String("recording", "", "on or off: the server's recording.enabled (empty: its configuration, on by default)")
	flag.Parse()
	env := splitEnv(*srvEnv)
	switch *recording {
	case "":
	case "on", "off":
		env = append(env, "OPSCENTER_RECORDING_ENABLED="+strconv.FormatBool(*recording == "on"))
	default:
		return fmt.Errorf("bad -recording %q: on or off", *recording)
	}

	if *genCPU >= 0 && os.Getenv("LOADGEN_PINNED") == "" {
		// Re-exec under taskset so every thread of the generator is pinned.
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		if tp, err := exec.LookPath("taskset"); err == nil {
			env := append(os.Environ(), "LOADGEN_PINNED=1")
			return syscall.Exec(tp, append([]string{"taskset", "-c", strconv.Itoa(*genCPU), exe}, os.Args[1:]...), env)
		}
	}
	var nlist []int
	spec := *ns
	if spec == "" {
		spec = "190"
		switch *scenario {
		case "fanout":
			spec = "50,190,400,800"
		case "nation":
			spec = "63"
		}
	}
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -n %q", spec)
		}
		nlist = append(nlist, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(f string, a ...any) {
		if !*quiet {
			fmt.Fprintf(os.Stderr, "%s "+f+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
		}
	}
	var results []loadgen.Result
	for _, n := range nlist {
		cfg := loadgen.Config{Scenario: *scenario, N: n, Duration: *dur, Warmup: *warm, FPS: *fps,
			FloorEvery: *floor, Publish: *publish, CPUProfile: *cpuProf, HeapProfile: *heapProf, Logf: logf,
			Server: harness.Options{RepoDir: *repo, CPU: *srvCPU, DatabaseURL: *dbURL, KeepDir: *keep, Env: env}}
		logf("run %s N=%d", *scenario, n)
		r, err := loadgen.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("%s N=%d: %w", *scenario, n, err)
		}
		stopHere := false
		if *scenario == "fanout" {
			var why []string
			if r.Loss > 0.01 {
				why = append(why, "loss > 1%")
			}
			if r.E2EP99Ms > 20 {
				why = append(why, "e2e p99 > 20 ms")
			}
			if r.GenCores > 0.9 {
				why = append(why, "generator > 0.9 core (the generator is the limit)")
			}
			if len(why) > 0 {
				r.Limit = strings.Join(why, ", ")
				stopHere = true
			}
		}
		results = append(results, r)
		loadgen.WriteTable(os.Stdout, results[len(results)-1:])
		if rf := r.Recording; rf != nil {
			fmt.Printf("recorded: %d files, %d bytes; program %d files, %d bytes, %.1f s of media, %.2f MB/min; floor %d files, %d bytes\n",
				rf.Files, rf.Bytes, rf.ProgramFiles, rf.ProgramBytes, rf.ProgramSeconds, rf.ProgramMBPerMin, rf.FloorFiles, rf.FloorBytes)
		}
		if stopHere && !*keepGoing {
			logf("stopping the progression: %s", r.Limit)
			break
		}
	}
	fmt.Println()
	loadgen.WriteTable(os.Stdout, results)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *mdOut != "" {
		f, err := os.OpenFile(*mdOut, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintln(f, loadgen.MarkdownHeader)
		for _, r := range results {
			fmt.Fprintln(f, loadgen.MarkdownRow(r))
		}
	}
	return nil
}

func splitEnv(s string) []string {
	var out []string
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			out = append(out, kv)
		}
	}
	return out
}
