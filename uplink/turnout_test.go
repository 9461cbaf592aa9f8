package uplink_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/client"
)

// startSession creates and starts a session at a node, planned from an hour ago.
func startSession(t *testing.T, lead *apptest.Client, title string) string {
	t.Helper()
	var s store.Session
	lead.Do("POST", "/api/v1/sessions", map[string]any{"id": uuid.NewString(), "title": title,
		"planned_start": time.Now().Add(-time.Hour), "planned_end": time.Now().Add(12 * time.Hour)}, &s, 201)
	lead.Do("POST", "/api/v1/sessions/"+s.ID+"/start", nil, &s, 200)
	return s.ID
}

// unit reads one unit's turnout at a node.
func unit(t *testing.T, c *apptest.Client, code string) store.TurnoutUnit {
	t.Helper()
	var pic store.TurnoutPicture
	c.Do("GET", "/api/v1/turnout?code="+code, nil, &pic, 200)
	if len(pic.Units) != 1 {
		t.Fatalf("turnout of %s: %+v", code, pic)
	}
	return pic.Units[0]
}

// A commune's report at the province node reaches the national node as the
// province's own figure (one report of unit 22), and sums into the nation.
func TestTurnoutGoesUp(t *testing.T) {
	tr := startTree(t)
	waitUp(t, tr, "join", 20*time.Second)
	nat := tr.parent.User("nat-lead", auth.RoleLeader)
	prov := tr.child.User("qn-lead", auth.RoleLeader)
	startSession(t, nat, "Bầu cử 23/5/2021 (toàn quốc)")
	startSession(t, prov, "Bầu cử 23/5/2021 (Quảng Ninh)")

	report := func(code string, voted int64) time.Time {
		at := time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
		tr.child.Endpoint(code).Do("POST", "/api/v1/turnout/reports", map[string]any{"id": uuid.NewString(),
			"endpoint_code": code, "as_of": at, "voted": voted}, nil, 201)
		return at
	}
	waitNation := func(want int64) time.Duration {
		t.Helper()
		start := time.Now()
		err := client.WaitFor(func() bool { return unit(t, nat, "22").Voted == want }, 25*time.Second)
		if err != nil {
			t.Fatalf("the nation sees 22 at %d, want %d: %v", unit(t, nat, "22").Voted, want, err)
		}
		return time.Since(start)
	}

	report("07192", 500)
	d1 := waitNation(500)
	asOf := report("06862", 300)
	d2 := waitNation(800)
	t.Logf("turnout propagation, commune report at the province → the province's figure at the nation: %v, %v (goal 5 s)", d1, d2)
	// Conventions: goal 5 s, asserted with a 5× margin.
	for _, d := range []time.Duration{d1, d2} {
		if d > 25*time.Second {
			t.Fatalf("propagation %v over 25 s", d)
		}
	}

	u := unit(t, nat, "22")
	if u.UnitsReported != 1 || u.UnitsTotal != 1 || u.LastReportAt == nil || !u.LastReportAt.Equal(asOf) {
		t.Fatalf("22 at the nation is one unit's report as of the province's latest: %+v (as_of %v)", u, asOf)
	}
	root := unit(t, nat, "00")
	if root.Voted != 800 || root.UnitsTotal != 63 || root.UnitsReported != 1 {
		t.Fatalf("the nation sums its provinces: %+v", root)
	}
	// One report per figure at the parent, reported by 22 itself.
	var reps struct{ Reports []store.TurnoutReport }
	nat.Do("GET", "/api/v1/turnout/reports?code=22", nil, &reps, 200)
	if len(reps.Reports) != 2 || reps.Reports[1].Voted != 800 {
		t.Fatalf("reports of 22 at the nation: %+v", reps.Reports)
	}
	if st := tr.child.Uplink.Status(); st.TurnoutVoted != 800 {
		t.Fatalf("uplink status %+v", st)
	}
}
