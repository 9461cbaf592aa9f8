package replay

import (
	"testing"
	"time"

	"github.com/opscenter/opscenter/store"
)

// TestPlanEmbedded: the embedded scenario synthesizes the published totals, the
// same figures every time, and Cô Tô first at 11:30.
func TestPlanEmbedded(t *testing.T) {
	s, err := LoadScenario("")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Units) != 191 {
		t.Fatalf("%d units, want 191", len(p.Units))
	}
	var reg, voted int64
	for _, c := range p.Communes("22") {
		reg += p.Registered[c.Code]
		voted += p.Voted[c.Code]
		if p.Voted[c.Code] > p.Registered[c.Code] || p.Voted[c.Code]*2 <= p.Registered[c.Code] {
			t.Errorf("%s: voted %d of %d", c.Code, p.Voted[c.Code], p.Registered[c.Code])
		}
	}
	if reg != 959021 || voted != 958732 {
		t.Errorf("totals %d / %d, want 958732 / 959021", voted, reg)
	}
	// Each district complete at the time of its last commune; Cô Tô first.
	first, firstCode := "", ""
	for _, d := range p.Units {
		if d.Kind != store.KindDistrict {
			continue
		}
		last := ""
		for _, c := range p.Communes(d.Code) {
			if l := s.Local(p.Completed[c.Code]); l > last {
				last = l
			}
		}
		if first == "" || last < first {
			first, firstCode = last, d.Code
		}
	}
	if firstCode != "207" || first != "2021-05-23 11:30" {
		t.Errorf("first district %s at %s, want 207 at 2021-05-23 11:30", firstCode, first)
	}
	// Reports per commune rise and end complete at the final figure.
	counts := map[Kind]int{}
	last := map[string]int64{}
	for _, e := range p.Events {
		counts[e.Kind]++
		if e.Kind == KindReport {
			if e.Report.Voted < last[e.Code] {
				t.Fatalf("%s decreases at %s", e.Code, s.Local(e.At))
			}
			last[e.Code] = e.Report.Voted
			if e.Report.Complete && e.Report.Voted != p.Voted[e.Code] {
				t.Errorf("%s completes with %d, want %d", e.Code, e.Report.Voted, p.Voted[e.Code])
			}
		}
	}
	t.Logf("events: %v", counts)
	if counts[KindJoin] != 190 || counts[KindIncident] != len(s.Incidents) || counts[KindDirective] != len(s.Directives) {
		t.Errorf("events %v", counts)
	}
	// Deterministic: the same plan again.
	q, err := s.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Events) != len(p.Events) {
		t.Fatal("plans differ in length")
	}
	for i := range p.Events {
		a, b := p.Events[i], q.Events[i]
		if !a.At.Equal(b.At) || a.Kind != b.Kind || a.Code != b.Code || (a.Report != nil && *a.Report != *b.Report) {
			t.Fatalf("event %d differs: %+v / %+v", i, a, b)
		}
	}
}

func TestParseScenarioErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml string }{
		{"unknown key", "name: x\nbogus: 1\n"},
		{"bad offset", "roster: r\nutc_offset: x\ndate: 2021-05-23\nsession: {title: t, start: '06:30', end: '19:00'}\n"},
		{"end before start", "roster: r\nutc_offset: '+07:00'\ndate: 2021-05-23\nsession: {title: t, start: '19:00', end: '06:30'}\nturnout: {interval: 45m}\n"},
	} {
		if _, err := ParseScenario([]byte(c.yaml)); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestUncoveredTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, c := range []struct {
		spans [][2]time.Time
		want  time.Duration
	}{
		{nil, 100 * time.Second},
		{[][2]time.Time{{at(0), at(100)}}, 0},
		{[][2]time.Time{{at(-5), at(40)}, {at(50), at(120)}}, 10 * time.Second},
		{[][2]time.Time{{at(30), at(60)}, {at(10), at(40)}}, 50 * time.Second},
	} {
		if got := uncoveredTime(c.spans, at(0), at(100)); got != c.want {
			t.Errorf("uncoveredTime(%v) = %v, want %v", c.spans, got, c.want)
		}
	}
}
