package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Escalation is an incident this node escalated to its parent node. The parent
// keeps it under the same id: the link between the two logs.
type Escalation struct {
	IncidentID  string     `json:"incident_id"`
	RequestedBy string     `json:"requested_by"`
	RequestedAt time.Time  `json:"requested_at"`
	DeliveredAt *time.Time `json:"delivered_at"` // when the parent accepted it; nil: on its way
	Incident    Incident   `json:"incident"`
}

// EscalateIncident marks an incident for escalation to the parent node (the
// uplink delivers it). Escalating again changes nothing and returns the
// escalation as it is, with created false.
func (s *Store) EscalateIncident(ctx context.Context, actor, id string) (Escalation, bool, error) {
	if validUUID("id", id) != nil {
		return Escalation{}, false, fmt.Errorf("incident %q: %w", id, ErrNotFound)
	}
	var out Escalation
	created := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		inc, err := getIncident(ctx, tx, id, false)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO incident_escalations (incident_id, requested_by) VALUES ($1, $2)
			ON CONFLICT (incident_id) DO NOTHING`, id, actor)
		if err != nil {
			return fmt.Errorf("escalate incident %s: %w", id, err)
		}
		if out, err = getEscalation(ctx, tx, id); err != nil {
			return err
		}
		out.Incident = inc
		if tag.RowsAffected() == 0 {
			return nil
		}
		created = true
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "incident.escalated", Entity: "incident",
			EntityID: id, SessionID: &inc.SessionID, After: mustJSON(out)})
		return err
	})
	return out, created, err
}

func getEscalation(ctx context.Context, q querier, id string) (Escalation, error) {
	var e Escalation
	err := q.QueryRow(ctx, `SELECT incident_id::text, requested_by, requested_at, delivered_at
		FROM incident_escalations WHERE incident_id = $1`, id).Scan(&e.IncidentID, &e.RequestedBy, &e.RequestedAt, &e.DeliveredAt)
	if err != nil {
		return e, fmt.Errorf("escalation of %s: %w", id, notFound(err))
	}
	return e, nil
}

// GetEscalation returns an incident's escalation, or ErrNotFound.
func (s *Store) GetEscalation(ctx context.Context, id string) (Escalation, error) {
	if validUUID("id", id) != nil {
		return Escalation{}, fmt.Errorf("escalation %q: %w", id, ErrNotFound)
	}
	e, err := getEscalation(ctx, s.pool, id)
	if err != nil {
		return e, err
	}
	e.Incident, err = getIncident(ctx, s.pool, id, false)
	return e, err
}

// PendingEscalations are the escalations the parent has not accepted yet, oldest first.
func (s *Store) PendingEscalations(ctx context.Context) ([]Escalation, error) {
	rows, err := s.pool.Query(ctx, `SELECT incident_id::text FROM incident_escalations
		WHERE delivered_at IS NULL ORDER BY requested_at LIMIT 100`)
	if err != nil {
		return nil, fmt.Errorf("pending escalations: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pending escalations: %w", err)
	}
	out := make([]Escalation, 0, len(ids))
	for _, id := range ids {
		e, err := s.GetEscalation(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// EscalationDelivered records that the parent accepted the escalation (once).
func (s *Store) EscalationDelivered(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE incident_escalations SET delivered_at = now()
		WHERE incident_id = $1 AND delivered_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("escalation of %s delivered: %w", id, err)
	}
	return nil
}
