package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

func recordingSession(t *testing.T, st *store.Store) store.Session {
	t.Helper()
	ctx := context.Background()
	start := time.Date(2021, 5, 23, 6, 30, 0, 0, time.UTC)
	s, _, err := st.CreateSession(ctx, "user:lead", store.NewSession{ID: uuid.NewString(), Title: "Bầu cử",
		PlannedStart: start, PlannedEnd: start.Add(12 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if s, err = st.StartSession(ctx, "user:lead", s.ID); err != nil {
		t.Fatal(err)
	}
	return s
}

func actionsAfter(t *testing.T, st *store.Store, after int64) []store.Event {
	t.Helper()
	evs, err := st.EventsAfter(context.Background(), after, 100)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestRecordingIndex(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	sess := recordingSession(t, st)
	head, _ := st.LastEventID(ctx)

	in := store.NewRecording{ID: uuid.NewString(), SessionID: sess.ID, Kind: "program", SourceCode: "22",
		Path: sess.ID + "/program-22.webm"}
	open, err := st.OpenRecording(ctx, "system", in)
	if err != nil {
		t.Fatal(err)
	}
	if open.State != "open" || open.EndedAt != nil || open.SHA256 != nil || open.StartedAt.IsZero() {
		t.Fatalf("opened %+v", open)
	}
	evs := actionsAfter(t, st, head)
	if len(evs) != 1 || evs[0].Action != "recording.started" || evs[0].EntityID != in.ID || *evs[0].SessionID != sess.ID {
		t.Fatalf("events after open: %+v", evs)
	}
	if _, err := st.OpenRecording(ctx, "system", in); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id again: %v", err)
	}
	for name, bad := range map[string]store.NewRecording{
		"escaping path": {ID: uuid.NewString(), SessionID: sess.ID, Kind: "floor", Path: "../etc/passwd"},
		"absolute path": {ID: uuid.NewString(), SessionID: sess.ID, Kind: "floor", Path: "/tmp/x.webm"},
		"unknown kind":  {ID: uuid.NewString(), SessionID: sess.ID, Kind: "wall", Path: "x.webm"},
		"no session":    {ID: uuid.NewString(), SessionID: uuid.NewString(), Kind: "floor", Path: "y.webm"},
	} {
		var fe *store.FieldError
		if _, err := st.OpenRecording(ctx, "system", bad); !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a field error", name, err)
		}
	}

	floor, err := st.OpenRecording(ctx, "system", store.NewRecording{ID: uuid.NewString(), SessionID: sess.ID,
		Kind: "floor", SourceCode: "07192", Path: sess.ID + "/floor-07192.webm"})
	if err != nil {
		t.Fatal(err)
	}
	opens, err := st.OpenRecordings(ctx)
	if err != nil || len(opens) != 2 {
		t.Fatalf("open recordings: %d %v", len(opens), err)
	}

	head, _ = st.LastEventID(ctx)
	fileStart := open.StartedAt.Add(150 * time.Millisecond)
	sum := strings.Repeat("ab", 32)
	closed, err := st.CloseRecording(ctx, "system", in.ID, store.RecordingEnd{StartedAt: fileStart,
		EndedAt: fileStart.Add(90 * time.Second), Size: 12345, SHA256: strings.ToUpper(sum), Duration: 90 * time.Second,
		Width: 1280, Height: 720})
	if err != nil {
		t.Fatal(err)
	}
	if closed.State != "closed" || *closed.Size != 12345 || *closed.SHA256 != sum || *closed.DurationMS != 90000 ||
		*closed.Width != 1280 || !closed.StartedAt.Equal(fileStart.Truncate(time.Microsecond)) || closed.EndedAt == nil {
		t.Fatalf("closed %+v", closed)
	}
	evs = actionsAfter(t, st, head)
	if len(evs) != 1 || evs[0].Action != "recording.closed" || !strings.Contains(string(evs[0].After), sum) {
		t.Fatalf("events after close: %+v", evs)
	}
	if _, err := st.CloseRecording(ctx, "system", in.ID, store.RecordingEnd{SHA256: sum}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("closing twice: %v", err)
	}
	if _, err := st.CloseRecording(ctx, "system", uuid.NewString(), store.RecordingEnd{SHA256: sum}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("closing none: %v", err)
	}
	rep, err := st.CloseRecording(ctx, "system", floor.ID, store.RecordingEnd{Repaired: true, SHA256: sum, Size: 1})
	if err != nil || rep.State != "repaired" {
		t.Fatalf("repaired: %+v %v", rep, err)
	}

	older, err := st.RecordingsOlderThan(ctx, time.Now().Add(time.Hour))
	if err != nil || len(older) != 2 {
		t.Fatalf("older: %d %v", len(older), err)
	}
	if older, _ := st.RecordingsOlderThan(ctx, open.StartedAt); len(older) != 0 {
		t.Fatalf("nothing ended before the first start: %+v", older)
	}

	head, _ = st.LastEventID(ctx)
	del, err := st.MarkDeleted(ctx, "system", in.ID, "retention")
	if err != nil || del.State != "deleted" || del.DeletedAt == nil || del.Note != "retention" || del.SHA256 == nil {
		t.Fatalf("deleted: %+v %v", del, err)
	}
	if again, err := st.MarkDeleted(ctx, "system", in.ID, "retention"); err != nil || !again.DeletedAt.Equal(*del.DeletedAt) {
		t.Fatalf("deleting again: %+v %v", again, err)
	}
	evs = actionsAfter(t, st, head)
	if len(evs) != 1 || evs[0].Action != "recording.deleted" {
		t.Fatalf("events after delete: %+v", evs)
	}
	kept, _ := st.KeptRecordings(ctx)
	if len(kept) != 1 || kept[0].ID != floor.ID {
		t.Fatalf("kept: %+v", kept)
	}
	list, err := st.ListRecordings(ctx, sess.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	if got, err := st.GetRecording(ctx, floor.ID); err != nil || got.SourceCode != "07192" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := st.GetRecording(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get nope: %v", err)
	}
	if rep, err := st.VerifyChain(ctx, nil); err != nil || rep.FirstBroken != 0 {
		t.Fatalf("chain: %+v %v", rep, err)
	}
}

func TestRecordingMarkers(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewWithRoster(t)
	sess := recordingSession(t, st)
	occurred := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	inc, _, err := st.CreateIncident(ctx, "user:duty", store.NewIncident{ID: uuid.NewString(), SessionID: sess.ID,
		EndpointCode: "07192", Category: "health_covid", Severity: "high", Title: "Cử tri sốt", OccurredAt: &occurred})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordEvent(ctx, store.Event{Actor: "user:lead", Action: "floor.given", Entity: "endpoint",
		EntityID: "07192", SessionID: &sess.ID}); err != nil {
		t.Fatal(err)
	}
	dir, _, err := st.IssueDirective(ctx, "user:lead", store.NewDirective{ID: uuid.NewString(), SessionID: sess.ID,
		Text: "Cách ly cử tri", Targets: store.Targets{Endpoints: []string{"07192"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordEvent(ctx, store.Event{Actor: "user:lead", Action: "floor.revoked", Entity: "endpoint",
		EntityID: "07192", SessionID: &sess.ID}); err != nil {
		t.Fatal(err)
	}
	other := uuid.NewString() // another session's floor change is not this session's marker
	if _, err := st.RecordEvent(ctx, store.Event{Actor: "user:lead", Action: "floor.given", Entity: "endpoint",
		EntityID: "07195", SessionID: &other}); err != nil {
		t.Fatal(err)
	}
	ms, err := st.SessionMarkers(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{}
	for _, m := range ms {
		kinds = append(kinds, m.Kind)
	}
	if strings.Join(kinds, ",") != "incident,floor.given,directive,floor.revoked" {
		t.Fatalf("markers %v: %+v", kinds, ms)
	}
	if ms[0].ID != inc.ID || !ms[0].OccurredAt.Equal(occurred) || ms[0].At.Equal(occurred) || ms[0].Title != "Cử tri sốt" {
		t.Fatalf("incident marker %+v", ms[0])
	}
	if ms[2].ID != dir.ID || ms[2].Title != "Cách ly cử tri" || ms[2].Code != "07192" {
		t.Fatalf("directive marker %+v", ms[2])
	}
	if !strings.Contains(ms[1].Title, "07192") || ms[1].ID == "" {
		t.Fatalf("floor marker %+v", ms[1])
	}
	if _, err := st.SessionMarkers(ctx, uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no such session: %v", err)
	}
}
