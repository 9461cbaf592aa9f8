package web_test

import (
	"encoding/csv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/store"
)

// TestScopedReport: district-scoped staff get the session report of their district
// (CSV and printable HTML): its units' incidents, the directives with a target
// there trimmed to those targets, and its turnout with its own curve; nothing of
// another district, nor the province's total, which sums other districts.
func TestScopedReport(t *testing.T) {
	f := newScopeFixture(t)
	unitsA := unitsOf(t, f.lead, distA)
	loadRegistered(t, f.lead)
	for _, r := range []struct {
		code, at string
		voted    int64
	}{{communeA, ictTime(9, 0), 1000}, {communeB, ictTime(10, 0), 900}} {
		b := turnoutBody(r.code, r.at, r.voted)
		b["via"] = "phone"
		f.lead.Do("POST", "/api/v1/turnout/reports", b, nil, 201)
	}
	f.lead.Do("POST", "/api/v1/incidents/"+f.incB.ID+"/updates", map[string]any{"body": "Tàu ra đảo chậm"}, nil, 201)
	// The province's directive to A and B about B's incident: A sees its own target
	// and receipt, and nothing of the incident.
	var mixed store.Directive
	f.lead.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "Hỗ trợ Cô Tô",
		"targets": map[string]any{"endpoints": []string{communeA, communeB}}, "incident_id": f.incB.ID}, &mixed, 201)

	path := "/api/v1/sessions/" + f.sess.ID + "/report"
	_, raw := f.dutyA.Do("GET", path+".csv", nil, nil, 200)
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(raw), "\ufeff"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	get := func(r []string, name string) string { return r[col[name]] }
	incidents, directives, units := map[string]bool{}, map[string][]string{}, map[string][]string{}
	var points [][]string
	for _, r := range recs[1:] {
		switch get(r, "record_type") {
		case "incident", "incident_update":
			incidents[get(r, "endpoint_code")] = true
		case "directive":
			directives[get(r, "id")] = r
			for _, c := range strings.Fields(get(r, "title")) {
				if !unitsA[c] {
					t.Errorf("directive %s names target %s of another district", get(r, "id"), c)
				}
			}
		case "receipt":
			if !unitsA[get(r, "endpoint_code")] {
				t.Errorf("receipt of %s in district %s's report", get(r, "endpoint_code"), distA)
			}
		case "turnout_unit":
			units[get(r, "id")] = r
		case "turnout_point":
			points = append(points, r)
		}
	}
	if len(incidents) != 1 || !incidents[communeA] {
		t.Errorf("scoped report's incidents concern %v, want %s only", incidents, communeA)
	}
	if _, ok := directives[f.dirB.ID]; ok || len(directives) != 3 {
		t.Errorf("scoped report's directives: %d (to B included: %v), want to A, to all and the mixed one", len(directives), ok)
	}
	if d := directives[mixed.ID]; d == nil || get(d, "incident_id") != "" || get(d, "title") != communeA {
		t.Errorf("mixed directive in A's report: %q", d)
	}
	if len(units) != len(unitsA) {
		t.Errorf("scoped report has %d turnout units, want district %s's %d", len(units), distA, len(unitsA))
	}
	for code := range units {
		if !unitsA[code] {
			t.Errorf("turnout unit %s in district %s's report", code, distA)
		}
	}
	if r := units[communeA]; r == nil || get(r, "voted") != "1000" || get(r, "parent_id") != distA {
		t.Errorf("commune %s in the scoped report: %q", communeA, r)
	}
	if r := units[distA]; r == nil || get(r, "voted") != "1000" {
		t.Errorf("district %s in the scoped report: %q", distA, r)
	}
	if len(points) == 0 {
		t.Fatal("scoped report has no turnout curve")
	}
	for _, p := range points {
		if get(p, "endpoint_code") != distA || get(p, "registered") != get(units[distA], "registered") {
			t.Fatalf("curve point of the scoped report: %q", p)
		}
	}
	if last := points[len(points)-1]; get(last, "voted") != "1000" {
		t.Errorf("scoped curve ends at %s voted, want the district's 1000 (not the province's 1900)", get(last, "voted"))
	}
	if strings.Contains(string(raw), communeB) || strings.Contains(string(raw), "Tàu ra đảo") {
		t.Error("the scoped CSV names district B's commune or its incident")
	}

	_, html := f.dutyA.Do("GET", path+".html", nil, nil, 200)
	page := string(html)
	for _, want := range []string{"Sự cố tại Mông Dương", "Toàn huyện", `data-scope="` + distA + `"`, `data-code="` + communeA + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("scoped HTML report lacks %q", want)
		}
	}
	for _, bad := range []string{"Sự cố tại Cô Tô", "Toàn tỉnh", `data-code="` + communeB + `"`, `data-code="` + distB + `"`} {
		if strings.Contains(page, bad) {
			t.Errorf("scoped HTML report has %q", bad)
		}
	}

	// The province's report is whole, as before.
	_, whole := f.lead.Do("GET", path+".html", nil, nil, 200)
	for _, want := range []string{"Sự cố tại Cô Tô", "Sự cố tại Mông Dương", "Toàn tỉnh", `data-code="` + communeB + `"`} {
		if !strings.Contains(string(whole), want) {
			t.Errorf("unscoped HTML report lacks %q", want)
		}
	}
	if strings.Contains(string(whole), "data-scope=") {
		t.Error("unscoped HTML report is marked as a district's")
	}
}
