package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opscenter/opscenter/auth"
)

// dummyHash is a real bcrypt hash, made once, that no password matches.
var dummyHash = sync.OnceValue(func() string {
	h, _ := auth.HashPassword(auth.NewToken())
	return h
})

// CreateUser adds a staff account with an already-hashed password, for the whole
// province.
func (s *Store) CreateUser(ctx context.Context, actor, username string, role auth.Role, passwordHash string) (int64, error) {
	return s.CreateScopedUser(ctx, actor, username, role, "", passwordHash)
}

// CreateScopedUser adds a staff account limited to district (a district code of the
// roster; "" is the whole province). An admin cannot be limited. A bad district is a
// FieldError on "district".
func (s *Store) CreateScopedUser(ctx context.Context, actor, username string, role auth.Role, district, passwordHash string) (int64, error) {
	if district != "" && role == auth.RoleAdmin {
		return 0, fieldErr("district", "an admin manages the whole province and cannot be limited to a district")
	}
	var id int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var dist *string
		if district != "" {
			var kind string
			err := tx.QueryRow(ctx, `SELECT kind FROM endpoints WHERE code = $1`, district).Scan(&kind)
			if errors.Is(err, pgx.ErrNoRows) || (err == nil && kind != KindDistrict) {
				return fieldErr("district", "%q is not a district code of the roster", district)
			}
			if err != nil {
				return fmt.Errorf("read district %s: %w", district, err)
			}
			dist = &district
		}
		err := tx.QueryRow(ctx, `INSERT INTO users (username, password_hash, role, district_code) VALUES ($1, $2, $3, $4) RETURNING id`,
			username, passwordHash, string(role), dist).Scan(&id)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return fmt.Errorf("user %q exists: %w", username, ErrConflict)
		}
		if errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.ConstraintName == "users_admin_unscoped" {
			return fieldErr("district", "an admin cannot be limited to a district")
		}
		if errors.As(err, &pgErr) && pgErr.Code == "23514" {
			return fieldErr("username", "use 2-64 lowercase letters, digits, '.', '_' or '-'")
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		after := map[string]string{"username": username, "role": string(role)}
		if district != "" {
			after["district"] = district
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "user.created", Entity: "user", EntityID: username,
			After: mustJSON(after)})
		return err
	})
	return id, err
}

// CountAdmins tells demo mode whether an admin already exists.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count admins: %w", err)
	}
	return n, nil
}

// SetPassword replaces a user's password hash and logs them out everywhere.
func (s *Store) SetPassword(ctx context.Context, actor, username, passwordHash string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `UPDATE users SET password_hash = $2 WHERE username = $1 RETURNING id`,
			username, passwordHash).Scan(&id); err != nil {
			return fmt.Errorf("user %q: %w", username, notFound(err))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM auth_sessions WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("drop sessions: %w", err)
		}
		_, err := appendEvent(ctx, tx, Event{Actor: actor, Action: "user.password_set", Entity: "user", EntityID: username})
		return err
	})
}

