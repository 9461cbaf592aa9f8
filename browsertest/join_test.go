package browsertest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

// pcInstrumentJS counts RTCPeerConnection constructions (window.__pcCount) and
// keeps them (window.__pcs), and lets a test freeze the publisher's bytesSent as
// getStats reports it (window.__freezeSend), to see the page's own send check.
const pcInstrumentJS = `(() => {
	const Orig = window.RTCPeerConnection;
	if (!Orig) return;
	let n = 0;
	const pcs = [];
	class Counted extends Orig {
		constructor(...args) { super(...args); n++; pcs.push(this); }
	}
	window.RTCPeerConnection = Counted;
	Object.defineProperty(window, '__pcCount', { get: () => n });
	Object.defineProperty(window, '__pcs', { get: () => pcs });
	window.__freezeSend = false;
	const getStats = Orig.prototype.getStats;
	Orig.prototype.getStats = async function (...args) {
		const rep = await getStats.apply(this, args);
		if (!window.__freezeSend) { this.__frozen = null; return rep; }
		const frozen = this.__frozen || (this.__frozen = new Map());
		const out = new Map();
		rep.forEach((r, k) => {
			if (r.type !== 'outbound-rtp') { out.set(k, r); return; }
			if (!frozen.has(k)) frozen.set(k, r.bytesSent);
			out.set(k, { ...r, bytesSent: frozen.get(k) });
		});
		return out;
	};
})();`

// openJoinPage opens a join link in tab b with the PeerConnection counter and a
// console watch installed first, and waits for the device check. It does not wait
// for the camera: a person may press Join before the preview shows, and the page
// must publish the camera whenever it opens, on the PeerConnection it has.
func openJoinPage(t testing.TB, b *browser, link string) *consoleLog {
	t.Helper()
	b.initScript(pcInstrumentJS)
	cl := b.watchConsole()
	b.run(30*time.Second, chromedp.Navigate(link))
	waitFor(b, "device check", `window.__ops && window.__ops.phase === 'devicecheck'`, 30*time.Second)
	return cl
}

