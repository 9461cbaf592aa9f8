package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/opscenter/opscenter/internal/pgembed"
	"github.com/opscenter/opscenter/store"
)

// While PostgreSQL is down, an endpoint's incident report stays queued in the
// browser (the server answers 503) and is delivered, exactly once, when it returns.
func TestReportQueuedThroughDatabaseOutage(t *testing.T) {
	ctx := context.Background()
	base, err := os.MkdirTemp("", "outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755) // the server may run as the postgres user
	dir := filepath.Join(base, "pg")
	pg, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	port := pg.Port()
	t.Cleanup(func() { pg.Stop(ctx) })
	srv := startServerDSN(t, pg.DSN("postgres"))
	srv.startSession(t)
	const code = "07192"

	cam := filepath.Join(t.TempDir(), "red.y4m")
	writeY4M(t, cam, palette["red"])
	b := newBrowser(t, "endpoint-"+code, cam)
	b.run(30*time.Second, chromedp.Navigate(srv.joinLink(t, code)))
	waitFor(b, "device check", `window.__ops && window.__ops.phase === 'devicecheck'`, 30*time.Second)
	eval[bool](b, `(document.getElementById('joinbtn').click(), true)`)
	waitFor(b, "joined", `window.__ops.link === 'open'`, 30*time.Second)

	// The store handle of the harness dies with the database; close it now.
	srv.Store.Close()
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	outage := time.Now()
	eval[bool](b, `(() => { document.getElementById('rcat').value = 'communications'; document.getElementById('rsev').value = 'high';
		document.getElementById('rtitle').value = 'Mất kết nối tại điểm bầu cử số 3'; document.getElementById('rtext').value = 'Đang dùng điện thoại';
		document.getElementById('rtitle').dispatchEvent(new Event('input', {bubbles: true}));
		document.querySelector('#report button[type=submit]').click(); return true; })()`)
	waitFor(b, "report queued", `window.__ops.outbox === 1`, 30*time.Second)
	time.Sleep(3 * time.Second) // several retries meet the 503
	if n := eval[float64](b, `window.__ops.outbox`); n != 1 {
		t.Fatalf("outbox %v during the outage, want the report kept", n)
	}
	b.screenshot("join-queued")

	pg, err = pgembed.Start(ctx, pgembed.Options{DataDir: dir, Fast: true, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	took := waitFor(b, "report delivered", `window.__ops.outbox === 0`, 60*time.Second)
	t.Logf("report delivered %v after the database returned (outage began %v before)", took.Round(time.Millisecond), time.Since(outage).Round(time.Second))

	st, err := store.Open(ctx, pg.DSN("postgres"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.ListIncidents(ctx, store.IncidentFilter{Endpoint: code, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Incidents) != 1 || page.Incidents[0].Title != "Mất kết nối tại điểm bầu cử số 3" {
		t.Fatalf("incidents after the outage: %+v", page.Incidents)
	}
}
