// Package apptest is the testing layer over internal/harness: it starts the
// whole opscenter in-process (harness.StartApp: real HTTP on a free port) on
// real PostgreSQL (a fresh database per test, via storetest), with the roster
// loaded, and helpers to log in as each role or as an endpoint.
//
// Packages that use it need storetest's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/store/storetest"
)

// App is a running server plus test helpers.
type App struct {
	*app.App
	t testing.TB

	mu     sync.Mutex
	tokens map[string]string // join secrets issued by Endpoint, by code
}

// Start runs opscenter on a fresh database. mutate, if not nil, edits the config.
func Start(t testing.TB, mutate func(*config.Config)) *App {
	t.Helper()
	return StartDSN(t, storetest.DSN(t), mutate)
}

// StartDSN runs opscenter on an existing database (two servers on one database).
func StartDSN(t testing.TB, dsn string, mutate func(*config.Config)) *App {
	t.Helper()
	lvl := slog.LevelWarn
	if os.Getenv("OPSCENTER_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: lvl}))
	// harness.Settings: a free HTTP port and local state files per app (tests
	// run in parallel); a restart test passes the old app's paths through mutate.
	a, err := harness.StartApp(context.Background(), harness.AppOptions{Dir: t.TempDir(), DSN: dsn, Log: log,
		Mutate: func(cfg *config.Config) {
			cfg.Recording.MinFree = 0 // no test depends on the machine's free space (set it to test disk-low)
			if mutate != nil {
				mutate(cfg)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(context.Background()) })
	return &App{App: a, t: t, tokens: map[string]string{}}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// User creates a staff account with role and returns a client logged in as it.
func (a *App) User(name string, role auth.Role) *Client {
	a.t.Helper()
	pw := "password-" + name + "-long"
	h, err := auth.HashPassword(pw)
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.Store.CreateUser(context.Background(), "test", name, role, h); err != nil {
		a.t.Fatal(err)
	}
	c := a.Anon()
	var out struct{ Token string }
	c.Do("POST", "/api/v1/auth/login", map[string]string{"username": name, "password": pw}, &out, 200)
	c.Token = out.Token
	return c
}

// Endpoint issues a join link for code and returns a client using it as a bearer token.
//
// The link is issued once per code and reused: issuing a new one would (rightly)
// put out a device already connected with the old one.
func (a *App) Endpoint(code string) *Client {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	tok, ok := a.tokens[code]
	if !ok {
		var err error
		if tok, err = a.Store.IssueEndpointToken(context.Background(), "test", code); err != nil {
			a.t.Fatal(err)
		}
		a.tokens[code] = tok
	}
	c := a.Anon()
	c.Token = tok
	return c
}

// Anon is a client with no credential.
func (a *App) Anon() *Client {
	return &Client{t: a.t, Base: a.URL(), HTTP: &http.Client{}}
}

// Client calls the API as one principal.
type Client struct {
	t     testing.TB
	Base  string
	Token string
	HTTP  *http.Client
}

// Do sends body as JSON (a string or []byte is sent as is) and decodes the response
// into out (if not nil). When want is not 0 the status must equal it. It returns the
// status and the raw body.
func (c *Client) Do(method, path string, body any, out any, want int) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if want != 0 && resp.StatusCode != want {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}
