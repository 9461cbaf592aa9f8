package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Report is the after-action record of one session: its incidents with their
// timelines and its directives with every receipt, all in the order they happened,
// then the turnout.
type Report struct {
	Session Session `json:"session"`
	// Scope is the district a district report is limited to ("" = the province):
	// its units' incidents, the directives with a target there (with those
	// targets' receipts only) and its turnout, nothing of other districts.
	Scope      string        `json:"scope,omitempty"`
	Incidents  []Incident    `json:"incidents"`
	Directives []Directive   `json:"directives"`
	Turnout    ReportTurnout `json:"turnout"`
}

// ReportTurnout is a session's turnout as the report shows it: the province, each
// district with its communes (in roster order), each unit's completion time, and the
// province's curve. Figures are those in force at At: the session's actual end, or
// the time of the report while it runs (none before it starts). A district report
// has no province figure (it sums other districts): Top and the curve are the
// district's, and Districts holds it alone.
type ReportTurnout struct {
	At       time.Time   `json:"at"`
	Province TurnoutUnit `json:"province"`
	// Top is the unit the report covers: the province, or a district report's district.
	Top       TurnoutUnit          `json:"top"`
	Districts []ReportDistrict     `json:"districts"`
	Step      string               `json:"step"`
	Curve     []TurnoutSeriesPoint `json:"curve"`
}

// ReportDistrict is a district's figure with its communes'.
type ReportDistrict struct {
	TurnoutUnit
	Communes []TurnoutUnit `json:"communes"`
}

// reportCurveStep is the spacing of the curve's points in the report; it widens for
// a long session so the table stays short.
const reportCurveStep = 30 * time.Minute

// SessionReport gathers a session's report from one consistent snapshot.
func (s *Store) SessionReport(ctx context.Context, sessionID string) (Report, error) {
	return s.ScopedSessionReport(ctx, sessionID, "")
}

// ScopedSessionReport is SessionReport limited to a district's units (scope, a
// district code; "" = the whole province), for district-scoped staff.
func (s *Store) ScopedSessionReport(ctx context.Context, sessionID, scope string) (Report, error) {
	if validUUID("id", sessionID) != nil {
		return Report{}, fmt.Errorf("session %q: %w", sessionID, ErrNotFound)
	}
	r := Report{Scope: scope}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return r, fmt.Errorf("begin report: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	if r.Session, err = scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, sessionID)); err != nil {
		return r, fmt.Errorf("session %s: %w", sessionID, notFound(err))
	}
	if r.Incidents, err = reportIncidents(ctx, tx, sessionID, scope); err != nil {
		return r, err
	}
	if r.Directives, err = reportDirectives(ctx, tx, sessionID, scope); err != nil {
		return r, err
	}
	if scope != "" {
		// A directive about another district's incident keeps no trace of it.
		shown := map[string]bool{}
		for _, i := range r.Incidents {
			shown[i.ID] = true
		}
		for i := range r.Directives {
			if d := &r.Directives[i]; d.IncidentID != nil && !shown[*d.IncidentID] {
				d.IncidentID = nil
			}
		}
	}
	if r.Turnout, err = reportTurnout(ctx, tx, r.Session, time.Now(), scope); err != nil {
		return r, err
	}
	return r, nil
}

// reportTurnout rolls the session's turnout up at its end (or now), and draws the
// province's curve from the planned start, every step, to the planned end or that
// time. Nothing is flagged stale: the report records
// figures and completion, not the live watch.
func reportTurnout(ctx context.Context, tx pgx.Tx, sess Session, now time.Time, scope string) (ReportTurnout, error) {
	at := now
	if sess.ActualEnd != nil && sess.ActualEnd.Before(at) {
		at = *sess.ActualEnd
	}
	out := ReportTurnout{At: at.UTC(), Districts: []ReportDistrict{}, Curve: []TurnoutSeriesPoint{}}
	nodes, err := turnoutNodes(ctx, tx)
	if err != nil {
		return out, err
	}
	var reports []turnoutPoint
	if sess.ActualStart != nil {
		if reports, err = turnoutPoints(ctx, tx, sess.ID, at); err != nil {
			return out, err
		}
	}
	units := rollUp(nodes, reports, rollupParams{At: at})
	byCode := map[string]int{}
	for _, n := range nodes {
		switch {
		case n.Parent == "" && scope == "": // the root: the province, or the nation
			out.Province = *units[n.Code]
			out.Top = out.Province
		case n.Kind == KindDistrict && (scope == "" || n.Code == scope):
			if n.Code == scope {
				out.Top = *units[n.Code]
			}
			byCode[n.Code] = len(out.Districts)
			out.Districts = append(out.Districts, ReportDistrict{TurnoutUnit: *units[n.Code], Communes: []TurnoutUnit{}})
		case n.Kind == KindCommune:
			if i, ok := byCode[n.Parent]; ok {
				out.Districts[i].Communes = append(out.Districts[i].Communes, *units[n.Code])
			}
		}
	}
	step := reportCurveStep
	end := at
	if sess.PlannedEnd.Before(end) {
		end = sess.PlannedEnd
	}
	for end.Sub(sess.PlannedStart)/step > 96 {
		step *= 2
	}
	out.Step = step.String()
	if sess.ActualStart == nil || out.Top.Code == "" {
		return out, nil
	}
	var times []time.Time
	for t := sess.PlannedStart; !t.After(end); t = t.Add(step) {
		times = append(times, t)
	}
	// A last point at the time of the report while the session runs within its
	// planned window, and one at the last report when that came later (a session
	// that ran over): never a point at a report printed days after.
	if at.Before(sess.PlannedEnd) && (len(times) == 0 || at.After(times[len(times)-1])) {
		times = append(times, at)
	}
	if n := len(reports); n > 0 && (len(times) == 0 || reports[n-1].AsOf.After(times[len(times)-1])) {
		times = append(times, reports[n-1].AsOf)
	}
	in, _ := unitCommunes(nodes, out.Top.Code)
	out.Curve = sweepSeries(reports, in, times, out.Top.Registered)
	return out, nil
}

func reportIncidents(ctx context.Context, tx pgx.Tx, sessionID, scope string) ([]Incident, error) {
	rows, err := tx.Query(ctx, `SELECT `+incidentCols+incidentFrom+`
		WHERE i.session_id = $1 AND ($2 = '' OR e.code = $2 OR e.parent_code = $2)
		ORDER BY i.created_at, i.id`, sessionID, scope)
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

func reportDirectives(ctx context.Context, tx pgx.Tx, sessionID, scope string) ([]Directive, error) {
	rows, err := tx.Query(ctx, `SELECT `+directiveCols+` FROM directives d
		WHERE d.session_id = $1
		  AND ($2 = '' OR EXISTS (SELECT 1 FROM directive_receipts r JOIN endpoints e ON e.code = r.endpoint_code
		                          WHERE r.directive_id = d.id AND (e.code = $2 OR e.parent_code = $2)))
		ORDER BY d.created_at, d.id`, sessionID, scope)
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
	rs, err := receiptsIn(ctx, tx, ids, scope)
	if err != nil {
		return nil, err
	}
	for i := range list {
		d := &list[i]
		d.Receipts = rs[d.ID]
		d.Summary = summarize(d.Receipts)
		if scope != "" {
			d.Targets = scopeTargets(d.Targets, d.Receipts)
		}
		d.TargetCodes = make([]string, len(d.Receipts))
		for j, r := range d.Receipts {
			d.TargetCodes[j] = r.EndpointCode
		}
	}
	return list, nil
}
