package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/internal/pgembed"
	"github.com/opscenter/opscenter/loadgen"
	"github.com/opscenter/opscenter/store"
)

// target is the server under soak: its URL, the endpoint tokens and a leader token.
type target struct {
	URL     string
	Metrics string            // the server's /metrics URL (its own listener)
	Tokens  map[string]string // endpoint code → join token
	Codes   []string          // roster order, without the command room
	Leader  string            // leader's bearer token
	Admin   string            // an admin's bearer token for /debug/pprof ("" for -url targets)
	LogPath string
	PID     int
	stop    func()
}

// startServer starts a private PostgreSQL and the opscenter binary in dir.
func startServer(ctx context.Context, o Options, dir string, logf func(string, ...any)) (*target, error) {
	t := &target{Tokens: map[string]string{}}
	var stops []func()
	t.stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	ok := false
	defer func() {
		if !ok {
			t.stop()
		}
	}()
	bin := o.Bin
	if bin == "" {
		bin = filepath.Join(dir, "opscenter")
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		cmd := exec.CommandContext(bctx, "go", "build", "-o", bin, "./cmd/opscenter")
		cmd.Dir = o.Repo
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("go build ./cmd/opscenter: %v\n%s", err, out)
		}
	}
	pg, err := pgembed.Start(ctx, pgembed.Options{DataDir: filepath.Join(dir, "pg"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	stops = append(stops, func() { _ = pg.Stop(context.Background()) })
	if err := app.EnsureDatabase(ctx, pg); err != nil {
		return nil, err
	}
	dsn := pg.DSN("opscenter")
	if err := store.Migrate(ctx, dsn, nil); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, dsn, 4)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	cfg, err := config.Default()
	if err != nil {
		return nil, err
	}
	if err := app.LoadRoster(ctx, st, cfg.Roster, slog.New(slog.DiscardHandler)); err != nil {
		return nil, err
	}
	eps, err := st.ListEndpoints(ctx, store.EndpointFilter{})
	if err != nil {
		return nil, err
	}
	for _, e := range eps {
		tok, err := st.IssueEndpointToken(ctx, "soak", e.Code)
		if err != nil {
			return nil, err
		}
		t.Tokens[e.Code] = tok
		if e.Code != cfg.Roster.ProvinceCode {
			t.Codes = append(t.Codes, e.Code)
		}
	}
	pw, err := newUser(ctx, st, "soak-leader", auth.RoleLeader)
	if err != nil {
		return nil, err
	}
	// An admin reads the goroutine and heap profiles at the start and the
	// end, so a drift comes with what drifted.
	adminPW, err := newUser(ctx, st, "soak-admin", auth.RoleAdmin)
	if err != nil {
		return nil, err
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	t.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	t.Metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	t.LogPath = filepath.Join(dir, "server.log")
	logFile, err := os.Create(t.LogPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"OPSCENTER_DATABASE_URL="+dsn,
		fmt.Sprintf("OPSCENTER_HTTP_ADDR=127.0.0.1:%d", port),
		fmt.Sprintf("OPSCENTER_METRICS_ADDR=127.0.0.1:%d", mport),
		"OPSCENTER_HTTP_PUBLIC_URL="+t.URL,
		"OPSCENTER_MEDIA_UDP_PORT=0",
		"OPSCENTER_MEDIA_TCP_PORT=0",
		"OPSCENTER_DATABASE_JOURNAL_PATH="+filepath.Join(dir, "audit.journal"),
		"OPSCENTER_LIVE_STATE_PATH="+filepath.Join(dir, "live-state.json"),
		"OPSCENTER_RECORDING_DIR="+filepath.Join(dir, "recordings"),
		"OPSCENTER_LOG_LEVEL=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	t.PID = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stops = append(stops, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(t.LogPath)
			return nil, fmt.Errorf("opscenter exited: %v\n%s", err, tail(b, 3000))
		default:
		}
		if resp, err := http.Get(t.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("opscenter not ready after 60 s; log %s", t.LogPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("opscenter pid %d ready at %s (log %s)", t.PID, t.URL, t.LogPath)
	if t.Admin, err = login(ctx, t.URL, "soak-admin", adminPW); err != nil {
		t.stop()
		return nil, err
	}
	if t.Leader, err = login(ctx, t.URL, "soak-leader", pw); err != nil {
		return nil, err
	}
	ok = true
	return t, nil
}

// externalTarget reads the tokens CSV and logs the leader in.
func externalTarget(ctx context.Context, o Options) (*target, error) {
	if o.TokensCSV == "" || o.LeaderUser == "" || o.LeaderPassword == "" {
		return nil, errors.New("-url needs -tokens, -leader-user and -leader-password")
	}
	f, err := os.Open(o.TokensCSV)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.TokensCSV, err)
	}
	t := &target{URL: strings.TrimRight(o.URL, "/"), Metrics: o.MetricsURL, Tokens: map[string]string{}, stop: func() {}}
	for i, r := range recs {
		if i == 0 || len(r) < 5 {
			continue // header: code,name,kind,parent_code,join_url
		}
		_, tok, ok := strings.Cut(r[4], "#t=")
		if !ok {
			return nil, fmt.Errorf("%s line %d: no #t= in %q", o.TokensCSV, i+1, r[4])
		}
		t.Tokens[r[0]] = tok
		if r[2] != string(store.KindProvince) {
			t.Codes = append(t.Codes, r[0])
		}
	}
	if t.Leader, err = login(ctx, t.URL, o.LeaderUser, o.LeaderPassword); err != nil {
		return nil, err
	}
	return t, nil
}

func login(ctx context.Context, base, user, pw string) (string, error) {
	var out struct{ Token string }
	if err := api(ctx, base, "", "POST", "/api/v1/auth/login", map[string]string{"username": user, "password": pw}, &out); err != nil {
		return "", fmt.Errorf("login %s: %w", user, err)
	}
	return out.Token, nil
}

// api sends a JSON request and decodes a 2xx answer into out.
func api(ctx context.Context, base, token, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, tail(raw, 300))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// saveProfile writes the server's named pprof profile (debug text form) to
// file. Used with the admin token of a local target.
func saveProfile(ctx context.Context, t *target, name, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return loadgen.Download(ctx, t.URL+"/debug/pprof/"+name+"?debug=1", t.Admin, file)
}

// newUser creates a staff account with a generated password and returns it.
func newUser(ctx context.Context, st *store.Store, name string, role auth.Role) (string, error) {
	pw := auth.NewPassword()
	h, err := auth.HashPassword(pw)
	if err != nil {
		return "", err
	}
	if _, err := st.CreateUser(ctx, "soak", name, role, h); err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	return pw, nil
}
