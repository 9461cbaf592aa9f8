package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// The pure roll-up, without a database. The province 22 has two districts: 100 with
// communes 10001 and 10002, 200 with commune 20001.
var testTree = []turnoutNode{
	{Code: "22", Name: "Tỉnh", Kind: KindProvince},
	{Code: "100", Name: "Huyện A", Kind: KindDistrict, Parent: "22"},
	{Code: "200", Name: "Huyện B", Kind: KindDistrict, Parent: "22"},
	{Code: "10001", Name: "Xã A1", Kind: KindCommune, Parent: "100", Registered: 1000},
	{Code: "10002", Name: "Xã A2", Kind: KindCommune, Parent: "100", Registered: 1000},
	{Code: "20001", Name: "Xã B1", Kind: KindCommune, Parent: "200", Registered: 500},
}

var t0 = time.Date(2021, 5, 22, 23, 30, 0, 0, time.UTC) // 06:30 in Quảng Ninh

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func rep(code string, min int, voted int64, flags ...string) turnoutPoint {
	p := turnoutPoint{Code: code, AsOf: at(min), Voted: voted}
	for _, f := range flags {
		switch f {
		case "complete":
			p.Complete = true
		case "correction":
			p.Correction = true
		}
	}
	return p
}

// want is what a test checks of one unit; nil pointers are not checked.
type want struct {
	voted, registered         int64
	percent                   float64
	reported, total, done     int
	complete, below, stale    bool
	completedAt, lastReportAt *time.Time
}

func tp(min int) *time.Time { t := at(min); return &t }

