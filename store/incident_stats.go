package store

import (
	"context"
	"fmt"
)

// IncidentStatuses lists the statuses in workflow order.
var IncidentStatuses = []string{"open", "acknowledged", "in_progress", "resolved", "closed"}

// IncidentCountsByStatus counts incidents per status (every status present, zero or not).
func (s *Store) IncidentCountsByStatus(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, st := range IncidentStatuses {
		out[st] = 0
	}
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM incidents GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count incidents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("scan count: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}
