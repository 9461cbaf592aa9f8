package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// Server is the opscenter process under test, with its credentials.
type Server struct {
	URL       string
	DebugURL  string
	PID       int
	Tokens    map[string]string // endpoint code → join token
	Codes     []string          // roster order: 22, districts, communes
	StaffTok  string            // a leader's bearer token
	SessionID string

	dir    string
	bin    string // opscenter CLI
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
	logf   func(string, ...any)
	keep   bool
}

// ServerOptions say how to build and start the server.
type ServerOptions struct {
	RepoDir     string // module root (go build runs there)
	CPU         int    // taskset core for the server, -1 = not pinned
	DatabaseURL string // empty: embedded PostgreSQL in a temp data dir
	Communes    int    // >177: write a synthetic roster with this many communes
	Logf        func(string, ...any)
	KeepDir     bool
	Env         []string // extra KEY=VALUE for the server (e.g. GOMEMLIMIT, GOGC)
}

// StartServer builds cmd/opscenter (the CLI for credentials) and the
// benchserver (app.Start plus a loopback pprof/stats listener), starts it
// pinned with taskset on a fresh database, creates the credentials through
// the CLI and starts a live session. Stop undoes everything.
func StartServer(ctx context.Context, o ServerOptions) (_ *Server, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("", "opscenter-loadgen-")
	if err != nil {
		return nil, err
	}
	// The embedded PostgreSQL runs as the postgres user when we are root.
	_ = os.Chmod(dir, 0o755)
	s := &Server{dir: dir, logf: o.Logf, keep: o.KeepDir, exited: make(chan struct{})}
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
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.env = append(os.Environ(),
		"OPSCENTER_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"OPSCENTER_METRICS_ADDR=127.0.0.1:0", // a free port: parallel servers
		"OPSCENTER_HTTP_PUBLIC_URL="+s.URL,
		"OPSCENTER_DATABASE_DATA_DIR="+filepath.Join(dir, "pg"),
		"OPSCENTER_DATABASE_FALLBACK_DATA_DIR="+filepath.Join(dir, "pg-fallback"),
		"OPSCENTER_DATABASE_JOURNAL_PATH="+filepath.Join(dir, "audit.journal"),
		"OPSCENTER_LIVE_STATE_PATH="+filepath.Join(dir, "live-state.json"),
		"OPSCENTER_RECORDING_DIR="+s.RecordingDir(),
		"OPSCENTER_MEDIA_UDP_PORT=0",
		"OPSCENTER_MEDIA_TCP_PORT=0",
		"OPSCENTER_MEDIA_NETWORK_TYPES=udp4",
		"OPSCENTER_MEDIA_INTERFACES=lo",
		"OPSCENTER_MEDIA_INCLUDE_LOOPBACK=true",
		"OPSCENTER_LOG_LEVEL=warn",
	)
	if o.DatabaseURL != "" {
		s.env = append(s.env, "OPSCENTER_DATABASE_URL="+o.DatabaseURL)
	}
	srvEnv := append(append([]string(nil), s.env...), o.Env...)
	if o.Communes > 177 {
		f := filepath.Join(dir, "roster.tsv")
		if err := writeRoster(f, o.Communes); err != nil {
			return nil, err
		}
		s.env = append(s.env, "OPSCENTER_ROSTER_FILE="+f)
	}
	args := []string{srvBin}
	if o.CPU >= 0 {
		args = append([]string{"taskset", "-c", strconv.Itoa(o.CPU)}, args...)
	}
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Env = srvEnv
	s.cmd.Dir = dir
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = logFile
	o.Logf("starting server (%s)", strings.Join(args, " "))
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.PID = s.cmd.Process.Pid // taskset execs: same pid
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
	go func() { _ = s.cmd.Wait(); _ = logFile.Close(); close(s.exited) }()
	select {
	case l := <-ready:
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "debug="); ok {
				s.DebugURL = "http://" + v
			}
		}
	case <-s.exited:
		return nil, fmt.Errorf("server exited at start; log: %s", tail(filepath.Join(dir, "server.log")))
	case <-time.After(90 * time.Second):
		return nil, fmt.Errorf("server not ready within 90 s; log: %s", tail(filepath.Join(dir, "server.log")))
	}
	o.Logf("server pid %d, %s, debug %s, dir %s", s.PID, s.URL, s.DebugURL, dir)
	if err := s.credentials(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) cli(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, s.bin, args...)
	c.Env = s.env
	c.Dir = s.dir
	c.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("opscenter %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// credentials: join tokens for every endpoint and a leader (CLI), a login
// (REST), and a live session (REST).
func (s *Server) credentials(ctx context.Context) error {
	out, err := s.cli(ctx, "", "endpoint", "token", "--all", "--rotate")
	if err != nil {
		return err
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(rows) < 2 {
		return fmt.Errorf("endpoint token CSV: %v (%d rows)", err, len(rows))
	}
	s.Tokens = map[string]string{}
	for _, r := range rows[1:] {
		_, tok, ok := strings.Cut(r[4], "#t=")
		if !ok {
			return fmt.Errorf("join url without token: %q", r[4])
		}
		s.Tokens[r[0]] = tok
		s.Codes = append(s.Codes, r[0])
	}
	pw := "loadgen-" + uuid.NewString()
	if _, err := s.cli(ctx, pw+"\n", "user", "add", "--username", "bench", "--role", "leader"); err != nil {
		return err
	}
	var login struct{ Token string }
	if err := s.api(ctx, "POST", "/api/v1/auth/login", "", map[string]string{"username": "bench", "password": pw}, &login); err != nil {
		return err
	}
	s.StaffTok = login.Token
	id := uuid.NewString()
	now := time.Now().UTC()
	if err := s.api(ctx, "POST", "/api/v1/sessions", s.StaffTok, map[string]string{"id": id, "title": "loadgen",
		"planned_start": now.Format(time.RFC3339), "planned_end": now.Add(12 * time.Hour).Format(time.RFC3339)}, nil); err != nil {
		return err
	}
	if err := s.api(ctx, "POST", "/api/v1/sessions/"+id+"/start", s.StaffTok, nil, nil); err != nil {
		return err
	}
	s.SessionID = id
	return nil
}

func (s *Server) api(ctx context.Context, method, path, bearer string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// ForwardStats mirrors sfu.ForwardStats as served on /sfu/forward.
type ForwardStats struct {
	Packets      uint64    `json:"packets"`
	Bytes        uint64    `json:"bytes"`
	Dropped      uint64    `json:"dropped"`
	DelayCount   uint64    `json:"delay_count"`
	DelayBounds  []float64 `json:"delay_bounds"`
	DelayBuckets []uint64  `json:"delay_buckets"`
}

// Forward fetches the server's forwarding counters.
func (s *Server) Forward(ctx context.Context) (ForwardStats, error) {
	var f ForwardStats
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.DebugURL+"/sfu/forward", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return f, err
	}
	defer resp.Body.Close()
	return f, json.NewDecoder(resp.Body).Decode(&f)
}

// Profile fetches a CPU profile of d from the server into file.
func (s *Server) Profile(ctx context.Context, d time.Duration, file string) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	return Download(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.DebugURL, int(d.Seconds())), "", file)
}

