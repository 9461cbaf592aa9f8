package loadgen

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/internal/harness"
)

// TestSmokeFanout is the short run of the suite: 10 endpoints for 5 s
// against a freshly built server. It asserts that media flows and that every
// figure is produced; it does not judge speed (benchmarks do).
func TestSmokeFanout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := Run(ctx, Config{
		Scenario: "fanout", N: 10, Duration: 5 * time.Second, Warmup: time.Second,
		Server: harness.Options{RepoDir: repo, CPU: -1},
		Logf:   t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("smoke run took %v: %+v", time.Since(start), res)
	var tb bytes.Buffer
	WriteTable(&tb, []Result{res})
	t.Logf("\n%s", tb.String())
	if res.Endpoints != 10 || res.JoinFailed != 0 {
		t.Errorf("endpoints %d, failed joins %d", res.Endpoints, res.JoinFailed)
	}
	// Media flows: the server forwards and the endpoints receive, each at
	// least a fifth of the program's ~150 packets/s (audio + video).
	if res.FwdPPS < 10*30 || res.RecvPPS < 10*30 {
		t.Errorf("media does not flow: forwarded %.0f pkt/s, received %.0f pkt/s", res.FwdPPS, res.RecvPPS)
	}
	for name, v := range map[string]float64{
		"server cores": res.ServerCores, "server RSS": res.ServerRSSMiB, "forwarded Mbit/s": res.FwdMbps,
		"packets per CPU-second": res.PktsPerCPUSec, "in-server p50": res.InServerP50Us, "in-server p99": res.InServerP99Us,
		"e2e p50": res.E2EP50Ms, "e2e p99": res.E2EP99Ms, "join p50": res.JoinP50Ms, "join p99": res.JoinP99Ms,
		"generator cores": res.GenCores,
	} {
		if v <= 0 {
			t.Errorf("figure %q not produced (%v)", name, v)
		}
	}
	// The session is in progress and recording is on by default: the program
	// was recorded.
	if rf := res.Recording; rf == nil || rf.ProgramFiles == 0 || rf.ProgramBytes == 0 || rf.ProgramSeconds <= 0 {
		t.Errorf("program not recorded: %+v", rf)
	}
	// Loss depends on what else the machine runs; it is logged, not judged.
	t.Logf("loss %.4f, e2e p99 %.1f ms, in-server p99 %.0f µs", res.Loss, res.E2EP99Ms, res.InServerP99Us)
	if row := MarkdownRow(res); !strings.HasPrefix(row, "| fanout | 10 |") {
		t.Errorf("markdown row %q", row)
	}
}

// TestNationScenario runs the national node's scenario small: 6 child
// uplinks for 4 s, the floor moving every second. Every child publishes and
// joins; the server forwards each child the program and (all but the floor's
// holder) the floor, and the leader's console its 6 tiles.
func TestNationScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	res, err := Run(ctx, Config{
		Scenario: "nation", N: n, Duration: 4 * time.Second, Warmup: time.Second, FloorEvery: time.Second,
		Server: harness.Options{RepoDir: repo, CPU: -1},
		Logf:   t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	WriteTable(&tb, []Result{res})
	t.Logf("\n%s", tb.String())
	if res.Scenario != "nation" || res.N != n || res.Endpoints != n || res.JoinFailed != 0 {
		t.Errorf("scenario %q N %d: endpoints %d, failed joins %d", res.Scenario, res.N, res.Endpoints, res.JoinFailed)
	}
	// Audio alone: the program's and the floor's, 50 packets/s each, to every
	// child; the program alone would be half of this.
	if min := float64(n) * 100; res.FwdPPS < min || res.RecvPPS < min {
		t.Errorf("program and floor not both forwarded: forwarded %.0f pkt/s, received %.0f pkt/s, want ≥ %.0f", res.FwdPPS, res.RecvPPS, min)
	}
	if res.ServerCores <= 0 || res.PktsPerCPUSec <= 0 || res.ServerRSSMiB <= 0 {
		t.Errorf("figures not produced: %+v", res)
	}
	if row := MarkdownRow(res); !strings.HasPrefix(row, "| nation | 6 | 6 |") {
		t.Errorf("markdown row %q", row)
	}
}
