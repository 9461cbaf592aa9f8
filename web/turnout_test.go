package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/store"
)

// upload sends body with a content type of its own (Client.Do sends JSON).
func upload(t *testing.T, c *apptest.Client, method, path, ctype string, body []byte, out any, want int) {
	t.Helper()
	req, err := http.NewRequest(method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// ictTime is 23 May 2021 at hh:mm in Quảng Ninh, as a client sends it.
func ictTime(hh, mm int) string {
	return time.Date(2021, 5, 23, hh, mm, 0, 0, time.FixedZone("ICT", 7*3600)).Format(time.RFC3339)
}

func turnoutBody(code, asOf string, voted int64) map[string]any {
	return map[string]any{"id": uuid.NewString(), "endpoint_code": code, "as_of": asOf, "voted": voted}
}

type turnoutPic struct {
	SessionID *string             `json:"session_id"`
	At        time.Time           `json:"at"`
	Units     []store.TurnoutUnit `json:"units"`
}

// loadRegistered uploads the embedded figures as a leader would from a spreadsheet.
func loadRegistered(t *testing.T, lead *apptest.Client) {
	t.Helper()
	tsv, err := os.ReadFile("../configs/turnout/22-2021-05-23.tsv")
	if err != nil {
		t.Fatal(err)
	}
	var res store.RegisteredResult
	upload(t, lead, "PUT", "/api/v1/turnout/registered", "text/tab-separated-values", tsv, &res, 200)
	if res.Added != 177 {
		t.Fatalf("registered upload: %+v", res)
	}
}

func TestTurnoutReportAPI(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	obs := a.User("obs", auth.RoleObserver)
	ep := a.Endpoint("07192")
	loadRegistered(t, lead)

	var e apiErr
	ep.Do("POST", "/api/v1/turnout/reports", turnoutBody("07192", ictTime(8, 0), 400), &e, 409)
	if e.Error != "no_session" {
		t.Fatalf("without a session: %+v", e)
	}
	sess := startSession(t, lead)

	body := turnoutBody("", ictTime(8, 0), 400) // an endpoint's code defaults to its own
	var r, again store.TurnoutReport
	ep.Do("POST", "/api/v1/turnout/reports", body, &r, 201)
	ep.Do("POST", "/api/v1/turnout/reports", body, &again, 200)
	if r.EndpointCode != "07192" || r.SessionID != sess.ID || r.ReportedBy != "endpoint:07192" || r.Via != "" || again.ID != r.ID {
		t.Fatalf("report %+v, retry %+v", r, again)
	}
	body["voted"] = 401
	ep.Do("POST", "/api/v1/turnout/reports", body, &e, 409)
	if e.Error != "conflict" {
		t.Fatalf("same id, other body: %+v", e)
	}

	staff := func(b map[string]any, via, reason string) map[string]any {
		b["via"] = via
		if reason != "" {
			b["reason"] = reason
		}
		return b
	}
	cases := []struct {
		name  string
		c     *apptest.Client
		body  any
		want  int
		code  string
		field string
	}{
		{"observer", obs, staff(turnoutBody("07192", ictTime(9, 0), 500), "phone", ""), 403, "forbidden", ""},
		{"endpoint for another", ep, turnoutBody("07195", ictTime(9, 0), 500), 403, "forbidden", "endpoint_code"},
		{"over registered", ep, turnoutBody("07192", ictTime(9, 0), 2601), 422, "over_registered", "voted"},
		{"decreasing", ep, turnoutBody("07192", ictTime(9, 0), 399), 409, "decreasing", "voted"},
		{"staff decreasing without a reason", duty, staff(turnoutBody("07192", ictTime(9, 0), 399), "phone", ""), 409, "decreasing", "voted"},
		{"endpoint sends a reason", ep, map[string]any{"id": uuid.NewString(), "as_of": ictTime(9, 0), "voted": 300, "reason": "nhầm"}, 400, "invalid", "reason"},
		{"endpoint sends via", ep, staff(turnoutBody("07192", ictTime(9, 0), 500), "phone", ""), 400, "invalid", "via"},
		{"staff without via", duty, turnoutBody("07192", ictTime(9, 0), 500), 400, "invalid", "via"},
		{"staff bad via", duty, staff(turnoutBody("07192", ictTime(9, 0), 500), "pigeon", ""), 400, "invalid", "via"},
		{"district code", duty, staff(turnoutBody("207", ictTime(9, 0), 500), "phone", ""), 400, "invalid", "endpoint_code"},
		{"province code", duty, staff(turnoutBody("22", ictTime(9, 0), 500), "phone", ""), 400, "invalid", "endpoint_code"},
		{"before the planned start", ep, turnoutBody("07192", ictTime(6, 29), 500), 400, "invalid", "as_of"},
		{"in the future", ep, turnoutBody("07192", time.Now().Add(6*time.Minute).Format(time.RFC3339), 500), 400, "invalid", "as_of"},
		{"no voted", ep, map[string]any{"id": uuid.NewString(), "as_of": ictTime(9, 0)}, 400, "invalid", "voted"},
		{"voted as text", ep, map[string]any{"id": uuid.NewString(), "as_of": ictTime(9, 0), "voted": "500"}, 400, "invalid", "voted"},
		{"bad id", ep, map[string]any{"id": "1", "as_of": ictTime(9, 0), "voted": 500}, 400, "invalid", "id"},
		{"unknown field", ep, map[string]any{"id": uuid.NewString(), "as_of": ictTime(9, 0), "voted": 500, "session_id": sess.ID}, 400, "unknown_field", "session_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e apiErr
			tc.c.Do("POST", "/api/v1/turnout/reports", tc.body, &e, tc.want)
			if e.Error != tc.code || e.Field != tc.field || e.Message == "" {
				t.Fatalf("error %+v, want %s on %q", e, tc.code, tc.field)
			}
		})
	}
	a.Anon().Do("POST", "/api/v1/turnout/reports", turnoutBody("07192", ictTime(9, 0), 500), nil, 401)

	// A correction by staff with a reason lowers the figure, and is kept and shown.
	var fix store.TurnoutReport
	duty.Do("POST", "/api/v1/turnout/reports", staff(turnoutBody("07192", ictTime(9, 0), 350), "phone", "Xã báo nhầm lúc 8 giờ"), &fix, 201)
	if !fix.Correction || fix.Via != "phone" || fix.ReportedBy != "user:duty" {
		t.Fatalf("correction %+v", fix)
	}
	// Staff report for any commune, naming how the figure came.
	lead.Do("POST", "/api/v1/turnout/reports", staff(turnoutBody("07195", ictTime(9, 15), 300), "radio", ""), nil, 201)
	var list struct {
		SessionID string                `json:"session_id"`
		Reports   []store.TurnoutReport `json:"reports"`
	}
	obs.Do("GET", "/api/v1/turnout/reports?code=207", nil, &list, 200)
	if list.SessionID != sess.ID || len(list.Reports) != 3 || list.Reports[1].Reason != "Xã báo nhầm lúc 8 giờ" {
		t.Fatalf("reports %+v", list)
	}
	ep.Do("GET", "/api/v1/turnout/reports", nil, &list, 200)
	if len(list.Reports) != 2 {
		t.Fatalf("endpoint's own reports: %+v", list.Reports)
	}
	ep.Do("GET", "/api/v1/turnout/reports?code=07195", nil, nil, 403)

	// Every accepted report is an audit event, in the same transaction.
	evs, err := a.Store.EventsAfter(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Action == "turnout.reported" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d turnout.reported events, want 3", n)
	}
}

func TestTurnoutRegisteredAPI(t *testing.T) {
	a := apptest.Start(t, nil)
	admin := a.User("root", auth.RoleAdmin)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	obs := a.User("obs", auth.RoleObserver)
	ep := a.Endpoint("07192")

	list := []map[string]any{{"code": "07192", "registered": 2600}, {"code": "07195", "registered": 925}}
	duty.Do("PUT", "/api/v1/turnout/registered", list, nil, 403)
	obs.Do("PUT", "/api/v1/turnout/registered", list, nil, 403)
	ep.Do("PUT", "/api/v1/turnout/registered", list, nil, 403)
	var res store.RegisteredResult
	lead.Do("PUT", "/api/v1/turnout/registered", list, &res, 200)
	if res.Added != 2 {
		t.Fatalf("put: %+v", res)
	}
	// A spreadsheet dropped the leading zero; the header row names the columns.
	upload(t, admin, "PUT", "/api/v1/turnout/registered", "text/csv", []byte("code,registered\r\n7198,977\r\n7192,2600\r\n"), &res, 200)
	if res.Added != 1 || res.Unchanged != 1 {
		t.Fatalf("csv: %+v", res)
	}
	bad := []struct {
		name  string
		body  any
		code  string
		field string
	}{
		{"district", []map[string]any{{"code": "207", "registered": 5}}, "invalid", "code"},
		{"unknown", []map[string]any{{"code": "99999", "registered": 5}}, "invalid", "code"},
		{"negative", []map[string]any{{"code": "07192", "registered": -5}}, "invalid", "registered"},
		{"missing figure", []map[string]any{{"code": "07192"}}, "invalid", "registered"},
		{"twice", []map[string]any{{"code": "07192", "registered": 1}, {"code": "07192", "registered": 2}}, "invalid", "code"},
		{"unknown field", []map[string]any{{"code": "07192", "registered": 1, "voters": 2}}, "unknown_field", "voters"},
		{"an object", map[string]any{"code": "07192", "registered": 1}, "invalid", ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var e apiErr
			lead.Do("PUT", "/api/v1/turnout/registered", tc.body, &e, 400)
			if e.Error != tc.code || e.Field != tc.field {
				t.Fatalf("error %+v, want %s on %q", e, tc.code, tc.field)
			}
		})
	}
	var e apiErr
	upload(t, lead, "PUT", "/api/v1/turnout/registered", "text/csv", []byte("code,registered\n07192,many\n"), &e, 400)
	if e.Field != "registered" || !strings.Contains(e.Message, "line 2") {
		t.Fatalf("csv error %+v", e)
	}

	startSession(t, lead)
	ep.Do("POST", "/api/v1/turnout/reports", turnoutBody("07192", ictTime(9, 0), 1200), nil, 201)
	lead.Do("PUT", "/api/v1/turnout/registered", []map[string]any{{"code": "07192", "registered": 2650}}, &e, 409)
	if e.Error != "reason_required" || e.Field != "reason" {
		t.Fatalf("change after a report: %+v", e)
	}
	lead.Do("PUT", "/api/v1/turnout/registered", []map[string]any{{"code": "07192", "registered": 1000, "reason": "x"}}, &e, 422)
	if e.Error != "over_registered" || e.Field != "registered" {
		t.Fatalf("below the reported figure: %+v", e)
	}
	lead.Do("PUT", "/api/v1/turnout/registered", []map[string]any{{"code": "07192", "registered": 2650, "reason": "Bổ sung cử tri"}}, &res, 200)
	var reg struct {
		Total    int64                   `json:"total"`
		Communes []store.RegisteredEntry `json:"communes"`
	}
	obs.Do("GET", "/api/v1/turnout/registered", nil, &reg, 200)
	if reg.Total != 2650+925+977 || len(reg.Communes) != 177 {
		t.Fatalf("registered: %d, %d communes", reg.Total, len(reg.Communes))
	}
	for _, c := range reg.Communes {
		if c.Code == "07192" && (c.Reason != "Bổ sung cử tri" || *c.Registered != 2650 || c.UpdatedBy != "user:lead") {
			t.Fatalf("kept %+v", c)
		}
	}
	ep.Do("GET", "/api/v1/turnout/registered", nil, nil, 403)
}

