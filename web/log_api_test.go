package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/store"
)

// TestMain is in main_test.go.

type apiErr struct {
	Error, Message, Field string
}

// startSession creates and starts a session through the API as a leader.
func startSession(t *testing.T, lead *apptest.Client) store.Session {
	t.Helper()
	start := time.Date(2021, 5, 23, 6, 30, 0, 0, time.FixedZone("ICT", 7*3600))
	var s store.Session
	lead.Do("POST", "/api/v1/sessions", map[string]any{"id": uuid.NewString(), "title": "Bầu cử ĐBQH và HĐND 23/5/2021",
		"planned_start": start, "planned_end": start.Add(12*time.Hour + 30*time.Minute)}, &s, 201)
	lead.Do("POST", "/api/v1/sessions/"+s.ID+"/start", nil, &s, 200)
	return s
}

func incidentBody(code, title string) map[string]any {
	return map[string]any{"id": uuid.NewString(), "endpoint_code": code, "category": "health_covid",
		"severity": "high", "title": title, "body": "Cử tri có triệu chứng sốt tại điểm bầu cử"}
}

func TestIncidentAPI(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)

	var e apiErr
	duty.Do("POST", "/api/v1/incidents", incidentBody("07192", "Sốt"), &e, 409)
	if e.Error != "no_session" {
		t.Fatalf("without a session: %+v", e)
	}
	sess := startSession(t, lead)

	body := incidentBody("07192", "Cử tri sốt tại điểm bầu cử số 2")
	var inc, again store.Incident
	duty.Do("POST", "/api/v1/incidents", body, &inc, 201)
	duty.Do("POST", "/api/v1/incidents", body, &again, 200)
	if inc.ID != body["id"] || again.ID != inc.ID || inc.SessionID != sess.ID || inc.ReportedBy != "user:duty" || inc.Version != 1 {
		t.Fatalf("created %+v, retried %+v", inc, again)
	}
	body["severity"] = "critical"
	duty.Do("POST", "/api/v1/incidents", body, &e, 409)
	if e.Error != "conflict" {
		t.Fatalf("same id, other body: %+v", e)
	}

	bad := []struct {
		name  string
		body  any
		want  int
		code  string
		field string
	}{
		{"category", map[string]any{"id": uuid.NewString(), "endpoint_code": "07192", "category": "weather", "severity": "low", "title": "x"}, 400, "invalid", "category"},
		{"severity", map[string]any{"id": uuid.NewString(), "endpoint_code": "07192", "category": "other", "severity": "x", "title": "x"}, 400, "invalid", "severity"},
		{"title", map[string]any{"id": uuid.NewString(), "endpoint_code": "07192", "category": "other", "severity": "low"}, 400, "invalid", "title"},
		{"id", map[string]any{"id": "1", "endpoint_code": "07192", "category": "other", "severity": "low", "title": "x"}, 400, "invalid", "id"},
		{"endpoint", map[string]any{"id": uuid.NewString(), "endpoint_code": "99999", "category": "other", "severity": "low", "title": "x"}, 400, "invalid", "endpoint_code"},
		{"occurred_at", `{"id":"` + uuid.NewString() + `","endpoint_code":"07192","category":"other","severity":"low","title":"x","occurred_at":"9 giờ"}`, 400, "invalid", ""},
		{"unknown field", map[string]any{"id": uuid.NewString(), "endpoint_code": "07192", "category": "other", "severity": "low", "title": "x", "colour": "red"}, 400, "unknown_field", "colour"},
		{"malformed", `{"id":`, 400, "invalid_json", ""},
		{"too large", map[string]any{"id": uuid.NewString(), "endpoint_code": "07192", "category": "other", "severity": "low", "title": "x", "body": strings.Repeat("đ", 600<<10)}, 413, "too_large", ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var e apiErr
			duty.Do("POST", "/api/v1/incidents", tc.body, &e, tc.want)
			if e.Error != tc.code || e.Field != tc.field || e.Message == "" {
				t.Fatalf("error %+v, want %s on %q", e, tc.code, tc.field)
			}
		})
	}

	path := "/api/v1/incidents/" + inc.ID
	var up store.Incident
	duty.Do("PATCH", path, map[string]any{"status": "acknowledged", "assignee": "Trạm y tế", "version": 1}, &up, 200)
	if up.Version != 2 || up.Status != "acknowledged" || !up.CreatedAt.Equal(inc.CreatedAt) {
		t.Fatalf("patched %+v", up)
	}
	patches := []struct {
		name  string
		body  any
		want  int
		code  string
		field string
	}{
		{"stale", map[string]any{"status": "in_progress", "version": 1}, 409, "stale_version", "version"},
		{"skip", map[string]any{"status": "closed", "version": 2}, 422, "invalid_transition", "status"},
		{"back", map[string]any{"status": "open", "version": 2}, 422, "invalid_transition", "status"},
		{"no version", map[string]any{"status": "in_progress"}, 400, "invalid", "version"},
		{"bad status", map[string]any{"status": "xong", "version": 2}, 400, "invalid", "status"},
		{"created_at", map[string]any{"created_at": time.Now(), "version": 2}, 400, "unknown_field", "created_at"},
	}
	for _, tc := range patches {
		t.Run("patch "+tc.name, func(t *testing.T) {
			var e apiErr
			duty.Do("PATCH", path, tc.body, &e, tc.want)
			if e.Error != tc.code || e.Field != tc.field {
				t.Fatalf("error %+v, want %s on %q", e, tc.code, tc.field)
			}
		})
	}
	duty.Do("PATCH", "/api/v1/incidents/"+uuid.NewString(), map[string]any{"version": 1}, nil, 404)

	comment := map[string]any{"id": uuid.NewString(), "body": "Đã chuyển cử tri sang hòm phiếu phụ"}
	var u store.IncidentUpdate
	duty.Do("POST", path+"/updates", comment, &u, 201)
	duty.Do("POST", path+"/updates", comment, &u, 200)
	duty.Do("POST", path+"/updates", map[string]any{"body": ""}, &e, 400)

	var got store.Incident
	duty.Do("GET", path, nil, &got, 200)
	if got.Version != 2 || len(got.Timeline) != 2 || got.Timeline[0].Kind != "change" || got.Timeline[1].Kind != "comment" {
		t.Fatalf("incident with timeline %+v", got)
	}
	duty.Do("GET", "/api/v1/incidents/"+uuid.NewString(), nil, nil, 404)
	duty.Do("GET", "/api/v1/incidents/not-a-uuid", nil, nil, 404)

	duty.Do("POST", "/api/v1/incidents", incidentBody("195", "Đường vào điểm bầu cử bị sạt lở"), nil, 201)
	var page store.IncidentPage
	for q, want := range map[string]int{"bau cu": 2, "duong sat lo": 1, "khong co": 0} {
		duty.Do("GET", "/api/v1/incidents?q="+strings.ReplaceAll(q, " ", "+"), nil, &page, 200)
		if len(page.Incidents) != want {
			t.Fatalf("q=%q: %d incidents, want %d", q, len(page.Incidents), want)
		}
	}
	duty.Do("GET", "/api/v1/incidents?district=207", nil, &page, 200)
	if len(page.Incidents) != 1 || page.Incidents[0].EndpointCode != "07192" {
		t.Fatalf("district 207: %+v", page.Incidents)
	}
	duty.Do("GET", "/api/v1/incidents?limit=1", nil, &page, 200)
	if len(page.Incidents) != 1 || page.NextCursor == "" {
		t.Fatalf("limit 1: %+v", page)
	}
	next := page.NextCursor
	page = store.IncidentPage{}
	duty.Do("GET", "/api/v1/incidents?limit=1&cursor="+next, nil, &page, 200)
	if len(page.Incidents) != 1 || page.Incidents[0].ID != inc.ID || page.NextCursor != "" {
		t.Fatalf("second page: %+v", page)
	}
	for _, q := range []string{"limit=0", "limit=x", "status=done", "cursor=zzz", "session=1"} {
		duty.Do("GET", "/api/v1/incidents?"+q, nil, &e, 400)
		if e.Field == "" {
			t.Fatalf("%s: no field in %+v", q, e)
		}
	}
}

