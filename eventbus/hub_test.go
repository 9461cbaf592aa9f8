package eventbus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/eventbus"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// flakySource fails LastEventID a few times, as a database that is still starting.
type flakySource struct {
	*store.Store
	failures atomic.Int32
}

func (f *flakySource) LastEventID(ctx context.Context) (int64, error) {
	if f.failures.Add(-1) >= 0 {
		return 0, errors.New("database starting")
	}
	return f.Store.LastEventID(ctx)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startHub(t *testing.T, src eventbus.Source, dsn string, logs *syncBuf) *eventbus.Hub {
	t.Helper()
	var w interface{ Write([]byte) (int, error) } = logs
	if logs == nil {
		w = &syncBuf{}
	}
	h := eventbus.New(src, dsn, slog.New(slog.NewTextHandler(w, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func record(t *testing.T, st *store.Store, n int) []int64 {
	t.Helper()
	ids := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		id, err := st.RecordEvent(context.Background(), store.Event{Key: uuid.NewString(), At: time.Now(),
			Actor: "test", Action: "test.event", Entity: "test", EntityID: "x"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// collector gathers the ids a follower hands out.
type collector struct {
	mu  sync.Mutex
	ids []int64
}

func (c *collector) add(e store.Event) {
	c.mu.Lock()
	c.ids = append(c.ids, e.ID)
	c.mu.Unlock()
}

func (c *collector) waitFor(t *testing.T, n int, within time.Duration) []int64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		got := append([]int64(nil), c.ids...)
		c.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func assertContiguous(t *testing.T, got []int64, from, to int64) {
	t.Helper()
	if int64(len(got)) != to-from+1 {
		t.Fatalf("got %d events, want %d (ids %d..%d): %v", len(got), to-from+1, from, to, got)
	}
	for i, id := range got {
		if id != from+int64(i) {
			t.Fatalf("event %d has id %d, want %d: ids must be handed out once each, in order: %v", i, id, from+int64(i), got)
		}
	}
}

// A follower too slow for its buffer is cut off by the hub; it resumes by id and
// loses nothing, and hands nothing out twice.
func TestFollowResumesAfterCutOff(t *testing.T) {
	dsn := storetest.DSN(t)
	st, err := store.Open(context.Background(), dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := &syncBuf{}
	h := startHub(t, st, dsn, logs)

	// One event before the follower starts: it follows from 0 and gets stuck on it.
	first0 := record(t, st, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gate := make(chan struct{})
	var c collector
	var first sync.Once
	go func() {
		_ = h.Follow(ctx, 0, 1, func(e store.Event) {
			c.add(e)
			first.Do(func() { <-gate }) // stuck on the first event while more commit
		})
	}()
	if got := c.waitFor(t, 1, 10*time.Second); len(got) != 1 || got[0] != first0[0] {
		t.Fatalf("the follower saw %v before the burst, want [%d]", got, first0[0])
	}
	ids := record(t, st, 60)
	// Let the hub hand out the whole burst: the stuck follower's one-slot buffer overruns.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p, _ := h.Position(ctx); p == ids[len(ids)-1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub did not hand out the burst")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(gate)
	got := c.waitFor(t, 61, 10*time.Second)
	assertContiguous(t, got, ids[0]-1, ids[len(ids)-1])
	if !strings.Contains(logs.String(), "event follower: resuming") {
		t.Fatal("the hub never cut the stuck follower off; the test did not exercise a resume")
	}
}

// Following from an id backfills what committed before, then goes on live.
func TestFollowBackfillsFromID(t *testing.T) {
	dsn := storetest.DSN(t)
	st, err := store.Open(context.Background(), dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before := record(t, st, 5)
	h := startHub(t, st, dsn, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c collector
	go func() { _ = h.Follow(ctx, before[1], 16, c.add) }()
	if got := c.waitFor(t, 3, 10*time.Second); len(got) != 3 {
		t.Fatalf("backfill gave %v, want the 3 events after %d", got, before[1])
	}
	after := record(t, st, 4)
	got := c.waitFor(t, 7, 10*time.Second)
	assertContiguous(t, got, before[2], after[3])
}

// A hub that starts while the database cannot yet say its chain head does not
// replay the whole history to its subscribers once it can.
func TestHubStartsAtTheHeadNotTheHistory(t *testing.T) {
	dsn := storetest.DSN(t)
	st, err := store.Open(context.Background(), dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	record(t, st, 10)
	src := &flakySource{Store: st}
	src.failures.Store(2)
	h := startHub(t, src, dsn, nil)
	sub := h.Subscribe(64)
	defer sub.Close()
	// Commit one event at a time until the hub hands one out: the first it hands
	// out must be new, never one of the ten before it started.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ids := record(t, st, 1)
		select {
		case e := <-sub.C:
			if e.ID <= 10 {
				t.Fatalf("first live event has id %d: the hub replayed history", e.ID)
			}
			if e.ID > ids[0] {
				t.Fatalf("event %d before %d", e.ID, ids[0])
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Fatal("no live event")
}
