package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// TestWallLinks: a wall link resolves to a wall principal (never an endpoint, no
// capability), its cookie session too; reissuing replaces the secret and ends the
// old sessions; revoking ends everything at once; both are audited.
func TestWallLinks(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	before, err := st.LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := st.IssueWallToken(ctx, "cli", "Press Room"); err == nil {
		t.Fatal("a name with spaces and capitals was accepted")
	}
	tok, err := st.IssueWallToken(ctx, "cli", "press-1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.ResolveWall(ctx, tok)
	if err != nil || p.Wall != "press-1" || p.IsEndpoint() || p.Actor() != "wall:press-1" {
		t.Fatalf("resolve link: %+v %v", p, err)
	}
	// A wall's secret is not a staff or endpoint credential.
	if _, err := st.Resolve(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Resolve(wall link) = %v, want ErrNotFound", err)
	}
	sess, p, err := st.ExchangeWallToken(ctx, tok, time.Hour)
	if err != nil || p.Wall != "press-1" {
		t.Fatalf("exchange: %+v %v", p, err)
	}
	if p, err := st.ResolveWall(ctx, sess); err != nil || p.Wall != "press-1" {
		t.Fatalf("resolve session: %+v %v", p, err)
	}
	if _, _, err := st.ExchangeWallToken(ctx, "nope", time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("exchange of an unknown secret: %v", err)
	}

	// A second wall is independent.
	tok2, err := st.IssueWallToken(ctx, "cli", "press-2")
	if err != nil {
		t.Fatal(err)
	}

	// Reissuing press-1 replaces its secret; the old secret and session stop.
	tok1b, err := st.IssueWallToken(ctx, "cli", "press-1")
	if err != nil || tok1b == tok {
		t.Fatalf("reissue: %v", err)
	}
	for name, old := range map[string]string{"old link": tok, "old session": sess} {
		if _, err := st.ResolveWall(ctx, old); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s after reissue: %v", name, err)
		}
	}
	sess, _, err = st.ExchangeWallToken(ctx, tok1b, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// Revoking ends the link and the session at once, and only that wall's.
	if err := st.RevokeWall(ctx, "cli", "press-1"); err != nil {
		t.Fatal(err)
	}
	for name, old := range map[string]string{"link": tok1b, "session": sess} {
		if _, err := st.ResolveWall(ctx, old); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked %s: %v", name, err)
		}
	}
	if _, _, err := st.ExchangeWallToken(ctx, tok1b, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("exchange after revoke: %v", err)
	}
	if p, err := st.ResolveWall(ctx, tok2); err != nil || p.Wall != "press-2" {
		t.Fatalf("the other wall after a revoke: %+v %v", p, err)
	}
	if err := st.RevokeWall(ctx, "cli", "press-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	if err := st.RevokeWall(ctx, "cli", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking an unknown wall: %v", err)
	}

	// An expired session does not resolve.
	short, _, err := st.ExchangeWallToken(ctx, tok2, -time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ResolveWall(ctx, short); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}

	walls, err := st.ListWalls(ctx)
	if err != nil || len(walls) != 2 || walls[0].Name != "press-1" || walls[0].Live() || !walls[1].Live() {
		t.Fatalf("list: %+v %v", walls, err)
	}

	evs, err := st.EventsAfter(ctx, before, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.Entity == "wall" {
			got = append(got, e.Action+" "+e.EntityID)
		}
	}
	want := []string{"wall.link_issued press-1", "wall.link_issued press-2", "wall.link_issued press-1", "wall.link_revoked press-1"}
	if len(got) != len(want) {
		t.Fatalf("audit: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("audit: %v, want %v", got, want)
		}
	}
}