func TestLogRoleChecks(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	obs := a.User("obs", auth.RoleObserver)
	coTo := a.Endpoint("07192")
	dongTien := a.Endpoint("07195")
	camPha := a.Endpoint("195")
	anon := a.Anon()
	bogus := a.Anon()
	bogus.Token = "not-a-token"
	sess := startSession(t, lead)

	var own, other store.Incident
	coTo.Do("POST", "/api/v1/incidents", map[string]any{"id": uuid.NewString(), "category": "logistics", "severity": "low", "title": "Thiếu phiếu"}, &own, 201)
	if own.EndpointCode != "07192" || own.ReportedBy != "endpoint:07192" {
		t.Fatalf("endpoint's own report %+v", own)
	}
	duty.Do("POST", "/api/v1/incidents", incidentBody("07195", "Sốt"), &other, 201)
	var dir store.Directive
	lead.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "Báo cáo số cử tri", "targets": map[string]any{"district": "207"}}, &dir, 201)

	cases := []struct {
		name   string
		c      *apptest.Client
		method string
		path   string
		body   any
		want   int
	}{
		{"no credential lists incidents", anon, "GET", "/api/v1/incidents", nil, 401},
		{"no credential reports", anon, "POST", "/api/v1/incidents", incidentBody("07192", "x"), 401},
		{"no credential reads a directive", anon, "GET", "/api/v1/directives/" + dir.ID, nil, 401},
		{"no credential reads the report", anon, "GET", "/api/v1/sessions/" + sess.ID + "/report.html", nil, 401},
		{"unknown credential", bogus, "GET", "/api/v1/incidents", nil, 401},
		{"observer reports", obs, "POST", "/api/v1/incidents", incidentBody("07192", "x"), 403},
		{"observer patches", obs, "PATCH", "/api/v1/incidents/" + own.ID, map[string]any{"status": "acknowledged", "version": 1}, 403},
		{"observer comments", obs, "POST", "/api/v1/incidents/" + own.ID + "/updates", map[string]any{"body": "x"}, 403},
		{"observer issues", obs, "POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "x", "targets": map[string]any{"all": true}}, 403},
		{"observer acks", obs, "POST", "/api/v1/directives/" + dir.ID + "/ack", map[string]any{"endpoint_code": "07192", "via": "phone"}, 403},
		{"observer replies", obs, "POST", "/api/v1/directives/" + dir.ID + "/reply", map[string]any{"endpoint_code": "07192", "text": "x"}, 403},
		{"observer reads incidents", obs, "GET", "/api/v1/incidents", nil, 200},
		{"observer reads a directive", obs, "GET", "/api/v1/directives/" + dir.ID, nil, 200},
		{"observer reads the report", obs, "GET", "/api/v1/sessions/" + sess.ID + "/report.csv", nil, 200},
		{"endpoint reports as another", coTo, "POST", "/api/v1/incidents", incidentBody("07195", "x"), 403},
		{"endpoint lists another's incidents", coTo, "GET", "/api/v1/incidents?endpoint=07195", nil, 403},
		{"endpoint reads another's incident", coTo, "GET", "/api/v1/incidents/" + other.ID, nil, 404},
		{"endpoint comments on another's incident", coTo, "POST", "/api/v1/incidents/" + other.ID + "/updates", map[string]any{"body": "x"}, 404},
		{"endpoint comments on its own incident", coTo, "POST", "/api/v1/incidents/" + own.ID + "/updates", map[string]any{"body": "Đã bổ sung phiếu"}, 201},
		{"endpoint patches", coTo, "PATCH", "/api/v1/incidents/" + own.ID, map[string]any{"status": "acknowledged", "version": 1}, 403},
		{"endpoint issues", coTo, "POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "x", "targets": map[string]any{"all": true}}, 403},
		{"endpoint lists another's directives", coTo, "GET", "/api/v1/directives?endpoint=07195", nil, 403},
		{"endpoint reads a directive not for it", camPha, "GET", "/api/v1/directives/" + dir.ID, nil, 404},
		{"endpoint acks a directive not for it", camPha, "POST", "/api/v1/directives/" + dir.ID + "/ack", nil, 404},
		{"endpoint acks for another", coTo, "POST", "/api/v1/directives/" + dir.ID + "/ack", map[string]any{"endpoint_code": "07195"}, 403},
		{"endpoint replies for another", coTo, "POST", "/api/v1/directives/" + dir.ID + "/reply", map[string]any{"endpoint_code": "07195", "text": "x"}, 403},
		{"endpoint reads the report", coTo, "GET", "/api/v1/sessions/" + sess.ID + "/report.html", nil, 403},
		{"endpoint lists sessions", coTo, "GET", "/api/v1/sessions", nil, 403},
		{"duty acks on behalf", duty, "POST", "/api/v1/directives/" + dir.ID + "/ack", map[string]any{"endpoint_code": "07195", "via": "phone"}, 200},
		{"duty replies on behalf", duty, "POST", "/api/v1/directives/" + dir.ID + "/reply", map[string]any{"endpoint_code": "07195", "text": "Đã xong", "done": true}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Do(tc.method, tc.path, tc.body, nil, tc.want)
		})
	}

	var page store.IncidentPage
	coTo.Do("GET", "/api/v1/incidents", nil, &page, 200)
	if len(page.Incidents) != 1 || page.Incidents[0].ID != own.ID {
		t.Fatalf("endpoint's list: %+v", page.Incidents)
	}
	dongTien.Do("GET", "/api/v1/incidents", nil, &page, 200)
	if len(page.Incidents) != 1 || page.Incidents[0].ID != other.ID {
		t.Fatalf("endpoint's list (the duty desk reported for it): %+v", page.Incidents)
	}
	obs.Do("GET", "/api/v1/incidents", nil, &page, 200)
	if len(page.Incidents) != 2 {
		t.Fatalf("staff list: %d", len(page.Incidents))
	}
}

