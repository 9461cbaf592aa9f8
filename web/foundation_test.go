package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

func TestHealthReadyMetrics(t *testing.T) {
	a := apptest.Start(t, nil)
	c := a.Anon()
	c.Do("GET", "/healthz", nil, nil, 200)
	var ready map[string]string
	c.Do("GET", "/readyz", nil, &ready, 200)
	if ready["database"] != "ok" {
		t.Fatalf("readyz: %v", ready)
	}
	c.Do("GET", "/api/v1/endpoints", nil, nil, 401) // a request to be counted
	// The HTTP port does not serve metrics: they name endpoints and their presence.
	c.Do("GET", "/metrics", nil, nil, 404)
	body := getMetrics(t, a.MetricsURL(), "", 200)
	for _, want := range []string{"opscenter_http_request_duration_seconds", "opscenter_db_pool_conns", `opscenter_incidents{status="open"}`, "go_goroutines",
		"opscenter_endpoints_presence", "opscenter_audit_journal_pending", "opscenter_sfu_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// With metrics.token set, the metrics listener wants it as a bearer.
func TestMetricsToken(t *testing.T) {
	const tok = "0123456789abcdef-metrics"
	a := apptest.Start(t, func(c *config.Config) { c.Metrics.Token = tok })
	getMetrics(t, a.MetricsURL(), "", 401)
	getMetrics(t, a.MetricsURL(), "wrong-token-wrong-token", 401)
	if body := getMetrics(t, a.MetricsURL(), tok, 200); !strings.Contains(body, "go_goroutines") {
		t.Fatal("metrics with the token lack go_goroutines")
	}
}

func getMetrics(t *testing.T, url, token string, want int) string {
	t.Helper()
	if url == "" {
		t.Fatal("no metrics listener")
	}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	return string(b)
}

func TestRosterAPI(t *testing.T) {
	a := apptest.Start(t, nil)
	obs := a.User("obs", auth.RoleObserver)
	var out struct {
		Endpoints []struct {
			Code, Kind, Presence string
			ParentCode           string `json:"parent_code"`
		}
		Count int
	}
	obs.Do("GET", "/api/v1/endpoints", nil, &out, 200)
	if out.Count != 191 || out.Endpoints[0].Code != "22" || out.Endpoints[0].Presence != "offline" {
		t.Fatalf("roster: count %d, first %+v", out.Count, out.Endpoints[0])
	}
	obs.Do("GET", "/api/v1/endpoints?kind=district", nil, &out, 200)
	if out.Count != 13 {
		t.Fatalf("districts: %d", out.Count)
	}
	obs.Do("GET", "/api/v1/endpoints?district=207", nil, &out, 200)
	for _, e := range out.Endpoints[1:] {
		if e.ParentCode != "207" {
			t.Fatalf("district filter: %+v", e)
		}
	}
	obs.Do("GET", "/api/v1/endpoints?kind=planet", nil, nil, 400)
}

func TestAuthAndRoles(t *testing.T) {
	a := apptest.Start(t, nil)
	admin := a.User("root", auth.RoleAdmin)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	obs := a.User("obs", auth.RoleObserver)
	ep := a.Endpoint("07192")
	anon := a.Anon()
	bad := a.Anon()
	bad.Token = "not-a-token"

	sess := map[string]any{"id": uuid.NewString(), "title": "Bầu cử", "planned_start": "2021-05-23T06:30:00+07:00", "planned_end": "2021-05-23T19:00:00+07:00"}
	cases := []struct {
		name   string
		c      *apptest.Client
		method string
		path   string
		body   any
		want   int
	}{
		{"anon roster", anon, "GET", "/api/v1/endpoints", nil, 401},
		{"wrong token", bad, "GET", "/api/v1/endpoints", nil, 401},
		{"endpoint roster", ep, "GET", "/api/v1/endpoints", nil, 200},
		{"observer creates session", obs, "POST", "/api/v1/sessions", sess, 403},
		{"duty creates session", duty, "POST", "/api/v1/sessions", sess, 403},
		{"endpoint creates session", ep, "POST", "/api/v1/sessions", sess, 403},
		{"leader creates session", lead, "POST", "/api/v1/sessions", sess, 201},
		{"leader retries", lead, "POST", "/api/v1/sessions", sess, 200},
		{"endpoint reads events", ep, "GET", "/api/v1/events?after=999999", nil, 403},
		{"endpoint lists sessions", ep, "GET", "/api/v1/sessions", nil, 403},
		{"leader issues link", lead, "POST", "/api/v1/endpoints/07192/link", nil, 403},
		{"admin revokes unknown", admin, "DELETE", "/api/v1/endpoints/99999/link", nil, 404},
		{"anon profiler", anon, "GET", "/debug/pprof/goroutine", nil, 401},
		{"leader profiler", lead, "GET", "/debug/pprof/heap", nil, 403},
		{"admin profiler", admin, "GET", "/debug/pprof/goroutine?debug=1", nil, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.c.Do(tc.method, tc.path, tc.body, nil, tc.want) })
	}

	// Session lifecycle through the API.
	id := sess["id"].(string)
	a.Anon().Do("GET", "/api/v1/sessions/current", nil, nil, 401)
	lead.Do("GET", "/api/v1/sessions/current", nil, nil, 404)
	lead.Do("POST", "/api/v1/sessions/"+id+"/start", nil, nil, 200)
	var cur store.Session
	ep.Do("GET", "/api/v1/sessions/current", nil, &cur, 200)
	if cur.ID != id || !cur.InProgress() {
		t.Fatalf("current: %+v", cur)
	}
	other := map[string]any{"id": uuid.NewString(), "title": "Khác", "planned_start": "2021-05-23T06:30:00+07:00", "planned_end": "2021-05-23T19:00:00+07:00"}
	lead.Do("POST", "/api/v1/sessions", other, nil, 201)
	_, body := lead.Do("POST", "/api/v1/sessions/"+other["id"].(string)+"/start", nil, nil, 409)
	if !strings.Contains(string(body), "session_in_progress") {
		t.Fatalf("second start: %s", body)
	}
	lead.Do("POST", "/api/v1/sessions/"+id+"/end", nil, nil, 200)
	lead.Do("GET", "/api/v1/sessions/current", nil, nil, 404)

	// Revoking a link locks the endpoint out at once.
	admin.Do("DELETE", "/api/v1/endpoints/07192/link", nil, nil, 204)
	ep.Do("GET", "/api/v1/endpoints", nil, nil, 401)
	// A browser still holding the revoked cookie can load public pages and log in
	// again; the stale cookie is cleared, not an error.
	req, _ := http.NewRequest("GET", a.URL()+"/api/v1/sessions/current", nil)
	req.Header.Set("Cookie", "ops_endpoint=stale-value")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cleared := false
	for _, ck := range resp.Cookies() {
		cleared = cleared || (ck.Name == "ops_endpoint" && ck.MaxAge < 0)
	}
	if resp.StatusCode != 401 || !cleared {
		t.Fatalf("stale cookie: status %d, cleared %v", resp.StatusCode, cleared)
	}
	var head struct {
		LastEventID int64 `json:"last_event_id"`
	}
	obs.Do("GET", "/api/v1/events/head", nil, &head, 200)
	if head.LastEventID < 5 {
		t.Fatalf("events head %d", head.LastEventID)
	}
	var link struct {
		JoinURL string `json:"join_url"`
	}
	admin.Do("POST", "/api/v1/endpoints/07192/link", nil, &link, 200)
	if !strings.HasPrefix(link.JoinURL, a.URL()+"/join#t=") {
		t.Fatalf("join url %q", link.JoinURL)
	}
}

func TestBadInput(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	cases := []struct {
		name, body, wantErr, wantField string
		want                           int
	}{
		{"malformed", `{"title":`, "invalid_json", "", 400},
		{"empty", ``, "invalid_json", "", 400},
		{"unknown field", `{"id":"` + uuid.NewString() + `","title":"x","colour":"red"}`, "unknown_field", "colour", 400},
		{"wrong type", `{"id":"` + uuid.NewString() + `","title":5}`, "invalid", "title", 400},
		{"bad time", `{"id":"` + uuid.NewString() + `","title":"x","planned_start":"tomorrow"}`, "invalid", "", 400},
		{"not a uuid", `{"id":"abc","title":"x","planned_start":"2021-05-23T06:30:00Z","planned_end":"2021-05-23T19:00:00Z"}`, "invalid", "id", 400},
		{"end before start", `{"id":"` + uuid.NewString() + `","title":"x","planned_start":"2021-05-23T06:30:00Z","planned_end":"2021-05-23T05:00:00Z"}`, "invalid", "planned_end", 400},
		{"trailing data", `{"id":"` + uuid.NewString() + `","title":"x"} {}`, "invalid_json", "", 400},
		{"oversized", `{"title":"` + strings.Repeat("x", 1<<20+10) + `"}`, "too_large", "", 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e struct{ Error, Field string }
			lead.Do("POST", "/api/v1/sessions", tc.body, &e, tc.want)
			if e.Error != tc.wantErr || e.Field != tc.wantField {
				t.Fatalf("got error %q field %q, want %q %q", e.Error, e.Field, tc.wantErr, tc.wantField)
			}
		})
	}
	var list struct{ Sessions []store.Session }
	lead.Do("GET", "/api/v1/sessions", nil, &list, 200)
	if len(list.Sessions) != 0 {
		t.Fatalf("bad input wrote %d sessions", len(list.Sessions))
	}
}

