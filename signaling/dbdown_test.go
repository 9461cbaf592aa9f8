package signaling_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/pgembed"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/wire"
)

// While PostgreSQL is stopped, live actions still apply at once (the media
// switches), their audit events queue on disk, and when PostgreSQL returns they
// are written in order with the hash chain intact.
func TestLiveActionsWhileDatabaseDown(t *testing.T) {
	ctx := context.Background()
	pg := startOwnPostgres(t, "live-dbdown-")
	a := apptest.StartDSN(t, pg.DSN(), nil)
	l := &live{t: t, a: a, leader: a.User("lead", auth.RoleLeader)}
	l.startSession()
	codes := l.communes(3)
	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	_ = cmd
	lead := l.dial(l.leader.Token, wire.RoleConsole, false)
	eps := l.dialMany(codes)
	watcher := eps[codes[2]]

	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: codes[0]})
	waitT(t, "floor to "+codes[0], 15*time.Second, func() bool {
		return !watcher.Recorder().FirstFrom(signaling.SlotFloorVideo, codes[0], time.Time{}).IsZero()
	})

	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("PostgreSQL stopped")

	// The floor moves and the media follows, with the database away.
	t0 := time.Now()
	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: codes[1]})
	d := waitT(t, "floor media switch with the database down", 10*time.Second, func() bool {
		return !watcher.Recorder().FirstFrom(signaling.SlotFloorVideo, codes[1], t0).IsZero()
	})
	t.Logf("floor switch with PostgreSQL down: media switched in %v (goal 1 s, limit 5 s)", d)
	if d > 5*time.Second {
		t.Errorf("floor switch took %v with the database down", d)
	}
	t1 := time.Now()
	send(t, lead, wire.TypeMute, wire.CodeMsg{Code: codes[2]})
	if _, err := watcher.WaitMessage(wire.TypeMute, t1, 5*time.Second, nil); err != nil {
		t.Fatalf("mute did not apply with the database down: %v", err)
	}
	t.Logf("mute applied in %v with PostgreSQL down", time.Since(t1))
	send(t, lead, wire.TypeRevokeFloor, nil)
	if _, err := watcher.WaitMessage(wire.TypeFloor, time.Now().Add(-time.Second), 5*time.Second, func(e wire.Envelope) bool {
		return string(e.Payload) == "{}" || string(e.Payload) == `{"code":null}`
	}); err != nil {
		t.Fatalf("revoke did not apply: %v", err)
	}
	if e, ok := lead.LastError(); ok {
		t.Fatalf("the leader got an error while the database was down: %+v", e)
	}
	waitT(t, "three events queued", 5*time.Second, func() bool { return a.Journal.Pending() == 3 })
	raw := scrapeMetrics(t, a.MetricsURL())
	t.Logf("journal pending: %d; /metrics gauge at 3: %v", a.Journal.Pending(), strings.Contains(raw, "opscenter_audit_journal_pending 3"))

	// Thirty seconds in production; a few here (the behaviour does not depend on it).
	time.Sleep(3 * time.Second)
	pg.restart()
	t.Logf("PostgreSQL back after %v", time.Since(down))
	back := time.Now()
	waitT(t, "journal drained", 30*time.Second, func() bool { return a.Journal.Pending() == 0 })
	t.Logf("journal drained %v after PostgreSQL returned", time.Since(back))
	if raw := scrapeMetrics(t, a.MetricsURL()); !strings.Contains(raw, "opscenter_audit_journal_pending 0") {
		t.Errorf("/metrics lacks opscenter_audit_journal_pending 0")
	}

	evs, err := a.Store.EventsAfter(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		switch e.Action {
		case "floor.given", "endpoint.muted", "floor.revoked":
			got = append(got, e.Action+":"+e.EntityID)
		}
	}
	want := []string{"floor.given:" + codes[0], "floor.given:" + codes[1], "endpoint.muted:" + codes[2], "floor.revoked:" + codes[1]}
	if len(got) != len(want) {
		t.Fatalf("audit events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("audit events %v, want %v (in order)", got, want)
		}
	}
	rep, err := a.Store.VerifyChain(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstBroken != 0 {
		t.Fatalf("hash chain broken at %d: %s", rep.FirstBroken, rep.Reason)
	}
	t.Logf("audit events in order %v; chain intact over %d events", got, rep.Checked)
}

// scrapeMetrics reads the metrics listener (no database involved: it works while
// PostgreSQL is away).
func scrapeMetrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// ownPostgres is a PostgreSQL of the test's own, which it may stop and start
// again on the same port and data (the shared test cluster must not stop).
type ownPostgres struct {
	t    *testing.T
	dir  string
	port int
	*pgembed.Server
}

func startOwnPostgres(t *testing.T, prefix string) *ownPostgres {
	t.Helper()
	base, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(base, 0o755) // the postgres user must reach the data folder
	o := &ownPostgres{t: t, dir: filepath.Join(base, "pg")}
	o.Server, err = pgembed.Start(context.Background(), pgembed.Options{DataDir: o.dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	o.port = o.Port()
	t.Cleanup(func() {
		_ = o.Server.Stop(context.Background())
		os.RemoveAll(base)
	})
	return o
}

// DSN is the URL of its postgres database.
func (o *ownPostgres) DSN() string { return o.Server.DSN("postgres") }

// restart starts it again after Stop, on the same port and data.
func (o *ownPostgres) restart() {
	o.t.Helper()
	var err error
	o.Server, err = pgembed.Start(context.Background(), pgembed.Options{DataDir: o.dir, Fast: true, Port: o.port})
	if err != nil {
		o.t.Fatal(err)
	}
}
