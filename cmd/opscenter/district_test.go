package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// TestUserAddDistrict: `user add --district CODE` limits a staff account to a district
// of the roster; a commune, the province, an unknown code and an admin are refused.
func TestUserAddDistrict(t *testing.T) {
	dsn := storetest.DSN(t)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("database:\n  url: \""+dsn+"\"\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append(args, "--config", cfg), strings.NewReader("a long enough password\n"), &out, &errb)
		return out.String(), err
	}
	for _, role := range []string{"leader", "duty", "observer"} {
		out, err := call("user", "add", "--username", role+"195", "--role", role, "--district", "195")
		if err != nil || !strings.Contains(out, "limited to district 195") {
			t.Fatalf("%s of 195: %q %v", role, out, err)
		}
	}
	for _, c := range []struct{ name, role, district, want string }{
		{"x1", "duty", "999", "not a district"},
		{"x2", "duty", "06760", "not a district"}, // a commune of 195
		{"x3", "leader", "22", "not a district"},  // the province
		{"x4", "admin", "195", "admin"},
	} {
		if _, err := call("user", "add", "--username", c.name, "--role", c.role, "--district", c.district); err == nil ||
			!strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s --district %s: %v, want an error saying %q", c.role, c.district, err, c.want)
		}
	}
	st, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The scope is carried into the principal by login and by every later request.
	tok, p, err := st.Login(ctx, "leader195", "a long enough password", time.Hour)
	if err != nil || p.District != "195" || !p.Scoped() {
		t.Fatalf("login: %+v %v", p, err)
	}
	if p, err := st.Resolve(ctx, tok); err != nil || p.District != "195" || p.Role != "leader" {
		t.Fatalf("resolve: %+v %v", p, err)
	}
	for _, name := range []string{"x1", "x2", "x3", "x4"} {
		if _, _, err := st.Login(ctx, name, "a long enough password", time.Hour); err == nil {
			t.Fatalf("refused user %s exists", name)
		}
	}
	// The database refuses a scoped admin even past the store's check.
	if _, err := st.CreateScopedUser(ctx, "test", "x5", "admin", "195", "hash"); err == nil {
		t.Fatal("scoped admin created")
	}
}