// bytesGrow waits (bounded by d) until the endpoint's publisher leg has sent more
// bytes than from, and returns the new total and the split by kind.
func bytesGrow(b *browser, from float64, d time.Duration) (float64, map[string]float64) {
	b.t.Helper()
	start := time.Now()
	var last map[string]float64
	for {
		last = eval[map[string]float64](b, `window.__ops.sentBytes()`)
		if tot := last["audio"] + last["video"]; tot > from {
			return tot, last
		}
		if time.Since(start) > d {
			b.screenshot("not-sending")
			b.t.Fatalf("%s: publisher leg's bytesSent stayed at %.0f for %v (%v)", b.name, from, d, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestThreeEndpointsJoinInOneChromium joins three endpoints one after another in
// one Chromium (two browser contexts, the third a tab beside the second): no
// uncaught error or unhandled rejection on any page, each publisher leg keeps
// sending, and no PeerConnection is created again during the join. The page's own
// send check then shows a warning when bytesSent stops growing, and clears it.
func TestThreeEndpointsJoinInOneChromium(t *testing.T) {
	srv := startServer(t)
	srv.startSession(t)
	eps, err := srv.Store.ListEndpoints(context.Background(), store.EndpointFilter{District: "193"})
	if err != nil || len(eps) < 3 {
		t.Fatalf("roster: %v (%d)", err, len(eps))
	}
	codes := []string{eps[0].Code, eps[1].Code, eps[2].Code}
	cam := filepath.Join(t.TempDir(), "red.y4m")
	writeY4M(t, cam, palette["red"])

	first := newBrowser(t, "chromium", cam)
	var tabs []*browser
	var logs []*consoleLog
	for i, code := range codes {
		// The first two are like two devices (a browser context each); the third is a
		// second tab beside the second (shared cookies), as a person testing links does.
		b := first.tab("endpoint-"+code, true)
		if i == 2 {
			b = tabs[1].tab("endpoint-"+code, false)
		}
		cl := openJoinPage(t, b, srv.joinLink(t, code))
		eval[bool](b, `(document.getElementById('joinbtn').click(), true)`)
		took := waitFor(b, "joined", `window.__ops.phase === 'live' && window.__ops.link === 'open'`, 30*time.Second)
		// The next endpoint joins once this one's publisher leg is up.
		took2 := waitFor(b, "publisher connected", `window.__pcs.length >= 1 && window.__pcs[0].connectionState === 'connected'`, 60*time.Second)
		t.Logf("endpoint %d (%s): joined in %v, publisher leg connected %v later", i+1, code, took.Round(time.Millisecond), took2.Round(time.Millisecond))
		tabs = append(tabs, b)
		logs = append(logs, cl)
	}

	// Each publisher leg sends, and keeps sending: its bytesSent grows in two windows.
	for i, b := range tabs {
		b0, _ := bytesGrow(b, 0, 30*time.Second)
		start := time.Now()
		b1, split1 := bytesGrow(b, b0, 30*time.Second)
		b2, split2 := bytesGrow(b, b1, 30*time.Second)
		t.Logf("%s: publisher leg bytesSent %.0f → %.0f → %.0f over %v (%v, then %v)", codes[i], b0, b1, b2,
			time.Since(start).Round(time.Millisecond), split1, split2)
	}

	// No PeerConnection was created again: two per page (publisher and subscriber),
	// by the page's own counter and by the constructor wrapper, and all in use.
	for i, b := range tabs {
		n := eval[int](b, `window.__pcCount`)
		own := eval[int](b, `window.__ops.pcCreated`)
		closed := eval[int](b, `window.__pcs.filter((pc) => pc.connectionState === 'closed').length`)
		if n != 2 || own != 2 || closed != 0 {
			t.Errorf("%s: %d PeerConnections constructed (page counted %d, %d closed); want 2, none closed", codes[i], n, own, closed)
		}
		if st := eval[string](b, `window.__ops.mediaState`); st != "ok" {
			t.Errorf("%s: media state %q while sending, want ok", codes[i], st)
		}
	}

	// The page checks its own sending: with bytesSent frozen (as getStats reports
	// it), a warning appears and the quality badge stops saying good; it clears
	// when bytes flow again.
	b := tabs[0]
	eval[bool](b, `(window.__freezeSend = true)`)
	took := waitFor(b, "not-sending warning", `window.__ops.mediaState === 'notsending' && !document.getElementById('mediawarn').classList.contains('hidden')
		&& document.getElementById('quality').dataset.quality === 'poor'`, 40*time.Second) // the check needs 6 s of no growth
	t.Logf("%s: not-sending warning after %v: %q", codes[0], took.Round(time.Millisecond), eval[string](b, `document.getElementById('mediawarn').textContent`))
	b.screenshot("join-notsending")
	eval[bool](b, `(window.__freezeSend = false)`)
	waitFor(b, "warning cleared", `window.__ops.mediaState === 'ok' && document.getElementById('mediawarn').classList.contains('hidden')`, 30*time.Second)

	// The server's word: when it expects this endpoint's microphone and gets no
	// audio, it sends the endpoint presence degraded (reason no_media), and the page
	// says so (its own check sees no track, so this is the server's message).
	b = tabs[1]
	eval[bool](b, `(() => { const s = window.__pcs[0].getSenders().find((x) => x.track && x.track.kind === 'audio');
		window.__savedMic = s.track; s.replaceTrack(null); return true; })()`)
	took = waitFor(b, "degraded from the server", `window.__ops.presence === 'degraded' && window.__ops.presenceReason === 'no_media'
		&& window.__ops.mediaState === 'degraded' && !document.getElementById('mediawarn').classList.contains('hidden')
		&& document.getElementById('quality').dataset.quality === 'poor'`, 60*time.Second) // the server's timer is 5 s
	t.Logf("%s: server said degraded (no_media) after %v: %q", codes[1], took.Round(time.Millisecond), eval[string](b, `document.getElementById('mediawarn').textContent`))
	b.screenshot("join-degraded")
	eval[bool](b, `(document.getElementById('lang').click(), true)`) // English
	waitFor(b, "degraded in English", `document.getElementById('mediawarn').textContent === 'The server is not receiving picture or sound from this endpoint'`, 5*time.Second)
	eval[bool](b, `(document.getElementById('lang').click(), true)`) // back to Vietnamese
	eval[bool](b, `window.__pcs[0].getTransceivers().find((x) => x.receiver.track.kind === 'audio').sender.replaceTrack(window.__savedMic).then(() => true)`)
	took = waitFor(b, "degraded cleared", `window.__ops.presence === 'connected' && window.__ops.mediaState === 'ok' && document.getElementById('mediawarn').classList.contains('hidden')`, 60*time.Second)
	t.Logf("%s: back to connected %v after the microphone returned", codes[1], took.Round(time.Millisecond))

	for i, cl := range logs {
		if p := cl.problems(); len(p) > 0 {
			t.Errorf("%s: console errors or uncaught exceptions:\n  %s", codes[i], strings.Join(p, "\n  "))
		}
		if w := cl.warnings(); len(w) > 0 {
			t.Logf("%s: console warnings (recovered): %q", codes[i], w)
		}
	}
	// Still two PeerConnections each after all that.
	for i, b := range tabs {
		if n := eval[int](b, `window.__pcCount`); n != 2 {
			t.Errorf("%s: %d PeerConnections constructed by the end, want 2", codes[i], n)
		}
	}
}

// TestLeaderOpensJoinLinkInSameBrowser: a leader logged in on the console opens a
// join link in another tab of the same browser (both cookies present). The join
// page connects as the endpoint (/ws?as=endpoint), not as the leader, and the
// console tab stays the leader's.
func TestLeaderOpensJoinLinkInSameBrowser(t *testing.T) {
	srv := startServer(t)
	lpw := srv.user(t, "lanhdao", auth.RoleLeader)
	srv.startSession(t)
	const code = "07192"
	cam := filepath.Join(t.TempDir(), "green.y4m")
	writeY4M(t, cam, palette["green"])

	con := newBrowser(t, "console", cam)
	con.login(srv.URL, "lanhdao", lpw, "/console")
	waitFor(con, "console joined", `window.__ops.link === 'open' && window.__ops.leader === true`, 30*time.Second)

	ep := con.tab("join-tab", false) // same browser context: the staff cookie is there
	cl := openJoinPage(t, ep, srv.joinLink(t, code))
	eval[bool](ep, `(document.getElementById('joinbtn').click(), true)`)
	took := waitFor(ep, "joined as the endpoint", `window.__ops.phase === 'live' && window.__ops.link === 'open'`, 30*time.Second)
	t.Logf("join page reached %q in %v", eval[string](ep, `document.getElementById('conn').textContent`), took.Round(time.Millisecond))
	if c := eval[string](ep, `window.__ops.code`); c != code {
		t.Fatalf("join page is endpoint %q, want %q", c, code)
	}
	// The server counts the endpoint present: the leader's console sees it.
	took = waitFor(con, "endpoint present on the console", fmt.Sprintf(`['joined', 'connected', 'degraded'].includes(window.__ops.presence[%q])`, code), 30*time.Second)
	t.Logf("console saw %s as %q after %v", code, eval[string](con, fmt.Sprintf(`window.__ops.presence[%q]`, code)), took.Round(time.Millisecond))
	// The join page's API calls act as the endpoint too.
	me := eval[map[string]any](ep, `fetch('/api/v1/auth/me?as=endpoint').then((r) => r.json()).then((j) => j.principal)`)
	if me["endpoint_code"] != code {
		t.Errorf("the join page's API calls are %v, want endpoint %s", me, code)
	}
	// The leader's console still has its own link, as the leader.
	if eval[string](con, `window.__ops.link`) != "open" || !eval[bool](con, `window.__ops.leader`) {
		t.Errorf("the console lost its leader link")
	}
	ep.screenshot("join-beside-console")
	if p := cl.problems(); len(p) > 0 {
		t.Errorf("join page: console errors or uncaught exceptions:\n  %s", strings.Join(p, "\n  "))
	}
}