func TestTurnoutRollUpAPI(t *testing.T) {
	a := apptest.Start(t, func(c *config.Config) { c.Turnout.StaleAfter = 45 * time.Minute })
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	obs := a.User("obs", auth.RoleObserver)
	ep := a.Endpoint("07192")
	loadRegistered(t, lead)

	var pic turnoutPic
	obs.Do("GET", "/api/v1/turnout", nil, &pic, 200)
	if pic.SessionID != nil || len(pic.Units) != 1 || pic.Units[0].Registered != 959021 || pic.Units[0].Stale {
		t.Fatalf("before any session: %+v", pic)
	}
	sess := startSession(t, lead)
	post := func(c *apptest.Client, code, at string, voted int64, complete bool) {
		t.Helper()
		b := turnoutBody(code, at, voted)
		b["complete"] = complete
		if c != ep {
			b["via"] = "phone"
		}
		c.Do("POST", "/api/v1/turnout/reports", b, nil, 201)
	}
	post(ep, "07192", ictTime(9, 0), 1000, false)
	post(duty, "07195", ictTime(9, 30), 500, false)
	post(ep, "07192", ictTime(11, 0), 2600, true)
	post(duty, "07198", ictTime(11, 15), 977, true)
	post(duty, "07195", ictTime(11, 30), 925, true)
	post(duty, "06649", ictTime(10, 0), 3000, false)

	q := func(c *apptest.Client, query string, want int) turnoutPic {
		t.Helper()
		var p turnoutPic
		c.Do("GET", "/api/v1/turnout?"+query, nil, &p, want)
		return p
	}
	at := "at=" + url.QueryEscape(ictTime(12, 0))
	pic = q(obs, at, 200)
	prov := pic.Units[0]
	if *pic.SessionID != sess.ID || prov.Code != "22" || prov.Registered != 959021 || prov.Voted != 7502 || prov.UnitsTotal != 177 ||
		prov.UnitsReported != 4 || prov.UnitsComplete != 3 || prov.Complete || !prov.BelowHalf || !prov.Stale {
		t.Fatalf("province %+v", prov)
	}
	pic = q(obs, "parent=22&"+at, 200)
	var sum, reg int64
	for _, d := range pic.Units {
		sum, reg = sum+d.Voted, reg+d.Registered
		if d.Code == "207" && (!d.Complete || !d.CompletedAt.Equal(time.Date(2021, 5, 23, 4, 30, 0, 0, time.UTC)) ||
			d.Voted != 4502 || d.Percent != 100 || d.BelowHalf || d.Stale || d.UnitsComplete != 3) {
			t.Fatalf("Cô Tô %+v", d)
		}
	}
	if len(pic.Units) != 13 || sum != prov.Voted || reg != 959021 {
		t.Fatalf("districts: %d units, voted %d, registered %d", len(pic.Units), sum, reg)
	}
	pic = q(duty, "parent=207&session="+sess.ID+"&"+at, 200)
	if len(pic.Units) != 3 || pic.Units[0].Code != "07192" || !pic.Units[0].CompletedAt.Equal(time.Date(2021, 5, 23, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("communes of 207: %+v", pic.Units)
	}
	// In the past: at 10:20 only the morning figures; 07195 reported at 09:30, so
	// 50 minutes later it is stale (stale_after is 45m here), 07192 (09:00) too, and
	// 07198 (never reported) as well.
	pic = q(obs, "parent=207&at="+url.QueryEscape(ictTime(10, 20)), 200)
	if u := pic.Units; u[0].Voted != 1000 || u[0].Complete || !u[0].Stale || u[1].Voted != 500 || !u[1].Stale || u[2].UnitsReported != 0 || !u[2].Stale {
		t.Fatalf("at 10:20: %+v", u)
	}
	pic = q(obs, "parent=207&at="+url.QueryEscape(ictTime(10, 0)), 200)
	if u := pic.Units; u[1].Stale || !u[0].Stale || !u[0].BelowHalf {
		t.Fatalf("at 10:00: %+v", u)
	}

	// An endpoint reads its own figure and nothing else.
	pic = q(ep, at, 200)
	if len(pic.Units) != 1 || pic.Units[0].Code != "07192" || pic.Units[0].Voted != 2600 {
		t.Fatalf("endpoint's own: %+v", pic.Units)
	}
	q(ep, "code=07192", 200)
	q(ep, "code=07195", 403)
	q(ep, "parent=207", 403)
	a.Anon().Do("GET", "/api/v1/turnout", nil, nil, 401)

	for _, tc := range []struct{ query, code, field string }{
		{"at=9am", "invalid", "at"},
		{"session=x", "invalid", "session"},
		{"parent=07192", "invalid", "parent"},
		{"parent=207&code=07192", "invalid", "code"},
	} {
		var e apiErr
		obs.Do("GET", "/api/v1/turnout?"+tc.query, nil, &e, 400)
		if e.Error != tc.code || e.Field != tc.field {
			t.Fatalf("%s: %+v", tc.query, e)
		}
	}
	q(obs, "parent=99999", 404)
	q(obs, "session="+uuid.NewString(), 404)

	// The curve, for a commune, a district and the province.
	var ser store.TurnoutSeries
	obs.Do("GET", "/api/v1/turnout/series?code=207&step=1h", nil, &ser, 200)
	if ser.Registered != 4502 || len(ser.Points) != 14 || ser.Points[3].Voted != 1500 || ser.Points[5].Voted != 4502 || ser.Points[5].Percent != 100 {
		t.Fatalf("series 207: %+v", ser)
	}
	obs.Do("GET", "/api/v1/turnout/series?code=07195&session="+sess.ID, nil, &ser, 200)
	if len(ser.Points) != 27 || ser.Points[0].Voted != 0 || ser.Points[6].Voted != 500 || ser.Points[26].Voted != 925 {
		t.Fatalf("series 07195: %d points %+v", len(ser.Points), ser.Points)
	}
	obs.Do("GET", "/api/v1/turnout/series?code=22&step=2h", nil, &ser, 200)
	if ser.Points[len(ser.Points)-1].Voted != 7502 {
		t.Fatalf("series 22: %+v", ser.Points)
	}
	ep.Do("GET", "/api/v1/turnout/series?step=1h", nil, &ser, 200)
	if ser.Code != "07192" {
		t.Fatalf("endpoint's series: %+v", ser)
	}
	ep.Do("GET", "/api/v1/turnout/series?code=207", nil, nil, 403)
	for _, query := range []string{"code=207&step=often", "code=207&step=1s", ""} {
		var e apiErr
		obs.Do("GET", "/api/v1/turnout/series?"+query, nil, &e, 400)
		if e.Field != "step" && e.Field != "code" {
			t.Fatalf("%s: %+v", query, e)
		}
	}
}

// TestTurnoutDemoSeed: demo mode's start loads the embedded figures once, and never
// over figures that are set.
func TestTurnoutDemoSeed(t *testing.T) {
	a := apptest.Start(t, nil)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	for i := 0; i < 2; i++ {
		if err := app.SeedTurnout(ctx, a.Store, a.Config.Roster, log); err != nil {
			t.Fatal(err)
		}
	}
	var reg struct {
		Total int64 `json:"total"`
	}
	a.User("obs", auth.RoleObserver).Do("GET", "/api/v1/turnout/registered", nil, &reg, 200)
	if reg.Total != 959021 {
		t.Fatalf("total %d", reg.Total)
	}
	evs, _ := a.Store.EventsAfter(ctx, 0, 1000)
	n := 0
	for _, e := range evs {
		if e.Action == "turnout.registered_loaded" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d loads audited, want 1", n)
	}
}
