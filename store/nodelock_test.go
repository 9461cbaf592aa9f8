package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
	if ok, err := b.TryAcquire(ctx, "http://b"); !ok || err != nil {
		t.Fatalf("b after a's close: %v %v", ok, err)
	}
	if b.Term() != a.Term()+1 {
		t.Fatalf("b's term %d, a's %d", b.Term(), a.Term())
	}
	if err := a.Reacquire(ctx); !errors.Is(err, store.ErrSuperseded) {
		t.Fatalf("a reacquired while b is active: %v", err)
	}
	// b loses its connection and nobody else took over: it may take it back.
	b.Close(ctx)
	if err := a.Reacquire(ctx); !errors.Is(err, store.ErrSuperseded) {
		t.Fatalf("a (old term) reacquired: %v", err)
	}
	if err := b.Reacquire(ctx); err != nil {
		t.Fatalf("b back under its own term: %v", err)
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
