package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// How an acknowledgement reached the log. An endpoint acknowledging itself is AckViaApp;
// duty staff recording one on an endpoint's behalf name the channel.
const AckViaApp = "app"

// StaffAckVias are the channels staff may record an acknowledgement through.
var StaffAckVias = []string{"phone", "radio", "in_person", "other"}

const maxDirectiveText = 4000

// Targets says who a directive is for: exactly one of All (every district and commune,
// not the command room), District (the district unit and its communes) or Endpoints.
type Targets struct {
	All       bool     `json:"all,omitempty"`
	District  string   `json:"district,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
}

// Directive is an instruction from the command room, expanded at issue time into one
// receipt per target endpoint. RelayedFrom names the directive it passes on (one from the
// parent node).
type Directive struct {
	ID          string          `json:"id"`
	SessionID   string          `json:"session_id"`
	IssuedBy    string          `json:"issued_by"`
	Text        string          `json:"text"`
	Targets     Targets         `json:"targets"`
	TargetCodes []string        `json:"target_codes,omitempty"`
	IncidentID  *string         `json:"incident_id"`
	DueAt       *time.Time      `json:"due_at"`
	CreatedAt   time.Time       `json:"created_at"`
	Summary     *ReceiptSummary `json:"summary,omitempty"`
	Receipts    []Receipt       `json:"receipts,omitempty"`
	Receipt     *Receipt        `json:"receipt,omitempty"` // one endpoint's own, in its list
	RelayedFrom *string         `json:"relayed_from,omitempty"`
}

// ReceiptSummary counts a directive's receipts by state.
type ReceiptSummary struct {
	Total     int `json:"total"`
	Delivered int `json:"delivered"`
	Acked     int `json:"acked"`
	Replied   int `json:"replied"`
	Done      int `json:"done"`
}

// Receipt is one target endpoint's state for a directive.
type Receipt struct {
	DirectiveID  string     `json:"directive_id"`
	EndpointCode string     `json:"endpoint_code"`
	EndpointName string     `json:"endpoint_name"`
	DeliveredAt  *time.Time `json:"delivered_at"`
	AckedAt      *time.Time `json:"acked_at"`
	AckedBy      string     `json:"acked_by,omitempty"`
	AckVia       string     `json:"ack_via,omitempty"`
	Reply        string     `json:"reply,omitempty"`
	RepliedBy    string     `json:"replied_by,omitempty"`
	RepliedAt    *time.Time `json:"replied_at"`
	DoneAt       *time.Time `json:"done_at"`
}

// NewDirective is the input of IssueDirective.
type NewDirective struct {
	ID         string     `json:"id"`
	Text       string     `json:"text"`
	Targets    Targets    `json:"targets"`
	IncidentID *string    `json:"incident_id,omitempty"`
	DueAt      *time.Time `json:"due_at,omitempty"`
	SessionID  string     `json:"session_id,omitempty"`
	// RelayedFrom, when set, names the directive this one passes on (one that
	// came from the parent node): the link back to the original.
	RelayedFrom *string `json:"relayed_from,omitempty"`
}

const directiveCols = `d.id::text, d.session_id::text, d.issued_by, d.text, d.targets, d.incident_id::text, d.due_at, d.created_at,
	d.relayed_from::text`

func scanDirective(r pgx.Row) (Directive, error) {
	var d Directive
	err := r.Scan(&d.ID, &d.SessionID, &d.IssuedBy, &d.Text, &d.Targets, &d.IncidentID, &d.DueAt, &d.CreatedAt, &d.RelayedFrom)
	return d, err
}

const receiptCols = `r.directive_id::text, r.endpoint_code, e.name, r.delivered_at, r.acked_at, coalesce(r.acked_by, ''),
	coalesce(r.ack_via, ''), coalesce(r.reply, ''), coalesce(r.replied_by, ''), r.replied_at, r.done_at`

const receiptFrom = ` FROM directive_receipts r JOIN endpoints e ON e.code = r.endpoint_code`

func scanReceipt(r pgx.Row) (Receipt, error) {
	var x Receipt
	err := r.Scan(&x.DirectiveID, &x.EndpointCode, &x.EndpointName, &x.DeliveredAt, &x.AckedAt, &x.AckedBy,
		&x.AckVia, &x.Reply, &x.RepliedBy, &x.RepliedAt, &x.DoneAt)
	return x, err
}

func (in *NewDirective) validate() error {
	in.Text = strings.TrimSpace(in.Text)
	if err := validUUID("id", in.ID); err != nil {
		return err
	}
	if in.Text == "" || utf8.RuneCountInString(in.Text) > maxDirectiveText {
		return fieldErr("text", "required, at most %d characters", maxDirectiveText)
	}
	forms := 0
	if in.Targets.All {
		forms++
	}
	if in.Targets.District != "" {
		forms++
	}
	if in.Targets.Endpoints != nil {
		forms++
		if len(in.Targets.Endpoints) == 0 {
			return fieldErr("targets", "endpoints must list at least one code")
		}
		// One receipt per endpoint: a code listed twice is listed once.
		seen := map[string]bool{}
		var codes []string
		for _, c := range in.Targets.Endpoints {
			if !seen[c] {
				seen[c] = true
				codes = append(codes, c)
			}
		}
		in.Targets.Endpoints = codes
	}
	if forms != 1 {
		return fieldErr("targets", `exactly one of {"all":true}, {"district":CODE} or {"endpoints":[CODE, ...]}`)
	}
	if in.IncidentID != nil {
		if err := validUUID("incident_id", *in.IncidentID); err != nil {
			return fieldErr("incident_id", "must be an incident id")
		}
	}
	if in.RelayedFrom != nil {
		if err := validUUID("relayed_from", *in.RelayedFrom); err != nil {
			return fieldErr("relayed_from", "must be a directive id")
		}
	}
	if in.SessionID != "" {
		if err := validUUID("session_id", in.SessionID); err != nil {
			return fieldErr("session_id", "must be a session id")
		}
	}
	if in.DueAt != nil {
		t := in.DueAt.UTC()
		in.DueAt = &t
	}
	return nil
}

// IssueDirective records a directive under the client's id and expands its targets
// into receipts. A retry with the same body returns the stored directive and
// created=false; the same id with a different body is ErrConflict. The audit event
// directive.issued carries the directive with its target_codes, so signaling can push
// it to those endpoints.
func (s *Store) IssueDirective(ctx context.Context, actor string, in NewDirective) (Directive, bool, error) {
	if err := in.validate(); err != nil {
		return Directive{}, false, err
	}
	hash := requestHash(in)
	var out Directive
	created := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = existingDirective(ctx, tx, in.ID, hash)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return err
		}
		sessionID, err := resolveSession(ctx, tx, in.SessionID)
		if err != nil {
			return err
		}
		if in.IncidentID != nil {
			if _, err := getIncident(ctx, tx, *in.IncidentID, false); errors.Is(err, ErrNotFound) {
				return fieldErr("incident_id", "no such incident")
			} else if err != nil {
				return err
			}
		}
		if in.RelayedFrom != nil {
			if _, err := getDirective(ctx, tx, *in.RelayedFrom); errors.Is(err, ErrNotFound) {
				return fieldErr("relayed_from", "no such directive")
			} else if err != nil {
				return err
			}
		}
		codes, err := expandTargets(ctx, tx, in.Targets)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO directives (id, session_id, issued_by, text, targets, incident_id, due_at, request_hash, relayed_from)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (id) DO NOTHING`,
			in.ID, sessionID, actor, in.Text, in.Targets, in.IncidentID, in.DueAt, hash, in.RelayedFrom)
		if err != nil {
			return fmt.Errorf("insert directive: %w", err)
		}
		if tag.RowsAffected() == 0 {
			out, err = existingDirective(ctx, tx, in.ID, hash) // a concurrent retry committed first
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO directive_receipts (directive_id, endpoint_code)
			SELECT $1, unnest($2::text[])`, in.ID, codes); err != nil {
			return fmt.Errorf("insert receipts: %w", err)
		}
		if out, err = getDirective(ctx, tx, in.ID); err != nil {
			return err
		}
		created = true
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "directive.issued", Entity: "directive",
			EntityID: out.ID, SessionID: &out.SessionID, After: mustJSON(out)})
		return err
	})
	return out, created, err
}

func existingDirective(ctx context.Context, tx pgx.Tx, id string, hash []byte) (Directive, error) {
	var stored []byte
	err := tx.QueryRow(ctx, `SELECT request_hash FROM directives WHERE id = $1`, id).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return Directive{}, ErrNotFound
	}
	if err != nil {
		return Directive{}, fmt.Errorf("read directive %s: %w", id, err)
	}
	if string(stored) != string(hash) {
		return Directive{}, fmt.Errorf("directive %s exists with a different body: %w", id, ErrConflict)
	}
	return getDirective(ctx, tx, id)
}

// expandTargets turns a target form into endpoint codes, in roster order. The command
// room is never a target.
func expandTargets(ctx context.Context, tx pgx.Tx, t Targets) ([]string, error) {
	var rows pgx.Rows
	var err error
	const order = ` ORDER BY length(code), code`
	switch {
	case t.All:
		rows, err = tx.Query(ctx, `SELECT code FROM endpoints WHERE parent_code IS NOT NULL`+order)
	case t.District != "":
		var kind string
		err := tx.QueryRow(ctx, `SELECT kind FROM endpoints WHERE code = $1`, t.District).Scan(&kind)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && kind != KindDistrict) {
			return nil, fieldErr("targets", "district %q is not a district in the roster", t.District)
		}
		if err != nil {
			return nil, fmt.Errorf("read district %s: %w", t.District, err)
		}
		rows, err = tx.Query(ctx, `SELECT code FROM endpoints WHERE code = $1 OR parent_code = $1`+order, t.District)
	default:
		rows, err = tx.Query(ctx, `SELECT code FROM endpoints
			WHERE code = ANY($1) AND parent_code IS NOT NULL`+order, t.Endpoints)
	}
	if err != nil {
		return nil, fmt.Errorf("expand targets: %w", err)
	}
	codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("expand targets: %w", err)
	}
	if t.Endpoints != nil && len(codes) != len(t.Endpoints) {
		for _, c := range t.Endpoints {
			if !slices.Contains(codes, c) {
				return nil, fieldErr("targets", "%q is not a district or commune in the roster", c)
			}
		}
	}
	if len(codes) == 0 {
		return nil, fieldErr("targets", "no endpoint to direct")
	}
	return codes, nil
}

func getDirective(ctx context.Context, q querier, id string) (Directive, error) {
	return getDirectiveIn(ctx, q, id, "")
}

// getDirectiveIn reads a directive as seen from a district scope ("" = all): only the
// receipts of the district's units, and ErrNotFound when none of its targets is there.
func getDirectiveIn(ctx context.Context, q querier, id, scope string) (Directive, error) {
	d, err := scanDirective(q.QueryRow(ctx, `SELECT `+directiveCols+` FROM directives d WHERE d.id = $1`, id))
	if err != nil {
		return d, fmt.Errorf("directive %s: %w", id, notFound(err))
	}
	rs, err := receiptsIn(ctx, q, []string{id}, scope)
	if err != nil {
		return d, err
	}
	if scope != "" && len(rs[id]) == 0 {
		return Directive{}, fmt.Errorf("directive %s: %w", id, ErrNotFound)
	}
	d.Receipts = rs[id]
	if scope != "" {
		d.Targets = scopeTargets(d.Targets, rs[id])
	}
	d.TargetCodes = make([]string, len(d.Receipts))
	for i, r := range d.Receipts {
		d.TargetCodes[i] = r.EndpointCode
	}
	d.Summary = summarize(d.Receipts)
	return d, nil
}

// receipts reads the receipts of several directives, each in roster order.
func receipts(ctx context.Context, q querier, ids []string) (map[string][]Receipt, error) {
	return receiptsIn(ctx, q, ids, "")
}

// receiptsIn is receipts limited to one district's units ("" = all).
func receiptsIn(ctx context.Context, q querier, ids []string, scope string) (map[string][]Receipt, error) {
	rows, err := q.Query(ctx, `SELECT `+receiptCols+receiptFrom+`
		WHERE r.directive_id = ANY($1::uuid[]) AND ($2 = '' OR e.code = $2 OR e.parent_code = $2)
		ORDER BY r.directive_id, length(r.endpoint_code), r.endpoint_code`, ids, scope)
	if err != nil {
		return nil, fmt.Errorf("query receipts: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Receipt, error) { return scanReceipt(r) })
	if err != nil {
		return nil, fmt.Errorf("scan receipts: %w", err)
	}
	out := map[string][]Receipt{}
	for _, r := range list {
		out[r.DirectiveID] = append(out[r.DirectiveID], r)
	}
	return out, nil
}

func summarize(rs []Receipt) *ReceiptSummary {
	s := &ReceiptSummary{Total: len(rs)}
	for _, r := range rs {
		if r.DeliveredAt != nil {
			s.Delivered++
		}
		if r.AckedAt != nil {
			s.Acked++
		}
		if r.RepliedAt != nil {
			s.Replied++
		}
		if r.DoneAt != nil {
			s.Done++
		}
	}
	return s
}

// GetDirective returns a directive with every receipt's state and a summary.
func (s *Store) GetDirective(ctx context.Context, id string) (Directive, error) {
	return s.GetDirectiveIn(ctx, id, "")
}

// GetDirectiveIn is GetDirective as seen from a district scope ("" = all): only the
// district's receipts (and target codes, and summary over them); ErrNotFound when
// the directive has no target there.
func (s *Store) GetDirectiveIn(ctx context.Context, id, scope string) (Directive, error) {
	if validUUID("id", id) != nil {
		return Directive{}, fmt.Errorf("directive %q: %w", id, ErrNotFound)
	}
	return getDirectiveIn(ctx, s.pool, id, scope)
}

// scopeTargets keeps, of an endpoints list, the codes that are among the scoped
// receipts: a district's staff do not learn which other units a directive went to.
func scopeTargets(t Targets, rs []Receipt) Targets {
	if t.Endpoints == nil {
		return t
	}
	var kept []string
	for _, c := range t.Endpoints {
		if slices.ContainsFunc(rs, func(r Receipt) bool { return r.EndpointCode == c }) {
			kept = append(kept, c)
		}
	}
	t.Endpoints = kept
	return t
}

// DirectiveFilter narrows ListDirectives; empty fields match all.
type DirectiveFilter struct {
	Endpoint string // only directives targeting this endpoint, each with its receipt
	Session  string
	Scope    string // the caller's district scope: only directives with a target there, and only those receipts
}

// ListDirectives returns up to 500 directives, newest first, each with its receipt
// summary and, when filtered by endpoint, that endpoint's receipt.
func (s *Store) ListDirectives(ctx context.Context, f DirectiveFilter) ([]Directive, error) {
	if f.Session != "" && validUUID("session", f.Session) != nil {
		return nil, fieldErr("session", "must be a session id")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+directiveCols+` FROM directives d
		WHERE ($1 = '' OR d.session_id::text = $1)
		  AND ($2 = '' OR EXISTS (SELECT 1 FROM directive_receipts r WHERE r.directive_id = d.id AND r.endpoint_code = $2))
		  AND ($3 = '' OR EXISTS (SELECT 1 FROM directive_receipts r JOIN endpoints e ON e.code = r.endpoint_code
		                          WHERE r.directive_id = d.id AND (e.code = $3 OR e.parent_code = $3)))
		ORDER BY d.created_at DESC, d.id DESC LIMIT 500`, f.Session, f.Endpoint, f.Scope)
	if err != nil {
		return nil, fmt.Errorf("list directives: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Directive, error) { return scanDirective(r) })
	if err != nil {
		return nil, fmt.Errorf("scan directives: %w", err)
	}
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	rs, err := receiptsIn(ctx, s.pool, ids, f.Scope)
	if err != nil {
		return nil, err
	}
	for i := range list {
		d := &list[i]
		d.Summary = summarize(rs[d.ID])
		if f.Scope != "" {
			d.Targets = scopeTargets(d.Targets, rs[d.ID])
		}
		if f.Endpoint != "" {
			for _, r := range rs[d.ID] {
				if r.EndpointCode == f.Endpoint {
					d.Receipt = &r
				}
			}
		}
	}
	if list == nil {
		list = []Directive{}
	}
	return list, nil
}

// changeReceipt locks one receipt, lets fn change it, and audits the change. When fn
// reports no change nothing is written. A missing receipt (not a target, or no such
// directive) is ErrNotFound.
func (s *Store) changeReceipt(ctx context.Context, actor, action, directiveID, code string,
	fn func(tx pgx.Tx, cur Receipt) (bool, error)) (Receipt, error) {
	if validUUID("id", directiveID) != nil {
		return Receipt{}, fmt.Errorf("directive %q: %w", directiveID, ErrNotFound)
	}
	var out Receipt
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		const sel = `SELECT ` + receiptCols + receiptFrom + ` WHERE r.directive_id = $1 AND r.endpoint_code = $2`
		cur, err := scanReceipt(tx.QueryRow(ctx, sel+` FOR UPDATE OF r`, directiveID, code))
		if err != nil {
			return fmt.Errorf("receipt of directive %s for %s: %w", directiveID, code, notFound(err))
		}
		changed, err := fn(tx, cur)
		if err != nil {
			return err
		}
		if !changed {
			out = cur
			return nil
		}
		if out, err = scanReceipt(tx.QueryRow(ctx, sel, directiveID, code)); err != nil {
			return fmt.Errorf("reread receipt: %w", err)
		}
		var sessionID string
		if err := tx.QueryRow(ctx, `SELECT session_id::text FROM directives WHERE id = $1`, directiveID).Scan(&sessionID); err != nil {
			return fmt.Errorf("directive %s: %w", directiveID, err)
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: action, Entity: "directive",
			EntityID: directiveID, SessionID: &sessionID, Before: mustJSON(cur), After: mustJSON(out)})
		return err
	})
	return out, err
}

// AckDirective marks code's receipt acknowledged by actor through via (AckViaApp when
// the endpoint acknowledges itself, or one of StaffAckVias). Acknowledging again
// changes nothing and returns the receipt as it is.
func (s *Store) AckDirective(ctx context.Context, actor, directiveID, code, via string) (Receipt, error) {
	if via != AckViaApp && !slices.Contains(StaffAckVias, via) {
		return Receipt{}, fieldErr("via", "must be one of %s", strings.Join(StaffAckVias, ", "))
	}
	return s.changeReceipt(ctx, actor, "directive.acknowledged", directiveID, code, func(tx pgx.Tx, cur Receipt) (bool, error) {
		if cur.AckedAt != nil {
			return false, nil
		}
		_, err := tx.Exec(ctx, `UPDATE directive_receipts
			SET acked_at = now(), acked_by = $3, ack_via = $4, delivered_at = coalesce(delivered_at, now())
			WHERE directive_id = $1 AND endpoint_code = $2`, directiveID, code, actor, via)
		if err != nil {
			return false, fmt.Errorf("acknowledge: %w", err)
		}
		return true, nil
	})
}

// ReplyDirective records code's reply (a later reply replaces an earlier one; the audit
// log keeps both) and, when done, the time it was done (set once). selfAck, for an
// endpoint replying itself, also acknowledges the receipt if it was not yet.
func (s *Store) ReplyDirective(ctx context.Context, actor, directiveID, code, text string, done, selfAck bool) (Receipt, error) {
	text = strings.TrimSpace(text)
	if utf8.RuneCountInString(text) > maxDirectiveText {
		return Receipt{}, fieldErr("text", "at most %d characters", maxDirectiveText)
	}
	if text == "" && !done {
		return Receipt{}, fieldErr("text", "required unless done is true")
	}
	return s.changeReceipt(ctx, actor, "directive.replied", directiveID, code, func(tx pgx.Tx, cur Receipt) (bool, error) {
		newReply := text != "" && text != cur.Reply
		newDone := done && cur.DoneAt == nil
		newAck := selfAck && cur.AckedAt == nil
		if !newReply && !newDone && !newAck {
			return false, nil
		}
		_, err := tx.Exec(ctx, `UPDATE directive_receipts SET
			reply = CASE WHEN $3 THEN $4 ELSE reply END,
			replied_by = CASE WHEN $3 THEN $5 ELSE replied_by END,
			replied_at = CASE WHEN $3 THEN now() ELSE replied_at END,
			done_at = CASE WHEN $6 THEN coalesce(done_at, now()) ELSE done_at END,
			acked_at = CASE WHEN $7 THEN now() ELSE acked_at END,
			acked_by = CASE WHEN $7 THEN $5 ELSE acked_by END,
			ack_via = CASE WHEN $7 THEN $8 ELSE ack_via END,
			delivered_at = coalesce(delivered_at, now())
			WHERE directive_id = $1 AND endpoint_code = $2`,
			directiveID, code, newReply, text, actor, newDone, newAck, AckViaApp)
		if err != nil {
			return false, fmt.Errorf("reply: %w", err)
		}
		return true, nil
	})
}

// MarkDelivered records that the directive reached code (signaling calls it when it
// pushes the directive). Only the first delivery is recorded.
func (s *Store) MarkDelivered(ctx context.Context, directiveID, code string) (Receipt, error) {
	return s.changeReceipt(ctx, "system", "directive.delivered", directiveID, code, func(tx pgx.Tx, cur Receipt) (bool, error) {
		if cur.DeliveredAt != nil {
			return false, nil
		}
		if _, err := tx.Exec(ctx, `UPDATE directive_receipts SET delivered_at = now()
			WHERE directive_id = $1 AND endpoint_code = $2`, directiveID, code); err != nil {
			return false, fmt.Errorf("mark delivered: %w", err)
		}
		return true, nil
	})
}

// MarkAllDelivered records delivery of every directive code has not yet received (it
// has just read its list). It returns how many receipts changed.
func (s *Store) MarkAllDelivered(ctx context.Context, code string) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE directive_receipts r SET delivered_at = now()
			FROM directives d
			WHERE d.id = r.directive_id AND r.endpoint_code = $1 AND r.delivered_at IS NULL
			RETURNING r.directive_id::text, d.session_id::text, r.delivered_at`, code)
		if err != nil {
			return fmt.Errorf("mark delivered: %w", err)
		}
		type delivered struct {
			id, session string
			at          time.Time
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (delivered, error) {
			var d delivered
			return d, r.Scan(&d.id, &d.session, &d.at)
		})
		if err != nil {
			return fmt.Errorf("mark delivered: %w", err)
		}
		n = len(list)
		for _, d := range list {
			if _, err := appendEvent(ctx, tx, Event{Actor: "system", Action: "directive.delivered", Entity: "directive",
				EntityID: d.id, SessionID: &d.session,
				After: mustJSON(map[string]any{"directive_id": d.id, "endpoint_code": code, "delivered_at": d.at})}); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
