package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// startedSession creates and starts the election-day session.
func startedSession(t *testing.T, st *store.Store) store.Session {
	t.Helper()
	ctx := context.Background()
	start := time.Date(2021, 5, 23, 6, 30, 0, 0, time.FixedZone("ICT", 7*3600))
	s, _, err := st.CreateSession(ctx, "user:lead", store.NewSession{ID: uuid.NewString(), Title: "Bầu cử 23/5/2021",
		PlannedStart: start, PlannedEnd: start.Add(12*time.Hour + 30*time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if s, err = st.StartSession(ctx, "user:lead", s.ID); err != nil {
		t.Fatal(err)
	}
	return s
}

func newIncident(code, title string) store.NewIncident {
	return store.NewIncident{ID: uuid.NewString(), EndpointCode: code, Category: "security_order",
		Severity: "high", Title: title, Body: "Báo cáo từ " + code}
}

func mustCreate(t *testing.T, st *store.Store, in store.NewIncident) store.Incident {
	t.Helper()
	out, created, err := st.CreateIncident(context.Background(), "user:duty", in)
	if err != nil || !created {
		t.Fatalf("create %q: created=%v err=%v", in.Title, created, err)
	}
	return out
}

func TestCreateIncidentIdempotent(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	sess := startedSession(t, st)
	occurred := time.Date(2021, 5, 23, 9, 15, 0, 0, time.FixedZone("ICT", 7*3600))
	in := newIncident("07192", "Cử tri sốt tại điểm bầu cử số 2")
	in.Category, in.Severity, in.OccurredAt = "health_covid", "critical", &occurred

	first, created, err := st.CreateIncident(ctx, "endpoint:07192", in)
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	if first.SessionID != sess.ID || first.Status != "open" || first.Version != 1 || first.ReportedBy != "endpoint:07192" ||
		!first.OccurredAt.Equal(occurred) || first.EndpointName != "Thị trấn Cô Tô" {
		t.Fatalf("created %+v", first)
	}
	before, _ := st.LastEventID(ctx)
	again, created, err := st.CreateIncident(ctx, "endpoint:07192", in)
	if err != nil || created {
		t.Fatalf("retry: created=%v err=%v", created, err)
	}
	if again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) || again.Version != 1 {
		t.Fatalf("retry returned %+v, want %+v", again, first)
	}
	if after, _ := st.LastEventID(ctx); after != before {
		t.Fatalf("retry wrote %d audit events", after-before)
	}
	changed := in
	changed.Title = "Khác"
	if _, _, err := st.CreateIncident(ctx, "endpoint:07192", changed); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id, other body: %v", err)
	}
	page, err := st.ListIncidents(ctx, store.IncidentFilter{})
	if err != nil || len(page.Incidents) != 1 {
		t.Fatalf("list after retries: %d incidents, %v", len(page.Incidents), err)
	}
	evs, _ := st.EventsAfter(ctx, 0, 100)
	n := 0
	for _, e := range evs {
		if e.Action == "incident.created" {
			n++
			if e.Actor != "endpoint:07192" || e.EntityID != first.ID || e.SessionID == nil || *e.SessionID != sess.ID {
				t.Fatalf("audit event %+v", e)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d incident.created events, want 1", n)
	}
}

func TestCreateIncidentNeedsSession(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	if _, _, err := st.CreateIncident(ctx, "user:duty", newIncident("07192", "Mất điện")); !errors.Is(err, store.ErrNoSession) {
		t.Fatalf("no session: %v", err)
	}
	sess := startedSession(t, st)
	in := newIncident("07192", "Mất điện")
	in.SessionID = sess.ID
	mustCreate(t, st, in)
	if _, err := st.EndSession(ctx, "user:lead", sess.ID); err != nil {
		t.Fatal(err)
	}
	// A retry after the session ended still finds the incident.
	if _, created, err := st.CreateIncident(ctx, "user:duty", in); err != nil || created {
		t.Fatalf("retry after end: created=%v err=%v", created, err)
	}
}

func TestCreateIncidentValidation(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	future := time.Now().Add(48 * time.Hour)
	long := make([]rune, 201)
	for i := range long {
		long[i] = 'đ'
	}
	cases := []struct {
		name  string
		edit  func(*store.NewIncident)
		field string
	}{
		{"id not a uuid", func(in *store.NewIncident) { in.ID = "abc" }, "id"},
		{"no endpoint", func(in *store.NewIncident) { in.EndpointCode = "" }, "endpoint_code"},
		{"unknown endpoint", func(in *store.NewIncident) { in.EndpointCode = "99999" }, "endpoint_code"},
		{"bad category", func(in *store.NewIncident) { in.Category = "weather" }, "category"},
		{"bad severity", func(in *store.NewIncident) { in.Severity = "urgent" }, "severity"},
		{"empty title", func(in *store.NewIncident) { in.Title = "  " }, "title"},
		{"long title", func(in *store.NewIncident) { in.Title = string(long) }, "title"},
		{"future", func(in *store.NewIncident) { in.OccurredAt = &future }, "occurred_at"},
		{"bad session", func(in *store.NewIncident) { in.SessionID = "x" }, "session_id"},
		{"unknown session", func(in *store.NewIncident) { in.SessionID = uuid.NewString() }, "session_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := newIncident("07192", "Mất điện")
			tc.edit(&in)
			_, _, err := st.CreateIncident(ctx, "user:duty", in)
			var fe *store.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err %v, want a field error on %s", err, tc.field)
			}
		})
	}
}

func TestUpdateIncidentStaleVersion(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	inc := mustCreate(t, st, newIncident("07192", "Mất điện"))
	v := 1
	ack, assignee := "acknowledged", "Nguyễn Văn A"
	first, err := st.UpdateIncident(ctx, "user:duty", inc.ID, store.IncidentPatch{Status: &ack, Assignee: &assignee, Version: &v})
	if err != nil || first.Version != 2 || first.Status != ack || first.Assignee != assignee || !first.CreatedAt.Equal(inc.CreatedAt) {
		t.Fatalf("first update: %+v %v", first, err)
	}
	before, _ := st.LastEventID(ctx)
	prog, title := "in_progress", "Đổi tiêu đề"
	if _, err := st.UpdateIncident(ctx, "user:other", inc.ID, store.IncidentPatch{Status: &prog, Title: &title, Version: &v}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale version: %v", err)
	}
	got, err := st.GetIncident(ctx, inc.ID)
	if err != nil || got.Version != 2 || got.Status != ack || got.Title != inc.Title || len(got.Timeline) != 1 {
		t.Fatalf("after stale update: %+v %v", got, err)
	}
	if after, _ := st.LastEventID(ctx); after != before {
		t.Fatal("a stale update was audited")
	}
	if _, err := st.UpdateIncident(ctx, "user:duty", inc.ID, store.IncidentPatch{Status: &prog}); !fieldIs(err, "version") {
		t.Fatalf("missing version: %v", err)
	}
	if _, err := st.UpdateIncident(ctx, "user:duty", uuid.NewString(), store.IncidentPatch{Version: &v}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown incident: %v", err)
	}
	// The change is on the timeline and in the audit log with before and after.
	tl := got.Timeline[0]
	if tl.Kind != "change" || tl.Author != "user:duty" || tl.Body != `status: open → acknowledged; assignee: "" → "Nguyễn Văn A"` {
		t.Fatalf("timeline entry %+v", tl)
	}
	evs, _ := st.EventsAfter(ctx, 0, 100)
	last := evs[len(evs)-1]
	var b, a store.Incident
	if last.Action != "incident.updated" || json.Unmarshal(last.Before, &b) != nil || json.Unmarshal(last.After, &a) != nil ||
		b.Status != "open" || a.Status != ack || a.Version != 2 {
		t.Fatalf("audit event %+v", last)
	}
}

func fieldIs(err error, field string) bool {
	var fe *store.FieldError
	return errors.As(err, &fe) && fe.Field == field
}

func TestIncidentTransitions(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	// The path that reaches each status, and the moves the workflow allows from it.
	path := map[string][]string{
		"open":         {},
		"acknowledged": {"acknowledged"},
		"in_progress":  {"acknowledged", "in_progress"},
		"resolved":     {"acknowledged", "in_progress", "resolved"},
		"closed":       {"acknowledged", "in_progress", "resolved", "closed"},
	}
	valid := map[[2]string]bool{
		{"open", "acknowledged"}: true, {"acknowledged", "in_progress"}: true, {"in_progress", "resolved"}: true,
		{"resolved", "closed"}: true, {"resolved", "open"}: true, {"closed", "open"}: true,
	}
	statuses := []string{"open", "acknowledged", "in_progress", "resolved", "closed"}
	for _, from := range statuses {
		for _, to := range statuses {
			t.Run(from+"→"+to, func(t *testing.T) {
				inc := mustCreate(t, st, newIncident("07192", "Chuyển trạng thái"))
				v := inc.Version
				for _, step := range path[from] {
					out, err := st.UpdateIncident(ctx, "user:duty", inc.ID, store.IncidentPatch{Status: &step, Version: &v})
					if err != nil {
						t.Fatalf("reaching %s via %s: %v", from, step, err)
					}
					v = out.Version
				}
				out, err := st.UpdateIncident(ctx, "user:duty", inc.ID, store.IncidentPatch{Status: &to, Version: &v})
				switch {
				case from == to:
					if err != nil || out.Version != v || out.Status != from {
						t.Fatalf("same status is not a move: %+v %v", out, err)
					}
				case valid[[2]string{from, to}]:
					if err != nil || out.Status != to || out.Version != v+1 {
						t.Fatalf("valid move: %+v %v", out, err)
					}
				default:
					if !errors.Is(err, store.ErrTransition) {
						t.Fatalf("invalid move allowed: %+v %v", out, err)
					}
					got, _ := st.GetIncident(ctx, inc.ID)
					if got.Status != from || got.Version != v {
						t.Fatalf("invalid move changed the incident: %+v", got)
					}
				}
			})
		}
	}
	bad := "done"
	v := 1
	inc := mustCreate(t, st, newIncident("07192", "x"))
	if _, err := st.UpdateIncident(ctx, "user:duty", inc.ID, store.IncidentPatch{Status: &bad, Version: &v}); !fieldIs(err, "status") {
		t.Fatalf("unknown status: %v", err)
	}
}

func TestIncidentComments(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	inc := mustCreate(t, st, newIncident("07192", "Mất điện"))
	in := store.NewIncidentUpdate{ID: uuid.NewString(), Body: "Đã báo điện lực"}
	u, created, err := st.AddIncidentUpdate(ctx, "endpoint:07192", "07192", inc.ID, in)
	if err != nil || !created || u.Kind != "comment" {
		t.Fatalf("comment: %+v %v %v", u, created, err)
	}
	if again, created, err := st.AddIncidentUpdate(ctx, "endpoint:07192", "07192", inc.ID, in); err != nil || created || again.ID != u.ID {
		t.Fatalf("retry: %+v %v %v", again, created, err)
	}
	in.Body = "khác"
	if _, _, err := st.AddIncidentUpdate(ctx, "endpoint:07192", "07192", inc.ID, in); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id, other body: %v", err)
	}
	if _, _, err := st.AddIncidentUpdate(ctx, "endpoint:07195", "07195", inc.ID, store.NewIncidentUpdate{Body: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another endpoint's incident: %v", err)
	}
	got, _ := st.GetIncident(ctx, inc.ID)
	if len(got.Timeline) != 1 || got.Timeline[0].Body != "Đã báo điện lực" {
		t.Fatalf("timeline %+v", got.Timeline)
	}
}

func TestIncidentSearchIgnoresDiacritics(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	titles := []string{"Điểm bầu cử số 3 mất điện", "Đường vào xã bị ngập", "Tổ bầu cử thiếu phiếu", "Mất sóng 4G", "Tỷ lệ 50% cử tri"}
	for _, ti := range titles {
		mustCreate(t, st, newIncident("07192", ti))
	}
	cases := []struct {
		q    string
		want []string
	}{
		{"bau cu", []string{"Tổ bầu cử thiếu phiếu", "Điểm bầu cử số 3 mất điện"}},
		{"BẦU CỬ", []string{"Tổ bầu cử thiếu phiếu", "Điểm bầu cử số 3 mất điện"}},
		{"duong", []string{"Đường vào xã bị ngập"}},
		{"mat dien", []string{"Điểm bầu cử số 3 mất điện"}},
		{"cu  tri   50%", []string{"Tỷ lệ 50% cử tri"}},
		{"%", []string{"Tỷ lệ 50% cử tri"}}, // literal, not a wildcard
		{"_", nil},
		{"bau ngap", nil},
	}
	for _, tc := range cases {
		t.Run(tc.q, func(t *testing.T) {
			page, err := st.ListIncidents(ctx, store.IncidentFilter{Q: tc.q})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, i := range page.Incidents {
				got = append(got, i.Title)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("q=%q found %q, want %q", tc.q, got, tc.want)
			}
		})
	}
}

func TestIncidentFilters(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	sess := startedSession(t, st)
	a := mustCreate(t, st, newIncident("207", "Huyện Cô Tô"))
	b := newIncident("07195", "Xã Đồng Tiến")
	b.Severity, b.Category = "critical", "communications"
	bi := mustCreate(t, st, b)
	mustCreate(t, st, newIncident("07192", "Thị trấn Cô Tô")) // district 207 too
	c := mustCreate(t, st, newIncident("195", "Cẩm Phả"))
	cases := []struct {
		name string
		f    store.IncidentFilter
		want int
	}{
		{"district 207", store.IncidentFilter{District: "207"}, 3},
		{"district 195", store.IncidentFilter{District: "195"}, 1},
		{"endpoint", store.IncidentFilter{Endpoint: "07195"}, 1},
		{"severity", store.IncidentFilter{Severity: "critical"}, 1},
		{"category", store.IncidentFilter{Category: "communications"}, 1},
		{"status", store.IncidentFilter{Status: "open"}, 4},
		{"status none", store.IncidentFilter{Status: "closed"}, 0},
		{"session", store.IncidentFilter{Session: sess.ID}, 4},
		{"other session", store.IncidentFilter{Session: uuid.NewString()}, 0},
		{"combined", store.IncidentFilter{District: "207", Severity: "high"}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := st.ListIncidents(ctx, tc.f)
			if err != nil || len(page.Incidents) != tc.want {
				t.Fatalf("%d incidents, want %d (%v)", len(page.Incidents), tc.want, err)
			}
		})
	}
	page, _ := st.ListIncidents(ctx, store.IncidentFilter{})
	if page.Incidents[0].ID != c.ID || page.Incidents[3].ID != a.ID || page.Incidents[2].ID != bi.ID {
		t.Fatalf("not newest first: %+v", page.Incidents)
	}
	for _, f := range []store.IncidentFilter{{Status: "x"}, {Severity: "x"}, {Category: "x"}, {Session: "x"}, {Cursor: "!!"}} {
		if _, err := st.ListIncidents(ctx, f); !errors.As(err, new(*store.FieldError)) {
			t.Fatalf("filter %+v: %v", f, err)
		}
	}
}

