package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

func TestDirectiveTargetExpansion(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	district, err := st.ListEndpoints(ctx, store.EndpointFilter{District: "207"}) // the district and its communes
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		targets store.Targets
		want    int
		field   string // when the targets are refused
	}{
		{"all", store.Targets{All: true}, 190, ""},
		{"district 207", store.Targets{District: "207"}, len(district), ""},
		{"endpoints", store.Targets{Endpoints: []string{"07192", "195", "07192"}}, 2, ""},
		{"unknown endpoint", store.Targets{Endpoints: []string{"07192", "99999"}}, 0, "targets"},
		{"command room", store.Targets{Endpoints: []string{"22"}}, 0, "targets"},
		{"empty list", store.Targets{Endpoints: []string{}}, 0, "targets"},
		{"commune as district", store.Targets{District: "07192"}, 0, "targets"},
		{"unknown district", store.Targets{District: "999"}, 0, "targets"},
		{"two forms", store.Targets{All: true, District: "207"}, 0, "targets"},
		{"no form", store.Targets{}, 0, "targets"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := st.LastEventID(ctx)
			d, created, err := st.IssueDirective(ctx, "user:lead", store.NewDirective{ID: uuid.NewString(), Text: "Báo cáo tỷ lệ cử tri", Targets: tc.targets})
			if tc.field != "" {
				if !fieldIs(err, tc.field) {
					t.Fatalf("err %v, want a field error on %s", err, tc.field)
				}
				return
			}
			if err != nil || !created || len(d.Receipts) != tc.want || len(d.TargetCodes) != tc.want || d.Summary.Total != tc.want {
				t.Fatalf("%d receipts, want %d (%v)", len(d.Receipts), tc.want, err)
			}
			for _, r := range d.Receipts {
				if r.EndpointCode == "22" {
					t.Fatal("the command room is a target")
				}
			}
			evs, _ := st.EventsAfter(ctx, before, 10)
			var after struct {
				TargetCodes []string `json:"target_codes"`
				Text        string   `json:"text"`
			}
			if len(evs) != 1 || evs[0].Action != "directive.issued" || json.Unmarshal(evs[0].After, &after) != nil ||
				len(after.TargetCodes) != tc.want || after.Text != "Báo cáo tỷ lệ cử tri" {
				t.Fatalf("audit: %+v", evs)
			}
		})
	}
	if len(district) != 4 || district[0].Code != "207" {
		t.Fatalf("district 207 from the roster: %+v", district)
	}
}

