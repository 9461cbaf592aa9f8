package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Marker is one duty-log record placed on the video's timeline: an incident, a
// directive or a floor change. At is the record's system time (never edited);
// OccurredAt is the time the reporter gave, when there is one.
type Marker struct {
	ID         string     `json:"id"`   // the record's id: incident or directive UUID, event id
	Kind       string     `json:"kind"` // incident, directive, floor.given, floor.revoked
	At         time.Time  `json:"at"`
	OccurredAt *time.Time `json:"occurred_at,omitempty"`
	Code       string     `json:"code,omitempty"` // the endpoint concerned, if one
	Name       string     `json:"name,omitempty"`
	Title      string     `json:"title"`
	Detail     string     `json:"detail,omitempty"`
}

// FloorActions are the audit actions that mark a floor change.
var FloorActions = []string{"floor.given", "floor.revoked"}

// SessionMarkers returns a session's incidents, directives and floor changes in
// system-time order (ErrNotFound when the session does not exist).
func (s *Store) SessionMarkers(ctx context.Context, sessionID string) ([]Marker, error) {
	if _, err := s.GetSession(ctx, sessionID); err != nil {
		return nil, err
	}
	var out []Marker
	rows, err := s.pool.Query(ctx, `
		SELECT i.id::text, i.created_at, i.occurred_at, i.endpoint_code, e.name, i.severity, i.category, i.title
		FROM incidents i JOIN endpoints e ON e.code = i.endpoint_code
		WHERE i.session_id = $1`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("query incident markers: %w", err)
	}
	for rows.Next() {
		var m Marker
		var occurred time.Time
		var sev, cat string
		if err := rows.Scan(&m.ID, &m.At, &occurred, &m.Code, &m.Name, &sev, &cat, &m.Title); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan incident marker: %w", err)
		}
		m.Kind, m.OccurredAt, m.Detail = "incident", &occurred, sev+", "+cat
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("incident markers: %w", err)
	}

	rows, err = s.pool.Query(ctx, `
		SELECT id::text, created_at, issued_by, text, targets FROM directives WHERE session_id = $1`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("query directive markers: %w", err)
	}
	for rows.Next() {
		var m Marker
		var t Targets
		if err := rows.Scan(&m.ID, &m.At, &m.Detail, &m.Title, &t); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan directive marker: %w", err)
		}
		m.Kind = "directive"
		switch {
		case t.All:
			m.Code = "all"
		case t.District != "":
			m.Code = t.District
		case len(t.Endpoints) == 1:
			m.Code = t.Endpoints[0]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("directive markers: %w", err)
	}

	rows, err = s.pool.Query(ctx, `
		SELECT ev.id, ev.at, ev.action, ev.actor, CASE WHEN ev.entity = 'endpoint' THEN ev.entity_id ELSE '' END,
		       coalesce(e.name, '')
		FROM events ev LEFT JOIN endpoints e ON ev.entity = 'endpoint' AND e.code = ev.entity_id
		WHERE ev.session_id = $1 AND ev.action = ANY($2)`, sessionID, FloorActions)
	if err != nil {
		return nil, fmt.Errorf("query floor markers: %w", err)
	}
	for rows.Next() {
		var m Marker
		var id int64
		var actor string
		if err := rows.Scan(&id, &m.At, &m.Kind, &actor, &m.Code, &m.Name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan floor marker: %w", err)
		}
		m.ID = fmt.Sprint(id)
		m.Detail = actor
		who := m.Code
		if m.Name != "" {
			who += " " + m.Name
		}
		if m.Kind == "floor.given" {
			m.Title = "floor given to " + who
		} else {
			m.Title = "floor revoked from " + who
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("floor markers: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}
