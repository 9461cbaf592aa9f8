package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// The lock admits one active process; when its holder's connection closes
// (a dead process), the other takes it under a new term, and the old holder
// can no longer take it back.
func TestNodeLockOneActiveAndTakeover(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	st, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, b := store.NewNodeLock(dsn), store.NewNodeLock(dsn)
	defer a.Close(ctx)
	defer b.Close(ctx)
	if ok, err := a.TryAcquire(ctx, "http://a"); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	if ok, err := b.TryAcquire(ctx, "http://b"); ok || err != nil {
		t.Fatalf("b took a held lock: %v %v", ok, err)
	}
	act, ok, err := st.ActiveNode(ctx)
	if err != nil || !ok || act.URL != "http://a" || act.Term != a.Term() {
		t.Fatalf("active %+v %v %v, want a at term %d", act, ok, err, a.Term())
	}
	if err := a.Check(ctx); err != nil {
		t.Fatal(err)
	}

	a.Close(ctx) // what a dead process's closed socket does
	// The server ends a's session (and its lock) a moment after the close.
	for i := 0; ; i++ {
		ok, err := b.TryAcquire(ctx, "http://b")
		if err != nil || (!ok && i == 100) {
			t.Fatalf("b after a's close: %v %v", ok, err)
		}
		if ok {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.Term() != a.Term()+1 {
		t.Fatalf("b's term %d, a's %d", b.Term(), a.Term())
	}
	if err := a.Reacquire(ctx); !errors.Is(err, store.ErrSuperseded) {
		t.Fatalf("a reacquired while b is active: %v", err)
	}
	// a's writes of the live state are fenced by its old term; b's go through.
	if err := st.SaveLiveStateAsTerm(ctx, a.Term(), []byte(`{"floor": "a"}`)); !errors.Is(err, store.ErrSuperseded) {
		t.Fatalf("save as the old term: %v", err)
	}
	if err := st.SaveLiveStateAsTerm(ctx, b.Term(), []byte(`{"floor": "b"}`)); err != nil {
		t.Fatal(err)
	}
	if doc, err := st.LoadLiveState(ctx); err != nil || !strings.Contains(string(doc), `"b"`) {
		t.Fatalf("live state %s %v", doc, err)
	}
	// b loses its connection and nobody else took over: it may take it back.
	b.Close(ctx)
	if err := a.Reacquire(ctx); !errors.Is(err, store.ErrSuperseded) {
		t.Fatalf("a (old term) reacquired: %v", err)
	}
	for i := 0; ; i++ { // once b's old session has ended
		err := b.Reacquire(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, store.ErrSuperseded) || i == 100 {
			t.Fatalf("b back under its own term: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLiveStateSaveLoad(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	doc, err := st.LoadLiveState(ctx)
	if err != nil || doc != nil {
		t.Fatalf("empty: %q %v", doc, err)
	}
	for _, floor := range []string{"07192", "07195"} {
		if err := st.SaveLiveState(ctx, []byte(`{"version": 1, "floor": "`+floor+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	doc, err = st.LoadLiveState(ctx)
	if err != nil || !strings.Contains(string(doc), `"floor": "07195"`) {
		t.Fatalf("loaded %s %v", doc, err)
	}
}
