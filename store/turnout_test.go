package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/configs"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

var ict = time.FixedZone("ICT", 7*3600)

// electionDay is 23 May 2021 at hh:mm in Quảng Ninh.
func electionDay(hh, mm int) *time.Time {
	t := time.Date(2021, 5, 23, hh, mm, 0, 0, ict)
	return &t
}

func embeddedRegistered(t *testing.T) []store.RegisteredFigure {
	t.Helper()
	f, err := configs.Turnout.Open("turnout/22-2021-05-23.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := store.ParseRegistered(f, '\t')
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestTurnoutEmbeddedRegistered: the demo's figures sum to the province's published
// 959,021, cover every commune of the roster exactly once, and seed only once.
func TestTurnoutEmbeddedRegistered(t *testing.T) {
	ctx := context.Background()
	rows := embeddedRegistered(t)
	f, err := configs.Rosters.Open("roster/22-2021-05-23.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	roster, err := store.ParseRoster(f)
	if err != nil {
		t.Fatal(err)
	}
	byCode := map[string]int64{}
	var sum int64
	for _, r := range rows {
		if _, dup := byCode[r.Code]; dup {
			t.Fatalf("%s twice", r.Code)
		}
		byCode[r.Code] = *r.Registered
		sum += *r.Registered
		if *r.Registered < 500 || *r.Registered > 20000 {
			t.Errorf("%s: %d registered is not plausible for a commune", r.Code, *r.Registered)
		}
	}
	if sum != 959021 {
		t.Fatalf("sum %d, want 959,021", sum)
	}
	communes := 0
	for _, e := range roster {
		if e.Kind != store.KindCommune {
			continue
		}
		communes++
		if _, ok := byCode[e.Code]; !ok {
			t.Errorf("commune %s (%s) has no figure", e.Code, e.Name)
		}
	}
	if communes != 177 || len(rows) != 177 {
		t.Fatalf("%d communes, %d figures", communes, len(rows))
	}

	st := storetest.NewWithRoster(t)
	res, seeded, err := st.SeedRegistered(ctx, "system:demo", rows)
	if err != nil || !seeded || res.Added != 177 {
		t.Fatalf("seed: %+v %v %v", res, seeded, err)
	}
	before, _ := st.LastEventID(ctx)
	if _, seeded, err := st.SeedRegistered(ctx, "system:demo", rows); err != nil || seeded {
		t.Fatalf("second seed: seeded=%v %v", seeded, err)
	}
	if after, _ := st.LastEventID(ctx); after != before {
		t.Fatal("second seed wrote events")
	}
	list, err := st.ListRegistered(ctx)
	if err != nil || len(list) != 177 || list[0].Registered == nil {
		t.Fatalf("list: %d %v", len(list), err)
	}
}

func TestTurnoutParseRegistered(t *testing.T) {
	rows, err := store.ParseRegistered(strings.NewReader("\ufeffcode,registered\n7192,4210\n07195,\"1,2\"\n"), ',')
	if err == nil {
		t.Fatalf("a number with a comma accepted: %+v", rows)
	}
	var fe *store.FieldError
	if !errors.As(err, &fe) || fe.Field != "registered" || !strings.Contains(fe.Msg, "line 3") {
		t.Fatalf("error %v", err)
	}
	rows, err = store.ParseRegistered(strings.NewReader("7192,4210\n07195,900,sai số\n"), ',')
	if err != nil || len(rows) != 2 || rows[0].Code != "07192" || *rows[0].Registered != 4210 || rows[1].Reason != "sai số" {
		t.Fatalf("headerless: %+v %v", rows, err)
	}
}

func turnoutReport(code string, asOf *time.Time, voted int64) store.NewTurnoutReport {
	return store.NewTurnoutReport{ID: uuid.NewString(), EndpointCode: code, AsOf: asOf, Voted: &voted}
}

func TestTurnoutReportRules(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	two := func(n int64) *int64 { return &n }
	if _, err := st.SetRegistered(ctx, "user:lead", []store.RegisteredFigure{{Code: "07192", Registered: two(2600)}}); err != nil {
		t.Fatal(err)
	}
	in := turnoutReport("07192", electionDay(8, 0), 400)
	if _, _, err := st.ReportTurnout(ctx, "endpoint:07192", false, in); !errors.Is(err, store.ErrNoSession) {
		t.Fatalf("without a session: %v", err)
	}
	sess := startedSession(t, st)

	first, created, err := st.ReportTurnout(ctx, "endpoint:07192", false, in)
	if err != nil || !created || first.Voted != 400 || first.SessionID != sess.ID || first.EndpointName != "Thị trấn Cô Tô" {
		t.Fatalf("report: %+v %v %v", first, created, err)
	}
	before, _ := st.LastEventID(ctx)
	again, created, err := st.ReportTurnout(ctx, "endpoint:07192", false, in)
	if err != nil || created || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("retry: %+v %v %v", again, created, err)
	}
	if after, _ := st.LastEventID(ctx); after != before {
		t.Fatal("retry wrote an event")
	}
	other := in
	other.Voted = two(401)
	if _, _, err := st.ReportTurnout(ctx, "endpoint:07192", false, other); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id, other body: %v", err)
	}

	fieldOf := func(err error) string {
		var fe *store.FieldError
		if errors.As(err, &fe) {
			return fe.Field
		}
		return ""
	}
	staff := func(r store.NewTurnoutReport, via string) store.NewTurnoutReport { r.Via = via; return r }
	future := time.Now().Add(10 * time.Minute)
	cases := []struct {
		name    string
		byStaff bool
		in      store.NewTurnoutReport
		err     error
		field   string
	}{
		{"over registered", false, turnoutReport("07192", electionDay(9, 0), 2601), store.ErrOverRegistered, ""},
		{"decreasing", false, turnoutReport("07192", electionDay(9, 0), 399), store.ErrDecreasing, ""},
		{"above a later figure", false, turnoutReport("07192", electionDay(7, 0), 500), store.ErrDecreasing, ""},
		{"staff decreasing without a reason", true, staff(turnoutReport("07192", electionDay(9, 0), 300), "phone"), store.ErrDecreasing, ""},
		{"district", true, staff(turnoutReport("207", electionDay(9, 0), 300), "phone"), nil, "endpoint_code"},
		{"province", true, staff(turnoutReport("22", electionDay(9, 0), 300), "phone"), nil, "endpoint_code"},
		{"unknown", true, staff(turnoutReport("99999", electionDay(9, 0), 300), "phone"), nil, "endpoint_code"},
		{"before the planned start", false, turnoutReport("07192", electionDay(6, 0), 500), nil, "as_of"},
		{"in the future", false, turnoutReport("07192", &future, 500), nil, "as_of"},
		{"no as_of", false, turnoutReport("07192", nil, 500), nil, "as_of"},
		{"negative", false, turnoutReport("07192", electionDay(9, 0), -1), nil, "voted"},
		{"staff without via", true, turnoutReport("07192", electionDay(9, 0), 500), nil, "via"},
		{"endpoint with via", false, staff(turnoutReport("07192", electionDay(9, 0), 500), "phone"), nil, "via"},
		{"bad id", false, store.NewTurnoutReport{ID: "x", EndpointCode: "07192", AsOf: electionDay(9, 0), Voted: two(5)}, nil, "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := st.ReportTurnout(ctx, "user:duty", tc.byStaff, tc.in)
			if tc.err != nil && !errors.Is(err, tc.err) || tc.field != "" && fieldOf(err) != tc.field || err == nil {
				t.Fatalf("got %v, want %v on %q", err, tc.err, tc.field)
			}
		})
	}
	endpointReason := turnoutReport("07192", electionDay(9, 0), 300)
	endpointReason.Reason = "nhầm"
	if _, _, err := st.ReportTurnout(ctx, "endpoint:07192", false, endpointReason); fieldOf(err) != "reason" {
		t.Fatalf("endpoint correction: %v", err)
	}
	// Staff correct with a reason: kept, shown, and the figure goes down.
	fix := staff(turnoutReport("07192", electionDay(9, 0), 350), "phone")
	fix.Reason = "Xã báo nhầm số lúc 8 giờ"
	got, created, err := st.ReportTurnout(ctx, "user:duty", true, fix)
	if err != nil || !created || !got.Correction || got.Reason != fix.Reason || got.Via != "phone" || got.ReportedBy != "user:duty" {
		t.Fatalf("correction: %+v %v", got, err)
	}
	sid, list, err := st.ListTurnoutReports(ctx, store.TurnoutReportFilter{Code: "207"})
	if err != nil || sid != sess.ID || len(list) != 2 || list[1].Reason != fix.Reason || list[0].Correction {
		t.Fatalf("list: %s %+v %v", sid, list, err)
	}
	evs, _ := st.EventsAfter(ctx, 0, 1000)
	n := 0
	for _, e := range evs {
		if e.Action == "turnout.reported" {
			n++
			if e.SessionID == nil || *e.SessionID != sess.ID {
				t.Fatalf("event %+v", e)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d turnout.reported events, want 2", n)
	}
}

func TestTurnoutRegisteredChangeNeedsReason(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	n := func(v int64) *int64 { return &v }
	res, err := st.SetRegistered(ctx, "user:lead", []store.RegisteredFigure{{Code: "07192", Registered: n(2600)}, {Code: "07195", Registered: n(900)}})
	if err != nil || res.Added != 2 {
		t.Fatalf("set: %+v %v", res, err)
	}
	// Before any report a figure changes freely.
	if res, err = st.SetRegistered(ctx, "user:lead", []store.RegisteredFigure{{Code: "07195", Registered: n(950)}, {Code: "07192", Registered: n(2600)}}); err != nil || res.Changed != 1 || res.Unchanged != 1 {
		t.Fatalf("change before reports: %+v %v", res, err)
	}
	startedSession(t, st)
	if _, _, err := st.ReportTurnout(ctx, "endpoint:07192", false, turnoutReport("07192", electionDay(9, 0), 1200)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetRegistered(ctx, "user:lead", []store.RegisteredFigure{{Code: "07192", Registered: n(2650)}}); !errors.Is(err, store.ErrReasonRequired) {
		t.Fatalf("change after a report without a reason: %v", err)
	}
	if _, err := st.SetRegistered(ctx, "user:lead", []store.RegisteredFigure{{Code: "07192", Registered: n(1100), Reason: "x"}}); !errors.Is(err, store.ErrOverRegistered) {
		t.Fatalf("below the reported figure: %v", err)
	}
	// All or nothing: a bad row leaves the good one unwritten.
	if _, err := st.SetRegistered(ctx, "user:lead", []store.RegisteredFigure{{Code: "07198", Registered: n(700)}, {Code: "207", Registered: n(1)}}); err == nil {
		t.Fatal("a district's figure accepted")
	}
	before, _ := st.LastEventID(ctx)
	if _, err := st.SetRegistered(ctx, "user:lead", []store.RegisteredFigure{{Code: "07192", Registered: n(2650), Reason: "Bổ sung 50 cử tri chuyển đến"}}); err != nil {
		t.Fatal(err)
	}
	evs, _ := st.EventsAfter(ctx, before, 10)
	if len(evs) != 1 || evs[0].Action != "turnout.registered_changed" || !strings.Contains(string(evs[0].Before), "2600") ||
		!strings.Contains(string(evs[0].After), "Bổ sung") {
		t.Fatalf("audit: %+v", evs)
	}
	list, _ := st.ListRegistered(ctx)
	for _, e := range list {
		switch e.Code {
		case "07192":
			if *e.Registered != 2650 || e.Reason != "Bổ sung 50 cử tri chuyển đến" || e.UpdatedBy != "user:lead" {
				t.Fatalf("kept: %+v", e)
			}
		case "07198":
			if e.Registered != nil {
				t.Fatalf("half-written: %+v", e)
			}
		}
	}
}

// TestTurnoutRollUpStore: the roll-up from the database at every level, in the past,
// and the curve.
func TestTurnoutRollUpStore(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	if _, _, err := st.SeedRegistered(ctx, "system:demo", embeddedRegistered(t)); err != nil {
		t.Fatal(err)
	}
	sess := startedSession(t, st)
	report := func(code string, at *time.Time, voted int64, complete bool) {
		t.Helper()
		in := turnoutReport(code, at, voted)
		in.Complete = complete
		if _, _, err := st.ReportTurnout(ctx, "endpoint:"+code, false, in); err != nil {
			t.Fatal(err)
		}
	}
	report("07192", electionDay(9, 0), 1000, false)
	report("07195", electionDay(9, 30), 900, false)
	report("07192", electionDay(11, 0), 2600, true)
	report("07195", electionDay(11, 30), 925, true)
	report("07198", electionDay(11, 15), 977, true)
	report("06649", electionDay(10, 0), 3000, false)

	q := store.TurnoutQuery{At: *electionDay(12, 0), StaleAfter: time.Hour}
	pic, err := st.Turnout(ctx, q)
	if err != nil || pic.SessionID == nil || *pic.SessionID != sess.ID || len(pic.Units) != 1 {
		t.Fatalf("province: %+v %v", pic, err)
	}
	prov := pic.Units[0]
	if prov.Code != "22" || prov.Registered != 959021 || prov.Voted != 2600+925+977+3000 || prov.UnitsTotal != 177 ||
		prov.UnitsReported != 4 || prov.UnitsComplete != 3 || prov.Complete || !prov.BelowHalf || !prov.Stale {
		t.Fatalf("province %+v", prov)
	}
	q.Parent = "22"
	if pic, err = st.Turnout(ctx, q); err != nil || len(pic.Units) != 13 {
		t.Fatalf("districts: %d %v", len(pic.Units), err)
	}
	var sum int64
	for _, d := range pic.Units {
		sum += d.Voted
		if d.Kind != store.KindDistrict {
			t.Fatalf("not a district: %+v", d)
		}
		if d.Code == "207" && (!d.Complete || d.CompletedAt == nil || !d.CompletedAt.Equal(*electionDay(11, 30)) ||
			d.Voted != 4502 || d.Registered != 4502 || d.Percent != 100 || d.Stale) {
			t.Fatalf("Cô Tô %+v", d)
		}
	}
	if sum != prov.Voted {
		t.Fatalf("districts sum %d, province %d", sum, prov.Voted)
	}
	q.Parent = "207"
	if pic, err = st.Turnout(ctx, q); err != nil || len(pic.Units) != 3 || pic.Units[0].Code != "07192" || pic.Units[0].Voted != 2600 {
		t.Fatalf("communes: %+v %v", pic.Units, err)
	}
	// In the past: 10:00 sees the first figures only.
	q.Parent, q.At = "207", *electionDay(10, 0)
	if pic, err = st.Turnout(ctx, q); err != nil || pic.Units[0].Voted != 1000 || pic.Units[0].Complete || pic.Units[2].UnitsReported != 0 {
		t.Fatalf("at 10:00: %+v %v", pic.Units, err)
	}
	q.Parent, q.Code = "", "07195"
	if pic, err = st.Turnout(ctx, q); err != nil || len(pic.Units) != 1 || pic.Units[0].Voted != 900 {
		t.Fatalf("one commune: %+v %v", pic.Units, err)
	}
	if _, err = st.Turnout(ctx, store.TurnoutQuery{Parent: "07192"}); err == nil {
		t.Fatal("a commune as parent")
	}
	if _, err = st.Turnout(ctx, store.TurnoutQuery{Code: "99999"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown code: %v", err)
	}

	// The curve of Cô Tô every hour from 06:30 to 19:00, and a point at now.
	ser, err := st.Series(ctx, "207", "", time.Hour, time.Now())
	if err != nil || ser.Registered != 4502 || len(ser.Points) != 14 {
		t.Fatalf("series: %+v %v", ser, err)
	}
	want := []int64{0, 0, 0, 1900, 1900, 4502}
	for i, w := range want {
		if ser.Points[i].Voted != w {
			t.Fatalf("point %d at %s: %d, want %d", i, ser.Points[i].At, ser.Points[i].Voted, w)
		}
	}
	if last := ser.Points[13]; last.Voted != 4502 || last.Percent != 100 || time.Since(last.At) > time.Minute {
		t.Fatalf("last point %+v", last)
	}
	if ser, err = st.Series(ctx, "22", sess.ID, 30*time.Minute, time.Now()); err != nil || ser.Points[len(ser.Points)-1].Voted != prov.Voted {
		t.Fatalf("province series: %v", err)
	}
}

// TestTurnoutConcurrentReports: retries racing each other create one report; rising
// figures racing each other are all accepted, in some order, and the last stands.
func TestTurnoutConcurrentReports(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	in := turnoutReport("07192", electionDay(8, 0), 100)
	errs := make(chan error, 16)
	created := make(chan bool, 8)
	for i := 0; i < 8; i++ {
		go func() {
			_, c, err := st.ReportTurnout(ctx, "endpoint:07192", false, in)
			created <- c
			errs <- err
		}()
	}
	n := 0
	for i := 0; i < 8; i++ {
		if <-created {
			n++
		}
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Fatalf("%d created, want 1", n)
	}
	for i := 1; i <= 8; i++ {
		go func() {
			_, _, err := st.ReportTurnout(ctx, "endpoint:07192", false, turnoutReport("07192", electionDay(9, i), int64(100+i)))
			errs <- err
		}()
	}
	refused := 0
	for i := 0; i < 8; i++ {
		// Figure and as_of rise together, so no arrival order is a decrease.
		if err := <-errs; errors.Is(err, store.ErrDecreasing) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if refused != 0 {
		t.Fatalf("%d rising figures refused", refused)
	}
	pic, err := st.Turnout(ctx, store.TurnoutQuery{Code: "07192", At: *electionDay(10, 0), StaleAfter: time.Hour})
	if err != nil || pic.Units[0].Voted != 108 {
		t.Fatalf("after the race: %+v %v", pic.Units, err)
	}
}
