// Package storetest gives tests a real PostgreSQL: one private cluster per test binary
// (fsync off) and one fresh database per test, cloned from a migrated template.
//
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/opscenter/opscenter/configs"
	"github.com/opscenter/opscenter/internal/pgembed"
	"github.com/opscenter/opscenter/store"
)

const templateDB = "opscenter_template"

// cluster is set once by Main before any test runs and never changed by tests.
var cluster struct {
	srv *pgembed.Server
	n   atomic.Int64
	err error
}

// Main starts the cluster, migrates the template, runs the tests and stops the cluster.
func Main(m *testing.M) int {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "opscenter-pg-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// MkdirTemp makes it 0700; the server may run as another user (postgres, under root).
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	cluster.err = start(ctx, dir+"/data")
	code := m.Run()
	if cluster.srv != nil {
		if err := cluster.srv.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "storetest: stop:", err)
		}
	}
	return code
}

func start(ctx context.Context, dir string) error {
	srv, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir, Fast: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("start test PostgreSQL: %w", err)
	}
	cluster.srv = srv
	if err := exec(ctx, srv.DSN("postgres"), "CREATE DATABASE "+templateDB); err != nil {
		return err
	}
	if err := store.Migrate(ctx, srv.DSN(templateDB), nil); err != nil {
		return err
	}
	return nil
}

func exec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// DSN creates a fresh, migrated, empty database for t and returns its DSN. The
// database is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	if cluster.err != nil {
		t.Fatalf("test PostgreSQL unavailable: %v", cluster.err)
	}
	if cluster.srv == nil {
		t.Fatal("storetest: call storetest.Main from TestMain")
	}
	ctx := context.Background()
	name := fmt.Sprintf("t%d_%s", cluster.n.Add(1), sanitize(t.Name()))
	if err := exec(ctx, cluster.srv.DSN("postgres"), fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateDB)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec(ctx, cluster.srv.DSN("postgres"), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return cluster.srv.DSN(name)
}

// New opens a store on a fresh database for t.
func New(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), DSN(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// NewWithRoster is New plus the embedded Quảng Ninh roster of 23 May 2021.
func NewWithRoster(t testing.TB) *store.Store {
	t.Helper()
	st := New(t)
	LoadRoster(t, st)
	return st
}

// LoadRoster loads the embedded roster into st.
func LoadRoster(t testing.TB, st *store.Store) {
	t.Helper()
	f, err := configs.Rosters.Open("roster/22-2021-05-23.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := store.ParseRoster(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.LoadRoster(context.Background(), "2021-05-23", entries); err != nil {
		t.Fatal(err)
	}
}

func sanitize(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}
