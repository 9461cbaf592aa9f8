package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opscenter/opscenter/auth"
)

// Wall is a press wall's link: named, with the times it was issued and revoked.
// The secret itself is never kept, only its hash.
type Wall struct {
	Name      string     `json:"name"`
	IssuedAt  *time.Time `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	CreatedAt time.Time  `json:"created_at"`
}

// Live reports whether the wall's link works.
func (w Wall) Live() bool { return w.RevokedAt == nil && w.IssuedAt != nil }

var wallName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidWallName checks a wall's name as the table does, for a clear error first.
func ValidWallName(name string) error {
	if !wallName.MatchString(name) {
		return fieldErr("name", "use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// IssueWallToken gives the wall name a fresh link secret, creating the wall if it
// is new. The old secret and every screen's session made from it stop at once, so
// reissuing replaces a leaked link.
func (s *Store) IssueWallToken(ctx context.Context, actor, name string) (string, error) {
	if err := ValidWallName(name); err != nil {
		return "", err
	}
	tok := auth.NewToken()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		var reissued bool
		err := tx.QueryRow(ctx, `
			INSERT INTO walls (name, token_hash, issued_at) VALUES ($1, $2, now())
			ON CONFLICT (name) DO UPDATE SET token_hash = EXCLUDED.token_hash, issued_at = now(), revoked_at = NULL
			RETURNING id, (xmax <> 0)`, name, auth.HashToken(tok)).Scan(&id, &reissued)
		if err != nil {
			return fmt.Errorf("store wall token: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM wall_sessions WHERE wall_id = $1`, id); err != nil {
			return fmt.Errorf("drop wall sessions: %w", err)
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "wall.link_issued", Entity: "wall", EntityID: name,
			After: mustJSON(map[string]any{"replaced": reissued})})
		return err
	})
	return tok, err
}

// RevokeWall ends the wall's link and its screens' sessions at once. A name with
// no live link is ErrNotFound: nothing was ended.
func (s *Store) RevokeWall(ctx context.Context, actor, name string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `UPDATE walls SET token_hash = NULL, revoked_at = now()
			WHERE name = $1 AND revoked_at IS NULL RETURNING id`, name).Scan(&id)
		if err != nil {
			return fmt.Errorf("wall %q has no live link: %w", name, notFound(err))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM wall_sessions WHERE wall_id = $1`, id); err != nil {
			return fmt.Errorf("drop wall sessions: %w", err)
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "wall.link_revoked", Entity: "wall", EntityID: name})
		return err
	})
}

// ListWalls returns every wall, live or revoked, by name.
func (s *Store) ListWalls(ctx context.Context) ([]Wall, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, issued_at, revoked_at, created_at FROM walls ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list walls: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Wall, error) {
		var w Wall
		err := r.Scan(&w.Name, &w.IssuedAt, &w.RevokedAt, &w.CreatedAt)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("list walls: %w", err)
	}
	return out, nil
}

// ExchangeWallToken turns a wall link's secret into a session token valid for ttl
// (the /wall page's cookie). An unknown or revoked secret is ErrNotFound.
func (s *Store) ExchangeWallToken(ctx context.Context, linkToken string, ttl time.Duration) (string, auth.Principal, error) {
	var p auth.Principal
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id, name FROM walls WHERE token_hash = $1`, auth.HashToken(linkToken)).Scan(&id, &p.Wall)
	if err != nil {
		return "", p, fmt.Errorf("wall token: %w", notFound(err))
	}
	tok := auth.NewToken()
	// The insert re-checks the wall is live, so a revoke racing the exchange wins.
	tag, err := s.pool.Exec(ctx, `INSERT INTO wall_sessions (token_hash, wall_id, expires_at)
		SELECT $1, id, $3 FROM walls WHERE id = $2 AND token_hash = $4`,
		auth.HashToken(tok), id, time.Now().Add(ttl), auth.HashToken(linkToken))
	if err != nil {
		return "", p, fmt.Errorf("create wall session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return "", p, fmt.Errorf("wall token: %w", ErrNotFound)
	}
	return tok, p, nil
}

// ResolveWall maps a wall session token (the cookie) or a wall link's secret used
// directly (a WHEP player's bearer token) to the wall's principal. Anything else,
// including a revoked wall's tokens, is ErrNotFound.
func (s *Store) ResolveWall(ctx context.Context, token string) (auth.Principal, error) {
	var p auth.Principal
	h := auth.HashToken(token)
	err := s.pool.QueryRow(ctx, `
		SELECT w.name FROM wall_sessions ws JOIN walls w ON w.id = ws.wall_id
		WHERE ws.token_hash = $1 AND ws.expires_at > now() AND w.revoked_at IS NULL
		UNION ALL
		SELECT name FROM walls WHERE token_hash = $1
		LIMIT 1`, h).Scan(&p.Wall)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("wall token: %w", ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("resolve wall token: %w", err)
	}
	return p, nil
}