func TestDirectiveAPI(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	coTo := a.Endpoint("07192")
	thanhLan := a.Endpoint("07198")

	in := map[string]any{"id": uuid.NewString(), "text": "Các xã báo cáo tỷ lệ cử tri đi bầu trước 11:00",
		"targets": map[string]any{"district": "207"}, "due_at": "2021-05-23T11:00:00+07:00"}
	var e apiErr
	duty.Do("POST", "/api/v1/directives", in, &e, 409)
	if e.Error != "no_session" {
		t.Fatalf("without a session: %+v", e)
	}
	startSession(t, lead)

	var d, again store.Directive
	duty.Do("POST", "/api/v1/directives", in, &d, 201)
	duty.Do("POST", "/api/v1/directives", in, &again, 200)
	if len(d.Receipts) != 4 || again.ID != d.ID || d.IssuedBy != "user:duty" || len(d.TargetCodes) != 4 {
		t.Fatalf("issued %+v", d)
	}
	in["text"] = "khác"
	duty.Do("POST", "/api/v1/directives", in, &e, 409)

	for name, targets := range map[string]any{
		"two forms":       map[string]any{"all": true, "district": "207"},
		"unknown":         map[string]any{"endpoints": []string{"07192", "00000"}},
		"commune":         map[string]any{"district": "07192"},
		"nothing":         map[string]any{},
		"unknown in list": map[string]any{"endpoints": []string{"12345"}},
	} {
		duty.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "x", "targets": targets}, &e, 400)
		if e.Field != "targets" {
			t.Fatalf("%s: %+v", name, e)
		}
	}
	duty.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "x", "targets": map[string]any{"province": "22"}}, &e, 400)
	if e.Error != "unknown_field" {
		t.Fatalf("unknown target form: %+v", e)
	}
	var all store.Directive
	lead.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "Toàn tỉnh", "targets": map[string]any{"all": true}}, &all, 201)
	if len(all.Receipts) != 190 {
		t.Fatalf("all: %d receipts", len(all.Receipts))
	}

	// The endpoint's list: its own receipt, delivered by reading.
	var list struct{ Directives []store.Directive }
	coTo.Do("GET", "/api/v1/directives", nil, &list, 200)
	if len(list.Directives) != 2 || list.Directives[1].ID != d.ID || list.Directives[1].Receipt == nil ||
		list.Directives[1].Receipt.DeliveredAt == nil || list.Directives[1].Summary != nil {
		t.Fatalf("endpoint list %+v", list.Directives)
	}

	var r, r2 store.Receipt
	coTo.Do("POST", "/api/v1/directives/"+d.ID+"/ack", nil, &r, 200)
	coTo.Do("POST", "/api/v1/directives/"+d.ID+"/ack", "{}", &r2, 200)
	if r.AckedAt == nil || r.AckVia != "app" || r.AckedBy != "endpoint:07192" || !r2.AckedAt.Equal(*r.AckedAt) {
		t.Fatalf("ack %+v then %+v", r, r2)
	}
	coTo.Do("POST", "/api/v1/directives/"+d.ID+"/ack", map[string]any{"via": "phone"}, &e, 400)

	duty.Do("POST", "/api/v1/directives/"+d.ID+"/ack", map[string]any{"endpoint_code": "07195", "via": "phone"}, &r, 200)
	if r.AckVia != "phone" || r.AckedBy != "user:duty" || r.EndpointCode != "07195" {
		t.Fatalf("ack by phone %+v", r)
	}
	duty.Do("POST", "/api/v1/directives/"+d.ID+"/ack", map[string]any{"endpoint_code": "07198"}, &e, 400)
	if e.Field != "via" {
		t.Fatalf("ack without via: %+v", e)
	}
	duty.Do("POST", "/api/v1/directives/"+d.ID+"/ack", map[string]any{"via": "radio"}, &e, 400)
	if e.Field != "endpoint_code" {
		t.Fatalf("ack without endpoint: %+v", e)
	}
	duty.Do("POST", "/api/v1/directives/"+d.ID+"/ack", map[string]any{"endpoint_code": "195", "via": "radio"}, nil, 404)
	duty.Do("POST", "/api/v1/directives/"+uuid.NewString()+"/ack", map[string]any{"endpoint_code": "07192", "via": "radio"}, nil, 404)

	thanhLan.Do("POST", "/api/v1/directives/"+d.ID+"/reply", map[string]any{"text": "Tỷ lệ 97%", "done": true}, &r, 200)
	if r.Reply != "Tỷ lệ 97%" || r.DoneAt == nil || r.AckedAt == nil {
		t.Fatalf("reply %+v", r)
	}
	thanhLan.Do("POST", "/api/v1/directives/"+d.ID+"/reply", map[string]any{"done": false}, &e, 400)

	var got store.Directive
	duty.Do("GET", "/api/v1/directives/"+d.ID, nil, &got, 200)
	pending := []string{}
	for _, x := range got.Receipts {
		if x.AckedAt == nil {
			pending = append(pending, x.EndpointCode)
		}
	}
	if got.Summary.Acked != 3 || got.Summary.Done != 1 || fmt.Sprint(pending) != "[207]" {
		t.Fatalf("desk view: %+v, pending %v", got.Summary, pending)
	}
	var mine store.Directive
	coTo.Do("GET", "/api/v1/directives/"+d.ID, nil, &mine, 200)
	if mine.Receipt == nil || mine.Receipt.EndpointCode != "07192" || len(mine.Receipts) != 0 || len(mine.TargetCodes) != 0 {
		t.Fatalf("endpoint view: %+v", mine)
	}
	var staffList struct{ Directives []store.Directive }
	duty.Do("GET", "/api/v1/directives?endpoint=07195", nil, &staffList, 200)
	if len(staffList.Directives) != 2 || staffList.Directives[1].Summary == nil || staffList.Directives[1].Receipt.AckVia != "phone" {
		t.Fatalf("staff list for 07195: %+v", staffList.Directives)
	}
	duty.Do("GET", "/api/v1/directives", nil, &staffList, 200)
	if len(staffList.Directives) != 2 || staffList.Directives[0].Summary.Total != 190 {
		t.Fatalf("staff list: %+v", staffList.Directives)
	}
}

