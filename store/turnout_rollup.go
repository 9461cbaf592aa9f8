package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// TurnoutUnit is one unit of the turnout picture: a commune with its own figure, or
// a district or the province as the sum of its communes (never an average of
// percents).
type TurnoutUnit struct {
	Code          string     `json:"code"`
	Name          string     `json:"name"`
	Kind          string     `json:"kind"`
	Registered    int64      `json:"registered"`
	Voted         int64      `json:"voted"`
	Percent       float64    `json:"percent"`
	UnitsReported int        `json:"units_reported"`
	UnitsTotal    int        `json:"units_total"`
	UnitsComplete int        `json:"units_complete"`
	UnitsStale    int        `json:"units_stale"`
	LastReportAt  *time.Time `json:"last_report_at"`
	CompletedAt   *time.Time `json:"completed_at"`
	Complete      bool       `json:"complete"`
	BelowHalf     bool       `json:"below_half"`
	Stale         bool       `json:"stale"`
}

// TurnoutPicture is the answer of GET /turnout: the units asked for, at a time.
type TurnoutPicture struct {
	SessionID *string       `json:"session_id"`
	At        time.Time     `json:"at"`
	Units     []TurnoutUnit `json:"units"`
}

// TurnoutQuery selects the picture: Code alone (one unit), or Parent's children
// (Parent empty: the province alone). At zero means now (the session's end if it
// has ended); Session empty means the session in progress, else the latest.
type TurnoutQuery struct {
	Parent     string
	Code       string
	At         time.Time
	Session    string
	StaleAfter time.Duration
}

// turnoutNode is a roster unit with its registered voters (communes only).
type turnoutNode struct {
	Code, Name, Kind, Parent string
	Registered               int64
}

// turnoutPoint is a report reduced to what the roll-up needs.
type turnoutPoint struct {
	Code       string
	AsOf       time.Time
	Voted      int64
	Complete   bool
	Correction bool
}

// communeState is a commune's figure after its reports up to a time.
type communeState struct {
	Voted        int64
	Reported     bool
	LastReportAt time.Time
	Complete     bool
	CompletedAt  time.Time
}

// apply folds one more of a commune's reports into its state; reports come in
// (as_of, acceptance) order. The latest figure is in force. Completion is sticky: the
// first report that says complete completes the commune at its as_of; only a
// correction (staff, with a reason) may say otherwise, either way.
func (st *communeState) apply(r turnoutPoint) {
	st.Voted, st.Reported, st.LastReportAt = r.Voted, true, r.AsOf
	switch {
	case r.Correction && r.Complete != st.Complete:
		st.Complete, st.CompletedAt = r.Complete, r.AsOf
	case r.Complete && !st.Complete:
		st.Complete, st.CompletedAt = true, r.AsOf
	}
	if !st.Complete {
		st.CompletedAt = time.Time{}
	}
}

// rollupParams are the clock and session the flags are judged by.
type rollupParams struct {
	At           time.Time
	PlannedStart time.Time // zero: no session, nothing is stale
	StaleAfter   time.Duration
}

// reportsTurnout says whether a unit reports its own figure: a commune, or a
// province in the national roster, whose figure is its own node's roll-up,
// reported by that node's uplink as the unit's figure. Every other unit is a sum.
func reportsTurnout(kind, parent string) bool {
	return kind == KindCommune || kind == KindProvince && parent != ""
}

