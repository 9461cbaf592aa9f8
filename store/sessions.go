package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Session is one operations session (for example election day, 06:30 to 19:00).
type Session struct {
	ID           string     `json:"id"`
	Title        string     `json:"title"`
	PlannedStart time.Time  `json:"planned_start"`
	PlannedEnd   time.Time  `json:"planned_end"`
	ActualStart  *time.Time `json:"actual_start"`
	ActualEnd    *time.Time `json:"actual_end"`
	CreatedBy    string     `json:"created_by"`
	CreatedAt    time.Time  `json:"created_at"`
}

// InProgress reports whether the session has started and not ended.
func (s Session) InProgress() bool { return s.ActualStart != nil && s.ActualEnd == nil }

// NewSession is the input of CreateSession.
type NewSession struct {
	ID           string    `json:"id"`
	Title        string    `json:"title"`
	PlannedStart time.Time `json:"planned_start"`
	PlannedEnd   time.Time `json:"planned_end"`
}

const sessionCols = `id::text, title, planned_start, planned_end, actual_start, actual_end, created_by, created_at`

func scanSession(r pgx.Row) (Session, error) {
	var s Session
	err := r.Scan(&s.ID, &s.Title, &s.PlannedStart, &s.PlannedEnd, &s.ActualStart, &s.ActualEnd, &s.CreatedBy, &s.CreatedAt)
	return s, err
}

// CreateSession creates a session with a client-generated id. A retry with the same
// body returns the existing session and created=false; a different body is ErrConflict.
func (s *Store) CreateSession(ctx context.Context, actor string, in NewSession) (Session, bool, error) {
	in.Title = strings.TrimSpace(in.Title)
	if err := validUUID("id", in.ID); err != nil {
		return Session{}, false, err
	}
	if in.Title == "" || len(in.Title) > 200 {
		return Session{}, false, fieldErr("title", "required, at most 200 characters")
	}
	if in.PlannedStart.IsZero() {
		return Session{}, false, fieldErr("planned_start", "required (RFC 3339)")
	}
	if !in.PlannedEnd.After(in.PlannedStart) {
		return Session{}, false, fieldErr("planned_end", "must be after planned_start")
	}
	var out Session
	created := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, in.ID))
		if err == nil {
			if out.Title != in.Title || !out.PlannedStart.Equal(in.PlannedStart) || !out.PlannedEnd.Equal(in.PlannedEnd) {
				return fmt.Errorf("session %s exists with a different body: %w", in.ID, ErrConflict)
			}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read session: %w", err)
		}
		out, err = scanSession(tx.QueryRow(ctx, `INSERT INTO sessions (id, title, planned_start, planned_end, created_by)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+sessionCols, in.ID, in.Title, in.PlannedStart, in.PlannedEnd, actor))
		if err != nil {
			return fmt.Errorf("insert session: %w", err)
		}
		created = true
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "session.created", Entity: "session",
			EntityID: out.ID, SessionID: &out.ID, After: mustJSON(out)})
		return err
	})
	return out, created, err
}

// GetSession returns one session.
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	if validUUID("id", id) != nil {
		return Session{}, ErrNotFound
	}
	out, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return out, fmt.Errorf("session %s: %w", id, notFound(err))
	}
	return out, nil
}

// ListSessions returns sessions, newest planned start first.
func (s *Store) ListSessions(ctx context.Context) ([]Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionCols+` FROM sessions ORDER BY planned_start DESC LIMIT 200`)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) { return scanSession(r) })
}

// CurrentSession returns the session in progress, or ErrNoSession.
func (s *Store) CurrentSession(ctx context.Context) (Session, error) {
	out, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE actual_start IS NOT NULL AND actual_end IS NULL`))
	if errors.Is(err, pgx.ErrNoRows) {
		return out, ErrNoSession
	}
	if err != nil {
		return out, fmt.Errorf("current session: %w", err)
	}
	return out, nil
}

// StartSession records the actual start. Starting while another session is in
// progress is ErrInProgress; starting the running session again changes nothing.
func (s *Store) StartSession(ctx context.Context, actor, id string) (Session, error) {
	return s.transitionSession(ctx, actor, id, "session.started", func(tx pgx.Tx, cur Session) (Session, error) {
		if cur.ActualEnd != nil {
			return cur, fmt.Errorf("session %s has ended: %w", id, ErrConflict)
		}
		if cur.ActualStart != nil {
			return cur, nil
		}
		out, err := scanSession(tx.QueryRow(ctx, `UPDATE sessions SET actual_start = now() WHERE id = $1 RETURNING `+sessionCols, id))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return cur, ErrInProgress
		}
		return out, err
	})
}

// EndSession records the actual end; ending an ended session changes nothing.
func (s *Store) EndSession(ctx context.Context, actor, id string) (Session, error) {
	return s.transitionSession(ctx, actor, id, "session.ended", func(tx pgx.Tx, cur Session) (Session, error) {
		if cur.ActualStart == nil {
			return cur, fmt.Errorf("session %s has not started: %w", id, ErrConflict)
		}
		if cur.ActualEnd != nil {
			return cur, nil
		}
		return scanSession(tx.QueryRow(ctx, `UPDATE sessions SET actual_end = now() WHERE id = $1 RETURNING `+sessionCols, id))
	})
}

func (s *Store) transitionSession(ctx context.Context, actor, id, action string, fn func(pgx.Tx, Session) (Session, error)) (Session, error) {
	if validUUID("id", id) != nil {
		return Session{}, ErrNotFound
	}
	var out Session
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return fmt.Errorf("session %s: %w", id, notFound(err))
		}
		out, err = fn(tx, cur)
		if err != nil {
			return err
		}
		if sameTimes(cur, out) {
			return nil // idempotent repeat: nothing to audit
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: action, Entity: "session", EntityID: id,
			SessionID: &id, Before: mustJSON(cur), After: mustJSON(out)})
		return err
	})
	return out, err
}

func sameTimes(a, b Session) bool {
	eq := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return eq(a.ActualStart, b.ActualStart) && eq(a.ActualEnd, b.ActualEnd)
}

// requestHash fingerprints a create request so a retry can be told from a clash.
func requestHash(v any) []byte {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return h[:]
}

func validUUID(field, s string) error {
	// Only the canonical 36-character form: one id, one spelling.
	if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
		return fieldErr(field, "must be a UUID generated by the client")
	}
	return nil
}
