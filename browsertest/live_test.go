package browsertest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

// The palette: each peer's fake camera is one of these.
var palette = map[string]rgb{
	"red":    {210, 30, 30},
	"green":  {30, 190, 40},
	"blue":   {30, 50, 220},
	"yellow": {220, 210, 30},
}

// sampleJS returns the RGB of a video element's picture, away from the moving block.
const sampleJS = `((sel) => { const v = document.querySelector(sel);
	if (!v || !v.videoWidth) return null;
	const c = document.createElement('canvas'); c.width = 64; c.height = 36;
	const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 36);
	const d = g.getImageData(40, 24, 1, 1).data; return [d[0], d[1], d[2]]; })(%q)`

// waitColour waits until the video at sel shows the named palette colour.
func waitColour(b *browser, sel, want string, d time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	var last []float64
	for time.Since(start) < d {
		last = eval[[]float64](b, fmt.Sprintf(sampleJS, sel))
		if len(last) == 3 {
			if name, dist := nearest(last, palette); name == want && dist < 120 {
				return time.Since(start)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.screenshot("colour-" + want)
	b.t.Fatalf("%s: %s does not show %s after %v (last %v)", b.name, sel, want, d, last)
	return 0
}

// minFramesPerWindow is what a flowing video must add in one window: 3 s at 5 fps,
// a fifth of the fake camera's 15 fps (DESIGN.md: margins of 5×). Decode rates are
// measured by BenchmarkLiveDecodeRate, not asserted here.
const minFramesPerWindow = 15

// framesFlow checks that slot's video flows and keeps flowing: framesDecoded grows
// by minFramesPerWindow in each of two windows in a row (each at least 3 s, with a
// deadline of 30 s). It returns the rate seen in each window, for the log.
func framesFlow(b *browser, what, slot string) []float64 {
	b.t.Helper()
	js := fmt.Sprintf(`window.__ops.framesDecoded().then((m) => m[%q] || 0)`, slot)
	var rates []float64
	f := eval[int](b, js)
	for w := 1; w <= 2; w++ {
		start, from := time.Now(), f
		for {
			time.Sleep(500 * time.Millisecond)
			f = eval[int](b, js)
			el := time.Since(start)
			if f-from >= minFramesPerWindow && el >= 3*time.Second {
				rates = append(rates, float64(f-from)/el.Seconds())
				break
			}
			if el > 30*time.Second {
				b.screenshot("frames-" + slot)
				b.t.Errorf("%s: %s (%s) decoded %d frames in window %d of %v, want ≥ %d: video does not keep flowing",
					b.name, what, slot, f-from, w, el.Round(time.Millisecond), minFramesPerWindow)
				return rates
			}
		}
	}
	return rates
}

// at is rates[i], or 0 when that window did not complete.
func at(rates []float64, i int) float64 {
	if i < len(rates) {
		return rates[i]
	}
	return 0
}

// TestLiveSessionInChromium runs a session with real browsers: a console that
// publishes the program and three endpoints with coloured cameras.
func TestLiveSessionInChromium(t *testing.T) {
	srv := startServer(t)
	lpw := srv.user(t, "lanhdao", auth.RoleLeader)
	srv.startSession(t)
	ctx := context.Background()

	// Three endpoints of the first district group, so they share the console's first page.
	eps, err := srv.Store.ListEndpoints(ctx, store.EndpointFilter{District: "193"})
	if err != nil || len(eps) < 3 {
		t.Fatalf("roster: %v (%d)", err, len(eps))
	}
	codes := []string{eps[0].Code, eps[1].Code, eps[2].Code}
	colours := []string{"red", "green", "blue"}
	dir := t.TempDir()
	cam := func(name string) string {
		p := filepath.Join(dir, name+".y4m")
		writeY4M(t, p, palette[name])
		return p
	}

	con := newBrowser(t, "console", cam("yellow"))
	con.login(srv.URL, "lanhdao", lpw, "/console")
	waitFor(con, "console joined", `window.__ops.link === 'open' && window.__ops.leader === true`, 30*time.Second)
	eval[bool](con, `(document.getElementById('publish').click(), true)`)
	waitFor(con, "publishing", `window.__ops.publishing === true`, 30*time.Second)

	var ends []*browser
	for i, code := range codes {
		b := newBrowser(t, "endpoint-"+code, cam(colours[i]))
		b.run(30*time.Second, chromedp.Navigate(srv.joinLink(t, code)))
		waitFor(b, "device check", `window.__ops && window.__ops.phase === 'devicecheck' && document.getElementById('preview').videoWidth > 0`, 30*time.Second)
		if h := eval[string](b, `location.hash`); h != "" {
			t.Errorf("%s: the token stayed in the URL: %q", code, h)
		}
		eval[bool](b, `(document.getElementById('joinbtn').click(), true)`)
		ends = append(ends, b)
	}
	for i, b := range ends {
		took := waitFor(b, "joined", `window.__ops.link === 'open'`, 30*time.Second)
		t.Logf("%s joined in %v", codes[i], took.Round(time.Millisecond))
	}

	// The console shows each endpoint's tile with live video in its colour.
	tileSel := func(code string) string { return fmt.Sprintf(`.tile[data-code="%s"] video`, code) }
	for i, code := range codes {
		took := waitFor(con, "tile connected "+code, fmt.Sprintf(`document.querySelector('.tile[data-code="%s"]')?.dataset.presence === 'connected'`, code), 30*time.Second)
		t.Logf("console: %s connected after %v", code, took.Round(time.Millisecond))
		waitColour(con, tileSel(code), colours[i], 30*time.Second)
		slot := eval[string](con, fmt.Sprintf(`document.querySelector('.tile[data-code="%s"]').dataset.slot`, code))
		rates := framesFlow(con, "tile "+code, slot)
		t.Logf("console: tile %s (%s) keeps decoding: %.1f then %.1f frames/s", code, slot, at(rates, 0), at(rates, 1))
	}
	con.screenshot("console")

	// Each endpoint shows the program (the console's yellow camera).
	for i, b := range ends {
		waitColour(b, "#program", "yellow", 30*time.Second)
		rates := framesFlow(b, "program", "program_video")
		t.Logf("%s: program keeps decoding: %.1f then %.1f frames/s", codes[i], at(rates, 0), at(rates, 1))
	}
	ends[0].screenshot("join")

	// Enlarging a tile: it becomes wider and switches to the high layer.
	eval[bool](con, fmt.Sprintf(`(document.querySelector('.tile[data-code="%s"]').click(), true)`, codes[0]))
	waitFor(con, "tile enlarged", fmt.Sprintf(`document.querySelector('.tile[data-code="%s"]').dataset.size === 'large'`, codes[0]), 5*time.Second)
	big := eval[float64](con, fmt.Sprintf(`document.querySelector('.tile[data-code="%s"]').getBoundingClientRect().width`, codes[0]))
	small := eval[float64](con, fmt.Sprintf(`document.querySelector('.tile[data-code="%s"]').getBoundingClientRect().width`, codes[1]))
	t.Logf("enlarged tile %.0f px wide, small tile %.0f px", big, small)
	if big <= small {
		t.Errorf("enlarged tile %.0f px is not wider than a small one (%.0f px)", big, small)
	}
	for i, b := range ends[:2] {
		t.Logf("%s sends %v; server asked layers %v; program video %v px wide", codes[i],
			eval[map[string]any](b, `window.__ops.sending()`), eval[map[string]any](b, `window.__ops.layers`),
			eval[float64](b, `document.getElementById('program').videoWidth`))
	}
	// The high layer is judged against the low layer's width (a small tile's video),
	// not a fixed 640: a loaded machine makes Chrome scale its encodings down
	// (CPU adaptation), and its uplink estimate must ramp up after the resume.
	lowW := eval[float64](con, fmt.Sprintf(`document.querySelector(%q).videoWidth`, tileSel(codes[1])))
	took := waitFor(con, "high layer", fmt.Sprintf(`document.querySelector(%q).videoWidth > %v`, tileSel(codes[0]), lowW), 60*time.Second)
	t.Logf("enlarged tile's video grew past the low layer's %v px (to %v px) after %v", lowW,
		eval[float64](con, fmt.Sprintf(`document.querySelector(%q).videoWidth`, tileSel(codes[0]))), took.Round(time.Millisecond))
	con.screenshot("console-enlarged")

	// Floor: the console gives it to the second endpoint; the others see green.
	eval[bool](con, fmt.Sprintf(`(document.querySelector('.tile[data-code="%s"]').click(), true)`, codes[1]))
	waitFor(con, "selected", fmt.Sprintf(`window.__ops.selected === %q && !document.getElementById('givefloor').disabled`, codes[1]), 5*time.Second)
	eval[bool](con, `(document.getElementById('givefloor').click(), true)`)
	waitFor(con, "floor on console", fmt.Sprintf(`window.__ops.floor === %q`, codes[1]), 30*time.Second)
	for _, i := range []int{0, 2} {
		waitFor(ends[i], "floor known", fmt.Sprintf(`window.__ops.floor === %q`, codes[1]), 30*time.Second)
		took := waitColour(ends[i], "#floor", "green", 30*time.Second)
		t.Logf("%s sees the floor (%s) in green after %v", codes[i], codes[1], took.Round(time.Millisecond))
	}
	waitFor(ends[1], "has floor", `!document.getElementById('floorme').classList.contains('hidden')`, 30*time.Second)
	ends[2].screenshot("join-floor")

	// Incident and directive round trip, through the desk in a second tab of the console's browser.
	deskCtx, deskCancel := chromedp.NewContext(con.ctx)
	defer deskCancel()
	if err := chromedp.Do(deskCtx); err != nil { // opens the tab; no timeout on this first call
		t.Fatal(err)
	}
	desk := &browser{name: "desk", ctx: deskCtx, t: t}
	desk.run(30*time.Second, chromedp.Navigate(srv.URL+"/desk"))
	waitFor(desk, "desk live", `window.__ops && window.__ops.live === 'live'`, 30*time.Second)
	eval[bool](desk, `(window.__noReload = true)`)
	ep := ends[0]
	eval[bool](ep, `(() => { document.getElementById('rcat').value = 'security_order'; document.getElementById('rsev').value = 'critical';
		document.getElementById('rtitle').value = 'Gây rối tại khu vực bỏ phiếu'; document.getElementById('rtext').value = 'Cần lực lượng hỗ trợ';
		document.getElementById('rtitle').dispatchEvent(new Event('input', {bubbles: true}));
		document.querySelector('#report button[type=submit]').click(); return true; })()`)
	start := time.Now()
	waitFor(ep, "report sent", `window.__ops.outbox === 0`, 30*time.Second)
	waitFor(desk, "incident on desk", fmt.Sprintf(`!!document.querySelector('tr[data-endpoint="%s"]') && window.__noReload === true`, codes[0]), 30*time.Second)
	t.Logf("endpoint report reached the desk in %v", time.Since(start).Round(time.Millisecond))

	eval[bool](desk, fmt.Sprintf(`(() => { document.getElementById('dtext').value = 'Phối hợp công an xã xử lý ngay';
		const k = document.getElementById('dkind'); k.value = 'list'; k.dispatchEvent(new Event('change'));
		document.getElementById('dlist').value = %q;
		document.querySelector('#dform button[type=submit]').click(); return true; })()`, codes[0]))
	waitFor(desk, "directive in matrix", fmt.Sprintf(`!!document.querySelector('#matrix td[data-code="%s"][data-acked="false"]')`, codes[0]), 30*time.Second)
	took = waitFor(ep, "directive in inbox", `document.querySelectorAll('#inbox .directive[data-acked="false"] button.ack').length === 1`, 30*time.Second)
	t.Logf("directive reached the endpoint after %v", took.Round(time.Millisecond))
	ep.screenshot("join-directive")
	eval[bool](ep, `(document.querySelector('#inbox button.ack').click(), true)`)
	waitFor(ep, "acked", `document.querySelectorAll('#inbox .directive[data-acked="true"]').length === 1`, 30*time.Second)
	took = waitFor(desk, "ack in matrix", fmt.Sprintf(`!!document.querySelector('#matrix td[data-code="%s"][data-acked="true"]')`, codes[0]), 30*time.Second)
	t.Logf("acknowledgement reached the desk matrix after %v", took.Round(time.Millisecond))
	desk.screenshot("desk")

	// Going offline: close the third endpoint's browser.
	gone := codes[2]
	ends[2].close()
	start = time.Now()
	js := fmt.Sprintf(`document.querySelector('#health .hcell[data-code="%s"]').dataset.presence === 'offline'`, gone)
	waitFor(con, "offline on health board", js, 50*time.Second) // 5 × the 10 s path-loss timer
	t.Logf("health board showed %s offline %v after its browser closed (conventions: at once on a clean close, 10 s after path loss)",
		gone, time.Since(start).Round(time.Millisecond))
	online := eval[string](con, `document.getElementById('online').textContent`)
	t.Logf("health board count: %s", online)
	con.screenshot("console-health")
}

// BenchmarkLiveDecodeRate measures what the tests only require to flow: the frames
// per second a console decodes from an endpoint's tile and an endpoint decodes
// from the program (the fake cameras send 15 fps). Run it on a quiet machine:
//
//	go test -p 1 -run '^$' -bench LiveDecodeRate -benchtime 3x ./browsertest/
func BenchmarkLiveDecodeRate(bm *testing.B) {
	srv := startServer(bm)
	lpw := srv.user(bm, "lanhdao", auth.RoleLeader)
	srv.startSession(bm)
	dir := bm.TempDir()
	cam := func(name string) string {
		p := filepath.Join(dir, name+".y4m")
		writeY4M(bm, p, palette[name])
		return p
	}
	con := newBrowser(bm, "console", cam("yellow"))
	con.login(srv.URL, "lanhdao", lpw, "/console")
	waitFor(con, "console joined", `window.__ops.link === 'open' && window.__ops.leader === true`, 30*time.Second)
	eval[bool](con, `(document.getElementById('publish').click(), true)`)
	waitFor(con, "publishing", `window.__ops.publishing === true`, 30*time.Second)
	const code = "193" // first on the console's first page
	ep := newBrowser(bm, "endpoint-"+code, cam("red"))
	ep.run(30*time.Second, chromedp.Navigate(srv.joinLink(bm, code)))
	waitFor(ep, "device check", `window.__ops && window.__ops.phase === 'devicecheck'`, 30*time.Second)
	eval[bool](ep, `(document.getElementById('joinbtn').click(), true)`)
	waitFor(ep, "joined", `window.__ops.link === 'open'`, 30*time.Second)
	waitColour(ep, "#program", "yellow", 30*time.Second)
	waitColour(con, fmt.Sprintf(`.tile[data-code="%s"] video`, code), "red", 30*time.Second)
	slot := eval[string](con, fmt.Sprintf(`document.querySelector('.tile[data-code="%s"]').dataset.slot`, code))

	rate := func(b *browser, slot string, d time.Duration) float64 {
		js := fmt.Sprintf(`window.__ops.framesDecoded().then((m) => m[%q] || 0)`, slot)
		f0, t0 := eval[int](b, js), time.Now()
		time.Sleep(d)
		return float64(eval[int](b, js)-f0) / time.Since(t0).Seconds()
	}
	var tile, program float64
	bm.ResetTimer()
	for i := 0; i < bm.N; i++ {
		tile += rate(con, slot, 5*time.Second)
		program += rate(ep, "program_video", 5*time.Second)
	}
	bm.ReportMetric(tile/float64(bm.N), "tile-frames/s")
	bm.ReportMetric(program/float64(bm.N), "program-frames/s")
}
