package replay

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReplayShort is the suite's replay: the whole day at speed 1200 (about 40 s
// of scenario), the command room and 20 endpoints with media, against a freshly
// built server on the embedded PostgreSQL; every end-of-run check must pass. It
// runs three times: undisturbed, with PostgreSQL stopped and started mid-day, and
// with opscenter killed (-9) and started again, since "exactly once" is what the
// faults put to the test.
func TestReplayShort(t *testing.T) {
	for _, fault := range []string{"", "db-restart", "kill"} {
		name := fault
		if name == "" {
			name = "undisturbed"
		}
		t.Run(name, func(t *testing.T) { replayShort(t, fault) })
	}
}

func replayShort(t *testing.T, fault string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadScenario("")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var progress strings.Builder
	start := time.Now()
	res, err := Run(ctx, Options{Scenario: s, Speed: 1200, Media: "some", Fault: fault, Out: out, RepoDir: repo, Progress: &progress})
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	var sum strings.Builder
	res.Print(&sum)
	t.Logf("replay took %v\n%s", time.Since(start).Round(time.Second), sum.String())
	for _, c := range res.Checks {
		if !c.OK {
			t.Errorf("check failed: %s: %s", c.Name, c.Detail)
		}
	}
	wantChecks := []string{"every event went through", "province turnout", "every district is the sum of its communes",
		"first district complete", "every incident, directive, acknowledgement, reply and report in the log exactly once",
		"acknowledgements by app, by phone, and never as scripted", "opscenter audit verify",
		"recordings cover the session, with markers for the incidents", "the outage opened one incident by itself", "out files"}
	for _, name := range wantChecks {
		if !slices.ContainsFunc(res.Checks, func(c Check) bool { return c.Name == name }) {
			t.Errorf("check %q not run", name)
		}
	}
	if f := res.Figures; f.Joined != 190 || f.Forwarded == 0 || f.ServerRSSMiB <= 0 || f.JoinP50 <= 0 {
		t.Errorf("figures not produced: %+v", f)
	}
	for _, name := range []string{"report.csv", "report.html", "recordings.json", "markers.vtt", "turnout.csv", "checks.txt"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	f, err := os.Open(filepath.Join(out, "turnout.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 192 || strings.Join(rows[0], ",") != "code,name,level,registered,voted,percent,completed_at" {
		t.Fatalf("turnout.csv: %d rows, header %v", len(rows), rows[0])
	}
	want := map[string]string{
		"22":  "22,Tỉnh Quảng Ninh,province,959021,958732,99.97,2021-05-23 19:00",
		"207": "207,Huyện Cô Tô,district,4502,4502,100.00,2021-05-23 11:30",
	}
	for _, r := range rows[1:] {
		if w, ok := want[r[0]]; ok && strings.Join(r, ",") != w {
			t.Errorf("turnout.csv row %v, want %s", r, w)
		}
	}
}
