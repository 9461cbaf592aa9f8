package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

func ptr[T any](v T) *T { return &v }

// elementPNG saves the element with id as test-output/screenshots/name (PNG) and
// returns the path. The box is measured and captured without the scroll bar, beyond
// the viewport (a board is taller than the window).
func elementPNG(b *browser, id, name string) string {
	b.t.Helper()
	shot := filepath.Join(outputDir(b.t), "screenshots", name)
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		b.t.Fatal(err)
	}
	box := eval[[]float64](b, fmt.Sprintf(`(async () => { document.documentElement.style.overflow = 'hidden';
		await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
		const r = document.getElementById(%q).getBoundingClientRect();
		return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()`, id))
	defer eval[bool](b, `(document.documentElement.style.overflow = '', true)`)
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format: page.CaptureScreenshotFormatPng, CaptureBeyondViewport: ptr(true),
		Clip: &page.Viewport{X: box[0], Y: box[1], Width: box[2], Height: box[3], Scale: 1}})
	if err != nil {
		b.t.Fatalf("%s: screenshot of #%s: %v", b.name, id, err)
	}
	if err := os.WriteFile(shot, png.Data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return shot
}

// loadRegisteredFigures sets the communes' registered voters from the embedded
// synthetic figures (959,021 in all), as a leader's upload would, and returns them.
func loadRegisteredFigures(t *testing.T, srv *server) []store.RegisteredFigure {
	t.Helper()
	f, err := os.Open(filepath.Join(moduleRoot(t), "configs", "turnout", "22-2021-05-23.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := store.ParseRegistered(f, '\t')
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.SetRegistered(context.Background(), "test", rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// startMorningSession starts a session planned from 4 hours ago, and has duty staff
// phone in a morning of figures: most communes every 30 minutes, some stopped an hour
// or more ago (stale), some finished (complete), none of district skip's. It returns
// the province's figure in force now.
func startMorningSession(t *testing.T, srv *server, rows []store.RegisteredFigure, skip string) (store.Session, int64) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	start := now.Add(-4 * time.Hour)
	sess, _, err := srv.Store.CreateSession(ctx, "test", store.NewSession{ID: "5e55a000-0000-4000-8000-000000000024",
		Title: "Bầu cử ĐBQH và HĐND 23/5/2021", PlannedStart: start, PlannedEnd: now.Add(8 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if sess, err = srv.Store.StartSession(ctx, "test", sess.ID); err != nil {
		t.Fatal(err)
	}
	eps, err := srv.Store.ListEndpoints(ctx, store.EndpointFilter{})
	if err != nil {
		t.Fatal(err)
	}
	parent := map[string]string{}
	for _, e := range eps {
		parent[e.Code] = e.ParentCode
	}
	curve := []float64{.12, .27, .41, .53, .64, .73, .81, .87}
	var total int64
	n := 0
	for i, r := range rows {
		if parent[r.Code] == skip || i%23 == 7 { // a few have not reported at all: stale
			continue
		}
		last := len(curve) - 1 - i%2 // the latest report now or 30 minutes ago
		if i%11 == 3 {
			last = len(curve) - 4 // stopped 2 hours ago: stale
		}
		var voted int64
		for k := 0; k <= last; k++ {
			asOf := start.Add(time.Duration(k+1) * 30 * time.Minute)
			f := curve[k] * (0.9 + float64(i%7)*0.03)
			complete := i%6 == 0 && k == last
			if complete {
				f = 0.985
			}
			voted = int64(f * float64(*r.Registered))
			if _, _, err := srv.Store.ReportTurnout(ctx, "user:trucban", true, store.NewTurnoutReport{ID: uuid.NewString(),
				EndpointCode: r.Code, AsOf: &asOf, Voted: &voted, Complete: complete, Via: "phone"}); err != nil {
				t.Fatalf("seed %s at %v: %v", r.Code, asOf, err)
			}
			n++
		}
		total += voted
	}
	t.Logf("seeded %d reports in %v; the province stands at %d", n, time.Since(now).Round(time.Millisecond), total)
	return sess, total
}

// boardShows is a JS condition: the board's province figure and district row show
// what they should.
func boardShows(province int64, district string, voted int) string {
	return fmt.Sprintf(`(() => { const b = document.getElementById('turnout');
		const d = b && b.querySelector('#turnout-districts [data-code="%s"]');
		return window.__noReload === true && b.dataset.voted === '%d' && !!d && d.dataset.voted === '%d'; })()`, district, province, voted)
}

// TestTurnoutBoardLive: an endpoint reports its turnout from the join page; the
// console's and the desk's boards show the new province and district figures without
// a reload; a lower figure is held back by an in-page warning; a complete figure shows
// on the chosen district's communes; every report is written once.
func TestTurnoutBoardLive(t *testing.T) {
	srv := startServer(t)
	lpw := srv.user(t, "lanhdao", auth.RoleLeader)
	dpw := srv.user(t, "trucban", auth.RoleDuty)
	const code, district = "07192", "207"
	rows := loadRegisteredFigures(t, srv)
	var total int64
	for _, r := range rows {
		total += *r.Registered
	}
	sess, base := startMorningSession(t, srv, rows, district)

	con := newBrowser(t, "console", "")
	conLog := con.watchConsole()
	con.login(srv.URL, "lanhdao", lpw, "/console")
	waitFor(con, "console board loaded", fmt.Sprintf(`document.getElementById('turnout').dataset.registered === '%d'
		&& document.querySelectorAll('#turnout-districts .tb-row').length === 13 && !!document.querySelector('#turnout svg.tb-curve')`, total), 30*time.Second)
	eval[bool](con, `(window.__noReload = true)`)

	desk := con.tab("desk", true)
	deskLog := desk.watchConsole()
	desk.login(srv.URL, "trucban", dpw, "/desk")
	waitFor(desk, "desk board loaded", fmt.Sprintf(`document.getElementById('turnout').dataset.registered === '%d'
		&& document.querySelectorAll('#turnout-districts .tb-row').length === 13`, total), 30*time.Second)
	eval[bool](desk, `(window.__noReload = true)`)

	// The endpoint joins and reports 1,200 voters.
	ep := con.tab("endpoint-"+code, true)
	epLog := openJoinPage(t, ep, srv.joinLink(t, code))
	eval[bool](ep, `(document.getElementById('joinbtn').click(), true)`)
	waitFor(ep, "joined", `window.__ops.phase === 'live' && document.getElementById('turnout-figure').dataset.registered === '2600'`, 30*time.Second)
	eval[bool](ep, `(window.__noReload = true)`)
	report := func(voted int, complete bool) time.Time {
		eval[bool](ep, fmt.Sprintf(`(() => { document.getElementById('turnout-voted').value = '%d';
			document.getElementById('turnout-complete').checked = %t;
			document.getElementById('turnout-send').click(); return true; })()`, voted, complete))
		return time.Now()
	}
	sent := report(1200, false)
	waitFor(ep, "report accepted", `window.__ops.turnout.pending === 0 && window.__ops.turnout.last && window.__ops.turnout.last.voted === 1200
		&& document.getElementById('turnout-last').dataset.voted === '1200' && document.getElementById('turnout-figure').dataset.voted === '1200'`, 30*time.Second)
	t.Logf("endpoint: report accepted %v after the click", time.Since(sent).Round(time.Millisecond))

	took := waitFor(con, "console shows 1200", boardShows(base+1200, district, 1200), 30*time.Second)
	t.Logf("console: board shows the report %v after the click (%v after polling began)", time.Since(sent).Round(time.Millisecond), took.Round(time.Millisecond))
	took = waitFor(desk, "desk shows 1200", boardShows(base+1200, district, 1200), 30*time.Second)
	t.Logf("desk: board shows the report %v after the click (%v after polling began)", time.Since(sent).Round(time.Millisecond), took.Round(time.Millisecond))
	if pct := eval[string](con, `document.querySelector('#turnout-districts [data-code="207"]').dataset.percent`); pct == "" || pct == "0" {
		t.Fatalf("district 207 percent %q after a report", pct)
	}

	// A lower figure is held back by a warning in the page; cancel sends nothing.
	report(1000, false)
	waitFor(ep, "lower figure warned", `!document.getElementById('turnout-confirm').classList.contains('hidden')
		&& window.__ops.turnout.confirming === true && window.__ops.turnout.pending === 0`, 10*time.Second)
	eval[bool](ep, `(document.getElementById('turnout-confirm-cancel').click(), true)`)
	waitFor(ep, "warning closed", `document.getElementById('turnout-confirm').classList.contains('hidden') && window.__ops.turnout.confirming === false`, 5*time.Second)

	// The commune finishes with 2,000; the console's district shows its communes.
	sent = report(2000, true)
	waitFor(ep, "complete accepted", `window.__ops.turnout.pending === 0 && window.__ops.turnout.last.voted === 2000
		&& document.getElementById('turnout-figure').dataset.complete === 'true'`, 30*time.Second)
	eval[bool](con, `(document.querySelector('#turnout-districts [data-code="207"]').click(), true)`)
	took = waitFor(con, "console shows the commune complete", boardShows(base+2000, district, 2000)+` && (() => {
		const c = document.querySelector('#turnout-communes [data-code="07192"]');
		return !!c && c.dataset.complete === 'true' && c.dataset.voted === '2000'
			&& document.querySelectorAll('#turnout-communes .tb-row').length === 3
			&& document.querySelector('#turnout-districts [data-code="207"]').dataset.unitsComplete === '1'; })()`, 30*time.Second)
	t.Logf("console: complete commune shown %v after the click (%v after polling began)", time.Since(sent).Round(time.Millisecond), took.Round(time.Millisecond))
	waitFor(desk, "desk shows 2000", boardShows(base+2000, district, 2000), 30*time.Second)
	waitFor(con, "curve drawn", `document.querySelectorAll('#turnout svg.tb-curve polyline.line').length === 1
		&& Number(document.querySelector('#turnout svg.tb-curve').dataset.points) >= 2`, 30*time.Second)

	// Each report was written once, whatever the retries.
	_, reps, err := srv.Store.ListTurnoutReports(context.Background(), store.TurnoutReportFilter{Code: code, Session: sess.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || reps[0].Voted != 1200 || reps[1].Voted != 2000 || !reps[1].Complete {
		t.Fatalf("reports of %s: %+v", code, reps)
	}

	// The board in English, then the screenshot of the console's board in Vietnamese.
	eval[bool](con, `(document.getElementById('lang').click(), true)`)
	waitFor(con, "board in English", `document.querySelector('#turnout h2').textContent === 'Voter turnout'`, 5*time.Second)
	eval[bool](con, `(document.getElementById('lang').click(), true)`)
	waitFor(con, "board in Vietnamese", `document.querySelector('#turnout h2').textContent === 'Tỷ lệ cử tri đi bầu'`, 5*time.Second)
	shot := elementPNG(con, "turnout", "console-turnout.png")
	t.Logf("screenshot of the console's board: %s", shot)
	elementPNG(desk, "turnout", "desk-turnout.png")
	elementPNG(ep, "turnout-panel", "join-turnout.png")
	con.screenshot("console")
	desk.screenshot("desk")
	ep.screenshot("join")

	for name, cl := range map[string]*consoleLog{"console": conLog, "desk": deskLog} {
		if p := cl.problems(); len(p) > 0 {
			t.Errorf("%s: console errors:\n%s", name, strings.Join(p, "\n"))
		}
	}
	if p := epLog.problems(); len(p) > 0 {
		t.Logf("join page console errors (not asserted):\n%s", strings.Join(p, "\n"))
	}
}

// TestTurnoutBoardDistrictScoped: district staff see their district as the top figure
// and its communes as the bars, and nothing of the other districts; a report from one
// of their communes reaches the board without a reload.
func TestTurnoutBoardDistrictScoped(t *testing.T) {
	srv := startServer(t)
	const district = "207"
	pw := "password-huyen-coto-long"
	hash, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.CreateScopedUser(context.Background(), "test", "coto", auth.RoleDuty, district, hash); err != nil {
		t.Fatal(err)
	}
	rows := loadRegisteredFigures(t, srv)
	startMorningSession(t, srv, rows, district)

	b := newBrowser(t, "desk-"+district, "")
	cl := b.watchConsole()
	b.login(srv.URL, "coto", pw, "/desk")
	waitFor(b, "district board", `(() => { const r = document.getElementById('turnout');
		return r.dataset.code === '207' && r.dataset.registered === '4502' && r.dataset.voted === '0'
			&& document.querySelectorAll('#turnout-communes .tb-row').length === 3 && !document.getElementById('turnout-districts'); })()`, 30*time.Second)
	eval[bool](b, `(window.__noReload = true)`)

	asOf, voted := time.Now(), int64(700)
	if _, _, err := srv.Store.ReportTurnout(context.Background(), "user:coto", true, store.NewTurnoutReport{ID: uuid.NewString(),
		EndpointCode: "07195", AsOf: &asOf, Voted: &voted, Complete: true, Via: "radio"}); err != nil {
		t.Fatal(err)
	}
	took := waitFor(b, "report on the district board", `window.__noReload === true && document.getElementById('turnout').dataset.voted === '700'
		&& document.querySelector('#turnout-communes [data-code="07195"]').dataset.complete === 'true'`, 30*time.Second)
	t.Logf("district board updated %v after the report", took.Round(time.Millisecond))
	elementPNG(b, "turnout", "desk-district-turnout.png")
	if p := cl.problems(); len(p) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(p, "\n"))
	}
}