func TestIncidentPagination(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	const n = 120
	want := map[string]bool{}
	for i := range n {
		want[mustCreate(t, st, newIncident("07192", fmt.Sprintf("Sự cố %d", i))).ID] = true
	}
	seen := map[string]bool{}
	var prev *store.Incident
	cursor, pages := "", 0
	for {
		page, err := st.ListIncidents(ctx, store.IncidentFilter{Limit: 50, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, inc := range page.Incidents {
			if seen[inc.ID] {
				t.Fatalf("page %d repeats %s", pages, inc.ID)
			}
			seen[inc.ID] = true
			if prev != nil && (inc.CreatedAt.After(prev.CreatedAt) || inc.CreatedAt.Equal(prev.CreatedAt) && inc.ID > prev.ID) {
				t.Fatalf("out of order: %v after %v", inc.CreatedAt, prev.CreatedAt)
			}
			prev = &inc
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if pages != 3 || len(seen) != n {
		t.Fatalf("%d pages, %d incidents; want 3 pages, %d", pages, len(seen), n)
	}
	for id := range want {
		if !seen[id] {
			t.Fatalf("gap: %s never listed", id)
		}
	}
	// The default page is 50 and the largest is 200.
	if page, _ := st.ListIncidents(ctx, store.IncidentFilter{}); len(page.Incidents) != 50 || page.NextCursor == "" {
		t.Fatalf("default page: %d", len(page.Incidents))
	}
	if page, _ := st.ListIncidents(ctx, store.IncidentFilter{Limit: 1000}); len(page.Incidents) != n || page.NextCursor != "" {
		t.Fatalf("large page: %d, cursor %q", len(page.Incidents), page.NextCursor)
	}
}