// HeapProfile fetches the server's heap profile into file.
func (s *Server) HeapProfile(ctx context.Context, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return Download(ctx, s.DebugURL+"/debug/pprof/heap", "", file)
}

// Download GETs url (with a bearer token, if any) into file; a status other
// than 200 is an error and leaves no file.
func Download(ctx context.Context, url, bearer, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Stop terminates the server (SIGTERM, then SIGKILL after 20 s) and removes
// the temporary directory (the embedded PostgreSQL stops with the server).
func (s *Server) Stop() {
	s.Terminate()
	if !s.keep && s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Terminate stops the server process (SIGTERM, then SIGKILL after 20 s) and
// keeps its directory (recordings, server.log) until Stop.
func (s *Server) Terminate() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
}

// Dir is the run's temporary directory (server.log is there).
func (s *Server) Dir() string { return s.dir }

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

// writeRoster writes a synthetic roster: the command room 22, 13 districts
// and n communes (codes 9xxxx), for fanout runs beyond the real 177 communes.
func writeRoster(file string, n int) error {
	var b strings.Builder
	b.WriteString("code\tname\tkind\tunit_type\tparent_code\n")
	b.WriteString("22\tTỉnh Quảng Ninh\tprovince\tTỉnh\t\n")
	for d := 0; d < 13; d++ {
		fmt.Fprintf(&b, "%d\tHuyện tổng hợp %d\tdistrict\tHuyện\t22\n", 901+d, d+1)
	}
	for c := 0; c < n; c++ {
		fmt.Fprintf(&b, "9%04d\tXã tổng hợp %d\tcommune\tXã\t%d\n", c+1, c+1, 901+c%13)
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// ProcStat is a process's CPU time and memory from /proc.
type ProcStat struct {
	CPU   time.Duration // utime + stime
	RSS   int64         // bytes
	PeakR int64         // VmHWM bytes
}

// ReadProc reads /proc/PID/stat and /proc/PID/status (pid 0 = self).
func ReadProc(pid int) (ProcStat, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	var st ProcStat
	b, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return st, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return st, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(ut+stt) * time.Second / 100 // USER_HZ is 100 on Linux
	sb, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return st, err
	}
	for _, l := range strings.Split(string(sb), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			st.RSS = kb << 10
		case "VmHWM":
			st.PeakR = kb << 10
		}
	}
	return st, nil
}
