package web_test

import (
	"encoding/csv"
	"strings"
	"testing"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
)

// TestReportTurnout: the session report ends with the turnout by district and
// commune (registered, voted, percent, completion time) and the province's curve, as
// CSV rows and in the printable HTML (tables and an inline SVG).
func TestReportTurnout(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	obs := a.User("obs", auth.RoleObserver)
	ep := a.Endpoint("07192")
	loadRegistered(t, lead)
	sess := startSession(t, lead) // planned 06:30–19:00 on 23 May 2021
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
	post(duty, "06649", ictTime(10, 0), 3000, false)
	post(ep, "07192", ictTime(11, 0), 2600, true)
	post(duty, "07198", ictTime(11, 15), 977, true)
	post(duty, "07195", ictTime(11, 30), 925, true) // Cô Tô (207) completes: 4,502 of 4,502

	_, raw := obs.Do("GET", "/api/v1/sessions/"+sess.ID+"/report.csv", nil, nil, 200)
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(raw), "\ufeff"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, h := range []string{"registered", "voted", "percent", "units_complete", "units_total", "completed_at"} {
		if _, ok := col[h]; !ok {
			t.Fatalf("CSV header lacks %s: %v", h, recs[0])
		}
	}
	units := map[string][]string{}
	var points [][]string
	for _, r := range recs[1:] {
		switch r[col["record_type"]] {
		case "turnout_unit":
			units[r[col["id"]]] = r
		case "turnout_point":
			points = append(points, r)
		}
	}
	if len(units) != 1+13+177 {
		t.Fatalf("CSV has %d turnout units, want 191", len(units))
	}
	check := func(code, parent, kind, registered, voted, percent, status, completedAt string) {
		t.Helper()
		r := units[code]
		got := []string{r[col["parent_id"]], r[col["kind"]], r[col["registered"]], r[col["voted"]], r[col["percent"]], r[col["status"]], r[col["completed_at"]]}
		want := []string{parent, kind, registered, voted, percent, status, completedAt}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("CSV unit %s: %q, want %q", code, got, want)
		}
	}
	check("22", "", "province", "959021", "7502", "0.78", "", "")
	check("207", "22", "district", "4502", "4502", "100.00", "complete", "2021-05-23T11:30:00+07:00")
	check("07192", "207", "commune", "2600", "2600", "100.00", "complete", "2021-05-23T11:00:00+07:00")
	check("07198", "207", "commune", "977", "977", "100.00", "complete", "2021-05-23T11:15:00+07:00")
	check("06649", "193", "commune", units["06649"][col["registered"]], "3000", units["06649"][col["percent"]], "", "")
	if r := units["207"]; r[col["units_complete"]] != "3" || r[col["units_total"]] != "3" {
		t.Errorf("CSV 207 completion: %s/%s", r[col["units_complete"]], r[col["units_total"]])
	}
	// The curve: 06:30 to 19:00 every 30 minutes, cumulative by as_of.
	if len(points) != 26 {
		t.Fatalf("CSV has %d curve points, want 26", len(points))
	}
	curve := map[string]string{}
	for _, p := range points {
		curve[p[col["time"]]] = p[col["voted"]]
	}
	for at, want := range map[string]string{"2021-05-23T06:30:00+07:00": "0", "2021-05-23T09:00:00+07:00": "1000",
		"2021-05-23T11:00:00+07:00": "5600", "2021-05-23T11:30:00+07:00": "7502", "2021-05-23T19:00:00+07:00": "7502"} {
		if curve[at] != want {
			t.Errorf("CSV curve at %s: %q, want %s", at, curve[at], want)
		}
	}

	_, raw = obs.Do("GET", "/api/v1/sessions/"+sess.ID+"/report.html", nil, nil, 200)
	html := string(raw)
	i := strings.Index(html, `<h2 id="turnout">Tỷ lệ cử tri đi bầu</h2>`)
	if i < 0 || i < strings.Index(html, "Chỉ đạo (0)") {
		t.Fatalf("HTML has no turnout section after the directives (at %d)", i)
	}
	tail := html[i:]
	for _, want := range []string{"<b>7.502</b> / 959.021 cử tri", "<b>0,78%</b>", "Thứ tự hoàn thành của các huyện",
		`<tr class="district" data-code="207"><td><b>Huyện Cô Tô (207)</b></td><td class="num">4.502</td><td class="num">4.502</td>`,
		"100,00%", "3/3 xã · 11:30 23/05/2021", `<tr class="commune" data-code="07192"><td class="indent">Thị trấn Cô Tô (07192)</td>`,
		"11:00 23/05/2021", "Diễn biến toàn tỉnh", `<svg class="curve"`, "<polyline points=", "</svg>",
		"<tr><td>11:30 23/05/2021</td><td class=\"num\">7.502</td><td class=\"num\">0,78%</td></tr>"} {
		if !strings.Contains(tail, want) {
			t.Errorf("HTML turnout section lacks %q", want)
		}
	}
	if n := strings.Count(tail, `<tr class="district"`); n != 13 {
		t.Errorf("HTML has %d district rows, want 13", n)
	}
	if n := strings.Count(tail, `<tr class="commune"`); n != 177 {
		t.Errorf("HTML has %d commune rows, want 177", n)
	}
	if n := strings.Count(tail, "<circle "); n != 26 {
		t.Errorf("HTML curve has %d points, want 26", n)
	}
}
