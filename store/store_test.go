package store_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

func TestRosterLoadIdempotentAndUpdates(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	all, err := st.ListEndpoints(ctx, store.EndpointFilter{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range all {
		kinds[e.Kind]++
	}
	if len(all) != 191 || kinds["province"] != 1 || kinds["district"] != 13 || kinds["commune"] != 177 {
		t.Fatalf("roster: %d endpoints, %v", len(all), kinds)
	}
	if all[0].Code != "22" {
		t.Fatalf("first endpoint %q, want the command room 22", all[0].Code)
	}
	// Loading again changes nothing.
	entries := []store.RosterEntry{}
	for _, e := range all {
		entries = append(entries, store.RosterEntry{Code: e.Code, Name: e.Name, Kind: e.Kind, UnitType: e.UnitType, ParentCode: e.ParentCode})
	}
	res, err := st.LoadRoster(ctx, "2021-05-23", entries)
	if err != nil || res.Added != 0 || res.Updated != 0 || res.Unchanged != 191 {
		t.Fatalf("reload: %+v %v", res, err)
	}
	// A renamed commune is updated in place and audited; its incidents keep their key.
	for i := range entries {
		if entries[i].Code == "07192" {
			entries[i].Name = "Xã Thử Nghiệm"
		}
	}
	before, _ := st.LastEventID(ctx)
	res, err = st.LoadRoster(ctx, "2021-05-23", entries)
	if err != nil || res.Updated != 1 {
		t.Fatalf("rename: %+v %v", res, err)
	}
	e, err := st.GetEndpoint(ctx, "07192")
	if err != nil || e.Name != "Xã Thử Nghiệm" {
		t.Fatalf("renamed endpoint %+v %v", e, err)
	}
	evs, _ := st.EventsAfter(ctx, before, 10)
	if len(evs) != 1 || evs[0].Action != "endpoint.updated" || !strings.Contains(string(evs[0].Before), "07192") {
		t.Fatalf("rename not audited: %+v", evs)
	}
	district, err := st.ListEndpoints(ctx, store.EndpointFilter{District: "207"})
	if err != nil || len(district) < 2 || district[0].Code != "207" {
		t.Fatalf("district filter: %v %v", district, err)
	}
	for _, d := range district[1:] {
		if d.ParentCode != "207" {
			t.Fatalf("district filter leaked %+v", d)
		}
	}
}

func TestParseRosterRejects(t *testing.T) {
	head := "code\tname\tkind\tunit_type\tparent_code\n"
	cases := map[string]string{
		"bad kind":        "22\tX\tcity\tT\t\n",
		"short code":      "22\tX\tprovince\tT\t\n207\tY\tdistrict\tH\t22\n0719\tZ\tcommune\tX\t207\n",
		"orphan commune":  "22\tX\tprovince\tT\t\n07192\tZ\tcommune\tX\t207\n",
		"duplicate":       "22\tX\tprovince\tT\t\n22\tX\tprovince\tT\t\n",
		"empty name":      "22\t\tprovince\tT\t\n",
		"province parent": "22\tX\tprovince\tT\t21\n",
	}
	for name, body := range cases {
		if _, err := store.ParseRoster(strings.NewReader(head + body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	h, _ := auth.HashPassword("a long enough password")
	if _, err := st.CreateUser(ctx, "system", "alice", auth.RoleDuty, h); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, "system", "alice", auth.RoleDuty, h); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, _, err := st.Login(ctx, "alice", "wrong password!!", time.Hour); !errors.Is(err, auth.ErrBadPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, _, err := st.Login(ctx, "nobody", "a long enough password", time.Hour); !errors.Is(err, auth.ErrBadPassword) {
		t.Fatalf("unknown user: %v", err)
	}
	tok, p, err := st.Login(ctx, "alice", "a long enough password", time.Hour)
	if err != nil || p.Role != auth.RoleDuty {
		t.Fatalf("login: %+v %v", p, err)
	}
	if got, err := st.Resolve(ctx, tok); err != nil || got.Username != "alice" || got.Role != auth.RoleDuty {
		t.Fatalf("resolve: %+v %v", got, err)
	}
	if _, err := st.Resolve(ctx, "nonsense"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bad token: %v", err)
	}

	join1, err := st.IssueEndpointToken(ctx, "user:alice", "07192")
	if err != nil {
		t.Fatal(err)
	}
	sess, p, err := st.ExchangeJoinToken(ctx, join1, time.Hour)
	if err != nil || p.EndpointCode != "07192" {
		t.Fatalf("exchange: %+v %v", p, err)
	}
	if got, err := st.Resolve(ctx, join1); err != nil || got.EndpointCode != "07192" {
		t.Fatalf("join token as bearer: %+v %v", got, err)
	}
	// A new link invalidates the old one and every session made from it.
	join2, err := st.IssueEndpointToken(ctx, "user:alice", "07192")
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range []string{join1, sess} {
		if _, err := st.Resolve(ctx, old); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("old credential still works: %v", err)
		}
	}
	if got, err := st.Resolve(ctx, join2); err != nil || got.EndpointCode != "07192" {
		t.Fatalf("new link: %v", err)
	}
	if _, err := st.IssueAllEndpointTokens(ctx, "system", false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("--all without --rotate: %v", err)
	}
	all, err := st.IssueAllEndpointTokens(ctx, "system", true)
	if err != nil || len(all) != 191 {
		t.Fatalf("--all --rotate: %d %v", len(all), err)
	}
	if err := st.RevokeEndpointToken(ctx, "system", "07192"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Resolve(ctx, all["07192"]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked link works: %v", err)
	}
}

func TestSessionsLifecycle(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	start := time.Date(2021, 5, 23, 6, 30, 0, 0, time.FixedZone("ICT", 7*3600))
	in := store.NewSession{ID: uuid.NewString(), Title: "Bầu cử 23/5/2021", PlannedStart: start, PlannedEnd: start.Add(12*time.Hour + 30*time.Minute)}
	s1, created, err := st.CreateSession(ctx, "user:a", in)
	if err != nil || !created {
		t.Fatal(err)
	}
	if _, created, err := st.CreateSession(ctx, "user:a", in); err != nil || created {
		t.Fatalf("retry: created=%v err=%v", created, err)
	}
	in2 := in
	in2.Title = "other"
	if _, _, err := st.CreateSession(ctx, "user:a", in2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id, other body: %v", err)
	}
	bad := in
	bad.ID = uuid.NewString()
	bad.PlannedEnd = start
	var fe *store.FieldError
	if _, _, err := st.CreateSession(ctx, "user:a", bad); !errors.As(err, &fe) || fe.Field != "planned_end" {
		t.Fatalf("bad end: %v", err)
	}
	if _, err := st.CurrentSession(ctx); !errors.Is(err, store.ErrNoSession) {
		t.Fatalf("current before start: %v", err)
	}
	if _, err := st.StartSession(ctx, "user:a", s1.ID); err != nil {
		t.Fatal(err)
	}
	in3 := in
	in3.ID = uuid.NewString()
	s3, _, _ := st.CreateSession(ctx, "user:a", in3)
	if _, err := st.StartSession(ctx, "user:a", s3.ID); !errors.Is(err, store.ErrInProgress) {
		t.Fatalf("second start: %v", err)
	}
	cur, err := st.CurrentSession(ctx)
	if err != nil || cur.ID != s1.ID {
		t.Fatalf("current: %v", err)
	}
	if _, err := st.EndSession(ctx, "user:a", s1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CurrentSession(ctx); !errors.Is(err, store.ErrNoSession) {
		t.Fatalf("current after end: %v", err)
	}
	if _, err := st.StartSession(ctx, "user:a", s3.ID); err != nil {
		t.Fatalf("start after the first ended: %v", err)
	}
}

func TestAuditChain(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	for i := 0; i < 20; i++ {
		if _, err := st.RecordEvent(ctx, store.Event{Actor: "user:a", Action: "floor.given", Entity: "endpoint", EntityID: "07192",
			After: []byte(`{"floor":"07192","n":` + string(rune('0'+i%10)) + `}`)}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := st.VerifyChain(ctx, nil)
	if err != nil || rep.FirstBroken != 0 || rep.Checked != 20 {
		t.Fatalf("intact chain: %+v %v", rep, err)
	}
	// The table refuses changes.
	if _, err := st.Pool().Exec(ctx, `UPDATE events SET actor = 'x' WHERE id = 3`); err == nil {
		t.Fatal("update allowed")
	}
	if _, err := st.Pool().Exec(ctx, `DELETE FROM events WHERE id = 3`); err == nil {
		t.Fatal("delete allowed")
	}
	// Tamper behind the trigger's back, as a superuser with triggers off would.
	if _, err := st.Pool().Exec(ctx, `ALTER TABLE events DISABLE TRIGGER events_append_only;
		UPDATE events SET actor = 'user:mallory' WHERE id = 7;
		ALTER TABLE events ENABLE TRIGGER events_append_only`); err != nil {
		t.Fatal(err)
	}
	rep, err = st.VerifyChain(ctx, nil)
	if err != nil || rep.FirstBroken != 7 {
		t.Fatalf("tampered chain: %+v %v", rep, err)
	}
}

func TestEventIDsGapFreeUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	const workers, each = 8, 15
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				if _, err := st.RecordEvent(ctx, store.Event{Actor: "t", Action: "x", Entity: "e", EntityID: "1"}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	evs, err := st.EventsAfter(ctx, 0, 1000)
	if err != nil || len(evs) != workers*each {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	for i, e := range evs {
		if e.ID != int64(i+1) {
			t.Fatalf("gap at %d: id %d", i, e.ID)
		}
	}
	if rep, _ := st.VerifyChain(ctx, nil); rep.FirstBroken != 0 {
		t.Fatalf("chain broken under concurrency: %+v", rep)
	}
}