func TestTurnoutRollUpTable(t *testing.T) {
	cases := []struct {
		name    string
		reports []turnoutPoint
		at      int
		want    map[string]want
	}{
		{"nothing reported yet", nil, 10, map[string]want{
			"22":    {registered: 2500, total: 3, below: true},
			"100":   {registered: 2000, total: 2, below: true},
			"10001": {registered: 1000, total: 1, below: true},
		}},
		{"sums at every level, never averages", []turnoutPoint{
			rep("10001", 30, 300), rep("10002", 40, 600), rep("20001", 50, 400),
		}, 60, map[string]want{
			"10001": {voted: 300, registered: 1000, percent: 30, reported: 1, total: 1, below: true, lastReportAt: tp(30)},
			"100":   {voted: 900, registered: 2000, percent: 45, reported: 2, total: 2, below: true, lastReportAt: tp(40)},
			"200":   {voted: 400, registered: 500, percent: 80, reported: 1, total: 1, lastReportAt: tp(50)},
			"22":    {voted: 1300, registered: 2500, percent: 52, reported: 3, total: 3, lastReportAt: tp(50)},
		}},
		{"at in the past ignores later figures", []turnoutPoint{
			rep("10001", 30, 300), rep("10001", 90, 700), rep("20001", 100, 450),
		}, 60, map[string]want{
			"10001": {voted: 300, registered: 1000, percent: 30, reported: 1, total: 1, below: true, lastReportAt: tp(30)},
			"22":    {voted: 300, registered: 2500, percent: 12, reported: 1, total: 3, below: true, stale: false, lastReportAt: tp(30)},
		}},
		{"below half is voted*2 <= registered", []turnoutPoint{
			rep("10001", 30, 500), rep("10002", 30, 501),
		}, 40, map[string]want{
			"10001": {voted: 500, registered: 1000, percent: 50, reported: 1, total: 1, below: true, lastReportAt: tp(30)},
			"10002": {voted: 501, registered: 1000, percent: 50.1, reported: 1, total: 1, below: false, lastReportAt: tp(30)},
		}},
		{"a correction lowers the figure", []turnoutPoint{
			rep("10001", 30, 800), rep("10001", 45, 700, "correction"),
		}, 60, map[string]want{
			"10001": {voted: 700, registered: 1000, percent: 70, reported: 1, total: 1, lastReportAt: tp(45)},
		}},
		{"same as_of: the later accepted wins", []turnoutPoint{
			rep("10001", 30, 300), rep("10001", 30, 350),
		}, 60, map[string]want{
			"10001": {voted: 350, registered: 1000, percent: 35, reported: 1, total: 1, below: true, lastReportAt: tp(30)},
		}},
		{"a district completes with its last commune, at that report's as_of", []turnoutPoint{
			rep("10002", 200, 990, "complete"), rep("10001", 300, 1000, "complete"), rep("20001", 250, 480),
		}, 320, map[string]want{
			"10001": {voted: 1000, registered: 1000, percent: 100, reported: 1, total: 1, done: 1, complete: true, completedAt: tp(300), lastReportAt: tp(300)},
			"100":   {voted: 1990, registered: 2000, percent: 99.5, reported: 2, total: 2, done: 2, complete: true, completedAt: tp(300), lastReportAt: tp(300)},
			// 20001 last reported 70 minutes before at: stale, and so is the province.
			"22": {voted: 2470, registered: 2500, percent: 98.8, reported: 3, total: 3, done: 2, stale: true, lastReportAt: tp(300)},
		}},
		{"before the last commune completes the district is not complete", []turnoutPoint{
			rep("10002", 200, 990, "complete"), rep("10001", 300, 1000, "complete"),
		}, 250, map[string]want{
			"100":   {voted: 990, registered: 2000, percent: 49.5, reported: 1, total: 2, done: 1, below: true, stale: true, lastReportAt: tp(200)},
			"10002": {voted: 990, registered: 1000, percent: 99, reported: 1, total: 1, done: 1, complete: true, completedAt: tp(200), lastReportAt: tp(200)},
		}},
		{"completion is sticky; a later figure keeps it", []turnoutPoint{
			rep("20001", 100, 400, "complete"), rep("20001", 120, 410),
		}, 130, map[string]want{
			"200": {voted: 410, registered: 500, percent: 82, reported: 1, total: 1, done: 1, complete: true, completedAt: tp(100), lastReportAt: tp(120)},
		}},
		{"a correction may take completion back", []turnoutPoint{
			rep("20001", 100, 400, "complete"), rep("20001", 120, 400, "correction"),
		}, 130, map[string]want{
			"200": {voted: 400, registered: 500, percent: 80, reported: 1, total: 1, lastReportAt: tp(120)},
		}},
		{"stale: no report within the interval, judged at at", []turnoutPoint{
			rep("10001", 30, 300), rep("10002", 100, 400), rep("20001", 10, 500, "complete"),
		}, 120, map[string]want{
			"10001": {voted: 300, registered: 1000, percent: 30, reported: 1, total: 1, below: true, stale: true, lastReportAt: tp(30)},
			"10002": {voted: 400, registered: 1000, percent: 40, reported: 1, total: 1, below: true, stale: false, lastReportAt: tp(100)},
			"20001": {voted: 500, registered: 500, percent: 100, reported: 1, total: 1, done: 1, complete: true, completedAt: tp(10), lastReportAt: tp(10)},
			"100":   {voted: 700, registered: 2000, percent: 35, reported: 2, total: 2, below: true, stale: true, lastReportAt: tp(100)},
			"200":   {voted: 500, registered: 500, percent: 100, reported: 1, total: 1, done: 1, complete: true, completedAt: tp(10), lastReportAt: tp(10)},
		}},
		{"never reported counts from the planned start", nil, 61, map[string]want{
			"10001": {registered: 1000, total: 1, below: true, stale: true},
			"22":    {registered: 2500, total: 3, below: true, stale: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			units := rollUp(testTree, tc.reports, rollupParams{At: at(tc.at), PlannedStart: t0, StaleAfter: time.Hour})
			for code, w := range tc.want {
				u := units[code]
				if u == nil {
					t.Fatalf("no unit %s", code)
				}
				got := want{voted: u.Voted, registered: u.Registered, percent: u.Percent, reported: u.UnitsReported,
					total: u.UnitsTotal, done: u.UnitsComplete, complete: u.Complete, below: u.BelowHalf, stale: u.Stale,
					completedAt: u.CompletedAt, lastReportAt: u.LastReportAt}
				if !sameWant(got, w) {
					t.Errorf("%s:\n got %s\nwant %s", code, show(got), show(w))
				}
			}
		})
	}
}

func sameWant(a, b want) bool {
	eq := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return eq(a.completedAt, b.completedAt) && eq(a.lastReportAt, b.lastReportAt) &&
		a.voted == b.voted && a.registered == b.registered && a.percent == b.percent && a.reported == b.reported &&
		a.total == b.total && a.done == b.done && a.complete == b.complete && a.below == b.below && a.stale == b.stale
}

func show(w want) string {
	f := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Sub(t0).String()
	}
	return fmt.Sprintf("voted %d/%d %.2f%% reported %d/%d done %d complete %v below %v stale %v completed %s last %s",
		w.voted, w.registered, w.percent, w.reported, w.total, w.done, w.complete, w.below, w.stale, f(w.completedAt), f(w.lastReportAt))
}

