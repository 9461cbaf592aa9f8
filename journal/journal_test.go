package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// fakeSink records events and can be switched off, like a stopped PostgreSQL.
type fakeSink struct {
	mu   sync.Mutex
	down bool
	got  []store.Event
	keys map[string]bool
}

func (f *fakeSink) RecordEvent(_ context.Context, e store.Event) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, &net.OpError{Op: "dial", Net: "unix", Err: errors.New("connect: connection refused")}
	}
	if e.Action == "poison" {
		return 0, &pgconn.PgError{Code: "23514", Message: "check violation"}
	}
	if f.keys == nil {
		f.keys = map[string]bool{}
	}
	if !f.keys[e.Key] {
		f.keys[e.Key] = true
		f.got = append(f.got, e)
	}
	return int64(len(f.got)), nil
}

func (f *fakeSink) set(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }
func (f *fakeSink) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.got {
		out = append(out, e.Action)
	}
	return out
}

func TestQueuesInOrderWhileDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.journal")
	sink := &fakeSink{}
	j, err := Open(path, sink, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := func(a string) {
		if err := j.Record(ctx, store.Event{Actor: "user:lead", Action: a, Entity: "endpoint", EntityID: "07192"}); err != nil {
			t.Fatal(err)
		}
	}
	rec("a1")
	sink.set(true)
	rec("a2")
	rec("a3")
	sink.set(false)
	rec("a4") // the database is back, but a2 and a3 wait: a4 must queue behind them
	if got := sink.actions(); fmt.Sprint(got) != "[a1]" || j.Pending() != 3 {
		t.Fatalf("while queued: sink %v, pending %d", got, j.Pending())
	}
	if err := j.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sink.actions(); fmt.Sprint(got) != "[a1 a2 a3 a4]" || j.Pending() != 0 {
		t.Fatalf("after flush: %v pending %d", got, j.Pending())
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Fatalf("journal not emptied: %q", b)
	}
}

func TestSurvivesRestartWithoutDuplicates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.journal")
	sink := &fakeSink{down: true}
	j, _ := Open(path, sink, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := j.Record(ctx, store.Event{Action: fmt.Sprint("e", i), Entity: "x", EntityID: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	// A torn write at the crash: half a line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	f.WriteString(`{"actor":"user:le`)
	f.Close()
	// The "crash" happened after e0 and e1 reached the database but before the
	// journal was rewritten: the replay must not write them twice.
	sink.set(false)
	j2, err := Open(path, sink, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if j2.Pending() != 5 {
		t.Fatalf("pending after restart: %d", j2.Pending())
	}
	for _, e := range j2.queued[:2] {
		sink.RecordEvent(ctx, e)
	}
	if err := j2.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sink.actions(); fmt.Sprint(got) != "[e0 e1 e2 e3 e4]" {
		t.Fatalf("replayed: %v", got)
	}
}

func TestPoisonEntryDoesNotBlock(t *testing.T) {
	sink := &fakeSink{down: true}
	j, _ := Open(filepath.Join(t.TempDir(), "j"), sink, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	j.Record(ctx, store.Event{Action: "poison"})
	j.Record(ctx, store.Event{Action: "ok"})
	sink.set(false)
	if err := j.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sink.actions(); fmt.Sprint(got) != "[ok]" || j.Pending() != 0 {
		t.Fatalf("%v %d", got, j.Pending())
	}
	// A refused event recorded directly is an error for the caller, not queued.
	if err := j.Record(ctx, store.Event{Action: "poison"}); err == nil || j.Pending() != 0 {
		t.Fatalf("direct poison: %v pending %d", err, j.Pending())
	}
}

// With the real store, a replayed key is written once and the chain stays intact.
func TestStoreIdempotentByKey(t *testing.T) {
	st := storetest.New(t)
	j, _ := Open(filepath.Join(t.TempDir(), "j"), st, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	e := store.Event{Actor: "user:lead", Action: "floor.given", Entity: "endpoint", EntityID: "07192", Key: "6f1c7e0e-0a53-4a6f-9e57-0a7e1b1f2c3d", At: time.Now().Add(-time.Minute)}
	for i := 0; i < 3; i++ {
		if _, err := st.RecordEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Record(ctx, store.Event{Actor: "user:lead", Action: "mute", Entity: "endpoint", EntityID: "07192"}); err != nil {
		t.Fatal(err)
	}
	evs, _ := st.EventsAfter(ctx, 0, 10)
	if len(evs) != 2 || evs[0].Action != "floor.given" || evs[1].Action != "mute" {
		t.Fatalf("events: %+v", evs)
	}
	if rep, err := st.VerifyChain(ctx, nil); err != nil || rep.FirstBroken != 0 {
		t.Fatalf("chain: %+v %v", rep, err)
	}
}