func TestReportContents(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	obs := a.User("obs", auth.RoleObserver)
	sess := startSession(t, lead)

	var inc store.Incident
	duty.Do("POST", "/api/v1/incidents", incidentBody("07192", "Cử tri sốt tại điểm bầu cử số 2"), &inc, 201)
	duty.Do("POST", "/api/v1/incidents/"+inc.ID+"/updates", map[string]any{"body": "Đã bố trí buồng bỏ phiếu riêng"}, nil, 201)
	duty.Do("POST", "/api/v1/incidents", incidentBody("07195", `<script>alert(1)</script>`), nil, 201)
	duty.Do("POST", "/api/v1/incidents", incidentBody("07198", `=HYPERLINK("http://x")`), nil, 201)
	var d store.Directive
	lead.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "Khử khuẩn điểm bầu cử số 2 ngay",
		"targets": map[string]any{"endpoints": []string{"07192", "07195"}}, "incident_id": inc.ID}, &d, 201)
	duty.Do("POST", "/api/v1/directives/"+d.ID+"/ack", map[string]any{"endpoint_code": "07192", "via": "phone"}, nil, 200)

	_, raw := obs.Do("GET", "/api/v1/sessions/"+sess.ID+"/report.csv", nil, nil, 200)
	csv := string(raw)
	if !strings.HasPrefix(csv, "\ufeffrecord_type,") {
		t.Fatalf("CSV does not start with a BOM and the header: %.80q", csv)
	}
	for _, want := range []string{"Bầu cử ĐBQH và HĐND 23/5/2021", "Cử tri sốt tại điểm bầu cử số 2", "Đã bố trí buồng bỏ phiếu riêng",
		"Khử khuẩn điểm bầu cử số 2 ngay", ",phone,", "user:duty", "receipt,", "incident_update,", `'=HYPERLINK`} {
		if !strings.Contains(csv, want) {
			t.Errorf("CSV lacks %q", want)
		}
	}
	if strings.Count(csv, "\nreceipt,") != 2 {
		t.Errorf("CSV has %d receipt rows, want 2", strings.Count(csv, "\nreceipt,"))
	}

	_, raw = obs.Do("GET", "/api/v1/sessions/"+sess.ID+"/report.html", nil, nil, 200)
	html := string(raw)
	for _, want := range []string{`<html lang="vi">`, "Báo cáo phiên điều hành", "Sự cố (3)", "Chỉ đạo (1)", "Đã nhận 1/2", "Chưa nhận (1)",
		"Xã Đồng Tiến (07195)", "Cử tri sốt tại điểm bầu cử số 2", "Khử khuẩn điểm bầu cử số 2 ngay", "Điện thoại", "@media print",
		"&lt;script&gt;alert(1)&lt;/script&gt;", "Đã bố trí buồng bỏ phiếu riêng"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if strings.Contains(html, "<script>alert") {
		t.Error("HTML report does not escape an incident title")
	}
	obs.Do("GET", "/api/v1/sessions/"+uuid.NewString()+"/report.html", nil, nil, 404)
	obs.Do("GET", "/api/v1/sessions/"+uuid.NewString()+"/report.csv", nil, nil, 404)
}
