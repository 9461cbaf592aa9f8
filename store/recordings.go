package store

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Recording kinds and states, as the schema's CHECK constraints have them.
var (
	RecordingKinds  = []string{"program", "floor", "private_line"}
	RecordingStates = []string{"open", "closed", "repaired", "deleted"}
)

// Recording is one file of the video record. Path is relative to recording.dir.
// A row is never removed; a deleted file keeps its row with state "deleted".
type Recording struct {
	ID         string     `json:"id"`
	SessionID  string     `json:"session_id"`
	Kind       string     `json:"kind"`
	SourceCode string     `json:"source_code"`
	Path       string     `json:"path"`
	State      string     `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	Size       *int64     `json:"size"`
	SHA256     *string    `json:"sha256"`
	DurationMS *int64     `json:"duration_ms"`
	Width      *int       `json:"width"`
	Height     *int       `json:"height"`
	Note       string     `json:"note,omitempty"`
	DeletedAt  *time.Time `json:"deleted_at"`
	CreatedAt  time.Time  `json:"created_at"`
}

// NewRecording is the input of OpenRecording. StartedAt defaults to now.
type NewRecording struct {
	ID         string    `json:"id"`
	SessionID  string    `json:"session_id"`
	Kind       string    `json:"kind"`
	SourceCode string    `json:"source_code"`
	Path       string    `json:"path"`
	StartedAt  time.Time `json:"started_at"`
}

// RecordingEnd is the input of CloseRecording: what the finished file is.
type RecordingEnd struct {
	// Repaired closes the row as "repaired" (a file whose writer died) rather
	// than "closed".
	Repaired bool
	// StartedAt, when not zero, replaces the row's start with the file's own
	// time 0 (the first recorded packet), so offsets into the file are exact.
	StartedAt time.Time
	EndedAt   time.Time
	Size      int64
	SHA256    string
	Duration  time.Duration
	Width     int
	Height    int
	Note      string
}

const recordingCols = `id::text, session_id::text, kind, source_code, path, state, started_at, ended_at,
	size, sha256, duration_ms, width, height, note, deleted_at, created_at`

func scanRecording(r pgx.Row) (Recording, error) {
	var x Recording
	err := r.Scan(&x.ID, &x.SessionID, &x.Kind, &x.SourceCode, &x.Path, &x.State, &x.StartedAt, &x.EndedAt,
		&x.Size, &x.SHA256, &x.DurationMS, &x.Width, &x.Height, &x.Note, &x.DeletedAt, &x.CreatedAt)
	return x, err
}

func collectRecordings(rows pgx.Rows, err error) ([]Recording, error) {
	if err != nil {
		return nil, fmt.Errorf("query recordings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Recording, error) { return scanRecording(r) })
	if err != nil {
		return nil, fmt.Errorf("scan recordings: %w", err)
	}
	if out == nil {
		out = []Recording{}
	}
	return out, nil
}

// ValidRecordingPath reports whether p is a clean path relative to recording.dir.
func ValidRecordingPath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && !strings.Contains(p, "..") && path.Clean(p) == p &&
		!strings.ContainsRune(p, '\\') && !strings.ContainsRune(p, 0)
}

func (in *NewRecording) validate() error {
	if err := validUUID("id", in.ID); err != nil {
		return err
	}
	if err := validUUID("session_id", in.SessionID); err != nil {
		return fieldErr("session_id", "must be a session id")
	}
	if !slices.Contains(RecordingKinds, in.Kind) {
		return fieldErr("kind", "must be one of %s", strings.Join(RecordingKinds, ", "))
	}
	if !ValidRecordingPath(in.Path) {
		return fieldErr("path", "must be a clean path relative to the recording directory")
	}
	return nil
}

// OpenRecording indexes a file that is being written, with a recording.started
// audit event in the same transaction.
func (s *Store) OpenRecording(ctx context.Context, actor string, in NewRecording) (Recording, error) {
	if err := in.validate(); err != nil {
		return Recording{}, err
	}
	if in.StartedAt.IsZero() {
		in.StartedAt = time.Now()
	}
	var out Recording
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = scanRecording(tx.QueryRow(ctx, `
			INSERT INTO recordings (id, session_id, kind, source_code, path, started_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+recordingCols,
			in.ID, in.SessionID, in.Kind, in.SourceCode, in.Path, in.StartedAt.UTC().Truncate(time.Microsecond)))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			switch pgErr.Code {
			case "23503":
				return fieldErr("session_id", "no such session")
			case "23505":
				return fmt.Errorf("recording %s or its path exists: %w", in.ID, ErrConflict)
			}
		}
		if err != nil {
			return fmt.Errorf("insert recording: %w", err)
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "recording.started", Entity: "recording",
			EntityID: out.ID, SessionID: &out.SessionID, After: mustJSON(out)})
		return err
	})
	return out, err
}