func TestCookieLoginJoinAndOrigin(t *testing.T) {
	a := apptest.Start(t, nil)
	a.User("lead", auth.RoleLeader)
	post := func(path, origin, cookie, body string) *http.Response {
		req, _ := http.NewRequest("POST", a.URL()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	creds := `{"username":"lead","password":"password-lead-long"}`
	if r := post("/api/v1/auth/login", "https://evil.example", "", creds); r.StatusCode != 403 {
		t.Fatalf("cross-site login: %d", r.StatusCode)
	}
	r := post("/api/v1/auth/login", a.URL(), "", creds)
	if r.StatusCode != 200 {
		t.Fatalf("login: %d", r.StatusCode)
	}
	var ck *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == "ops_session" {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", ck)
	}
	sess := `{"id":"` + uuid.NewString() + `","title":"t","planned_start":"2021-05-23T06:30:00Z","planned_end":"2021-05-23T19:00:00Z"}`
	if r := post("/api/v1/sessions", "https://evil.example", "ops_session="+ck.Value, sess); r.StatusCode != 403 {
		t.Fatalf("CSRF with cookie: %d", r.StatusCode)
	}
	if r := post("/api/v1/sessions", "", "ops_session="+ck.Value, sess); r.StatusCode != 403 {
		t.Fatalf("cookie write without Origin: %d", r.StatusCode)
	}
	if r := post("/api/v1/sessions", a.URL(), "ops_session="+ck.Value, sess); r.StatusCode != 201 {
		t.Fatalf("same-origin cookie write: %d", r.StatusCode)
	}

	tok, err := a.Store.IssueEndpointToken(context.Background(), "test", "07192")
	if err != nil {
		t.Fatal(err)
	}
	if r := post("/api/v1/auth/join", a.URL(), "", `{"token":"wrong"}`); r.StatusCode != 401 {
		t.Fatalf("bad join: %d", r.StatusCode)
	}
	r = post("/api/v1/auth/join", a.URL(), "", `{"token":"`+tok+`"}`)
	if r.StatusCode != 200 {
		t.Fatalf("join: %d", r.StatusCode)
	}
	var epCk string
	for _, c := range r.Cookies() {
		if c.Name == "ops_endpoint" && c.HttpOnly {
			epCk = c.Value
		}
	}
	req, _ := http.NewRequest("GET", a.URL()+"/api/v1/auth/me", nil)
	req.Header.Set("Cookie", "ops_endpoint="+epCk)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("me with endpoint cookie: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// TestLoginRateLimited runs the back-off on a clock the test holds: nothing here
// depends on how long a request takes (bcrypt under -race on a busy machine).
func TestLoginRateLimited(t *testing.T) {
	a := apptest.Start(t, nil)
	a.User("lead", auth.RoleLeader)
	clock := &fakeClock{t: time.Date(2021, 5, 23, 6, 30, 0, 0, time.UTC)}
	a.Web.SetLoginClock(clock.Now)
	c := a.Anon()
	for i := 0; i < 5; i++ {
		c.Do("POST", "/api/v1/auth/login", `{"username":"lead","password":"wrong password"}`, nil, 401)
	}
	st, _ := c.Do("POST", "/api/v1/auth/login", `{"username":"lead","password":"password-lead-long"}`, nil, 0)
	if st != 429 {
		t.Fatalf("after 5 failures the right password got %d, want 429 (back-off)", st)
	}
	clock.Advance(500 * time.Millisecond) // still inside the first back-off (1 s)
	c.Do("POST", "/api/v1/auth/login", `{"username":"lead","password":"password-lead-long"}`, nil, 429)
	clock.Advance(time.Second) // the back-off is over
	c.Do("POST", "/api/v1/auth/login", `{"username":"lead","password":"password-lead-long"}`, nil, 200)
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestCookieChoiceByPage: a browser that holds both a staff cookie and an endpoint
// cookie (a leader who opened a join link where they are logged in) is the actor
// that the page names with ?as=; with no as, the staff cookie wins as before, and
// a bearer token is not affected by as.
func TestCookieChoiceByPage(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	ep := a.Endpoint("07192")
	var joined struct{ Token string }
	a.Anon().Do("POST", "/api/v1/auth/join", map[string]string{"token": ep.Token}, &joined, 200)
	cookies := "ops_session=" + lead.Token + "; ops_endpoint=" + joined.Token
	me := func(query, cookie, bearer string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", a.URL()+"/api/v1/auth/me"+query, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Principal struct {
				Username     string `json:"username"`
				EndpointCode string `json:"endpoint_code"`
			}
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out.Principal.Username, out.Principal.EndpointCode
	}
	cases := []struct {
		name, query, cookie, bearer string
		status                      int
		user, code                  string
	}{
		{"both cookies, as=endpoint", "?as=endpoint", cookies, "", 200, "", "07192"},
		{"both cookies, as=staff", "?as=staff", cookies, "", 200, "lead", ""},
		{"both cookies, no as", "", cookies, "", 200, "lead", ""},
		{"staff cookie only, as=endpoint", "?as=endpoint", "ops_session=" + lead.Token, "", 401, "", ""},
		{"endpoint cookie only, as=staff", "?as=staff", "ops_endpoint=" + joined.Token, "", 401, "", ""},
		{"endpoint cookie only, no as", "", "ops_endpoint=" + joined.Token, "", 200, "", "07192"},
		{"bearer wins over as", "?as=endpoint", cookies, lead.Token, 200, "lead", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, user, code := me(tc.query, tc.cookie, tc.bearer)
			if st != tc.status || user != tc.user || code != tc.code {
				t.Fatalf("status %d user %q endpoint %q; want %d %q %q", st, user, code, tc.status, tc.user, tc.code)
			}
		})
	}

	// The /ws upgrade itself: with both cookies, as=endpoint joins as the endpoint
	// and as=staff as the leader's console.
	for _, tc := range []struct{ as, role, wantCode string }{{"endpoint", "endpoint", "07192"}, {"staff", "console", "22"}} {
		t.Run("ws as="+tc.as, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			h := http.Header{}
			h.Set("Cookie", cookies)
			h.Set("Origin", a.URL())
			ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(a.URL(), "http")+"/ws?as="+tc.as, &websocket.DialOptions{HTTPHeader: h})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer ws.CloseNow()
			join := fmt.Sprintf(`{"type":"join","payload":{"role":%q,"device":{"user_agent":"test"}}}`, tc.role)
			if err := ws.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
				t.Fatal(err)
			}
			for {
				_, raw, err := ws.Read(ctx)
				if err != nil {
					t.Fatalf("no welcome: %v", err)
				}
				var env struct {
					Type    string
					Payload struct {
						Code    string
						Message string
					}
				}
				_ = json.Unmarshal(raw, &env)
				if env.Type == "error" {
					t.Fatalf("error instead of welcome: %s", raw)
				}
				if env.Type == "welcome" {
					if env.Payload.Code != tc.wantCode {
						t.Fatalf("as=%s welcomed as %q, want %q", tc.as, env.Payload.Code, tc.wantCode)
					}
					return
				}
			}
		})
	}
}

