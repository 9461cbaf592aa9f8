// Package pgembed runs a private PostgreSQL server from the binaries Debian installs,
// so that opscenter (and its tests) need no database set up by hand.
//
// The server listens only on a Unix socket inside its data folder. When opscenter
// runs as root, the server runs as the "postgres" system user, because PostgreSQL
// refuses to run as root.
package pgembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configures one server.
type Options struct {
	// DataDir is the cluster folder; created and initdb'd when empty.
	DataDir string
	// FallbackDir is used when a parent of DataDir is not traversable by the server's user.
	FallbackDir string
	// Port names the socket; 0 picks a free one. Fault tests restart on the same port.
	Port int
	// Fast disables durability (fsync and friends). Only for tests.
	Fast bool
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// Server is a running PostgreSQL.
type Server struct {
	dir    string
	port   int
	cmd    *exec.Cmd
	done   chan error
	log    *slog.Logger
	binDir string
}

// ErrNoBinaries means the PostgreSQL server package is not installed.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found (install Debian's postgresql package: apt-get install -y postgresql)")

const superuser = "opscenter"

// Start initialises the cluster if needed and starts the server. A server left behind
// by a killed opscenter (an orphaned postmaster) is stopped first.
func Start(ctx context.Context, o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, runUser, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := chooseDir(o.DataDir, o.FallbackDir, runUser)
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, log: log, binDir: bin, done: make(chan error, 1)}
	if err := s.prepareDir(runUser); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		log.Info("initialising PostgreSQL cluster (first run)", "dir", dir)
		if err := s.run(ctx, cred, filepath.Join(bin, "initdb"), "-D", dir, "-U", superuser,
			"--auth-local=trust", "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
			return nil, fmt.Errorf("initdb: %w", err)
		}
	}
	if err := s.stopOrphan(ctx, cred); err != nil {
		return nil, err
	}
	if s.port = o.Port; s.port == 0 {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
	}
	args := []string{"-D", dir, "-p", strconv.Itoa(s.port), "-c", "listen_addresses=",
		"-c", "unix_socket_directories=" + dir, "-c", "max_connections=200"}
	if o.Fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	if err := s.spawn(cred, filepath.Join(bin, "postgres"), args); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop(context.Background())
		return nil, err
	}
	log.Info("PostgreSQL started", "dir", dir, "port", s.port)
	return s, nil
}

// BinDir finds the server binaries: pg_config --bindir, else the newest
// /usr/lib/postgresql/*/bin (Debian does not put them on PATH).
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// serverCredential returns the uid/gid to run as: ours unless we are root.
func serverCredential() (*syscall.Credential, *user.User, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, nil, fmt.Errorf("current user: %w", err)
		}
		return nil, u, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, nil, fmt.Errorf("running as root needs the postgres system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, u, nil
}

// DSN is a connection string for database db over the server's socket.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.dir, s.port, superuser, db)
}

// Port is the server's port (it names the Unix socket).
func (s *Server) Port() int { return s.port }

// Dir is the data folder in use (it may be the fallback).
func (s *Server) Dir() string { return s.dir }

// Stop asks for a fast shutdown and waits; it escalates if the server hangs.
func (s *Server) Stop(ctx context.Context) error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-s.done:
		s.done <- err
		return nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	return fmt.Errorf("postgres did not stop in time; sent SIGQUIT")
}

func (s *Server) run(ctx context.Context, cred *syscall.Credential, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// spawn starts the postmaster from a goroutine locked to its OS thread, so that
// Pdeathsig (which follows the creating thread) fires only when opscenter itself
// dies: a kill -9 of opscenter then makes the server shut down fast by itself.
func (s *Server) spawn(cred *syscall.Credential, name string, args []string) error {
	started := make(chan error, 1)
	logFile, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	if cred != nil {
		_ = logFile.Chown(int(cred.Uid), int(cred.Gid))
	}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must live as long as the child
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start postgres: %w", err)
			return
		}
		s.cmd = cmd
		started <- nil
		err := cmd.Wait()
		logFile.Close()
		s.done <- err
	}()
	return <-started
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("postgres exited during start: %v; see %s", err, filepath.Join(s.dir, "server.log"))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postgres not ready after 60 s: %w", last)
}

// stopOrphan stops a postmaster still running on this data folder whose parent is
// gone (left behind by a kill -9 that Pdeathsig did not catch), so that we start one
// we own. A server whose parent is alive belongs to another opscenter: refuse.
func (s *Server) stopOrphan(ctx context.Context, cred *syscall.Credential) error {
	pm, ok := readPostmaster(s.dir)
	if !ok {
		return nil // none, or a stale file that postgres removes itself on start
	}
	if pm.ppid > 1 && alive(pm.ppid) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pm.ppid)); !strings.HasPrefix(string(comm), "systemd") {
			return fmt.Errorf("data folder %s is in use by PostgreSQL pid %d, started by pid %d (another opscenter?)", s.dir, pm.pid, pm.ppid)
		}
	}
	s.log.Warn("stopping an orphaned PostgreSQL left by an earlier run", "pid", pm.pid)
	if err := s.run(ctx, cred, filepath.Join(s.binDir, "pg_ctl"), "stop", "-D", s.dir, "-m", "fast", "-w", "-t", "60"); err != nil {
		return fmt.Errorf("stop orphaned PostgreSQL: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