// rollUp computes every unit of nodes (parents before children, as the roster lists
// them) from reports sorted by (as_of, acceptance).
func rollUp(nodes []turnoutNode, reports []turnoutPoint, p rollupParams) map[string]*TurnoutUnit {
	states := make(map[string]*communeState, len(nodes))
	for _, n := range nodes {
		if reportsTurnout(n.Kind, n.Parent) {
			states[n.Code] = &communeState{}
		}
	}
	for _, r := range reports {
		if r.AsOf.After(p.At) {
			break
		}
		if st := states[r.Code]; st != nil {
			st.apply(r)
		}
	}
	units := make(map[string]*TurnoutUnit, len(nodes))
	parent := make(map[string]string, len(nodes))
	for _, n := range nodes {
		units[n.Code] = &TurnoutUnit{Code: n.Code, Name: n.Name, Kind: n.Kind}
		parent[n.Code] = n.Parent
	}
	for _, n := range nodes {
		if !reportsTurnout(n.Kind, n.Parent) {
			continue
		}
		st := states[n.Code]
		c := units[n.Code]
		c.Registered, c.Voted, c.UnitsTotal = n.Registered, st.Voted, 1
		if st.Reported {
			c.UnitsReported = 1
			c.LastReportAt = timePtr(st.LastReportAt)
		}
		if st.Complete {
			c.UnitsComplete = 1
			c.CompletedAt = timePtr(st.CompletedAt)
		}
		ref := st.LastReportAt
		if !st.Reported {
			ref = p.PlannedStart
		}
		if !st.Complete && !ref.IsZero() && p.At.Sub(ref) > p.StaleAfter {
			c.UnitsStale = 1
		}
		for up := parent[n.Code]; up != ""; up = parent[up] {
			u := units[up]
			if u == nil {
				break
			}
			u.Registered += c.Registered
			u.Voted += c.Voted
			u.UnitsTotal++
			u.UnitsReported += c.UnitsReported
			u.UnitsComplete += c.UnitsComplete
			u.UnitsStale += c.UnitsStale
			u.LastReportAt = laterOf(u.LastReportAt, c.LastReportAt)
			u.CompletedAt = laterOf(u.CompletedAt, c.CompletedAt)
		}
	}
	for _, u := range units {
		u.Complete = u.UnitsTotal > 0 && u.UnitsComplete == u.UnitsTotal
		if !u.Complete {
			u.CompletedAt = nil
		}
		u.Stale = u.UnitsStale > 0
		u.Percent = percent(u.Voted, u.Registered)
		u.BelowHalf = u.Registered > 0 && u.Voted*2 <= u.Registered
	}
	return units
}

