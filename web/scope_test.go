package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/store"
)

// District authority: staff limited to a district (here A = 195, Cẩm Phả, commune
// 06760) see and direct that district and its communes only; another district
// (B = 207, Cô Tô, commune 07192) is absent (404), never merely forbidden.

const (
	distA    = "195"
	communeA = "06760"
	distB    = "207"
	communeB = "07192"
)

// scopedUser creates a staff account limited to district and logs it in.
func scopedUser(t *testing.T, a *apptest.App, name string, role auth.Role, district string) *apptest.Client {
	t.Helper()
	pw := "password-" + name + "-long"
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.CreateScopedUser(context.Background(), "test", name, role, district, h); err != nil {
		t.Fatal(err)
	}
	c := a.Anon()
	var out struct {
		Token     string
		Principal auth.Principal
	}
	c.Do("POST", "/api/v1/auth/login", map[string]string{"username": name, "password": pw}, &out, 200)
	if out.Principal.District != district {
		t.Fatalf("login of %s: principal %+v", name, out.Principal)
	}
	c.Token = out.Token
	return c
}

// scopeFixture is a running server with a session in progress, an unscoped leader,
// district-A staff, and one incident and one directive in each district.
type scopeFixture struct {
	a                  *apptest.App
	lead               *apptest.Client // unscoped
	leadA, dutyA       *apptest.Client // limited to district A
	obsA               *apptest.Client
	sess               store.Session
	incA, incB         store.Incident
	dirA, dirB, dirAll store.Directive
}

func newScopeFixture(t *testing.T) *scopeFixture {
	t.Helper()
	a := apptest.Start(t, nil)
	f := &scopeFixture{a: a, lead: a.User("lead", auth.RoleLeader)}
	f.leadA = scopedUser(t, a, "lead195", auth.RoleLeader, distA)
	f.dutyA = scopedUser(t, a, "duty195", auth.RoleDuty, distA)
	f.obsA = scopedUser(t, a, "obs195", auth.RoleObserver, distA)
	f.sess = startSession(t, f.lead)
	f.lead.Do("POST", "/api/v1/incidents", incidentBody(communeA, "Sự cố tại Mông Dương"), &f.incA, 201)
	f.lead.Do("POST", "/api/v1/incidents", incidentBody(communeB, "Sự cố tại Cô Tô"), &f.incB, 201)
	f.dirA = f.directive(t, f.lead, map[string]any{"district": distA}, 201)
	f.dirB = f.directive(t, f.lead, map[string]any{"district": distB}, 201)
	f.dirAll = f.directive(t, f.lead, map[string]any{"all": true}, 201)
	return f
}

func (f *scopeFixture) directive(t *testing.T, c *apptest.Client, targets map[string]any, want int) store.Directive {
	t.Helper()
	var d store.Directive
	c.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "Báo cáo tình hình",
		"targets": targets}, &d, want)
	return d
}

// unitsOf returns the codes of a district and its communes, from the roster.
func unitsOf(t *testing.T, c *apptest.Client, district string) map[string]bool {
	t.Helper()
	var eps struct{ Endpoints []store.Endpoint }
	c.Do("GET", "/api/v1/endpoints?district="+district, nil, &eps, 200)
	out := map[string]bool{}
	for _, e := range eps.Endpoints {
		out[e.Code] = true
	}
	if len(out) < 2 {
		t.Fatalf("district %s: %v", district, out)
	}
	return out
}

func staffTurnout(code string) map[string]any {
	b := turnoutBody(code, time.Now().UTC().Format(time.RFC3339), 10)
	b["via"] = "phone"
	return b
}

// scopeReq is one request of the route walk: what district-A staff get, and what
// the unscoped leader gets for the same request (0: not checked), which shows that
// a 404 is the scope's doing and not a missing record.
type scopeReq struct {
	who      string // "duty" (scoped duty) or "lead" (scoped leader)
	method   string
	path     string
	body     any
	scoped   int
	unscoped int
}

