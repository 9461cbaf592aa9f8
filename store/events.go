package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel carries only the new event's id: NOTIFY payloads are limited to 8000 bytes.
const NotifyChannel = "ops_events"

// Event is one audit record. Before and After are JSON documents (or nil).
type Event struct {
	ID        int64           `json:"id"`
	At        time.Time       `json:"at"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	Entity    string          `json:"entity"`
	EntityID  string          `json:"entity_id"`
	SessionID *string         `json:"session_id,omitempty"`
	Before    json.RawMessage `json:"before,omitempty"`
	After     json.RawMessage `json:"after,omitempty"`
	// Key, when set, makes RecordEvent idempotent (journal replays). Not served.
	Key string `json:"-"`
}

// appendEvent writes e in tx. The chain head row lock makes ids gap-free and in commit
// order (a later id can never commit before an earlier one), and gives the hash chain
// its previous link. Call it last in a transaction to hold the lock briefly.
func appendEvent(ctx context.Context, tx pgx.Tx, e Event) (int64, error) {
	var id int64
	var prev []byte
	if err := tx.QueryRow(ctx,
		`UPDATE chain_head SET last_id = last_id + 1 RETURNING last_id, last_hash`).Scan(&id, &prev); err != nil {
		return 0, fmt.Errorf("lock chain head: %w", err)
	}
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	var key *string
	if e.Key != "" {
		key = &e.Key
	}
	var hash []byte
	if err := tx.QueryRow(ctx, `
		INSERT INTO events (id, at, actor, action, entity, entity_id, session_id, before, after, prev_hash, hash, client_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
		        event_hash($10, $1, $2, $3, $4, $5, $6, $7, $8, $9), $11)
		RETURNING hash`,
		id, at, e.Actor, e.Action, e.Entity, e.EntityID, e.SessionID, jsonOrNil(e.Before), jsonOrNil(e.After), prev, key).Scan(&hash); err != nil {
		return 0, fmt.Errorf("insert event: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE chain_head SET last_hash = $1`, hash); err != nil {
		return 0, fmt.Errorf("advance chain head: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, fmt.Sprint(id)); err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	return id, nil
}

func jsonOrNil(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// mustJSON marshals values built by the store itself; failure is a programming error.
func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: marshal audit payload: %v", err))
	}
	return b
}

// RecordEvent appends a standalone audit event (live-session actions such as floor
// and mute, which change no other table). An event whose Key was recorded before is
// not written again; the earlier id is returned.
func (s *Store) RecordEvent(ctx context.Context, e Event) (int64, error) {
	var id int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if e.Key != "" {
			err := tx.QueryRow(ctx, `SELECT id FROM events WHERE client_key = $1`, e.Key).Scan(&id)
			if err == nil {
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("look up event key: %w", err)
			}
		}
		var err error
		id, err = appendEvent(ctx, tx, e)
		return err
	})
	return id, err
}

// EventsAfter returns up to limit events with id > after, in id order.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, at, actor, action, entity, entity_id, session_id::text, before, after
		FROM events WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Entity, &e.EntityID, &e.SessionID, &e.Before, &e.After); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return out, nil
}

// LastEventID is the id of the newest committed event (0 when none).
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT last_id FROM chain_head`).Scan(&id); err != nil {
		return 0, fmt.Errorf("chain head: %w", err)
	}
	return id, nil
}

// ChainReport is the result of verifying the audit chain.
type ChainReport struct {
	Checked     int64  `json:"checked"`
	FirstBroken int64  `json:"first_broken,omitempty"` // 0 when the chain is intact
	Reason      string `json:"reason,omitempty"`
}

// VerifyChain recomputes every event's hash from its predecessor and reports the first
// broken link. progress, if not nil, is called every 10,000 events.
func (s *Store) VerifyChain(ctx context.Context, progress func(checked int64)) (ChainReport, error) {
	var r ChainReport
	rows, err := s.pool.Query(ctx, `
		SELECT id, prev_hash, hash,
		       event_hash(prev_hash, id, at, actor, action, entity, entity_id, session_id, before, after)
		FROM events ORDER BY id`)
	if err != nil {
		return r, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var lastHash = []byte{}
	var expectID int64 = 1
	for rows.Next() {
		var id int64
		var prev, hash, recomputed []byte
		if err := rows.Scan(&id, &prev, &hash, &recomputed); err != nil {
			return r, fmt.Errorf("scan event: %w", err)
		}
		switch {
		case id != expectID:
			r.FirstBroken, r.Reason = expectID, fmt.Sprintf("event %d is missing (next is %d)", expectID, id)
		case string(prev) != string(lastHash):
			r.FirstBroken, r.Reason = id, "previous-hash link does not match the event before it"
		case string(hash) != string(recomputed):
			r.FirstBroken, r.Reason = id, "content does not match its hash"
		}
		if r.FirstBroken != 0 {
			return r, nil
		}
		r.Checked++
		lastHash, expectID = hash, id+1
		if progress != nil && r.Checked%10000 == 0 {
			progress(r.Checked)
		}
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("events: %w", err)
	}
	return r, nil
}
