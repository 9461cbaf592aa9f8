package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// TestScopedUsers: a staff account limited to a district names a district of the
// roster; the scope comes back with login and with every token lookup.
func TestScopedUsers(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	st, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	storetest.LoadRoster(t, st)
	h, _ := auth.HashPassword("a long enough password")
	if _, err := st.CreateScopedUser(ctx, "test", "duty195", auth.RoleDuty, "195", h); err != nil {
		t.Fatal(err)
	}
	var fe *store.FieldError
	for _, c := range []struct {
		role     auth.Role
		district string
	}{{auth.RoleDuty, "06760"}, {auth.RoleDuty, "22"}, {auth.RoleDuty, "999"}, {auth.RoleAdmin, "195"}} {
		if _, err := st.CreateScopedUser(ctx, "test", "x", c.role, c.district, h); !errors.As(err, &fe) || fe.Field != "district" {
			t.Fatalf("%s of %s: %v", c.role, c.district, err)
		}
	}
	tok, p, err := st.Login(ctx, "duty195", "a long enough password", time.Hour)
	if err != nil || p.District != "195" {
		t.Fatalf("login: %+v %v", p, err)
	}
	if p, err = st.Resolve(ctx, tok); err != nil || p.District != "195" || !p.Scoped() || p.Can(auth.CapRunSession) {
		t.Fatalf("resolve: %+v %v", p, err)
	}
	// The schema itself refuses a scoped admin and a code outside the roster.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO users (username, password_hash, role, district_code) VALUES ('a1', 'h', 'admin', '195')`); err == nil {
		t.Fatal("schema accepted a scoped admin")
	}
	if _, err := conn.Exec(ctx, `INSERT INTO users (username, password_hash, role, district_code) VALUES ('a2', 'h', 'duty', '999')`); err == nil {
		t.Fatal("schema accepted an unknown district")
	}
}

// TestScopedQueries: the district filters of the store's lists and reads.
func TestScopedQueries(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	startedSession(t, st)
	parents, err := st.EndpointParents(ctx)
	if err != nil || len(parents) != 191 || parents["06760"] != "195" || parents["195"] != "22" || parents["22"] != "" {
		t.Fatalf("parents: %d %v", len(parents), err)
	}
	eps, err := st.ListEndpoints(ctx, store.EndpointFilter{Scope: "195"})
	if err != nil || len(eps) != 17 || eps[0].Code != "195" {
		t.Fatalf("scoped roster: %d %v", len(eps), err)
	}
	for _, code := range []string{"06760", "07192"} {
		if _, _, err := st.CreateIncident(ctx, "user:duty", store.NewIncident{ID: uuid.NewString(), EndpointCode: code,
			Category: "other", Severity: "low", Title: code}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := st.ListIncidents(ctx, store.IncidentFilter{Scope: "195"})
	if err != nil || len(page.Incidents) != 1 || page.Incidents[0].EndpointCode != "06760" {
		t.Fatalf("scoped incidents: %+v %v", page.Incidents, err)
	}
	if page, _ = st.ListIncidents(ctx, store.IncidentFilter{Scope: "195", District: "207"}); len(page.Incidents) != 0 {
		t.Fatalf("scope and another district: %+v", page.Incidents)
	}
	all := issue(t, st, store.Targets{All: true})
	other := issue(t, st, store.Targets{District: "207"})
	mixed := issue(t, st, store.Targets{Endpoints: []string{"06760", "07192"}})
	d, err := st.GetDirectiveIn(ctx, all.ID, "195")
	if err != nil || len(d.Receipts) != 17 || d.Summary.Total != 17 || len(d.TargetCodes) != 17 {
		t.Fatalf("directive to all from 195: %d receipts %v", len(d.Receipts), err)
	}
	if _, err := st.GetDirectiveIn(ctx, other.ID, "195"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("directive to 207 from 195: %v", err)
	}
	if d, err = st.GetDirectiveIn(ctx, mixed.ID, "195"); err != nil || len(d.Targets.Endpoints) != 1 || d.Targets.Endpoints[0] != "06760" {
		t.Fatalf("mixed directive from 195: %+v %v", d.Targets, err)
	}
	list, err := st.ListDirectives(ctx, store.DirectiveFilter{Scope: "195"})
	if err != nil || len(list) != 2 {
		t.Fatalf("scoped directives: %d %v", len(list), err)
	}
	reg, err := st.ListRegisteredIn(ctx, "195")
	if err != nil || len(reg) != 16 {
		t.Fatalf("registered of 195: %d %v", len(reg), err)
	}
}