// TestScopeRouteWalk walks every route the engine registers. Each must have a
// decision here, so a new route without one fails: requests about district A (the
// scoped user's own) and about district B (another's).
func TestScopeRouteWalk(t *testing.T) {
	f := newScopeFixture(t)
	sid := f.sess.ID
	rec := uuid.NewString() // no such recording: the route itself is refused to scoped staff
	type decision struct {
		reqs []scopeReq
		skip string // why the route is not exercised here
	}
	own := func(reqs ...scopeReq) decision { return decision{reqs: reqs} }
	d := map[string]decision{
		"GET /healthz": own(scopeReq{"duty", "GET", "/healthz", nil, 200, 200}),
		"GET /readyz":  own(scopeReq{"duty", "GET", "/readyz", nil, 200, 200}),
		"POST /api/v1/auth/login": own(scopeReq{"duty", "POST", "/api/v1/auth/login",
			map[string]string{"username": "duty195", "password": "wrong password!"}, 401, 401}),
		"POST /api/v1/auth/join":   own(scopeReq{"duty", "POST", "/api/v1/auth/join", map[string]string{"token": "nope"}, 401, 401}),
		"POST /api/v1/auth/logout": {skip: "public, concerns no unit (logging out would end the test's session)"},
		"POST /api/v1/auth/wall":   own(scopeReq{"duty", "POST", "/api/v1/auth/wall", map[string]string{"token": "nope"}, 401, 401}),
		// The press wall is the province's: not for a district (the stream itself: TestWallFeed).
		"GET /api/v1/wall/feed": own(scopeReq{"duty", "GET", "/api/v1/wall/feed", nil, 403, 0}),
		"GET /api/v1/auth/me":   own(scopeReq{"duty", "GET", "/api/v1/auth/me", nil, 200, 200}),

		"GET /api/v1/endpoints": own(
			scopeReq{"duty", "GET", "/api/v1/endpoints?district=" + distA, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/endpoints?district=" + distB, nil, 404, 200}),
		"POST /api/v1/endpoints/:code/link": own(
			scopeReq{"lead", "POST", "/api/v1/endpoints/" + communeA + "/link", nil, 403, 403},
			scopeReq{"lead", "POST", "/api/v1/endpoints/" + communeB + "/link", nil, 403, 403}),
		"DELETE /api/v1/endpoints/:code/link": own(
			scopeReq{"lead", "DELETE", "/api/v1/endpoints/" + communeA + "/link", nil, 403, 403},
			scopeReq{"lead", "DELETE", "/api/v1/endpoints/" + communeB + "/link", nil, 403, 403}),

		"POST /api/v1/sessions": own(scopeReq{"lead", "POST", "/api/v1/sessions", map[string]any{"id": uuid.NewString(),
			"title": "x", "planned_start": "2021-05-23T06:30:00Z", "planned_end": "2021-05-23T19:00:00Z"}, 403, 0}),
		"GET /api/v1/sessions":            own(scopeReq{"duty", "GET", "/api/v1/sessions", nil, 200, 200}),
		"GET /api/v1/sessions/current":    own(scopeReq{"duty", "GET", "/api/v1/sessions/current", nil, 200, 200}),
		"GET /api/v1/sessions/:id":        own(scopeReq{"duty", "GET", "/api/v1/sessions/" + sid, nil, 200, 200}),
		"POST /api/v1/sessions/:id/start": own(scopeReq{"lead", "POST", "/api/v1/sessions/" + sid + "/start", nil, 403, 200}),
		"POST /api/v1/sessions/:id/end":   own(scopeReq{"lead", "POST", "/api/v1/sessions/" + sid + "/end", nil, 403, 0}),

		"GET /api/v1/events":      {skip: "the stream: TestScopedEventStream"},
		"GET /api/v1/events/head": own(scopeReq{"duty", "GET", "/api/v1/events/head", nil, 200, 200}),

		"POST /api/v1/incidents": own(
			scopeReq{"duty", "POST", "/api/v1/incidents", incidentBody(communeA, "A"), 201, 0},
			scopeReq{"duty", "POST", "/api/v1/incidents", incidentBody(communeB, "B"), 400, 201}),
		"GET /api/v1/incidents": own(
			scopeReq{"duty", "GET", "/api/v1/incidents?district=" + distA, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/incidents?district=" + distB, nil, 404, 200},
			scopeReq{"duty", "GET", "/api/v1/incidents?endpoint=" + communeB, nil, 404, 200}),
		"GET /api/v1/incidents/:id": own(
			scopeReq{"duty", "GET", "/api/v1/incidents/" + f.incA.ID, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/incidents/" + f.incB.ID, nil, 404, 200}),
		"PATCH /api/v1/incidents/:id": own(
			scopeReq{"duty", "PATCH", "/api/v1/incidents/" + f.incA.ID, map[string]any{"assignee": "Phường", "version": 1}, 200, 0},
			scopeReq{"duty", "PATCH", "/api/v1/incidents/" + f.incB.ID, map[string]any{"assignee": "Xã", "version": 1}, 404, 200}),
		"POST /api/v1/incidents/:id/updates": own(
			scopeReq{"duty", "POST", "/api/v1/incidents/" + f.incA.ID + "/updates", map[string]any{"body": "đã gọi"}, 201, 0},
			scopeReq{"duty", "POST", "/api/v1/incidents/" + f.incB.ID + "/updates", map[string]any{"body": "đã gọi"}, 404, 201}),
		// Escalating to the parent node is the province's decision (this node has no parent: 409).
		"POST /api/v1/incidents/:id/escalate": own(
			scopeReq{"duty", "POST", "/api/v1/incidents/" + f.incA.ID + "/escalate", nil, 403, 409}),
		"GET /api/v1/incidents/:id/escalation": own(
			scopeReq{"duty", "GET", "/api/v1/incidents/" + f.incA.ID + "/escalation", nil, 404, 404}),

		"POST /api/v1/directives": own(
			scopeReq{"duty", "POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "t",
				"targets": map[string]any{"district": distA}}, 201, 0},
			scopeReq{"duty", "POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "t",
				"targets": map[string]any{"district": distB}}, 400, 201}),
		"GET /api/v1/directives": own(
			scopeReq{"duty", "GET", "/api/v1/directives?endpoint=" + communeA, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/directives?endpoint=" + communeB, nil, 404, 200}),
		"GET /api/v1/directives/:id": own(
			scopeReq{"duty", "GET", "/api/v1/directives/" + f.dirA.ID, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/directives/" + f.dirB.ID, nil, 404, 200}),
		"POST /api/v1/directives/:id/ack": own(
			scopeReq{"duty", "POST", "/api/v1/directives/" + f.dirA.ID + "/ack", map[string]any{"endpoint_code": communeA, "via": "phone"}, 200, 200},
			scopeReq{"duty", "POST", "/api/v1/directives/" + f.dirB.ID + "/ack", map[string]any{"endpoint_code": communeB, "via": "phone"}, 404, 200}),
		"POST /api/v1/directives/:id/reply": own(
			scopeReq{"duty", "POST", "/api/v1/directives/" + f.dirA.ID + "/reply", map[string]any{"endpoint_code": communeA, "text": "đã xong"}, 200, 200},
			scopeReq{"duty", "POST", "/api/v1/directives/" + f.dirB.ID + "/reply", map[string]any{"endpoint_code": communeB, "text": "đã xong"}, 404, 200}),

		// A district's staff get their district's report (TestScopedReport); an unknown
		// session is 404 to everyone.
		"GET /api/v1/sessions/:id/report.csv": own(
			scopeReq{"duty", "GET", "/api/v1/sessions/" + sid + "/report.csv", nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/sessions/" + uuid.NewString() + "/report.csv", nil, 404, 404}),
		"GET /api/v1/sessions/:id/report.html": own(
			scopeReq{"duty", "GET", "/api/v1/sessions/" + sid + "/report.html", nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/sessions/" + uuid.NewString() + "/report.html", nil, 404, 404}),

		"PUT /api/v1/turnout/registered": own(scopeReq{"lead", "PUT", "/api/v1/turnout/registered",
			[]map[string]any{{"code": communeA, "registered": 5000}}, 403, 200}),
		"GET /api/v1/turnout/registered": own(scopeReq{"duty", "GET", "/api/v1/turnout/registered", nil, 200, 200}),
		"POST /api/v1/turnout/reports": own(
			scopeReq{"duty", "POST", "/api/v1/turnout/reports", staffTurnout(communeA), 201, 0},
			scopeReq{"duty", "POST", "/api/v1/turnout/reports", staffTurnout(communeB), 400, 201}),
		"GET /api/v1/turnout/reports": own(
			scopeReq{"duty", "GET", "/api/v1/turnout/reports?code=" + communeA, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/turnout/reports?code=" + communeB, nil, 404, 200}),
		"GET /api/v1/turnout": own(
			scopeReq{"duty", "GET", "/api/v1/turnout?code=" + distA, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/turnout?parent=" + distA, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/turnout?code=" + distB, nil, 404, 200},
			scopeReq{"duty", "GET", "/api/v1/turnout?parent=22", nil, 404, 200},
			scopeReq{"duty", "GET", "/api/v1/turnout?code=22", nil, 404, 200}),
		"GET /api/v1/turnout/series": own(
			scopeReq{"duty", "GET", "/api/v1/turnout/series?code=" + communeA, nil, 200, 200},
			scopeReq{"duty", "GET", "/api/v1/turnout/series?code=" + communeB, nil, 404, 200}),

		// The video record is for unscoped staff only.
		"GET /api/v1/recordings":               own(scopeReq{"duty", "GET", "/api/v1/recordings", nil, 404, 200}),
		"GET /api/v1/recordings/:id":           own(scopeReq{"duty", "GET", "/api/v1/recordings/" + rec, nil, 404, 404}),
		"GET /api/v1/recordings/:id/media":     own(scopeReq{"duty", "GET", "/api/v1/recordings/" + rec + "/media", nil, 404, 404}),
		"HEAD /api/v1/recordings/:id/media":    own(scopeReq{"duty", "HEAD", "/api/v1/recordings/" + rec + "/media", nil, 404, 404}),
		"GET /api/v1/sessions/:id/markers.vtt": own(scopeReq{"duty", "GET", "/api/v1/sessions/" + sid + "/markers.vtt", nil, 404, 200}),

		"GET /ws": {skip: "signaling (/ws): a district's console, TestScopedConsoleE2E in signaling"},

		// WHIP makes the program (session control): an unscoped leader's. WHEP is for
		// unscoped staff. A resource answers only the credential that made it.
		"POST /whip/program":        own(scopeReq{"lead", "POST", "/whip/program", nil, 403, 0}),
		"POST /whep/program":        own(scopeReq{"duty", "POST", "/whep/program", nil, 403, 0}),
		"PATCH /whip/program/:id":   own(scopeReq{"lead", "PATCH", "/whip/program/nope", nil, 404, 404}),
		"DELETE /whip/program/:id":  own(scopeReq{"lead", "DELETE", "/whip/program/nope", nil, 404, 404}),
		"PATCH /whep/program/:id":   own(scopeReq{"duty", "PATCH", "/whep/program/nope", nil, 404, 404}),
		"DELETE /whep/program/:id":  own(scopeReq{"duty", "DELETE", "/whep/program/nope", nil, 404, 404}),
		"OPTIONS /whip/program":     {skip: "CORS preflight: no credential, no data"},
		"OPTIONS /whip/program/:id": {skip: "CORS preflight: no credential, no data"},
		"OPTIONS /whep/program":     {skip: "CORS preflight: no credential, no data"},
		"OPTIONS /whep/program/:id": {skip: "CORS preflight: no credential, no data"},

		"GET /":                   own(scopeReq{"duty", "GET", "/", nil, 200, 200}), // redirects to /login
		"GET /login":              own(scopeReq{"duty", "GET", "/login", nil, 200, 200}),
		"GET /join":               own(scopeReq{"duty", "GET", "/join", nil, 200, 200}),
		"GET /console":            own(scopeReq{"duty", "GET", "/console", nil, 200, 200}),
		"GET /desk":               own(scopeReq{"duty", "GET", "/desk", nil, 200, 200}),
		"GET /wall":               own(scopeReq{"duty", "GET", "/wall", nil, 200, 200}),
		"GET /static/:hash/*file": {skip: "public embedded assets, no data"},
	}
	// Profiling is for admins, whom no district limits.
	pprof := own(scopeReq{"lead", "GET", "/debug/pprof/heap", nil, 403, 403})

	clients := map[string]*apptest.Client{"duty": f.dutyA, "lead": f.leadA}
	routes := f.a.Web.Routes()
	sort.Slice(routes, func(i, j int) bool { return routes[i].Path+routes[i].Method < routes[j].Path+routes[j].Method })
	seen := map[string]bool{}
	for _, r := range routes {
		key := r.Method + " " + r.Path
		seen[key] = true
		dec, ok := d[key]
		if !ok && strings.HasPrefix(r.Path, "/debug/pprof/") {
			dec, ok = pprof, true
		}
		if !ok {
			t.Errorf("route %s has no district-scope decision in TestScopeRouteWalk", key)
			continue
		}
		if dec.skip != "" {
			t.Logf("%s: not exercised here: %s", key, dec.skip)
			continue
		}
		for _, q := range dec.reqs {
			if got := status(t, clients[q.who], q.method, q.path, q.body); got != q.scoped {
				t.Errorf("%s as scoped %s: %s %s → %d, want %d", key, q.who, q.method, q.path, got, q.scoped)
			}
			if q.unscoped != 0 {
				if got := status(t, f.lead, q.method, q.path, q.body); got != q.unscoped {
					t.Errorf("%s as unscoped leader: %s %s → %d, want %d", key, q.method, q.path, got, q.unscoped)
				}
			}
		}
	}
	for key := range d {
		if !seen[key] {
			t.Errorf("decision for %s, which is not a route (renamed?)", key)
		}
	}
}

// status sends a request and returns its status, without judging it.
func status(t *testing.T, c *apptest.Client, method, path string, body any) int {
	t.Helper()
	st, _ := c.Do(method, path, body, nil, 0)
	return st
}

// TestScopeReadsAreLimited checks what district-A staff see in lists and records: only
// their district, with other districts' receipts trimmed from shared directives.
func TestScopeReadsAreLimited(t *testing.T) {
	f := newScopeFixture(t)
	unitsA := unitsOf(t, f.lead, distA)
	inA := func(code string) bool { return unitsA[code] }

	var me struct {
		Principal auth.Principal
		District  store.Endpoint
	}
	f.dutyA.Do("GET", "/api/v1/auth/me", nil, &me, 200)
	if me.Principal.District != distA || me.District.Code != distA || me.District.Kind != "district" {
		t.Fatalf("me: %+v", me)
	}

	var eps struct {
		Count     int
		Endpoints []store.Endpoint
	}
	f.dutyA.Do("GET", "/api/v1/endpoints", nil, &eps, 200)
	if eps.Count < 2 || eps.Endpoints[0].Code != distA {
		t.Fatalf("scoped roster: %+v", eps)
	}
	for _, e := range eps.Endpoints {
		if e.Code != distA && e.ParentCode != distA {
			t.Fatalf("scoped roster has %s (parent %s)", e.Code, e.ParentCode)
		}
	}
	var all struct{ Count int }
	f.lead.Do("GET", "/api/v1/endpoints", nil, &all, 200)
	if all.Count != 191 {
		t.Fatalf("unscoped roster: %d", all.Count)
	}

	var page store.IncidentPage
	f.dutyA.Do("GET", "/api/v1/incidents", nil, &page, 200)
	if len(page.Incidents) != 1 || page.Incidents[0].ID != f.incA.ID {
		t.Fatalf("scoped incidents: %+v", page.Incidents)
	}
	f.lead.Do("GET", "/api/v1/incidents", nil, &page, 200)
	if len(page.Incidents) != 2 {
		t.Fatalf("unscoped incidents: %d", len(page.Incidents))
	}

	var dl struct{ Directives []store.Directive }
	f.dutyA.Do("GET", "/api/v1/directives", nil, &dl, 200)
	if len(dl.Directives) != 2 { // to A and to all; not to B
		t.Fatalf("scoped directives: %d", len(dl.Directives))
	}
	for _, d := range dl.Directives {
		if d.ID == f.dirB.ID {
			t.Fatal("scoped list has the directive to district B")
		}
		if d.Summary == nil || d.Summary.Total != len(f.dirA.Receipts) {
			t.Fatalf("directive %s summary %+v, want the %d receipts of district A", d.ID, d.Summary, len(f.dirA.Receipts))
		}
	}
	var dAll store.Directive
	f.dutyA.Do("GET", "/api/v1/directives/"+f.dirAll.ID, nil, &dAll, 200)
	if len(dAll.Receipts) != len(f.dirA.Receipts) || len(dAll.TargetCodes) != len(dAll.Receipts) {
		t.Fatalf("directive to all, seen from A: %d receipts, %d codes", len(dAll.Receipts), len(dAll.TargetCodes))
	}
	for _, r := range dAll.Receipts {
		if !inA(r.EndpointCode) {
			t.Fatalf("directive to all, seen from A, has the receipt of %s", r.EndpointCode)
		}
	}
	var e apiErr
	f.dutyA.Do("GET", "/api/v1/directives/"+f.dirB.ID, nil, &e, 404)
	if e.Error != "not_found" {
		t.Fatalf("directive to B: %+v", e)
	}
	// A directive to a list is trimmed to the district's units.
	mixed := f.directive(t, f.lead, map[string]any{"endpoints": []string{communeA, communeB}}, 201)
	var seen store.Directive
	f.dutyA.Do("GET", "/api/v1/directives/"+mixed.ID, nil, &seen, 200)
	if len(seen.Targets.Endpoints) != 1 || seen.Targets.Endpoints[0] != communeA || len(seen.Receipts) != 1 {
		t.Fatalf("mixed directive seen from A: %+v", seen)
	}

	var reg struct {
		Communes []store.RegisteredEntry
	}
	f.dutyA.Do("GET", "/api/v1/turnout/registered", nil, &reg, 200)
	if len(reg.Communes) == 0 {
		t.Fatal("no communes of A")
	}
	for _, x := range reg.Communes {
		if x.DistrictCode != distA {
			t.Fatalf("registered list has %s of %s", x.Code, x.DistrictCode)
		}
	}
	// The picture defaults to the district itself, not the province.
	var pic turnoutPic
	f.dutyA.Do("GET", "/api/v1/turnout", nil, &pic, 200)
	if len(pic.Units) != 1 || pic.Units[0].Code != distA {
		t.Fatalf("scoped picture: %+v", pic.Units)
	}
	f.dutyA.Do("POST", "/api/v1/turnout/reports", staffTurnout(communeA), nil, 201)
	f.lead.Do("POST", "/api/v1/turnout/reports", staffTurnout(communeB), nil, 201)
	var reps struct{ Reports []store.TurnoutReport }
	f.dutyA.Do("GET", "/api/v1/turnout/reports", nil, &reps, 200)
	if len(reps.Reports) != 1 || reps.Reports[0].EndpointCode != communeA {
		t.Fatalf("scoped turnout reports: %+v", reps.Reports)
	}
}

// TestScopeActsAreLimited checks what district-A staff may do: their own units only
// (400 on a target outside), never session control or directives to all.
func TestScopeActsAreLimited(t *testing.T) {
	f := newScopeFixture(t)
	var e apiErr
	for _, targets := range []map[string]any{
		{"all": true},
		{"district": distB},
		{"endpoints": []string{communeA, communeB}},
		{"endpoints": []string{"22"}},
	} {
		f.leadA.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "t", "targets": targets}, &e, 400)
		if e.Error != "invalid" || e.Field != "targets" {
			t.Fatalf("targets %v: %+v", targets, e)
		}
	}
	d := f.directive(t, f.dutyA, map[string]any{"endpoints": []string{distA, communeA}}, 201)
	if d.IssuedBy != "user:duty195" || len(d.Receipts) != 2 {
		t.Fatalf("directive to own units: %+v", d)
	}
	f.dutyA.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "t",
		"targets": map[string]any{"district": distA}, "incident_id": f.incB.ID}, &e, 400)
	if e.Field != "incident_id" {
		t.Fatalf("directive about B's incident: %+v", e)
	}
	f.dutyA.Do("POST", "/api/v1/incidents", incidentBody(communeB, "B"), &e, 400)
	if e.Error != "invalid" || e.Field != "endpoint_code" {
		t.Fatalf("incident in B: %+v", e)
	}
	f.dutyA.Do("POST", "/api/v1/turnout/reports", staffTurnout(communeB), &e, 400)
	if e.Field != "endpoint_code" {
		t.Fatalf("turnout for B: %+v", e)
	}
	// The observer of A writes nothing, as any observer.
	f.obsA.Do("POST", "/api/v1/incidents", incidentBody(communeA, "A"), &e, 403)
	// Session control stays with the province, whatever the role.
	for _, path := range []string{"/end", "/start"} {
		f.leadA.Do("POST", "/api/v1/sessions/"+f.sess.ID+path, nil, &e, 403)
		if e.Error != "forbidden" {
			t.Fatalf("%s: %+v", path, e)
		}
	}
	var cur store.Session
	f.dutyA.Do("GET", "/api/v1/sessions/current", nil, &cur, 200)
	if cur.ID != f.sess.ID || cur.ActualEnd != nil {
		t.Fatalf("session after the scoped leader's attempts: %+v", cur)
	}
}

// sseFull is one event of the stream with its data.
type sseFull struct {
	id     string
	action string
	data   store.Event
}

func openFullStream(t *testing.T, url, token, after string) (<-chan sseFull, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events?after="+after, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	ch := make(chan sseFull, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseFull
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.action = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &ev.data)
			case line == "" && ev.id != "":
				ch <- ev
				ev = sseFull{}
			}
		}
	}()
	return ch, func() { cancel(); resp.Body.Close() }
}

func recvFull(t *testing.T, ch <-chan sseFull, n int) []sseFull {
	t.Helper()
	var out []sseFull
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed after %d of %d events", len(out), n)
			}
			out = append(out, e)
		case <-deadline:
			t.Fatalf("got %d of %d events in 10 s: %+v", len(out), n, out)
		}
	}
	return out
}

// TestScopedEventStream: a district's stream carries its own units' events (and
// those of no unit, such as the session's end), never another district's, nor
// users, links or the roster; live and on resume alike.
func TestScopedEventStream(t *testing.T) {
	f := newScopeFixture(t)
	admin := f.a.User("admin", auth.RoleAdmin)
	head, err := f.a.Store.LastEventID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := fmt.Sprint(head)
	unitsA := unitsOf(t, f.lead, distA)
	live, stop := openFullStream(t, f.a.URL(), f.dutyA.Token, after)
	defer stop()
	all, stopAll := openFullStream(t, f.a.URL(), f.lead.Token, after)
	defer stopAll()

	var incB, incA store.Incident
	f.lead.Do("POST", "/api/v1/incidents", incidentBody(communeB, "Mất liên lạc Cô Tô"), &incB, 201)                             // B: hidden
	_ = f.a.User("someone", auth.RoleDuty)                                                                                       // user.created: hidden
	admin.Do("POST", "/api/v1/endpoints/"+communeA+"/link", nil, nil, 200)                                                       // link: hidden
	f.lead.Do("POST", "/api/v1/incidents", incidentBody(communeA, "Mất điện Mông Dương"), &incA, 201)                            // A: shown
	f.lead.Do("POST", "/api/v1/incidents/"+incB.ID+"/updates", map[string]any{"body": "B"}, nil, 201)                            // hidden
	f.lead.Do("POST", "/api/v1/incidents/"+incA.ID+"/updates", map[string]any{"body": "A"}, nil, 201)                            // shown
	dAll := f.directive(t, f.lead, map[string]any{"all": true}, 201)                                                             // shown, trimmed
	f.lead.Do("POST", "/api/v1/directives/"+dAll.ID+"/ack", map[string]any{"endpoint_code": communeB, "via": "phone"}, nil, 200) // hidden
	f.lead.Do("POST", "/api/v1/directives/"+dAll.ID+"/ack", map[string]any{"endpoint_code": communeA, "via": "radio"}, nil, 200) // shown
	f.lead.Do("POST", "/api/v1/turnout/reports", staffTurnout(communeB), nil, 201)                                               // hidden
	f.lead.Do("POST", "/api/v1/sessions/"+f.sess.ID+"/end", nil, nil, 200)                                                       // no unit: shown

	want := []string{"incident.created", "incident.commented", "directive.issued", "directive.acknowledged", "session.ended"}
	check := func(name string, got []sseFull) {
		t.Helper()
		for i, e := range got {
			if e.action != want[i] {
				t.Fatalf("%s: event %d is %s, want %s (all: %+v)", name, i, e.action, want[i], got)
			}
		}
		if got[0].data.EntityID != incA.ID || got[1].data.EntityID != incA.ID {
			t.Fatalf("%s: incident events %+v", name, got[:2])
		}
		var d store.Directive
		if err := json.Unmarshal(got[2].data.After, &d); err != nil {
			t.Fatal(err)
		}
		for _, c := range d.TargetCodes {
			if !unitsA[c] {
				t.Fatalf("%s: directive.issued carries %s of another district", name, c)
			}
		}
		if len(d.Receipts) != len(f.dirA.Receipts) || d.Summary.Total != len(d.Receipts) {
			t.Fatalf("%s: directive.issued has %d receipts, want %d", name, len(d.Receipts), len(f.dirA.Receipts))
		}
	}
	start := time.Now()
	got := recvFull(t, live, len(want))
	t.Logf("scoped stream got its %d events in %v", len(got), time.Since(start))
	check("live", got)
	// The unscoped leader's stream has every one of them, and the whole directive.
	actions := map[string]int{}
	for {
		e := recvFull(t, all, 1)[0]
		actions[e.action]++
		if e.action == "directive.issued" {
			var whole store.Directive
			if err := json.Unmarshal(e.data.After, &whole); err != nil || len(whole.TargetCodes) != 190 {
				t.Fatalf("unscoped directive.issued: %d codes, %v", len(whole.TargetCodes), err)
			}
		}
		if e.action == "session.ended" {
			break
		}
	}
	if actions["user.created"] != 1 || actions["endpoint.link_issued"] != 1 || actions["incident.created"] != 2 ||
		actions["directive.acknowledged"] != 2 || actions["turnout.reported"] != 1 {
		t.Fatalf("unscoped stream: %v", actions)
	}
	// Nothing more reaches the scoped stream (the hidden events are not just late).
	select {
	case e := <-live:
		t.Fatalf("scoped stream has an extra event %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
	// The backfill (a resume) is filtered the same way.
	resumed, stop2 := openFullStream(t, f.a.URL(), f.dutyA.Token, after)
	defer stop2()
	check("resume", recvFull(t, resumed, len(want)))
}
