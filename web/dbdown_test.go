package web_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/pgembed"
	"github.com/opscenter/opscenter/store"
)

// While PostgreSQL is stopped, API writes answer a clear 503 and write nothing; when
// it returns on the same socket, the same request succeeds without a restart.
func TestDatabaseDownAnswers503(t *testing.T) {
	ctx := context.Background()
	base, err := os.MkdirTemp("", "dbdown-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	dir := filepath.Join(base, "pg")
	pg, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	port := pg.Port()
	defer func() { pg.Stop(ctx) }()
	a := apptest.StartDSN(t, pg.DSN("postgres"), nil)
	lead := a.User("lead", auth.RoleLeader)
	body := map[string]any{"id": uuid.NewString(), "title": "Bầu cử", "planned_start": "2021-05-23T06:30:00+07:00", "planned_end": "2021-05-23T19:00:00+07:00"}

	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var e struct{ Error string }
	lead.Do("POST", "/api/v1/sessions", body, &e, 503)
	t.Logf("503 answered in %v with the database down", time.Since(start))
	if e.Error != "database_unavailable" {
		t.Fatalf("error %q", e.Error)
	}
	a.Anon().Do("GET", "/readyz", nil, nil, 503)
	a.Anon().Do("GET", "/healthz", nil, nil, 200)

	pg, err = pgembed.Start(ctx, pgembed.Options{DataDir: dir, Fast: true, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _ := lead.Do("POST", "/api/v1/sessions", body, nil, 0)
		if st == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d 15 s after the database returned", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	lead.Do("POST", "/api/v1/sessions", body, nil, 200) // the retry is recognised
	var list struct{ Sessions []store.Session }
	lead.Do("GET", "/api/v1/sessions", nil, &list, 200)
	if len(list.Sessions) != 1 {
		t.Fatalf("%d sessions after retries, want 1", len(list.Sessions))
	}
}
