package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Report is the after-action record of one session: its incidents with their
// timelines and its directives with every receipt, all in the order they happened.
type Report struct {
	Session    Session     `json:"session"`
	Incidents  []Incident  `json:"incidents"`
	Directives []Directive `json:"directives"`
}

// SessionReport gathers a session's report from one consistent snapshot.
func (s *Store) SessionReport(ctx context.Context, sessionID string) (Report, error) {
	if validUUID("id", sessionID) != nil {
		return Report{}, fmt.Errorf("session %q: %w", sessionID, ErrNotFound)
	}
	var r Report
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return r, fmt.Errorf("begin report: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	if r.Session, err = scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, sessionID)); err != nil {
		return r, fmt.Errorf("session %s: %w", sessionID, notFound(err))
	}
	if r.Incidents, err = reportIncidents(ctx, tx, sessionID); err != nil {
		return r, err
	}
	if r.Directives, err = reportDirectives(ctx, tx, sessionID); err != nil {
		return r, err
	}
	return r, nil
}

func reportIncidents(ctx context.Context, tx pgx.Tx, sessionID string) ([]Incident, error) {
	rows, err := tx.Query(ctx, `SELECT `+incidentCols+incidentFrom+`
		WHERE i.session_id = $1 ORDER BY i.created_at, i.id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("report incidents: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Incident, error) { return scanIncident(r) })
	if err != nil {
		return nil, fmt.Errorf("report incidents: %w", err)
	}
	ids := make([]string, len(list))
	for i, in := range list {
		ids[i] = in.ID
	}
	tl, err := incidentTimelines(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i].Timeline = tl[list[i].ID]
	}
	return list, nil
}

func reportDirectives(ctx context.Context, tx pgx.Tx, sessionID string) ([]Directive, error) {
	rows, err := tx.Query(ctx, `SELECT `+directiveCols+` FROM directives d
		WHERE d.session_id = $1 ORDER BY d.created_at, d.id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("report directives: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Directive, error) { return scanDirective(r) })
	if err != nil {
		return nil, fmt.Errorf("report directives: %w", err)
	}
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	rs, err := receipts(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	for i := range list {
		d := &list[i]
		d.Receipts = rs[d.ID]
		d.Summary = summarize(d.Receipts)
		d.TargetCodes = make([]string, len(d.Receipts))
		for j, r := range d.Receipts {
			d.TargetCodes[j] = r.EndpointCode
		}
	}
	return list, nil
}