func percent(voted, registered int64) float64 {
	if registered <= 0 {
		return 0
	}
	return math.Round(float64(voted)*10000/float64(registered)) / 100
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func laterOf(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}

// turnoutNodes reads the roster with each commune's registered voters.
func turnoutNodes(ctx context.Context, q querier) ([]turnoutNode, error) {
	rows, err := q.Query(ctx, `
		SELECT e.code, e.name, e.kind, coalesce(e.parent_code, ''), coalesce(t.registered, 0)
		FROM endpoints e LEFT JOIN turnout_registered t ON t.endpoint_code = e.code AND t.roster_date = e.roster_date
		ORDER BY length(e.code), e.code`)
	if err != nil {
		return nil, fmt.Errorf("read roster for turnout: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (turnoutNode, error) {
		var n turnoutNode
		err := r.Scan(&n.Code, &n.Name, &n.Kind, &n.Parent, &n.Registered)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan roster for turnout: %w", err)
	}
	return out, nil
}

// turnoutPoints reads a session's reports with as_of up to until, in the order they apply.
func turnoutPoints(ctx context.Context, q querier, sessionID string, until time.Time) ([]turnoutPoint, error) {
	rows, err := q.Query(ctx, `
		SELECT endpoint_code, as_of, voted, complete, reason <> ''
		FROM turnout_reports WHERE session_id = $1 AND as_of <= $2 ORDER BY as_of, seq`, sessionID, until)
	if err != nil {
		return nil, fmt.Errorf("read turnout reports: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (turnoutPoint, error) {
		var p turnoutPoint
		err := r.Scan(&p.Code, &p.AsOf, &p.Voted, &p.Complete, &p.Correction)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan turnout reports: %w", err)
	}
	return out, nil
}

// Turnout computes the turnout picture asked for by q. A code or parent not in the
// roster is ErrNotFound; a commune as parent is a FieldError.
func (s *Store) Turnout(ctx context.Context, q TurnoutQuery) (TurnoutPicture, error) {
	out := TurnoutPicture{Units: []TurnoutUnit{}}
	sess, err := s.turnoutSession(ctx, q.Session)
	if err != nil {
		return out, err
	}
	at := q.At
	if at.IsZero() {
		at = time.Now()
		if sess != nil && sess.ActualEnd != nil && sess.ActualEnd.Before(at) {
			at = *sess.ActualEnd
		}
	}
	out.At = at.UTC()
	nodes, err := turnoutNodes(ctx, s.pool)
	if err != nil {
		return out, err
	}
	var reports []turnoutPoint
	p := rollupParams{At: at, StaleAfter: q.StaleAfter}
	if sess != nil {
		out.SessionID = &sess.ID
		p.PlannedStart = sess.PlannedStart
		if reports, err = turnoutPoints(ctx, s.pool, sess.ID, at); err != nil {
			return out, err
		}
	}
	units := rollUp(nodes, reports, p)
	pick := func(n turnoutNode) bool { return n.Parent == "" } // the root: the province, or the nation
	switch {
	case q.Code != "":
		if units[q.Code] == nil {
			return out, fmt.Errorf("unit %s: %w", q.Code, ErrNotFound)
		}
		pick = func(n turnoutNode) bool { return n.Code == q.Code }
	case q.Parent != "":
		u := units[q.Parent]
		if u == nil {
			return out, fmt.Errorf("unit %s: %w", q.Parent, ErrNotFound)
		}
		if u.Kind == KindCommune {
			return out, fieldErr("parent", "%s is a commune; it has no units below it", q.Parent)
		}
		pick = func(n turnoutNode) bool { return n.Parent == q.Parent }
	}
	for _, n := range nodes {
		if pick(n) {
			out.Units = append(out.Units, *units[n.Code])
		}
	}
	return out, nil
}

// TurnoutSeriesPoint is the unit's cumulative figure at one time.
type TurnoutSeriesPoint struct {
	At      time.Time `json:"at"`
	Voted   int64     `json:"voted"`
	Percent float64   `json:"percent"`
}

// TurnoutSeries is a unit's turnout curve over a session.
type TurnoutSeries struct {
	SessionID  string               `json:"session_id"`
	Code       string               `json:"code"`
	Name       string               `json:"name"`
	Registered int64                `json:"registered"`
	Step       string               `json:"step"`
	Points     []TurnoutSeriesPoint `json:"points"`
}

const maxSeriesPoints = 2000

// Series is the cumulative figure of code (a commune, a district or the province) at
// the session's planned start and every step after it, up to now or the planned end,
// and a last point at now; reports count by their as_of.
func (s *Store) Series(ctx context.Context, code, session string, step time.Duration, now time.Time) (TurnoutSeries, error) {
	out := TurnoutSeries{Code: code, Step: step.String(), Points: []TurnoutSeriesPoint{}}
	if step < time.Minute {
		return out, fieldErr("step", "at least 1m")
	}
	sess, err := s.turnoutSession(ctx, session)
	if err != nil {
		return out, err
	}
	if sess == nil {
		return out, ErrNoSession
	}
	out.SessionID = sess.ID
	end := now
	if sess.PlannedEnd.Before(end) {
		end = sess.PlannedEnd
	}
	var times []time.Time
	for t := sess.PlannedStart; !t.After(end); t = t.Add(step) {
		if len(times) >= maxSeriesPoints {
			return out, fieldErr("step", "too small: more than %d points", maxSeriesPoints)
		}
		times = append(times, t)
	}
	if len(times) == 0 || now.After(times[len(times)-1]) {
		times = append(times, now)
	}
	nodes, err := turnoutNodes(ctx, s.pool)
	if err != nil {
		return out, err
	}
	in, found := unitCommunes(nodes, code)
	if !found {
		return out, fmt.Errorf("unit %s: %w", code, ErrNotFound)
	}
	for _, n := range nodes {
		if n.Code == code {
			out.Name = n.Name
		}
		if in[n.Code] {
			out.Registered += n.Registered
		}
	}
	reports, err := turnoutPoints(ctx, s.pool, sess.ID, times[len(times)-1])
	if err != nil {
		return out, err
	}
	out.Points = sweepSeries(reports, in, times, out.Registered)
	return out, nil
}

// unitCommunes is the set of communes whose sum is unit code.
func unitCommunes(nodes []turnoutNode, code string) (map[string]bool, bool) {
	parent := map[string]string{}
	found := false
	for _, n := range nodes {
		parent[n.Code] = n.Parent
		found = found || n.Code == code
	}
	in := map[string]bool{}
	for _, n := range nodes {
		if !reportsTurnout(n.Kind, n.Parent) {
			continue
		}
		for c := n.Code; c != ""; c = parent[c] {
			if c == code {
				in[n.Code] = true
				break
			}
		}
	}
	return in, found
}

// sweepSeries sums the figures in force at each of times (ascending) over the
// communes in, from reports sorted by (as_of, acceptance).
func sweepSeries(reports []turnoutPoint, in map[string]bool, times []time.Time, registered int64) []TurnoutSeriesPoint {
	cur := map[string]int64{}
	var total int64
	i := 0
	out := make([]TurnoutSeriesPoint, 0, len(times))
	for _, t := range times {
		for ; i < len(reports) && !reports[i].AsOf.After(t); i++ {
			r := reports[i]
			if !in[r.Code] {
				continue
			}
			total += r.Voted - cur[r.Code]
			cur[r.Code] = r.Voted
		}
		out = append(out, TurnoutSeriesPoint{At: t.UTC(), Voted: total, Percent: percent(total, registered)})
	}
	return out
}