// CloseRecording records what a finished file is (its end, size, SHA-256 and
// duration), with a recording.closed (or recording.repaired) audit event. Only an
// open recording can be closed; otherwise ErrConflict.
func (s *Store) CloseRecording(ctx context.Context, actor, id string, end RecordingEnd) (Recording, error) {
	if validUUID("id", id) != nil {
		return Recording{}, fmt.Errorf("recording %q: %w", id, ErrNotFound)
	}
	state, action := "closed", "recording.closed"
	if end.Repaired {
		state, action = "repaired", "recording.repaired"
	}
	end.SHA256 = strings.ToLower(end.SHA256)
	if len(end.SHA256) != 64 {
		return Recording{}, fieldErr("sha256", "must be 64 hex digits")
	}
	if end.EndedAt.IsZero() {
		end.EndedAt = time.Now()
	}
	var out Recording
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := lockRecording(ctx, tx, id)
		if err != nil {
			return err
		}
		if before.State != "open" {
			return fmt.Errorf("recording %s is %s: %w", id, before.State, ErrConflict)
		}
		started := before.StartedAt
		if !end.StartedAt.IsZero() {
			started = end.StartedAt
		}
		var w, h *int
		if end.Width > 0 && end.Height > 0 {
			w, h = &end.Width, &end.Height
		}
		out, err = scanRecording(tx.QueryRow(ctx, `
			UPDATE recordings SET state = $2, started_at = $3, ended_at = $4, size = $5, sha256 = $6,
			       duration_ms = $7, width = $8, height = $9, note = $10
			WHERE id = $1 RETURNING `+recordingCols,
			id, state, started.UTC().Truncate(time.Microsecond), end.EndedAt.UTC().Truncate(time.Microsecond),
			end.Size, end.SHA256, end.Duration.Milliseconds(), w, h, end.Note))
		if err != nil {
			return fmt.Errorf("close recording %s: %w", id, err)
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: action, Entity: "recording",
			EntityID: id, SessionID: &out.SessionID, Before: mustJSON(before), After: mustJSON(out)})
		return err
	})
	return out, err
}

// MarkDeleted records that a recording's file is gone (retention, or a recording
// that never got media), with a recording.deleted audit event. reason is kept in
// the row's note and the event. Deleting a deleted recording changes nothing.
func (s *Store) MarkDeleted(ctx context.Context, actor, id, reason string) (Recording, error) {
	if validUUID("id", id) != nil {
		return Recording{}, fmt.Errorf("recording %q: %w", id, ErrNotFound)
	}
	var out Recording
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := lockRecording(ctx, tx, id)
		if err != nil {
			return err
		}
		if before.State == "deleted" {
			out = before
			return nil
		}
		out, err = scanRecording(tx.QueryRow(ctx, `
			UPDATE recordings SET state = 'deleted', deleted_at = now(), ended_at = coalesce(ended_at, now()),
			       note = CASE WHEN $2 = '' THEN note ELSE $2 END
			WHERE id = $1 RETURNING `+recordingCols, id, reason))
		if err != nil {
			return fmt.Errorf("delete recording %s: %w", id, err)
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "recording.deleted", Entity: "recording",
			EntityID: id, SessionID: &out.SessionID, Before: mustJSON(before), After: mustJSON(out)})
		return err
	})
	return out, err
}

func lockRecording(ctx context.Context, tx pgx.Tx, id string) (Recording, error) {
	out, err := scanRecording(tx.QueryRow(ctx, `SELECT `+recordingCols+` FROM recordings WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return out, fmt.Errorf("recording %s: %w", id, notFound(err))
	}
	return out, nil
}

// GetRecording returns one recording.
func (s *Store) GetRecording(ctx context.Context, id string) (Recording, error) {
	if validUUID("id", id) != nil {
		return Recording{}, fmt.Errorf("recording %q: %w", id, ErrNotFound)
	}
	out, err := scanRecording(s.pool.QueryRow(ctx, `SELECT `+recordingCols+` FROM recordings WHERE id = $1`, id))
	if err != nil {
		return out, fmt.Errorf("recording %s: %w", id, notFound(err))
	}
	return out, nil
}

// ListRecordings returns a session's recordings (every session's when sessionID is
// empty), oldest first, deleted ones included.
func (s *Store) ListRecordings(ctx context.Context, sessionID string) ([]Recording, error) {
	if sessionID == "" {
		return collectRecordings(s.pool.Query(ctx, `SELECT `+recordingCols+` FROM recordings ORDER BY started_at, id`))
	}
	if validUUID("session", sessionID) != nil {
		return nil, fieldErr("session", "must be a session id")
	}
	return collectRecordings(s.pool.Query(ctx, `SELECT `+recordingCols+` FROM recordings
		WHERE session_id = $1 ORDER BY started_at, id`, sessionID))
}

// OpenRecordings returns the recordings still marked open: at start, files whose
// writer died, to repair.
func (s *Store) OpenRecordings(ctx context.Context) ([]Recording, error) {
	return collectRecordings(s.pool.Query(ctx, `SELECT `+recordingCols+` FROM recordings
		WHERE state = 'open' ORDER BY started_at, id`))
}

// KeptRecordings returns the recordings whose file should exist with its recorded
// SHA-256 (closed or repaired), oldest first.
func (s *Store) KeptRecordings(ctx context.Context) ([]Recording, error) {
	return collectRecordings(s.pool.Query(ctx, `SELECT `+recordingCols+` FROM recordings
		WHERE state IN ('closed', 'repaired') ORDER BY started_at, id`))
}

// RecordingsOlderThan returns the kept recordings that ended before t (retention).
func (s *Store) RecordingsOlderThan(ctx context.Context, t time.Time) ([]Recording, error) {
	return collectRecordings(s.pool.Query(ctx, `SELECT `+recordingCols+` FROM recordings
		WHERE state IN ('closed', 'repaired') AND ended_at < $1 ORDER BY ended_at, id`, t))
}
