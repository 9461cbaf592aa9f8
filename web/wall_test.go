package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/web"
	"github.com/opscenter/opscenter/wire"
)

// wallFeed reads the wall's feed: each "state" event's data, decoded. Any other
// event name is a test failure (the feed carries state only).
func wallFeed(t *testing.T, url, cookie, bearer string) (<-chan map[string]json.RawMessage, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/wall/feed", nil)
	if cookie != "" {
		req.Header.Set("Cookie", "ops_wall="+cookie)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("wall feed: %d %s", resp.StatusCode, b)
	}
	ch := make(chan map[string]json.RawMessage, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = line[7:]
			case strings.HasPrefix(line, "data: "):
				var m map[string]json.RawMessage
				if name != "state" || json.Unmarshal([]byte(line[6:]), &m) != nil {
					t.Errorf("wall feed: event %q with data %.200s", name, line)
					return
				}
				ch <- m
			}
		}
	}()
	return ch, func() { cancel(); resp.Body.Close() }
}

type wallStateT struct {
	Session *web.WallSession
	Turnout web.WallTurnout
}

// nextState waits for a state that satisfies ok.
func nextState(t *testing.T, ch <-chan map[string]json.RawMessage, what string, ok func(wallStateT) bool) wallStateT {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m, open := <-ch:
			if !open {
				t.Fatalf("%s: the feed ended", what)
			}
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if strings.Join(keys, ",") != "at,session,turnout" {
				t.Fatalf("wall state has keys %v", keys)
			}
			b, _ := json.Marshal(m)
			var st wallStateT
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			if ok(st) {
				return st
			}
		case <-deadline:
			t.Fatalf("%s: not within 15 s", what)
		}
	}
}

