package signaling

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/wire"
)

// online joins code and brings its media up: online with the media path up.
func outageOnline(r *Room, code, peer string) *conn {
	c := fakeConn(code, peer, wire.RoleEndpoint, 0)
	r.join(c)
	r.mediaState(c, 0, true)
	return c
}

// The room's outage rules: an endpoint online during the session that goes
// offline starts an outage lost at the first loss; one that never was online,
// or that returns within the threshold, opens nothing; past the threshold the
// outage is opening, and a return after that is kept for its timeline entry.
func TestOutageRoomRules(t *testing.T) {
	r := testRoom("a", "b", "c", "d")
	r.sessionID = "s1"
	const after = 2 * time.Second

	ca := outageOnline(r, "a", "a#1")
	r.leave(ca, true) // clean close: offline at once
	t0 := time.Now()

	cb := fakeConn("b", "b#1", wire.RoleEndpoint, 0) // joined, never online
	r.join(cb)
	r.leave(cb, true)

	cc := outageOnline(r, "c", "c#1")
	r.leave(cc, true)
	outageOnline(r, "c", "c#2") // back at once

	cd := outageOnline(r, "d", "d#1")
	r.leave(cd, false) // dropped: degraded, offline PathLostGrace later
	dropAt := time.Now()
	if n := len(r.outages); n != 2 {
		t.Fatalf("outages %+v, want a and c", r.outages)
	}
	r.tick(dropAt.Add(PathLostGrace + time.Second))
	if n := len(r.outages); n != 3 {
		t.Fatalf("outages %+v after the grace, want a, c, d", r.outages)
	}
	if d := r.outages[2]; d.Code != "d" || dropAt.Sub(d.LostAt) > 2*time.Second || d.LostAt.After(dropAt) {
		t.Fatalf("dropped endpoint's outage %+v: lost_at should be the drop (%v), not the offline time", d, dropAt)
	}

	work := r.outageStep(t0.Add(after/2), after)
	if len(work) != 0 || len(r.outages) != 2 {
		t.Fatalf("before the threshold: work %+v, outages %+v (c came back and must be gone)", work, r.outages)
	}
	work = r.outageStep(t0.Add(after+100*time.Millisecond), after)
	if len(work) != 1 || work[0].Code != "a" || !work[0].Opening || work[0].SessionID != "s1" {
		t.Fatalf("past the threshold: work %+v", work)
	}
	if work[0].IncidentID() != OutageIncidentID("s1", "a", t0) && work[0].IncidentID() != OutageIncidentID("s1", "a", t0.Add(-time.Second)) {
		t.Fatalf("incident id not derived from session, code and loss time")
	}
	r.outageDone(work[0], true, false)
	outageOnline(r, "a", "a#2")
	work = r.outageStep(t0.Add(after+time.Second), after)
	if len(work) != 1 || work[0].Code != "a" || !work[0].Opened || work[0].ReturnedAt.IsZero() {
		t.Fatalf("after the return: work %+v", work)
	}
	if txt := outageReturnText(work[0]); !strings.Contains(txt, "thời gian mất kết nối") {
		t.Fatalf("return text %q", txt)
	}
	r.outageDone(work[0], false, true)

	// The session ends before d's threshold: no incident.
	r.sessionID = ""
	if work = r.outageStep(dropAt.Add(PathLostGrace+2*time.Second+after), after); len(work) != 0 || len(r.outages) != 0 {
		t.Fatalf("after the session ended: work %+v outages %+v", work, r.outages)
	}
}

// The live state keeps outages and who was online; a restore turns an endpoint
// online at the stop into an outage lost at the file's last save, offline from
// the restore.
func TestOutageSurvivesRestore(t *testing.T) {
	r := testRoom("a", "b")
	r.sessionID = "s1"
	ca := outageOnline(r, "a", "a#1")
	outageOnline(r, "b", "b#1")
	r.leave(ca, true)
	st := r.durable()
	saved := time.Now().Add(-3 * time.Second).UTC()
	st.SavedAt = saved
	b, _ := json.Marshal(st)
	var back LiveState
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Outages) != 1 || back.Outages[0].Code != "a" || len(back.Online) != 1 || back.Online[0] != "b" {
		t.Fatalf("state file: outages %+v online %v", back.Outages, back.Online)
	}
	r2 := testRoom("a", "b")
	now := time.Now()
	r2.restore(back, "s1", now)
	if len(r2.outages) != 2 {
		t.Fatalf("restored outages %+v", r2.outages)
	}
	a, bo := r2.outages[0], r2.outages[1]
	if a.IncidentID() != st.Outages[0].IncidentID() {
		t.Fatal("the restored outage has another incident id")
	}
	if !bo.LostAt.Equal(saved.Truncate(time.Second)) || !bo.OfflineAt.Equal(now.UTC()) {
		t.Fatalf("online at the stop: %+v, want lost at %v, offline at %v", bo, saved, now)
	}
	// Another session in progress: endpoints online in the old one are not outages of the new.
	r3 := testRoom("a", "b")
	r3.restore(back, "s2", now)
	if len(r3.outages) != 1 || r3.outages[0].Code != "a" {
		t.Fatalf("restore into another session: %+v", r3.outages)
	}
}

func TestOutageViDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second:                 "5 giây",
		125 * time.Second:               "2 phút 5 giây",
		time.Hour + 3*time.Second:       "1 giờ 0 phút 3 giây",
		-time.Second:                    "0 giây",
		1500 * time.Millisecond:         "2 giây",
		2*time.Hour + 59*time.Minute:    "2 giờ 59 phút 0 giây",
		59*time.Minute + 59*time.Second: "59 phút 59 giây",
	} {
		if got := viDuration(d); got != want {
			t.Errorf("viDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