func issue(t *testing.T, st *store.Store, targets store.Targets) store.Directive {
	t.Helper()
	d, _, err := st.IssueDirective(context.Background(), "user:lead", store.NewDirective{ID: uuid.NewString(), Text: "Kiểm tra hòm phiếu", Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestIssueDirectiveIdempotent(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	if _, _, err := st.IssueDirective(ctx, "user:lead", store.NewDirective{ID: uuid.NewString(), Text: "x", Targets: store.Targets{All: true}}); !errors.Is(err, store.ErrNoSession) {
		t.Fatalf("no session: %v", err)
	}
	startedSession(t, st)
	inc := mustCreate(t, st, newIncident("07192", "Mất điện"))
	due := time.Now().Add(time.Hour)
	in := store.NewDirective{ID: uuid.NewString(), Text: "Khắc phục ngay", Targets: store.Targets{District: "207"}, IncidentID: &inc.ID, DueAt: &due}
	first, created, err := st.IssueDirective(ctx, "user:lead", in)
	if err != nil || !created || first.IncidentID == nil || *first.IncidentID != inc.ID || first.DueAt == nil {
		t.Fatalf("issue: %+v %v %v", first, created, err)
	}
	again, created, err := st.IssueDirective(ctx, "user:lead", in)
	if err != nil || created || again.ID != first.ID || len(again.Receipts) != len(first.Receipts) {
		t.Fatalf("retry: %v %v", created, err)
	}
	in.Text = "Khác"
	if _, _, err := st.IssueDirective(ctx, "user:lead", in); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id, other body: %v", err)
	}
	unknown := uuid.NewString()
	bad := store.NewDirective{ID: uuid.NewString(), Text: "x", Targets: store.Targets{All: true}, IncidentID: &unknown}
	if _, _, err := st.IssueDirective(ctx, "user:lead", bad); !fieldIs(err, "incident_id") {
		t.Fatalf("unknown incident: %v", err)
	}
	bad = store.NewDirective{ID: uuid.NewString(), Text: " ", Targets: store.Targets{All: true}}
	if _, _, err := st.IssueDirective(ctx, "user:lead", bad); !fieldIs(err, "text") {
		t.Fatalf("empty text: %v", err)
	}
	list, err := st.ListDirectives(ctx, store.DirectiveFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %d %v", len(list), err)
	}
}

func TestAckDirective(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	d := issue(t, st, store.Targets{District: "207"})

	r, err := st.AckDirective(ctx, "endpoint:07192", d.ID, "07192", store.AckViaApp)
	if err != nil || r.AckedAt == nil || r.AckedBy != "endpoint:07192" || r.AckVia != "app" || r.DeliveredAt == nil {
		t.Fatalf("self ack: %+v %v", r, err)
	}
	before, _ := st.LastEventID(ctx)
	again, err := st.AckDirective(ctx, "endpoint:07192", d.ID, "07192", store.AckViaApp)
	if err != nil || !again.AckedAt.Equal(*r.AckedAt) {
		t.Fatalf("second ack: %+v %v", again, err)
	}
	// Staff acknowledging on top of it changes nothing either.
	if again, err = st.AckDirective(ctx, "user:duty", d.ID, "07192", "phone"); err != nil || again.AckVia != "app" {
		t.Fatalf("staff ack of an acked receipt: %+v %v", again, err)
	}
	if after, _ := st.LastEventID(ctx); after != before {
		t.Fatal("a repeated ack was audited")
	}

	byPhone, err := st.AckDirective(ctx, "user:duty", d.ID, "07195", "phone")
	if err != nil || byPhone.AckedBy != "user:duty" || byPhone.AckVia != "phone" || byPhone.AckedAt == nil {
		t.Fatalf("ack by phone: %+v %v", byPhone, err)
	}
	evs, _ := st.EventsAfter(ctx, before, 10)
	if len(evs) != 1 || evs[0].Action != "directive.acknowledged" || evs[0].Actor != "user:duty" {
		t.Fatalf("audit: %+v", evs)
	}
	if _, err := st.AckDirective(ctx, "endpoint:195", d.ID, "195", store.AckViaApp); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("not a target: %v", err)
	}
	if _, err := st.AckDirective(ctx, "user:duty", d.ID, "07198", "pigeon"); !fieldIs(err, "via") {
		t.Fatalf("bad via: %v", err)
	}
	got, _ := st.GetDirective(ctx, d.ID)
	if got.Summary.Acked != 2 || got.Summary.Total != 4 {
		t.Fatalf("summary %+v", got.Summary)
	}
	pending := 0
	for _, r := range got.Receipts {
		if r.AckedAt == nil {
			pending++
		}
	}
	if pending != 2 {
		t.Fatalf("%d not acknowledged, want 2", pending)
	}
}

func TestReplyAndDelivery(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	d := issue(t, st, store.Targets{Endpoints: []string{"07192", "07195"}})

	r, err := st.MarkDelivered(ctx, d.ID, "07192")
	if err != nil || r.DeliveredAt == nil || r.AckedAt != nil {
		t.Fatalf("delivered: %+v %v", r, err)
	}
	if again, _ := st.MarkDelivered(ctx, d.ID, "07192"); !again.DeliveredAt.Equal(*r.DeliveredAt) {
		t.Fatal("second delivery moved the time")
	}
	if _, err := st.MarkDelivered(ctx, d.ID, "195"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deliver to a non-target: %v", err)
	}
	if n, err := st.MarkAllDelivered(ctx, "07195"); err != nil || n != 1 {
		t.Fatalf("mark all: %d %v", n, err)
	}
	if n, _ := st.MarkAllDelivered(ctx, "07195"); n != 0 {
		t.Fatalf("mark all again: %d", n)
	}

	r, err = st.ReplyDirective(ctx, "endpoint:07192", d.ID, "07192", "Đang kiểm tra", false, true)
	if err != nil || r.Reply != "Đang kiểm tra" || r.DoneAt != nil || r.AckedAt == nil || r.RepliedBy != "endpoint:07192" {
		t.Fatalf("reply: %+v %v", r, err)
	}
	r, err = st.ReplyDirective(ctx, "endpoint:07192", d.ID, "07192", "Đã xong", true, true)
	if err != nil || r.Reply != "Đã xong" || r.DoneAt == nil {
		t.Fatalf("done: %+v %v", r, err)
	}
	done := *r.DoneAt
	r, err = st.ReplyDirective(ctx, "endpoint:07192", d.ID, "07192", "Bổ sung", true, true)
	if err != nil || !r.DoneAt.Equal(done) || r.Reply != "Bổ sung" {
		t.Fatalf("done is set once: %+v %v", r, err)
	}
	// Staff reply on an endpoint's behalf does not count as its acknowledgement.
	r, err = st.ReplyDirective(ctx, "user:duty", d.ID, "07195", "Xã báo qua điện thoại", false, false)
	if err != nil || r.RepliedBy != "user:duty" || r.AckedAt != nil {
		t.Fatalf("staff reply: %+v %v", r, err)
	}
	if _, err := st.ReplyDirective(ctx, "user:duty", d.ID, "07195", "", false, false); !fieldIs(err, "text") {
		t.Fatalf("empty reply: %v", err)
	}
	list, err := st.ListDirectives(ctx, store.DirectiveFilter{Endpoint: "07192"})
	if err != nil || len(list) != 1 || list[0].Receipt == nil || list[0].Receipt.EndpointCode != "07192" || list[0].Summary.Done != 1 {
		t.Fatalf("endpoint list: %+v %v", list, err)
	}
	if list, _ := st.ListDirectives(ctx, store.DirectiveFilter{Endpoint: "195"}); len(list) != 0 {
		t.Fatalf("non-target lists %d", len(list))
	}
}

func TestSessionReport(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	sess := startedSession(t, st)
	inc := mustCreate(t, st, newIncident("07192", "Mất điện điểm bầu cử"))
	if _, _, err := st.AddIncidentUpdate(ctx, "user:duty", "", inc.ID, store.NewIncidentUpdate{Body: "Đã có máy phát"}); err != nil {
		t.Fatal(err)
	}
	d := issue(t, st, store.Targets{District: "207"})
	if _, err := st.AckDirective(ctx, "user:duty", d.ID, "07195", "phone"); err != nil {
		t.Fatal(err)
	}
	rep, err := st.SessionReport(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Session.ID != sess.ID || len(rep.Incidents) != 1 || len(rep.Incidents[0].Timeline) != 1 ||
		len(rep.Directives) != 1 || len(rep.Directives[0].Receipts) != 4 || rep.Directives[0].Summary.Acked != 1 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := st.SessionReport(ctx, uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}
