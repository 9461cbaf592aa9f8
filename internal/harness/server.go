// Package harness starts opscenter servers for everything that needs one:
// tests (StartApp, in this process, under apptest's testing conveniences), and
// the load generator, the soak and the replay (Start: the benchserver in its
// own process, pinned, on a fresh database, with credentials and a live
// session). Both configure the server with the same Settings.
package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is an opscenter process under test, with its credentials.
type Server struct {
	URL        string
	MetricsURL string // its /metrics (the metrics listener)
	DebugURL   string // the benchserver's loopback /debug/pprof and /sfu/forward
	PID        int
	Tokens     map[string]string // endpoint code → join token
	Codes      []string          // roster order: 22, districts, communes
	StaffTok   string            // a leader's bearer token
	AdminTok   string            // an admin's bearer token (Options.Admin)
	SessionID  string            // the live session ("" with Options.NoSession)

	dir    string
	bin    string   // opscenter CLI
	env    []string // the CLI's environment
	argv   []string // the server's command
	srvEnv []string // and environment
	cmd    *exec.Cmd
	exited chan struct{}
	logf   func(string, ...any)
	keep   bool
}

// Options say how to build and start the server.
type Options struct {
	RepoDir     string // module root (go build runs there)
	CPU         int    // taskset core for the server, -1 = not pinned
	DatabaseURL string // empty: embedded PostgreSQL in a temp data dir
	Communes    int    // >177: write a synthetic roster with this many communes
	Admin       bool   // also create an admin (AdminTok)
	NoSession   bool   // do not start a live session
	Logf        func(string, ...any)
	KeepDir     bool
	Env         []string // extra KEY=VALUE for the server (e.g. GOMEMLIMIT, GOGC)
}

// Start builds cmd/opscenter (the CLI for credentials) and the benchserver
// (app.Start plus a loopback pprof/stats listener), starts it pinned with
// taskset on a fresh database, creates the credentials through the CLI and
// starts a live session. Stop undoes everything.
func Start(ctx context.Context, o Options) (_ *Server, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("", "opscenter-harness-")
	if err != nil {
		return nil, err
	}
	// The embedded PostgreSQL runs as the postgres user when we are root.
	_ = os.Chmod(dir, 0o755)
	s := &Server{dir: dir, logf: o.Logf, keep: o.KeepDir}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	s.bin = filepath.Join(dir, "opscenter")
	srvBin := filepath.Join(dir, "benchserver")
	o.Logf("building opscenter and benchserver")
	for _, b := range [][2]string{{s.bin, "./cmd/opscenter"}, {srvBin, "./cmd/loadgen/benchserver"}} {
		c := exec.CommandContext(ctx, "go", "build", "-o", b[0], b[1])
		c.Dir = o.RepoDir
		if out, err := c.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", b[1], err, out)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s.URL = "http://" + addr
	s.MetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	s.env = append(os.Environ(), Settings(dir, addr, "127.0.0.1:"+strconv.Itoa(mport))...)
	s.env = append(s.env,
		"OPSCENTER_DATABASE_DATA_DIR="+filepath.Join(dir, "pg"),
		"OPSCENTER_DATABASE_FALLBACK_DATA_DIR="+filepath.Join(dir, "pg-fallback"),
		"OPSCENTER_MEDIA_NETWORK_TYPES=udp4",
		"OPSCENTER_MEDIA_INTERFACES=lo",
		"OPSCENTER_MEDIA_INCLUDE_LOOPBACK=true",
		"OPSCENTER_LOG_LEVEL=warn",
	)
	if o.DatabaseURL != "" {
		s.env = append(s.env, "OPSCENTER_DATABASE_URL="+o.DatabaseURL)
	}
	s.srvEnv = append(append([]string(nil), s.env...), o.Env...)
	if o.Communes > 177 {
		f := filepath.Join(dir, "roster.tsv")
		if err := writeRoster(f, o.Communes); err != nil {
			return nil, err
		}
		s.env = append(s.env, "OPSCENTER_ROSTER_FILE="+f)
	}
	s.argv = []string{srvBin}
	if o.CPU >= 0 {
		s.argv = append([]string{"taskset", "-c", strconv.Itoa(o.CPU)}, s.argv...)
	}
	o.Logf("starting server (%s)", strings.Join(s.argv, " "))
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	o.Logf("server pid %d, %s, debug %s, dir %s", s.PID, s.URL, s.DebugURL, dir)
	if err := s.credentials(ctx, o); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the server process and waits for its ready line.
func (s *Server) run(ctx context.Context) error {
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Env = s.srvEnv
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.LogPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start server: %w", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.PID = cmd, exited, cmd.Process.Pid // taskset execs: same pid
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "benchserver ready") {
				select {
				case ready <- l:
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(exited) }()
	select {
	case l := <-ready:
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "debug="); ok {
				s.DebugURL = "http://" + v
			}
		}
		return nil
	case <-exited:
		return fmt.Errorf("server exited at start; log: %s", tail(s.LogPath()))
	case <-time.After(90 * time.Second):
		return fmt.Errorf("server not ready within 90 s; log: %s", tail(s.LogPath()))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill ends the server with SIGKILL (a crash): its database and state files
// stay for Restart.
func (s *Server) Kill() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return fmt.Errorf("no server process")
	}
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	<-s.exited
	return nil
}

// Restart starts the same server again, with the same command and
// environment, as a service manager would after a crash; PID and DebugURL
// change.
func (s *Server) Restart(ctx context.Context) error {
	s.logf("restarting server (%s)", strings.Join(s.argv, " "))
	return s.run(ctx)
}

// Stop terminates the server (SIGTERM, then SIGKILL after 20 s) and removes
// the temporary directory (the embedded PostgreSQL stops with the server).
func (s *Server) Stop() {
	s.Terminate()
	if !s.keep && s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Terminate stops the server process (SIGTERM, then SIGKILL of its group
// after 20 s) and keeps its directory (recordings, server.log) until Stop.
func (s *Server) Terminate() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// Dir is the server's temporary directory (server.log is there).
func (s *Server) Dir() string { return s.dir }

// LogPath is the server's log (its stderr, across restarts).
func (s *Server) LogPath() string { return filepath.Join(s.dir, "server.log") }

// RecordingDir is the server's recording.dir.
func (s *Server) RecordingDir() string { return filepath.Join(s.dir, "recordings") }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
