package browsertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// skipOrFail skips, except in CI where a skipped test is a failure.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

var chromium struct {
	once sync.Once
	path string
	err  error
}

// chromiumPath finds Chromium, installing Debian's package when it is missing and we
// are root (bounded by a timeout).
func chromiumPath(t testing.TB) string {
	t.Helper()
	chromium.once.Do(func() {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				chromium.path = p
				return
			}
		}
		if os.Geteuid() != 0 {
			chromium.err = errors.New("chromium is not installed and we are not root to install it: apt-get install -y chromium fonts-dejavu-core")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "chromium", "fonts-dejavu-core")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			chromium.err = fmt.Errorf("apt-get install chromium: %v\n%s", err, tail(out, 2000))
			return
		}
		chromium.path, chromium.err = exec.LookPath("chromium")
	})
	if chromium.err != nil {
		skipOrFail(t, "no Chromium: %v", chromium.err)
	}
	return chromium.path
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// moduleRoot is the folder with go.mod, above this package.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("go.mod not found")
		}
	}
}

// outputDir is test-output/ at the module root (gitignored), for screenshots and logs.
func outputDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(moduleRoot(t), "test-output")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

var binary struct {
	once sync.Once
	path string
	err  error
}

// buildBinary builds ./cmd/opscenter once per test run.
func buildBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "opscenter-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "opscenter")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binary.path, "./cmd/opscenter")
		cmd.Dir = moduleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is the running opscenter binary plus direct access to its database.
type server struct {
	URL   string
	Store *store.Store
	DSN   string
	log   string
}

// startServer runs the built binary on a fresh test database.
func startServer(t testing.TB) *server {
	t.Helper()
	return startServerDSN(t, storetest.DSN(t))
}

// startServerDSN runs the built binary on the database at dsn.
func startServerDSN(t testing.TB, dsn string) *server {
	t.Helper()
	return startNode(t, "", dsn)
}

// startNode runs the built binary on the database at dsn with extra environment
// settings (a node of a tree: its roster, its parent); name, if not empty, tells
// its log from the other servers' of the test.
func startNode(t testing.TB, name, dsn string, extra ...string) *server {
	t.Helper()
	bin := buildBinary(t)
	port := freePort(t)
	state := t.TempDir()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	logName := t.Name() + "-server.log"
	if name != "" {
		logName = t.Name() + "-" + name + "-server.log"
	}
	logPath := filepath.Join(outputDir(t), logName)
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	// The harness's settings (free ports, state files in state): parallel servers.
	cmd.Env = append(os.Environ(), harness.Settings(state, fmt.Sprintf("127.0.0.1:%d", port), "127.0.0.1:0")...)
	cmd.Env = append(cmd.Env, "OPSCENTER_DATABASE_URL="+dsn, "OPSCENTER_LOG_LEVEL=info")
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the process is gone (waitErr set): both the start
	// loop and the cleanup wait on it, so a server that dies while starting
	// cannot leave the cleanup waiting for a value already taken.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	start := time.Now()
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("opscenter exited: %v\n%s", waitErr, tail(b, 3000))
		default:
		}
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("opscenter not ready after %v; log in %s", time.Since(start), logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("opscenter ready in %v at %s (log %s)", time.Since(start).Round(time.Millisecond), url, logPath)
	st, err := store.Open(context.Background(), dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return &server{URL: url, Store: st, DSN: dsn, log: logPath}
}

// user creates a staff account and returns its password.
func (s *server) user(t testing.TB, name string, role auth.Role) string {
	t.Helper()
	pw := "password-" + name + "-long"
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.CreateUser(context.Background(), "test", name, role, h); err != nil {
		t.Fatal(err)
	}
	return pw
}

// joinLink issues an endpoint's join link.
func (s *server) joinLink(t testing.TB, code string) string {
	t.Helper()
	tok, err := s.Store.IssueEndpointToken(context.Background(), "test", code)
	if err != nil {
		t.Fatal(err)
	}
	return s.URL + "/join#t=" + tok
}

// startSession creates and starts a session through the store; the server hears of
// it through the event bus.
func (s *server) startSession(t testing.TB) store.Session {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	sess, _, err := s.Store.CreateSession(ctx, "test", store.NewSession{
		ID: "5e55a000-0000-4000-8000-000000000023", Title: "Bầu cử 23/5/2021",
		PlannedStart: now, PlannedEnd: now.Add(12 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if sess, err = s.Store.StartSession(ctx, "test", sess.ID); err != nil {
		t.Fatal(err)
	}
	return sess
}

// browser is one Chromium process (one peer) with one tab.
type browser struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	t      testing.TB
}

// newBrowser starts Chromium with the flags of WEBRTC-NOTES.md and, when camera is
// not empty, that y4m file as its camera.
func newBrowser(t testing.TB, name, camera string) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	if camera != "" {
		opts = append(opts, chromedp.Flag("use-file-for-fake-video-capture", camera))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(func(string, ...any) {}))
	start := time.Now()
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		bcancel()
		acancel()
		t.Fatalf("start chromium (%s): %v", name, err)
	}
	t.Logf("%s: chromium started in %v", name, time.Since(start).Round(time.Millisecond))
	b := &browser{name: name, ctx: bctx, t: t}
	b.cancel = func() { bcancel(); acancel() }
	t.Cleanup(b.close)
	return b
}

// tab opens another tab in b's Chromium. With isolated, the tab gets its own
// browser context (its own cookies and storage, as another device would have);
// otherwise it shares b's cookies, as a second tab of one person's browser does.
func (b *browser) tab(name string, isolated bool) *browser {
	b.t.Helper()
	var opts []chromedp.ContextOption
	if isolated {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	ctx, cancel := chromedp.NewContext(b.ctx, opts...)
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		cancel()
		b.t.Fatalf("%s: open tab: %v", name, err)
	}
	nb := &browser{name: name, ctx: ctx, t: b.t, cancel: cancel}
	b.t.Cleanup(nb.close)
	return nb
}

// initScript runs js in every document the tab loads from now on, before the
// page's own scripts (instrumentation such as counting PeerConnections).
func (b *browser) initScript(js string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js}); err != nil {
		b.t.Fatalf("%s: init script: %v", b.name, err)
	}
}

