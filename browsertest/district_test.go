package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

// TestDistrictConsoleInChromium: a district leader (district authority, 195 Cẩm
// Phả) logs in to the console while endpoints of two districts are in the session
// (a commune of 195 and one of 207, Cô Tô), both with a raised hand. The console
// shows only its district's units (wall, health board, presence, hands), the live
// video of its commune, and no session-control button.
func TestDistrictConsoleInChromium(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	const district, own, other = "195", "06760", "07192"
	pw := "password-huyen-camp-long"
	hash, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.CreateScopedUser(ctx, "test", "campha", auth.RoleLeader, district, hash); err != nil {
		t.Fatal(err)
	}
	units, err := srv.Store.ListEndpoints(ctx, store.EndpointFilter{District: district})
	if err != nil {
		t.Fatal(err)
	}
	var unitCodes []string
	for _, e := range units {
		unitCodes = append(unitCodes, e.Code)
	}
	slices.Sort(unitCodes)
	if len(unitCodes) < 3 || len(unitCodes) > 25 || !slices.Contains(unitCodes, own) {
		t.Fatalf("district %s: %v (the test needs its units on the console's first page)", district, unitCodes)
	}
	srv.startSession(t)

	cam := filepath.Join(t.TempDir(), "red.y4m")
	writeY4M(t, cam, palette["red"])
	eps := newBrowser(t, "endpoints", cam)
	for _, code := range []string{own, other} {
		b := eps.tab("endpoint-"+code, true)
		openJoinPage(t, b, srv.joinLink(t, code))
		eval[bool](b, `(document.getElementById('joinbtn').click(), true)`)
		took := waitFor(b, "joined", `window.__ops.phase === 'live' && window.__ops.link === 'open'`, 30*time.Second)
		waitFor(b, "publisher connected", `window.__pcs.length >= 1 && window.__pcs[0].connectionState === 'connected'`, 60*time.Second)
		eval[bool](b, `(document.getElementById('hand').click(), true)`)
		waitFor(b, "hand raised", `document.getElementById('hand').dataset.raised === 'true'`, 15*time.Second)
		t.Logf("%s joined in %v and raised its hand", code, took.Round(time.Millisecond))
	}

	con := newBrowser(t, "district-console", "")
	cl := con.watchConsole()
	con.login(srv.URL, "campha", pw, "/console")
	took := waitFor(con, "district console joined", `window.__ops.link === 'open' && window.__ops.leader === false && window.__ops.district === '195'`, 30*time.Second)
	t.Logf("district console joined in %v", took.Round(time.Millisecond))
	took = waitFor(con, "own commune's tile live", fmt.Sprintf(`(() => { const t = document.querySelector('.tile[data-code=%q]');
		return t && t.dataset.presence === 'connected' && t.querySelector('video').videoWidth > 0; })()`, own), 45*time.Second)
	t.Logf("district console shows %s's video after %v", own, took.Round(time.Millisecond))
	waitColour(con, fmt.Sprintf(`.tile[data-code="%s"] video`, own), "red", 30*time.Second)
	waitFor(con, "own commune's hand", fmt.Sprintf(`document.querySelector('#hands li[data-code=%q]') !== null`, own), 15*time.Second)

	// What the page shows, read in one pass.
	var seen struct {
		Tiles, Health, Districts, Presence, Hands []string
		Hidden                                    map[string]bool
		Scope                                     string
	}
	raw := eval[string](con, `JSON.stringify({
		tiles: [...document.querySelectorAll('#wall .tile')].map((e) => e.dataset.code),
		health: [...document.querySelectorAll('#health .hcell')].map((e) => e.dataset.code),
		districts: [...document.querySelectorAll('#health .district')].map((e) => e.dataset.district),
		presence: Object.keys(window.__ops.presence),
		hands: [...document.querySelectorAll('#hands li[data-code]')].map((e) => e.dataset.code),
		hidden: Object.fromEntries(['sessionbtn', 'publish', 'screen', 'givefloor', 'revokefloor', 'mute', 'askunmute', 'private', 'muteall', 'rollcall']
			.map((id) => [id, getComputedStyle(document.getElementById(id)).display === 'none'])),
		scope: document.getElementById('scope').offsetParent ? document.getElementById('scope').textContent : '',
	})`)
	if err := json.Unmarshal([]byte(raw), &seen); err != nil {
		t.Fatal(err)
	}
	con.screenshot("district-console")
	elementPNG(con, "wall", "district-console-wall.png")
	t.Logf("district console: tiles %v, hands %v, scope badge %q", seen.Tiles, seen.Hands, seen.Scope)

	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if !slices.Equal(sorted(seen.Tiles), unitCodes) {
		t.Errorf("wall tiles %v, want district %s's units %v", seen.Tiles, district, unitCodes)
	}
	if !slices.Equal(sorted(seen.Health), unitCodes) || !slices.Equal(seen.Districts, []string{district}) {
		t.Errorf("health board: cells %v, districts %v; want %v of %s", seen.Health, seen.Districts, unitCodes, district)
	}
	for _, code := range seen.Presence {
		if code != "22" && !slices.Contains(unitCodes, code) {
			t.Errorf("the console knows the presence of %s, outside district %s", code, district)
		}
	}
	if !slices.Equal(seen.Hands, []string{own}) {
		t.Errorf("hands %v, want only %s (%s's hand is another district's)", seen.Hands, own, other)
	}
	for id, hidden := range seen.Hidden {
		if !hidden {
			t.Errorf("session control #%s is shown to a district leader", id)
		}
	}
	if !strings.Contains(seen.Scope, district) {
		t.Errorf("scope badge %q does not name district %s", seen.Scope, district)
	}
	if p := cl.problems(); len(p) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(p, "\n"))
	}
}