func TestTurnoutNoSessionIsNeverStale(t *testing.T) {
	units := rollUp(testTree, nil, rollupParams{At: at(600), StaleAfter: time.Hour})
	if units["22"].Stale || units["10001"].Stale {
		t.Fatal("stale without a session")
	}
	if p := percent(958732, 959021); p != 99.97 {
		t.Fatalf("percent %v", p)
	}
	if p := percent(5, 0); p != 0 {
		t.Fatalf("percent of nothing registered %v", p)
	}
}

func TestTurnoutSeriesSweep(t *testing.T) {
	reports := []turnoutPoint{
		rep("10001", 10, 100), rep("20001", 20, 50), rep("10002", 40, 300),
		rep("10001", 50, 250), rep("10001", 55, 200, "correction"), rep("20001", 70, 60),
	}
	times := []time.Time{at(0), at(30), at(60), at(70)}
	in, ok := unitCommunes(testTree, "100")
	if !ok || len(in) != 2 || !in["10001"] || !in["10002"] {
		t.Fatalf("communes of 100: %v %v", in, ok)
	}
	got := sweepSeries(reports, in, times, 2000)
	var voted []int64
	for _, p := range got {
		voted = append(voted, p.Voted)
	}
	if !slices.Equal(voted, []int64{0, 100, 500, 500}) || got[2].Percent != 25 {
		t.Fatalf("district 100 series %+v", got)
	}
	all, _ := unitCommunes(testTree, "22")
	got = sweepSeries(reports, all, times, 2500)
	voted = voted[:0]
	for _, p := range got {
		voted = append(voted, p.Voted)
	}
	if !slices.Equal(voted, []int64{0, 150, 550, 560}) {
		t.Fatalf("province series %v", voted)
	}
	if _, ok := unitCommunes(testTree, "99999"); ok {
		t.Fatal("unknown unit found")
	}
}

// BenchmarkTurnoutRollUp: the province (13 districts, 177 communes) with 40 reports a
// commune, as on election day with a report every 20 minutes.
func BenchmarkTurnoutRollUp(b *testing.B) {
	nodes := []turnoutNode{{Code: "22", Kind: KindProvince}}
	var reports []turnoutPoint
	for d := 0; d < 13; d++ {
		dc := fmt.Sprint(100 + d)
		nodes = append(nodes, turnoutNode{Code: dc, Kind: KindDistrict, Parent: "22"})
		for c := 0; c < 14; c++ {
			cc := fmt.Sprintf("%s%02d", dc, c)
			nodes = append(nodes, turnoutNode{Code: cc, Kind: KindCommune, Parent: dc, Registered: 5000})
			for k := 0; k < 40; k++ {
				reports = append(reports, rep(cc, k*18, int64(k*120)))
			}
		}
	}
	slices.SortStableFunc(reports, func(a, b turnoutPoint) int { return a.AsOf.Compare(b.AsOf) })
	p := rollupParams{At: at(600), PlannedStart: t0, StaleAfter: time.Hour}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rollUp(nodes, reports, p)
	}
}