// postJSON posts with a same-site Origin, as the wall page does, and returns the
// response (closed) with its cookies.
func postJSON(t *testing.T, url, path, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", url)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// wallCookie exchanges a wall link's secret for the wall's cookie.
func wallCookie(t *testing.T, a *apptest.App, tok string) string {
	t.Helper()
	r := postJSON(t, a.URL(), "/api/v1/auth/wall", `{"token":"`+tok+`"}`)
	if r.StatusCode != 200 {
		t.Fatalf("wall auth: %d", r.StatusCode)
	}
	for _, c := range r.Cookies() {
		if c.Name == "ops_wall" && c.HttpOnly && c.SameSite == http.SameSiteStrictMode && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("no HttpOnly ops_wall cookie in %v", r.Cookies())
	return ""
}

// TestWallFeed: a wall link becomes the wall's cookie; its feed carries the session
// and the turnout roll-up, and a commune's report reaches it without a request;
// revoking the wall ends the open feed and the cookie at once.
func TestWallFeed(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	loadRegistered(t, lead)
	ctx := context.Background()
	tok, err := a.Store.IssueWallToken(ctx, "test", "press-1")
	if err != nil {
		t.Fatal(err)
	}
	if r := postJSON(t, a.URL(), "/api/v1/auth/wall", `{"token":"wrong"}`); r.StatusCode != 401 {
		t.Fatalf("a wrong wall link: %d", r.StatusCode)
	}
	req, _ := http.NewRequest("POST", a.URL()+"/api/v1/auth/wall", strings.NewReader(`{"token":"`+tok+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("a cross-site wall exchange: %v %v", resp.StatusCode, err)
	}
	ck := wallCookie(t, a, tok)

	feed, stop := wallFeed(t, a.URL(), ck, "")
	defer stop()
	st := nextState(t, feed, "first state", func(wallStateT) bool { return true })
	if st.Session != nil || st.Turnout.Province == nil || st.Turnout.Province.Code != "22" ||
		st.Turnout.Province.Registered != 959021 || len(st.Turnout.Districts) != 13 {
		t.Fatalf("first state: session %+v province %+v, %d districts", st.Session, st.Turnout.Province, len(st.Turnout.Districts))
	}

	sess := startSession(t, lead)
	nextState(t, feed, "session in progress", func(s wallStateT) bool {
		return s.Session != nil && s.Session.State == "in_progress" && s.Session.Title == sess.Title
	})
	sent := time.Now()
	a.Endpoint("07192").Do("POST", "/api/v1/turnout/reports", turnoutBody("07192", time.Now().UTC().Format(time.RFC3339), 1200), nil, 201)
	st = nextState(t, feed, "the report", func(s wallStateT) bool { return s.Turnout.Province != nil && s.Turnout.Province.Voted == 1200 })
	t.Logf("the report reached the wall's feed in %v", time.Since(sent).Round(time.Millisecond))
	for _, d := range st.Turnout.Districts {
		if d.Code == "207" && d.Voted != 1200 {
			t.Fatalf("district 207: %+v", d)
		}
	}
	if len(st.Turnout.Series) == 0 {
		t.Fatal("no curve in the wall's state")
	}

	// An unscoped observer reads the wall too (the roles table); a bearer link works.
	obsFeed, obsStop := wallFeed(t, a.URL(), "", a.User("obs", auth.RoleObserver).Token)
	nextState(t, obsFeed, "observer's first state", func(s wallStateT) bool { return s.Turnout.Province.Voted == 1200 })
	obsStop()
	linkFeed, linkStop := wallFeed(t, a.URL(), "", tok)
	nextState(t, linkFeed, "bearer link's first state", func(wallStateT) bool { return true })
	linkStop()
	// An endpoint is not a wall.
	a.Endpoint("07192").Do("GET", "/api/v1/wall/feed", nil, nil, 403)

	// Revoking ends the open feed at once, and the cookie and the link stop working.
	if err := a.Store.RevokeWall(ctx, "test", "press-1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-feed:
		case <-deadline:
			t.Fatal("the revoked wall's feed is still open after 10 s")
		}
	}
	req, _ = http.NewRequest("GET", a.URL()+"/api/v1/wall/feed", nil)
	req.Header.Set("Cookie", "ops_wall="+ck)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("a revoked wall's cookie: %d, want 401", resp.StatusCode)
	}
	bearer := a.Anon()
	bearer.Token = tok
	bearer.Do("GET", "/api/v1/wall/feed", nil, nil, 401)
}

// TestWallCanDoNothingElse walks every route with a wall's credential (its link as
// a bearer token, and its cookie): only the public routes, its feed and WHEP
// admit it; everything else is refused (401, 403 or 404), /ws included.
func TestWallCanDoNothingElse(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	startSession(t, lead)
	tok, err := a.Store.IssueWallToken(context.Background(), "test", "press-1")
	if err != nil {
		t.Fatal(err)
	}
	ck := wallCookie(t, a, tok)
	public := map[string]bool{
		"GET /healthz": true, "GET /readyz": true, "GET /": true, "GET /static/:hash/*file": true,
		"POST /api/v1/auth/login": true, "POST /api/v1/auth/join": true, "POST /api/v1/auth/wall": true,
		"POST /api/v1/auth/logout": true,
		"GET /login":               true, "GET /join": true, "GET /console": true, "GET /desk": true, "GET /wall": true,
	}
	own := map[string]bool{"GET /api/v1/wall/feed": true, "POST /whep/program": true}
	routes := a.Web.Routes()
	sort.Slice(routes, func(i, j int) bool { return routes[i].Path+routes[i].Method < routes[j].Path+routes[j].Method })
	n := 0
	for _, r := range routes {
		key := r.Method + " " + r.Path
		if public[key] || own[key] || r.Method == "OPTIONS" {
			continue
		}
		path := r.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
				path = strings.Replace(path, seg, "07192", 1)
			}
		}
		for _, how := range []string{"bearer", "cookie"} {
			var body io.Reader
			if r.Method != "GET" && r.Method != "HEAD" && r.Method != "DELETE" {
				body = strings.NewReader(`{}`)
			}
			req, _ := http.NewRequest(r.Method, a.URL()+path, body)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", a.URL())
			if how == "bearer" {
				req.Header.Set("Authorization", "Bearer "+tok)
			} else {
				req.Header.Set("Cookie", "ops_wall="+ck)
			}
			if r.Path == "/ws" {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Sec-WebSocket-Version", "13")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s (%s): %v", key, how, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 && resp.StatusCode != 403 && resp.StatusCode != 404 {
				t.Errorf("%s as a wall (%s): %s → %d, want 401, 403 or 404", key, how, path, resp.StatusCode)
			}
		}
		n++
	}
	if n < 30 {
		t.Fatalf("only %d routes walked", n)
	}
	t.Logf("%d routes refuse a wall", n)
}

