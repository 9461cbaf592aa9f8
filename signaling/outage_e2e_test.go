package signaling_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// outageAfter is live.outage_incident_after in these tests (60 s in production).
const outageAfter = 3 * time.Second

func outageConfig(c *config.Config) { c.Live.OutageIncidentAfter = outageAfter }

// outageIncidents lists the communications incidents of one endpoint.
func outageIncidents(t *testing.T, st *store.Store, code string) []store.Incident {
	t.Helper()
	page, err := st.ListIncidents(context.Background(), store.IncidentFilter{Endpoint: code, Category: "communications", Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return page.Incidents
}

// online waits until the server sees code online (connected or degraded).
func waitOnline(t *testing.T, a *apptest.App, code string, timeout time.Duration) time.Duration {
	t.Helper()
	return waitT(t, code+" online", timeout, func() bool {
		p := a.Live.Presence(code)
		return p == wire.StateConnected || p == wire.StateDegraded
	})
}

func dialOnline(t *testing.T, l *live, code string) *client.Client {
	t.Helper()
	c := l.endpoint(code)
	if err := c.WaitConnected(20 * time.Second); err != nil {
		t.Fatalf("%s media: %v", code, err)
	}
	waitOnline(t, l.a, code, 20*time.Second)
	return c
}

// checkOutageIncident: exactly one incident for code, as the system, lost at lost.
func checkOutageIncident(t *testing.T, l *live, code string, lostFrom, lostTo time.Time) store.Incident {
	t.Helper()
	list := outageIncidents(t, l.a.Store, code)
	if len(list) != 1 {
		t.Fatalf("%s: %d communications incidents, want exactly 1: %+v", code, len(list), list)
	}
	in := list[0]
	t.Logf("%s: incident %s %q occurred_at %v (lost between %v and %v) created_at %v",
		code, in.ID, in.Title, in.OccurredAt.UTC(), lostFrom.UTC(), lostTo.UTC(), in.CreatedAt.UTC())
	// occurred_at is the loss time to the second.
	if in.OccurredAt.Before(lostFrom.Add(-time.Second)) || in.OccurredAt.After(lostTo) {
		t.Errorf("%s: occurred_at %v, want the loss time (%v .. %v)", code, in.OccurredAt, lostFrom, lostTo)
	}
	if in.Severity != "high" || in.Status != "open" || in.ReportedBy != signaling.OutageActor || in.SessionID != l.sessID {
		t.Errorf("%s: severity %s status %s reported_by %s session %s", code, in.Severity, in.Status, in.ReportedBy, in.SessionID)
	}
	if !strings.HasPrefix(in.Title, "Mất kết nối: ") || !strings.Contains(in.Title, in.EndpointName) {
		t.Errorf("%s: title %q, want \"Mất kết nối: %s\"", code, in.Title, in.EndpointName)
	}
	if want := signaling.OutageIncidentID(l.sessID, code, in.OccurredAt); in.ID != want {
		t.Errorf("%s: incident id %s, want the deterministic %s", code, in.ID, want)
	}
	return in
}

func timeline(t *testing.T, st *store.Store, id string) []store.IncidentUpdate {
	t.Helper()
	in, err := st.GetIncident(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in.Timeline
}

// An endpoint online during the session that leaves (a clean close, or a
// network loss) and stays away past live.outage_incident_after gets exactly
// one communications incident, as the system, occurred at the loss; its return
// adds one timeline entry with the outage's length. One back within the
// threshold, and one that never joined, get nothing.
func TestOutageOpensIncidentE2E(t *testing.T) {
	a := apptest.Start(t, outageConfig)
	l := &live{t: t, a: a, leader: a.User("lead", auth.RoleLeader)}
	l.startSession()
	codes := l.communes(4)
	closed, lost, blip, never := codes[0], codes[1], codes[2], codes[3]

	cClosed := dialOnline(t, l, closed)
	cLost := dialOnline(t, l, lost)
	cBlip := dialOnline(t, l, blip)

	closedAt := time.Now()
	cClosed.Close()
	lostAt := time.Now()
	cLost.Drop() // no close frame: the server notices by itself
	lostDone := time.Now()
	blipAt := time.Now()
	cBlip.Close()
	dialOnline(t, l, blip)
	blipBack := time.Since(blipAt)
	t.Logf("%s back online %v after its close (threshold %v)", blip, blipBack, outageAfter)
	if blipBack >= outageAfter {
		t.Fatalf("%s took %v to come back, longer than the %v threshold: the machine is too slow for this test", blip, blipBack, outageAfter)
	}

	d := waitT(t, closed+" incident", outageAfter+5*outageAfter, func() bool { return len(outageIncidents(t, a.Store, closed)) > 0 })
	took := time.Since(closedAt)
	t.Logf("%s (clean close): incident %v after the close (threshold %v; waited %v)", closed, took, outageAfter, d)
	if took < outageAfter {
		t.Errorf("%s: incident after %v, before the %v threshold", closed, took, outageAfter)
	}
	inClosed := checkOutageIncident(t, l, closed, closedAt, time.Now())
	if inClosed.OccurredAt.After(closedAt.Add(time.Second)) {
		t.Errorf("occurred_at %v is not the close (%v)", inClosed.OccurredAt, closedAt)
	}

	// A network loss: offline PathLostGrace after the loss, the incident the
	// threshold after that, occurred_at the loss (not the offline time).
	waitT(t, lost+" incident", 5*(signaling.PathLostGrace+outageAfter), func() bool { return len(outageIncidents(t, a.Store, lost)) > 0 })
	t.Logf("%s (network loss): incident %v after the drop (offline after %v, threshold %v)", lost, time.Since(lostAt), signaling.PathLostGrace, outageAfter)
	inLost := checkOutageIncident(t, l, lost, lostAt, lostDone.Add(time.Second))

	// The incidents do not multiply while the endpoints stay away.
	time.Sleep(2 * outageAfter)
	for _, code := range []string{closed, lost} {
		if n := len(outageIncidents(t, a.Store, code)); n != 1 {
			t.Errorf("%s: %d incidents after waiting, want 1", code, n)
		}
	}
	for _, code := range []string{blip, never} {
		if n := len(outageIncidents(t, a.Store, code)); n != 0 {
			t.Errorf("%s: %d incidents, want none (back within the threshold / never joined)", code, n)
		}
	}

	// The return: one timeline entry with the outage's length.
	backAt := time.Now()
	dialOnline(t, l, closed)
	dialOnline(t, l, lost)
	for _, in := range []store.Incident{inClosed, inLost} {
		d := waitT(t, in.EndpointCode+" return entry", 5*5*time.Second, func() bool { return len(timeline(t, a.Store, in.ID)) > 0 })
		t.Logf("%s: return entry %v after waiting", in.EndpointCode, d)
	}
	time.Sleep(outageAfter)
	for _, in := range []store.Incident{inClosed, inLost} {
		tl := timeline(t, a.Store, in.ID)
		if len(tl) != 1 {
			t.Fatalf("%s: timeline %+v, want one return entry", in.EndpointCode, tl)
		}
		t.Logf("%s: timeline entry by %s: %q (outage ≈ %v)", in.EndpointCode, tl[0].Author, tl[0].Body, backAt.Sub(in.OccurredAt).Round(time.Second))
		if tl[0].Author != signaling.OutageActor || !strings.Contains(tl[0].Body, "thời gian mất kết nối") {
			t.Errorf("%s: return entry %+v", in.EndpointCode, tl[0])
		}
		if n := len(outageIncidents(t, a.Store, in.EndpointCode)); n != 1 {
			t.Errorf("%s: %d incidents after the return, want 1", in.EndpointCode, n)
		}
	}
	if n := auditCount(t, l, "incident.created", ""); n != 2 {
		t.Errorf("%d incident.created events, want 2", n)
	}
}

// Outages survive restarts of opscenter (the live state file): one lost before
// a crash, and one online at the crash that never comes back, each get exactly
// one incident, even across a second crash after the incidents were written;
// one back within the threshold after the restart gets none.
func TestOutageAcrossRestartE2E(t *testing.T) {
	a := apptest.Start(t, outageConfig)
	l := &live{t: t, a: a, leader: a.User("lead", auth.RoleLeader)}
	l.startSession()
	codes := l.communes(3)
	dropped, stayed, back := codes[0], codes[1], codes[2]
	cDropped := dialOnline(t, l, dropped)
	dialOnline(t, l, stayed)
	dialOnline(t, l, back)

	st, journal, dsn := a.Store, a.Config.Database.JournalPath, a.DSN // the live state is in PostgreSQL
	droppedAt := time.Now()
	cDropped.Close()
	waitT(t, "outage and online endpoints in the live state", 10*time.Second, func() bool {
		b, _ := st.LoadLiveState(context.Background())
		s := string(b)
		return strings.Contains(s, `"code": "`+dropped+`"`) && strings.Contains(s, `"`+stayed+`"`) && strings.Contains(s, `"`+back+`"`)
	})
	b, _ := st.LoadLiveState(context.Background())
	t.Logf("live state before the crash:\n%s", b)
	crash := time.Now()
	a.Kill() // before the threshold: nothing is written yet
	t.Logf("crash %v after %s's close", crash.Sub(droppedAt), dropped)

	restart := func() *apptest.App {
		start := time.Now()
		b := apptest.StartDSN(t, dsn, func(c *config.Config) {
			outageConfig(c)
			c.Database.JournalPath = journal
		})
		t.Logf("opscenter restarted in %v", time.Since(start))
		return b
	}
	bApp := restart()
	l.a = bApp
	restoredAt := time.Now()
	dialOnline(t, l, back)
	t.Logf("%s back online %v after the restart (threshold %v)", back, time.Since(restoredAt), outageAfter)

	waitT(t, "incidents after the restart", 5*2*outageAfter, func() bool {
		return len(outageIncidents(t, bApp.Store, dropped)) > 0 && len(outageIncidents(t, bApp.Store, stayed)) > 0
	})
	t.Logf("both incidents %v after the restart", time.Since(restoredAt))
	inDropped := checkOutageIncident(t, l, dropped, droppedAt, crash)
	// Online at the crash: lost at the state file's last save, at most the 5 s
	// heartbeat before the crash.
	inStayed := checkOutageIncident(t, l, stayed, crash.Add(-6*time.Second), crash.Add(time.Second))

	// A second crash after the incidents were written, and a third start: still one each.
	time.Sleep(time.Second) // the state file records them opened
	bApp.Kill()
	cApp := restart()
	l.a = cApp
	// back was online on B when B died: it must return to C within the threshold too.
	restoredAt = time.Now()
	dialOnline(t, l, back)
	t.Logf("%s back online %v after the second restart", back, time.Since(restoredAt))
	time.Sleep(2 * outageAfter)
	for _, code := range []string{dropped, stayed} {
		if n := len(outageIncidents(t, cApp.Store, code)); n != 1 {
			t.Errorf("%s: %d incidents after two restarts, want 1", code, n)
		}
	}
	if n := len(outageIncidents(t, cApp.Store, back)); n != 0 {
		t.Errorf("%s: %d incidents, want none (back within the threshold after the restart)", back, n)
	}
	// The return after all that: one timeline entry.
	dialOnline(t, l, dropped)
	d := waitT(t, dropped+" return entry", 25*time.Second, func() bool { return len(timeline(t, cApp.Store, inDropped.ID)) > 0 })
	t.Logf("%s: return entry %v after its return", dropped, d)
	time.Sleep(outageAfter)
	if tl := timeline(t, cApp.Store, inDropped.ID); len(tl) != 1 {
		t.Errorf("%s: timeline %+v, want one entry", dropped, tl)
	} else {
		t.Logf("%s: %q", dropped, tl[0].Body)
	}
	if tl := timeline(t, cApp.Store, inStayed.ID); len(tl) != 0 {
		t.Errorf("%s: timeline %+v, want none (it never came back)", stayed, tl)
	}
	if n := auditCount(t, l, "incident.created", ""); n != 2 {
		t.Errorf("%d incident.created events, want 2", n)
	}
}

// PostgreSQL is away when the threshold passes: the live session goes on, the
// incident waits, and is written once, with the loss time, when it returns.
func TestOutageWhileDatabaseDownE2E(t *testing.T) {
	ctx := context.Background()
	pg := startOwnPostgres(t, "outage-dbdown-")
	a := apptest.StartDSN(t, pg.DSN(), outageConfig)
	l := &live{t: t, a: a, leader: a.User("lead", auth.RoleLeader)}
	l.startSession()
	codes := l.communes(2)
	gone, stays := codes[0], codes[1]
	cGone := dialOnline(t, l, gone)
	dialOnline(t, l, stays)

	closedAt := time.Now()
	cGone.Close()
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("PostgreSQL stopped %v after %s's close", down.Sub(closedAt), gone)
	time.Sleep(2 * outageAfter) // the threshold passes with the database away
	// The room is not held up: presence still answers at once.
	start := time.Now()
	if p := a.Live.Presence(stays); p != wire.StateConnected && p != wire.StateDegraded {
		t.Errorf("%s is %s while the database is down", stays, p)
	}
	if p := a.Live.Presence(gone); p != wire.StateOffline {
		t.Errorf("%s is %s, want offline", gone, p)
	}
	t.Logf("presence answered in %v with PostgreSQL down", time.Since(start))

	pg.restart()
	back := time.Now()
	t.Logf("PostgreSQL back after %v", back.Sub(down))
	d := waitT(t, gone+" incident after PostgreSQL returned", 30*time.Second, func() bool {
		page, err := a.Store.ListIncidents(ctx, store.IncidentFilter{Endpoint: gone, Category: "communications"})
		return err == nil && len(page.Incidents) > 0
	})
	t.Logf("incident written %v after PostgreSQL returned", d)
	checkOutageIncident(t, l, gone, closedAt, back)
	time.Sleep(outageAfter)
	if n := len(outageIncidents(t, a.Store, gone)); n != 1 {
		t.Errorf("%s: %d incidents, want 1", gone, n)
	}
	if n := len(outageIncidents(t, a.Store, stays)); n != 0 {
		t.Errorf("%s: %d incidents, want none", stays, n)
	}
}
