package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ParentPrefix marks, in issued_by, a directive that came from the parent node:
// "parent:" + who issued it there.
const ParentPrefix = "parent:"

// ParentDirective is a directive the parent node issued to this node (its root
// code), as the parent serves it to that endpoint.
type ParentDirective struct {
	ID        string
	IssuedBy  string // the parent's actor
	Text      string
	DueAt     *time.Time
	CreatedAt time.Time
}

// ReceiveParentDirective records a directive from the parent in this node's log:
// under the parent's id (the link between the two logs), issued by
// "parent:ACTOR", with one receipt, for this node's root. Acknowledging or
// replying to that receipt here is what the uplink reports to the parent. It is
// idempotent: a directive already received is returned with created false. With
// no session in progress it is ErrNoSession (the uplink tries again).
func (s *Store) ReceiveParentDirective(ctx context.Context, root string, in ParentDirective) (Directive, bool, error) {
	if err := validUUID("id", in.ID); err != nil {
		return Directive{}, false, err
	}
	in.Text = strings.TrimSpace(in.Text)
	if in.Text == "" {
		return Directive{}, false, fieldErr("text", "required")
	}
	var out Directive
	created := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = getDirective(ctx, tx, in.ID)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return err
		}
		sessionID, err := resolveSession(ctx, tx, "")
		if err != nil {
			return err
		}
		t := Targets{Endpoints: []string{root}}
		tag, err := tx.Exec(ctx, `
			INSERT INTO directives (id, session_id, issued_by, text, targets, due_at, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (id) DO NOTHING`,
			in.ID, sessionID, ParentPrefix+in.IssuedBy, in.Text, t, in.DueAt, requestHash(in))
		if err != nil {
			return fmt.Errorf("insert parent directive: %w", err)
		}
		if tag.RowsAffected() == 0 {
			out, err = getDirective(ctx, tx, in.ID)
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO directive_receipts (directive_id, endpoint_code) VALUES ($1, $2)`,
			in.ID, root); err != nil {
			return fmt.Errorf("insert receipt: %w", err)
		}
		if out, err = getDirective(ctx, tx, in.ID); err != nil {
			return err
		}
		created = true
		_, err = appendEvent(ctx, tx, Event{Actor: ParentPrefix + in.IssuedBy, Action: "directive.issued", Entity: "directive",
			EntityID: out.ID, SessionID: &out.SessionID, After: mustJSON(out)})
		return err
	})
	return out, created, err
}