// Login checks a password and creates a session token valid for ttl.
func (s *Store) Login(ctx context.Context, username, password string, ttl time.Duration) (string, auth.Principal, error) {
	var p auth.Principal
	var hash string
	var role string
	err := s.pool.QueryRow(ctx, `SELECT id, username, role, coalesce(district_code, ''), password_hash FROM users WHERE username = $1 AND NOT disabled`,
		username).Scan(&p.UserID, &p.Username, &role, &p.District, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		// Spend the same time as a real check so usernames cannot be probed by timing.
		_ = auth.CheckPassword(dummyHash(), password)
		return "", p, auth.ErrBadPassword
	}
	if err != nil {
		return "", p, fmt.Errorf("read user: %w", err)
	}
	if err := auth.CheckPassword(hash, password); err != nil {
		return "", p, err
	}
	p.Role = auth.Role(role)
	tok := auth.NewToken()
	if _, err := s.pool.Exec(ctx, `INSERT INTO auth_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		auth.HashToken(tok), p.UserID, time.Now().Add(ttl)); err != nil {
		return "", p, fmt.Errorf("create session: %w", err)
	}
	return tok, p, nil
}

// ExchangeJoinToken turns an endpoint's join link secret into a session token.
func (s *Store) ExchangeJoinToken(ctx context.Context, joinToken string, ttl time.Duration) (string, auth.Principal, error) {
	var p auth.Principal
	err := s.pool.QueryRow(ctx, `SELECT code FROM endpoints WHERE token_hash = $1`, auth.HashToken(joinToken)).Scan(&p.EndpointCode)
	if err != nil {
		return "", p, fmt.Errorf("join token: %w", notFound(err))
	}
	tok := auth.NewToken()
	if _, err := s.pool.Exec(ctx, `INSERT INTO auth_sessions (token_hash, endpoint_code, expires_at) VALUES ($1, $2, $3)`,
		auth.HashToken(tok), p.EndpointCode, time.Now().Add(ttl)); err != nil {
		return "", p, fmt.Errorf("create endpoint session: %w", err)
	}
	return tok, p, nil
}

// Resolve maps a bearer or cookie token to its principal: a staff or endpoint session
// token, or an endpoint's join secret used directly (API clients, the load generator).
func (s *Store) Resolve(ctx context.Context, token string) (auth.Principal, error) {
	var p auth.Principal
	h := auth.HashToken(token)
	var uid *int64
	var username, role, code, district *string
	err := s.pool.QueryRow(ctx, `
		SELECT a.user_id, u.username, u.role, a.endpoint_code, u.district_code
		FROM auth_sessions a LEFT JOIN users u ON u.id = a.user_id
		WHERE a.token_hash = $1 AND a.expires_at > now() AND (u.id IS NULL OR NOT u.disabled)`, h).
		Scan(&uid, &username, &role, &code, &district)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.pool.QueryRow(ctx, `SELECT code FROM endpoints WHERE token_hash = $1`, h).Scan(&p.EndpointCode)
		if err != nil {
			return p, fmt.Errorf("token: %w", notFound(err))
		}
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("resolve token: %w", err)
	}
	if code != nil {
		p.EndpointCode = *code
		return p, nil
	}
	p.UserID, p.Username, p.Role = *uid, *username, auth.Role(*role)
	if district != nil {
		p.District = *district
	}
	return p, nil
}

// Logout deletes one session token.
func (s *Store) Logout(ctx context.Context, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM auth_sessions WHERE token_hash = $1`, auth.HashToken(token)); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// IssueEndpointToken gives code a fresh join secret. The old secret and every session
// made from it stop working at once. Only the hash is kept.
func (s *Store) IssueEndpointToken(ctx context.Context, actor, code string) (string, error) {
	tok := auth.NewToken()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		return issueToken(ctx, tx, actor, code, tok)
	})
	return tok, err
}

func issueToken(ctx context.Context, tx pgx.Tx, actor, code, tok string) error {
	tag, err := tx.Exec(ctx, `UPDATE endpoints SET token_hash = $2, token_issued_at = now() WHERE code = $1`, code, auth.HashToken(tok))
	if err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("endpoint %s: %w", code, ErrNotFound)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM auth_sessions WHERE endpoint_code = $1`, code); err != nil {
		return fmt.Errorf("drop endpoint sessions: %w", err)
	}
	_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "endpoint.link_issued", Entity: "endpoint", EntityID: code})
	return err
}

// IssueAllEndpointTokens issues fresh links for every endpoint in one transaction.
// Unless rotate is set it refuses when any endpoint already has a link, so nobody
// cuts every commune off by accident.
func (s *Store) IssueAllEndpointTokens(ctx context.Context, actor string, rotate bool) (map[string]string, error) {
	out := map[string]string{}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var existing int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM endpoints WHERE token_hash IS NOT NULL`).Scan(&existing); err != nil {
			return fmt.Errorf("count links: %w", err)
		}
		if existing > 0 && !rotate {
			return fmt.Errorf("%d endpoints already have a join link; pass --rotate to replace them all: %w", existing, ErrConflict)
		}
		rows, err := tx.Query(ctx, `SELECT code FROM endpoints ORDER BY length(code), code`)
		if err != nil {
			return fmt.Errorf("list endpoints: %w", err)
		}
		codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list endpoints: %w", err)
		}
		for _, c := range codes {
			tok := auth.NewToken()
			if err := issueToken(ctx, tx, actor, c, tok); err != nil {
				return err
			}
			out[c] = tok
		}
		return nil
	})
	return out, err
}

// RevokeEndpointToken removes code's join link and ends its sessions.
func (s *Store) RevokeEndpointToken(ctx context.Context, actor, code string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE endpoints SET token_hash = NULL, token_issued_at = NULL WHERE code = $1`, code)
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("endpoint %s: %w", code, ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM auth_sessions WHERE endpoint_code = $1`, code); err != nil {
			return fmt.Errorf("drop endpoint sessions: %w", err)
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "endpoint.link_revoked", Entity: "endpoint", EntityID: code})
		return err
	})
}
