package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opscenter/opscenter/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

func TestAdminCommands(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("database:\n  url: \""+storetest.DSN(t)+"\"\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append(args, "--config", cfg), strings.NewReader(stdin), &out, &errb)
		return out.String(), err
	}
	if _, err := call("a long enough password\n", "user", "add", "--username", "lan", "--role", "duty"); err != nil {
		t.Fatal(err)
	}
	if _, err := call("a long enough password\n", "user", "add", "--username", "lan2", "--role", "boss"); err == nil {
		t.Fatal("unknown role accepted")
	}
	if _, err := call("short\n", "user", "add", "--username", "lan3", "--role", "duty"); err == nil {
		t.Fatal("short password accepted")
	}
	out, err := call("", "endpoint", "token", "07192")
	if err != nil || !strings.Contains(out, "/join#t=") {
		t.Fatalf("token: %q %v", out, err)
	}
	if _, err := call("", "endpoint", "token", "--all"); err == nil || !strings.Contains(err.Error(), "--rotate") {
		t.Fatalf("--all without --rotate when a link exists: %v", err)
	}
	out, err = call("", "endpoint", "token", "--all", "--rotate")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 192 || rows[1][0] != "22" || !strings.Contains(rows[191][4], "/join#t=") {
		t.Fatalf("csv: %d rows %v", len(rows), err)
	}
	if out, err := call("", "endpoint", "revoke", "07192"); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %q %v", out, err)
	}
	out, err = call("", "audit", "verify")
	if err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("verify: %q %v", out, err)
	}
	if _, err := call("", "frobnicate"); err == nil {
		t.Fatal("unknown command accepted")
	}
}