// consoleLog collects what a tab writes to its console.
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

// watchConsole records the tab's console from now on: calls of the console API,
// uncaught exceptions, unhandled promise rejections and the browser log.
func (b *browser) watchConsole() *consoleLog {
	cl := &consoleLog{}
	msgs := chromedp.Console(b.ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			cl.mu.Lock()
			cl.msgs = append(cl.msgs, m)
			cl.mu.Unlock()
		}
	}()
	return cl
}

// problems are the uncaught exceptions, unhandled rejections and console errors.
func (cl *consoleLog) problems() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []string
	for _, m := range cl.msgs {
		if m.IsException() || m.Type == chromedp.ConsoleError {
			where := ""
			if m.URL != "" {
				where = fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			out = append(out, m.String()+where)
		}
	}
	return out
}

// warnings are the console warnings (recovered errors the page logged).
func (cl *consoleLog) warnings() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []string
	for _, m := range cl.msgs {
		if m.Type == chromedp.ConsoleWarning {
			out = append(out, m.Text)
		}
	}
	return out
}

func (b *browser) close() {
	if b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
}

// run runs actions with a bound.
func (b *browser) run(d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", b.name, err)
	}
}

// eval evaluates js (awaiting a promise) and returns its value.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: eval %s: %v", b.name, short(js), err)
	}
	return v
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// waitFor polls a JS boolean expression until it is true, bounded by d, and returns
// how long it took.
func waitFor(b *browser, what, js string, d time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(async () => { try { return !!(await (`+js+`)); } catch (e) { return false; } })()`, chromedp.EvalAwaitPromise))
		cancel()
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			b.screenshot("timeout-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("%s: %s: not true after %v (%s) err=%v", b.name, what, d, short(js), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// screenshot saves the page into test-output/ for a reviewer.
func (b *browser) screenshot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		b.t.Logf("%s: screenshot %s: %v", b.name, name, err)
		return
	}
	p := filepath.Join(outputDir(b.t), fmt.Sprintf("%s-%s.jpg", b.t.Name(), name))
	p = strings.ReplaceAll(p, "/TestLive", "/TestLive")
	if err := os.WriteFile(filepath.Clean(strings.ReplaceAll(p, " ", "_")), png, 0o644); err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot %s", p)
}

// login signs a staff member in through the login page and waits for the redirect.
func (b *browser) login(base, user, pw, wantPath string) {
	b.t.Helper()
	b.run(30*time.Second, chromedp.Navigate(base+"/login"))
	waitFor(b, "login page", `window.__ops && window.__ops.app === 'login'`, 15*time.Second)
	eval[bool](b, fmt.Sprintf(`(() => {
		document.getElementById('username').value = %q;
		document.getElementById('password').value = %q;
		document.getElementById('submit').click();
		return true; })()`, user, pw))
	waitFor(b, "redirect to "+wantPath, fmt.Sprintf(`location.pathname === %q && window.__ops && window.__ops.app !== 'login'`, wantPath), 15*time.Second)
}
