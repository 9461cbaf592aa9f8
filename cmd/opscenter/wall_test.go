package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// TestWallCommands: wall token prints a wall link that resolves to the wall;
// reissuing replaces it; wall revoke ends it; bad names and unknown walls fail.
func TestWallCommands(t *testing.T) {
	dsn := storetest.DSN(t)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("database:\n  url: \""+dsn+"\"\nhttp:\n  public_url: \"https://ops.example\"\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append(args, "--config", cfg), strings.NewReader(""), &out, &errb)
		return strings.TrimSpace(out.String()), err
	}
	link, err := call("wall", "token", "press-1")
	tok, ok := strings.CutPrefix(link, "https://ops.example/wall#t=")
	if err != nil || !ok || tok == "" {
		t.Fatalf("wall token: %q %v", link, err)
	}
	st, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if p, err := st.ResolveWall(ctx, tok); err != nil || p.Wall != "press-1" || p.IsEndpoint() {
		t.Fatalf("the printed link: %+v %v", p, err)
	}
	link2, err := call("wall", "token", "press-1")
	if err != nil || link2 == link {
		t.Fatalf("reissue: %q %v", link2, err)
	}
	if _, err := st.ResolveWall(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replaced link still works: %v", err)
	}
	if _, err := call("wall", "token", "Press Room"); err == nil {
		t.Fatal("a bad wall name was accepted")
	}
	if _, err := call("wall", "token"); err == nil {
		t.Fatal("wall token without a name was accepted")
	}
	if out, err := call("wall", "revoke", "press-1"); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %q %v", out, err)
	}
	tok2, _ := strings.CutPrefix(link2, "https://ops.example/wall#t=")
	if _, err := st.ResolveWall(ctx, tok2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the revoked link still works: %v", err)
	}
	if _, err := call("wall", "revoke", "press-1"); err == nil || !strings.Contains(err.Error(), "no wall") {
		t.Fatalf("revoking twice: %v", err)
	}
}
