package browsertest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
)

// TestPressWall: the press wall opened from its link in Chromium shows the program
// (the console's yellow camera) playing over WHEP, the turnout board and the clock;
// an endpoint reports a figure and the wall and the console's board show it without
// a reload; the wall's cookie can do nothing else; when its video is cut, it
// reconnects by itself. Screenshots: test-output/screenshots/wall.png.
func TestPressWall(t *testing.T) {
	srv := startServer(t)
	lpw := srv.user(t, "lanhdao", auth.RoleLeader)
	rows := loadRegisteredFigures(t, srv)
	var total int64
	for _, r := range rows {
		total += *r.Registered
	}
	srv.startSession(t)
	tok, err := srv.Store.IssueWallToken(context.Background(), "test", "press-1")
	if err != nil {
		t.Fatal(err)
	}

	// The console publishes the program with a yellow camera.
	cam := filepath.Join(t.TempDir(), "yellow.y4m")
	writeY4M(t, cam, palette["yellow"])
	con := newBrowser(t, "console", cam)
	conLog := con.watchConsole()
	con.login(srv.URL, "lanhdao", lpw, "/console")
	waitFor(con, "console joined", `window.__ops.link === 'open' && window.__ops.leader === true`, 30*time.Second)
	eval[bool](con, `(document.getElementById('publish').click(), true)`)
	waitFor(con, "publishing", `window.__ops.publishing === true`, 30*time.Second)
	waitFor(con, "console board loaded", fmt.Sprintf(`document.getElementById('turnout').dataset.registered === '%d'
		&& document.querySelectorAll('#turnout-districts .tb-row').length === 13`, total), 30*time.Second)
	eval[bool](con, `(window.__noReload = true)`)
	// The command room (the console's program) is online; nobody else is.
	waitFor(con, "command room online", `document.getElementById('online').dataset.online === '1'`, 30*time.Second)
	onlineBefore := eval[string](con, `document.getElementById('online').dataset.online`)

	// The wall: its own Chromium, no camera, opened from the link.
	wall := newBrowser(t, "wall", "")
	wallLog := wall.watchConsole()
	opened := time.Now()
	wall.run(30*time.Second, chromedp.Navigate(srv.URL+"/wall#t="+tok))
	took := waitFor(wall, "wall live", fmt.Sprintf(`window.__ops && window.__ops.phase === 'live' && window.__ops.feed === 'open'
		&& document.getElementById('turnout').dataset.registered === '%d'
		&& document.querySelectorAll('#turnout-districts .tb-row').length === 13
		&& window.__ops.session === 'in_progress' && /\d\d:\d\d:\d\d/.test(document.getElementById('pw-clock').textContent)`, total), 30*time.Second)
	t.Logf("wall: board and session shown %v after the page was opened", took.Round(time.Millisecond))
	if h := eval[string](wall, `location.hash`); h != "" {
		t.Errorf("the wall's token stayed in the URL: %q", h)
	}
	if n := eval[int](wall, `document.querySelectorAll('button, input, select, textarea, a[href], [role=button]').length`); n != 0 {
		t.Errorf("the wall has %d controls, want none", n)
	}
	eval[bool](wall, `(window.__noReload = true)`)

	// The program plays on the wall: its colour, and frames that keep coming.
	took = waitColour(wall, "#program", "yellow", 45*time.Second)
	t.Logf("wall: program shows the console's camera %v after the page was opened (%v after polling began)", time.Since(opened).Round(time.Millisecond), took.Round(time.Millisecond))
	rates := framesFlow(wall, "program", "program_video")
	t.Logf("wall: program keeps decoding: %.1f then %.1f frames/s, %v px wide", at(rates, 0), at(rates, 1),
		eval[float64](wall, `document.getElementById('program').videoWidth`))
	waitFor(wall, "program box live", `document.querySelector('.pw-program').dataset.live === 'true'
		&& document.querySelector('.pw-floor').dataset.live === 'false'`, 10*time.Second)

	// The wall is no endpoint: the console's count of who is online does not change.
	if after := eval[string](con, `document.getElementById('online').dataset.online`); after != onlineBefore {
		t.Errorf("the console counts %s online with the wall watching, %s before", after, onlineBefore)
	}

	// An endpoint reports a figure; the wall and the console show it without a reload.
	link := srv.joinLink(t, "07192")
	epTok := link[strings.Index(link, "#t=")+3:]
	sent := time.Now()
	if st := call(t, "POST", srv.URL+"/api/v1/turnout/reports", epTok, map[string]any{"id": uuid.NewString(),
		"as_of": time.Now().UTC().Format(time.RFC3339), "voted": 1200}, nil); st != 201 {
		t.Fatalf("report: %d", st)
	}
	took = waitFor(wall, "wall shows 1200", boardShows(1200, "207", 1200), 30*time.Second)
	t.Logf("wall: board shows the report %v after it was sent (%v after polling began)", time.Since(sent).Round(time.Millisecond), took.Round(time.Millisecond))
	took = waitFor(con, "console shows 1200", boardShows(1200, "207", 1200), 30*time.Second)
	t.Logf("console: board shows the report %v after it was sent (%v after polling began)", time.Since(sent).Round(time.Millisecond), took.Round(time.Millisecond))
	waitFor(wall, "curve drawn", `document.querySelectorAll('#turnout svg.tb-curve polyline.line').length === 1`, 30*time.Second)

	// The wall's cookie reaches nothing else: not the log, not the roster, not /ws.
	refused := eval[map[string]float64](wall, `(async () => {
		const out = {};
		for (const p of ['/api/v1/incidents', '/api/v1/directives', '/api/v1/events/head', '/api/v1/auth/me', '/api/v1/endpoints', '/api/v1/turnout/reports']) {
			out[p] = (await fetch(p + '?as=wall', { credentials: 'same-origin' })).status;
		}
		out['/ws'] = await new Promise((resolve) => {
			const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws?as=wall');
			ws.onopen = () => { ws.close(); resolve(101); };
			ws.onerror = () => resolve(0);
		});
		return out; })()`)
	for p, st := range refused {
		if st != 401 && st != 403 && st != 0 {
			t.Errorf("the wall's cookie: %s → %v, want refused", p, st)
		}
	}
	t.Logf("the wall's cookie is refused: %v", refused)

	// The screenshot, in Vietnamese, with the program playing.
	shot := elementPNG(wall, "pw", "wall.png")
	t.Logf("screenshot of the wall: %s", shot)
	wall.screenshot("wall")

	// Cut the wall's video on the server's side: it reconnects by itself.
	before := eval[int](wall, `window.__ops.videoConnects`)
	cut := time.Now()
	eval[bool](wall, `fetch(window.__ops.resource + '?as=wall', { method: 'DELETE', credentials: 'same-origin' }).then((r) => r.ok)`)
	took = waitFor(wall, "video reconnected", fmt.Sprintf(`window.__ops.videoConnects > %d && window.__ops.video === 'connected'`, before), 60*time.Second)
	t.Logf("wall: video reconnected by itself %v after the cut", took.Round(time.Millisecond))
	waitColour(wall, "#program", "yellow", 30*time.Second)
	t.Logf("wall: program back %v after the cut", time.Since(cut).Round(time.Millisecond))
	if eval[bool](wall, `window.__noReload !== true`) {
		t.Error("the wall reloaded")
	}

	for name, cl := range map[string]*consoleLog{"wall": wallLog, "console": conLog} {
		var bad []string
		for _, p := range cl.problems() {
			// The test's own refused requests above, and the page freeing the WHEP
			// resource the test had already removed (404), are expected.
			if name == "wall" && (strings.Contains(p, "/whep/program/") && strings.Contains(p, "404") ||
				strings.Contains(p, "?as=wall") && strings.Contains(p, "403")) {
				continue
			}
			bad = append(bad, p)
		}
		if len(bad) > 0 {
			t.Errorf("%s: console errors:\n%s", name, strings.Join(bad, "\n"))
		}
	}

	// Revoking the wall stops it at once: the page says so and its video ends.
	revoked := time.Now()
	if err := srv.Store.RevokeWall(context.Background(), "test", "press-1"); err != nil {
		t.Fatal(err)
	}
	took = waitFor(wall, "wall revoked", `window.__ops.feed === 'revoked' && window.__ops.video === 'stopped'
		&& !document.getElementById('pw-message').classList.contains('hidden')
		&& document.getElementById('program').srcObject.getVideoTracks().every((t) => t.readyState === 'ended')`, 30*time.Second)
	t.Logf("wall: revoked and stopped %v after the revoke (%v after polling began)", time.Since(revoked).Round(time.Millisecond), took.Round(time.Millisecond))
	wall.screenshot("wall-revoked")

	// A wrong link, and no link at all, say so.
	other := wall.tab("wall-badlink", true)
	other.run(30*time.Second, chromedp.Navigate(srv.URL+"/wall#t=nope"))
	waitFor(other, "bad link", `window.__ops && window.__ops.phase === 'badlink' && !document.getElementById('pw-message').classList.contains('hidden')`, 30*time.Second)
	other.run(30*time.Second, chromedp.Navigate(srv.URL+"/wall"))
	waitFor(other, "no link", `window.__ops && window.__ops.phase === 'nolink'`, 30*time.Second)
}
