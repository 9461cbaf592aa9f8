package faulttest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/journal"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// pairConfig is one in-process member of a standby pair on dsn.
func pairConfig(t *testing.T, dsn string, poll time.Duration) config.Config {
	t.Helper()
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	cfg.HTTP.PublicURL = "http://" + cfg.HTTP.Addr
	cfg.Media.UDPPort, cfg.Media.TCPPort, cfg.Media.TURN.Port = 0, 0, 0
	cfg.Metrics.Addr = "127.0.0.1:0"
	dir := t.TempDir()
	cfg.Database.URL = dsn
	cfg.Database.JournalPath = filepath.Join(dir, "audit.journal")
	cfg.Recording.Dir = filepath.Join(dir, "recordings")
	cfg.Recording.MinFree = 0
	cfg.Standby.Enabled, cfg.Standby.PollInterval = true, poll
	return cfg
}

type tbWriter struct {
	t    testing.TB
	name string
}

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(w.name + ": " + string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func startNode(t *testing.T, name string, cfg config.Config) *app.Node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(tbWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := app.StartNode(context.Background(), cfg, log, app.Options{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { n.Stop(context.Background()) })
	return n
}

// downSink is PostgreSQL away, for the journal.
type downSink struct{}

func (downSink) RecordEvent(context.Context, store.Event) (int64, error) {
	return 0, &pgconn.PgError{Code: "08006", Message: "connection failure (test)"}
}

// lockHolder is the backend pid holding the node's advisory lock in this
// database (0: none).
func lockHolder(t *testing.T, st *store.Store) int {
	t.Helper()
	var pid int
	err := st.Pool().QueryRow(context.Background(), `SELECT coalesce(max(pid), 0) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func terminate(t *testing.T, st *store.Store, pid int) {
	t.Helper()
	if _, err := st.Pool().Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
}

// The active process's lock connection is cut (PostgreSQL ends its session).
// With nobody else waiting, it takes the lock back under its own term and stays
// active; so it does with the standby waiting, which finds it alive over HTTP.
// When the standby cannot reach it and takes the lock, the old active is fenced:
// it stops serving the room (503) and signals its caller to exit, and the
// standby is the node's active process.
func TestStandbyFencesAnActiveThatLostItsLock(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	st, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)

	// A checks its lock every 2 s, B polls every 100 ms: B finds the lock free
	// first in the cuts below.
	a := startNode(t, "A", pairConfig(t, dsn, 2*time.Second))
	if !a.Active() {
		t.Fatal("the first process of a pair is not active")
	}
	act, _, err := st.ActiveNode(ctx)
	if err != nil || act.URL != a.URL() {
		t.Fatalf("active node %+v %v, want %s", act, err, a.URL())
	}

	// Alone: the lock comes back to A, same term.
	pid := lockHolder(t, st)
	terminate(t, st, pid)
	d := waitT(t, "A holds the lock again", 15*time.Second, func() bool {
		p := lockHolder(t, st)
		return p != 0 && p != pid
	})
	if again, _, _ := st.ActiveNode(ctx); !a.Active() || again.Term != act.Term {
		t.Fatalf("A active %v, term %d → %d", a.Active(), act.Term, again.Term)
	}
	select {
	case <-a.Fenced():
		t.Fatal("A fenced with nobody else active")
	default:
	}
	t.Logf("A took its lock back %v after its connection was cut", d.Round(time.Millisecond))

	// B's journal holds an event of an earlier run of B (queued while
	// PostgreSQL was away): B writes it while standby.
	cfgB := pairConfig(t, dsn, 100*time.Millisecond)
	j, err := journal.Open(cfgB.Database.JournalPath, downSink{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Record(ctx, store.Event{Actor: "test", Action: "test.queued_by_an_earlier_run", Entity: "endpoint", EntityID: "22"}); err != nil || j.Pending() != 1 {
		t.Fatalf("queue: %v, pending %d", err, j.Pending())
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, "B", cfgB)
	if b.Active() {
		t.Fatal("B active while A holds the lock")
	}
	waitT(t, "B's queued event written while B is standby", 10*time.Second, func() bool {
		evs, err := st.EventsAfter(ctx, 0, 10000)
		return err == nil && slices.ContainsFunc(evs, func(e store.Event) bool { return e.Action == "test.queued_by_an_earlier_run" })
	})
	if s, body := readyz(b.URL()); s != 503 || body["active_url"] != a.URL() {
		t.Fatalf("B's readyz %d %v", s, body)
	}

	// With B waiting, and A answering B (a restart of PostgreSQL): B finds the
	// lock free but A alive, and leaves it the node; A takes its lock back.
	pid = lockHolder(t, st)
	terminate(t, st, pid)
	waitT(t, "A holds the lock again, with B waiting", 15*time.Second, func() bool {
		p := lockHolder(t, st)
		return p != 0 && p != pid
	})
	time.Sleep(time.Second) // B polls 10 times meanwhile
	if again, _, _ := st.ActiveNode(ctx); !a.Active() || b.Active() || again.Term != act.Term {
		t.Fatalf("after a cut with A alive: A active %v, B active %v, term %d → %d", a.Active(), b.Active(), act.Term, again.Term)
	}

	// With B waiting and A out of B's reach (a network cut between them, shown
	// here by A's recorded address going dead): B takes the lock, A is fenced.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := st.Pool().Exec(ctx, `UPDATE node_active SET url = $1`, deadURL); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	terminate(t, st, lockHolder(t, st))
	waitT(t, "B active", 10*time.Second, func() bool { s, _ := readyz(b.URL()); return b.Active() && s == 200 })
	tB := time.Since(cut)
	select {
	case <-a.Fenced():
	case <-time.After(15 * time.Second):
		t.Fatal("A not fenced after B took over")
	}
	tA := time.Since(cut)
	if a.Active() || a.App() != nil {
		t.Fatal("A still acts as active")
	}
	if s, body := readyz(a.URL()); s != 503 {
		t.Fatalf("A's readyz after the fence: %d %v", s, body)
	}
	if now, _, _ := st.ActiveNode(ctx); now.URL != b.URL() || now.Term <= act.Term {
		t.Fatalf("active node %+v, want B under a new term", now)
	}
	t.Logf("lock connection cut: B active %v later, A fenced %v later", tB.Round(time.Millisecond), tA.Round(time.Millisecond))
}

// A planned switchover: the active process stops (SIGTERM in production); the
// standby is active about one poll later.
func TestStandbyTakesOverOnStop(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	a := startNode(t, "A", pairConfig(t, dsn, 200*time.Millisecond))
	b := startNode(t, "B", pairConfig(t, dsn, 200*time.Millisecond))
	if !a.Active() || b.Active() {
		t.Fatalf("A active %v, B active %v", a.Active(), b.Active())
	}
	stop := time.Now()
	a.Stop(ctx)
	d := waitT(t, "B active", 10*time.Second, func() bool { s, _ := readyz(b.URL()); return b.Active() && s == 200 })
	total := time.Since(stop)
	t.Logf("A stopped in %v; B active %v after the stop began", (total - d).Round(time.Millisecond), total.Round(time.Millisecond))
	if total > 5*5*time.Second { // goal: A's stop (about 1 s) and one poll
		t.Errorf("switchover took %v", total)
	}
}
