package pgembed

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pgembed-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStartStopKeepsData(t *testing.T) {
	dir := filepath.Join(tempDir(t), "data")
	ctx := context.Background()
	srv, err := Start(ctx, Options{DataDir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	query(t, srv.DSN("postgres"), `SELECT 'x' FROM (SELECT 1) s`)
	if _, err := pgx.Connect(ctx, srv.DSN("postgres")); err != nil {
		t.Fatal(err)
	}
	conn, _ := pgx.Connect(ctx, srv.DSN("postgres"))
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if os.Geteuid() == 0 {
		if user := query(t, srv.DSN("postgres"), `SELECT current_setting('data_directory')`); user != dir {
			t.Fatalf("data dir %q", user)
		}
		fi, _ := os.Stat(dir)
		pg, _ := userUID("postgres")
		if int(fi.Sys().(*syscall.Stat_t).Uid) != pg {
			t.Fatal("data dir not owned by postgres when started as root")
		}
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatal("postmaster.pid left after a clean stop")
	}
	srv2, err := Start(ctx, Options{DataDir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop(ctx)
	if v := query(t, srv2.DSN("postgres"), `SELECT v FROM kept`); v != "still here" {
		t.Fatalf("data lost across restart: %q", v)
	}
}

// An orphaned postmaster (its opscenter was killed and it was reparented) is stopped
// and replaced by one we own, and admin commands find a running server.
func TestOrphanedPostmaster(t *testing.T) {
	dir := filepath.Join(tempDir(t), "data")
	ctx := context.Background()
	srv, err := Start(ctx, Options{DataDir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Start one behind our back with pg_ctl: its parent exits, as after a kill -9.
	bin, _ := BinDir()
	port := strconv.Itoa(freePortT(t))
	cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "start", "-w", "-D", dir, "-l", filepath.Join(dir, "orphan.log"),
		"-o", "-p "+port+" -c listen_addresses= -c unix_socket_directories="+dir)
	cred, _, err := serverCredential()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start orphan: %v %s", err, out)
	}
	pm, ok := readPostmaster(dir)
	if !ok {
		t.Fatal("orphan not running")
	}
	if dsn := RunningDSN(dir, "", "postgres"); dsn == "" {
		t.Fatal("RunningDSN did not find the running server")
	} else {
		query(t, dsn, `SELECT 'ok'`)
	}
	start := time.Now()
	srv2, err := Start(ctx, Options{DataDir: dir, Fast: true})
	if err != nil {
		t.Fatalf("start over an orphan: %v", err)
	}
	defer srv2.Stop(ctx)
	t.Logf("replaced the orphaned postmaster in %v", time.Since(start))
	if alive(pm.pid) {
		t.Fatalf("orphan pid %d still alive", pm.pid)
	}
	query(t, srv2.DSN("postgres"), `SELECT 'ok'`)
}

func TestChooseDirFallsBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a folder the postgres user cannot traverse")
	}
	base := tempDir(t)
	closed := filepath.Join(base, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	_, u, err := serverCredential()
	if err != nil {
		t.Fatal(err)
	}
	got, err := chooseDir(filepath.Join(closed, "pg"), filepath.Join(base, "fallback"), u)
	if err != nil || got != filepath.Join(base, "fallback") {
		t.Fatalf("got %q %v, want the fallback", got, err)
	}
	got, err = chooseDir(filepath.Join(base, "open", "pg"), "", u)
	if err != nil || got != filepath.Join(base, "open", "pg") {
		t.Fatalf("open dir: %q %v", got, err)
	}
	if _, err := chooseDir(filepath.Join(closed, "pg"), "", u); err == nil {
		t.Fatal("no error without a fallback")
	}
}

func freePortT(t *testing.T) int {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func userUID(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}
