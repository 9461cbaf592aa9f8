package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LoadLiveState returns the room's live state document, or nil when none was
// saved yet (signaling.LiveState is its shape; the store keeps it opaque).
func (s *Store) LoadLiveState(ctx context.Context) ([]byte, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc::text FROM live_state WHERE id = 1`).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load live state: %w", err)
	}
	return doc, nil
}

// SaveLiveState replaces the live state document.
func (s *Store) SaveLiveState(ctx context.Context, doc []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO live_state (id, doc, saved_at) VALUES (1, $1::text::jsonb, now())
		ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, saved_at = EXCLUDED.saved_at`, string(doc))
	if err != nil {
		return fmt.Errorf("save live state: %w", err)
	}
	return nil
}

// ActiveNode is the process of a standby pair that holds the node's lock.
type ActiveNode struct {
	Term  int64
	URL   string
	Since time.Time
}

// ActiveNode reads who is active; ok is false when no process ever was.
func (s *Store) ActiveNode(ctx context.Context) (ActiveNode, bool, error) {
	var a ActiveNode
	err := s.pool.QueryRow(ctx, `SELECT term, url, since FROM node_active WHERE id = 1`).Scan(&a.Term, &a.URL, &a.Since)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("active node: %w", err)
	}
	return a, true, nil
}

// SaveLiveStateAsTerm saves the document only while term is the node's current
// one (a standby pair): an old active process that lost the node to its standby
// can no longer overwrite the state the new one took over. ErrSuperseded
// otherwise.
func (s *Store) SaveLiveStateAsTerm(ctx context.Context, term int64, doc []byte) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO live_state (id, doc, saved_at)
		SELECT 1, $1::text::jsonb, now() FROM node_active WHERE id = 1 AND term = $2
		ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, saved_at = EXCLUDED.saved_at`, string(doc), term)
	if err != nil {
		return fmt.Errorf("save live state: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save live state as term %d: %w", term, ErrSuperseded)
	}
	return nil
}