// recvOnlyOffer is a WHEP player's offer: program and floor video and audio,
// receive only, with its candidates.
func recvOnlyOffer(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("gathering did not complete")
	}
	return pc.LocalDescription().SDP
}

// TestWallWHEP: a wall link may view the program and the floor over WHEP (bearer or
// cookie) and may not publish; once revoked, its WHEP is refused and its viewers end.
func TestWallWHEP(t *testing.T) {
	a := apptest.Start(t, nil)
	tok, err := a.Store.IssueWallToken(context.Background(), "test", "press-1")
	if err != nil {
		t.Fatal(err)
	}
	ck := wallCookie(t, a, tok)
	post := func(path, cred, cookie string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", a.URL()+path, strings.NewReader(recvOnlyOffer(t)))
		req.Header.Set("Content-Type", "application/sdp")
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		if cookie != "" {
			req.Header.Set("Cookie", "ops_wall="+cookie)
			req.Header.Set("Origin", a.URL())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, answer := post("/whep/program?floor=1", tok, "")
	if resp.StatusCode != 201 || !strings.Contains(answer, "a=sendonly") || resp.Header.Get("Location") == "" {
		t.Fatalf("WHEP with a wall link: %d %s", resp.StatusCode, answer)
	}
	loc := resp.Header.Get("Location")
	resp, _ = post("/whep/program?floor=1&as=wall", "", ck)
	if resp.StatusCode != 201 {
		t.Fatalf("WHEP with the wall's cookie: %d", resp.StatusCode)
	}
	if resp, _ := post("/whip/program", tok, ""); resp.StatusCode != 403 {
		t.Fatalf("WHIP with a wall link: %d, want 403", resp.StatusCode)
	}
	// The resource answers its wall only.
	other := a.User("obs", auth.RoleObserver)
	other.Do("DELETE", loc, nil, nil, 404)
	wall := a.Anon()
	wall.Token = tok
	wall.Do("DELETE", loc, nil, nil, 200)

	if err := a.Store.RevokeWall(context.Background(), "test", "press-1"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := post("/whep/program", tok, ""); resp.StatusCode != 401 {
		t.Fatalf("WHEP with a revoked wall link: %d, want 401", resp.StatusCode)
	}
	if resp, _ := post("/whep/program?as=wall", "", ck); resp.StatusCode != 401 {
		t.Fatalf("WHEP with a revoked wall's cookie: %d, want 401", resp.StatusCode)
	}
}

// The wall names who has the floor: the leader gives it to a commune on the
// console, the wall's feed names the commune (code and roster name) at once;
// revoked, the name goes.
func TestWallFeedNamesTheFloor(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	tok, err := a.Store.IssueWallToken(context.Background(), "test", "press-1")
	if err != nil {
		t.Fatal(err)
	}
	feed, stop := wallFeed(t, a.URL(), "", tok)
	defer stop()
	startSession(t, lead)
	nextState(t, feed, "session in progress", func(s wallStateT) bool { return s.Session != nil && s.Session.State == "in_progress" })

	dial := func(token, role string, publish bool) *client.Client {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, client.Options{URL: a.URL(), Token: token, Role: role, Publish: publish, FPS: 10,
			Layers: []client.Layer{{RID: "q", Width: 320, Height: 180, Bitrate: 60_000}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	console := dial(lead.Token, wire.RoleConsole, false)
	ep := dial(a.Endpoint("07192").Token, wire.RoleEndpoint, true)
	for _, c := range []*client.Client{console, ep} {
		if err := c.WaitConnected(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := console.Send(wire.TypeGiveFloor, wire.CodeMsg{Code: "07192"}); err != nil {
		t.Fatal(err)
	}
	st := nextState(t, feed, "the floor named", func(s wallStateT) bool { return s.Session.Floor != nil })
	e, err := a.Store.GetEndpoint(context.Background(), "07192")
	if err != nil {
		t.Fatal(err)
	}
	if st.Session.Floor.Code != "07192" || st.Session.Floor.Name != e.Name {
		t.Fatalf("floor on the wall: %+v, want 07192 %q", *st.Session.Floor, e.Name)
	}
	if _, err := console.Send(wire.TypeRevokeFloor, nil); err != nil {
		t.Fatal(err)
	}
	nextState(t, feed, "the floor revoked", func(s wallStateT) bool { return s.Session.Floor == nil })
}