// sseReader reads events from /api/v1/events.
type sseEvent struct {
	id     string
	action string
}

func openStream(t *testing.T, url, token, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.action = line[7:]
			case line == "" && ev.id != "":
				ch <- ev
				ev = sseEvent{}
			}
		}
	}()
	return ch, func() { cancel(); resp.Body.Close() }
}

func recv(t *testing.T, ch <-chan sseEvent, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed after %d of %d events", len(out), n)
			}
			out = append(out, e)
		case <-deadline:
			t.Fatalf("got %d of %d events in 10 s", len(out), n)
		}
	}
	return out
}

func TestEventStreamResumeAndTwoServers(t *testing.T) {
	dsn := storetest.DSN(t)
	a := apptest.StartDSN(t, dsn, nil)
	b := apptest.StartDSN(t, dsn, nil) // a second process on the same database
	lead := a.User("lead", auth.RoleLeader)
	obsB := b.User("obs", auth.RoleObserver)
	base, _ := a.Store.LastEventID(context.Background())

	live, stop := openStream(t, b.URL(), obsB.Token, fmt.Sprint(base))
	start := time.Now()
	for i := 0; i < 3; i++ {
		lead.Do("POST", "/api/v1/sessions", map[string]any{"id": uuid.NewString(), "title": fmt.Sprint("s", i),
			"planned_start": "2021-05-23T06:30:00Z", "planned_end": "2021-05-23T19:00:00Z"}, nil, 201)
	}
	got := recv(t, live, 3)
	t.Logf("server B saw 3 events written through server A in %v", time.Since(start))
	for i, e := range got {
		if e.action != "session.created" || e.id != fmt.Sprint(base+int64(i)+1) {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	stop()
	// Written while the console was away; it resumes from its last id and misses nothing.
	for i := 3; i < 6; i++ {
		lead.Do("POST", "/api/v1/sessions", map[string]any{"id": uuid.NewString(), "title": fmt.Sprint("s", i),
			"planned_start": "2021-05-23T06:30:00Z", "planned_end": "2021-05-23T19:00:00Z"}, nil, 201)
	}
	resumed, stop2 := openStream(t, a.URL(), lead.Token, got[2].id)
	defer stop2()
	more := recv(t, resumed, 3)
	for i, e := range more {
		if e.id != fmt.Sprint(base+int64(i)+4) {
			t.Fatalf("resume: event %d has id %s, want %d", i, e.id, base+int64(i)+4)
		}
	}
}
