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

// Turnout errors that callers map to statuses of their own.
var (
	// ErrOverRegistered: a figure of voters above the commune's registered voters (or
	// a registered figure below what the commune has already reported).
	ErrOverRegistered = errors.New("voted above registered")
	// ErrDecreasing: a figure lower than the last accepted one, without a reason.
	ErrDecreasing = errors.New("figure lower than the last accepted one")
	// ErrReasonRequired: changing a registered figure after the commune has reported.
	ErrReasonRequired = errors.New("a reason is required")
)

// Limits on turnout input.
const (
	maxReason          = 500
	maxRegistered      = 1_000_000 // per commune; the largest wards have tens of thousands
	turnoutFutureSkew  = 5 * time.Minute
	maxTurnoutListRows = 5000
)

// TurnoutReport is one accepted cumulative figure of a commune.
type TurnoutReport struct {
	ID           string    `json:"id"`
	SessionID    string    `json:"session_id"`
	EndpointCode string    `json:"endpoint_code"`
	EndpointName string    `json:"endpoint_name"`
	AsOf         time.Time `json:"as_of"`
	Voted        int64     `json:"voted"`
	Complete     bool      `json:"complete"`
	Via          string    `json:"via,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Correction   bool      `json:"correction"`
	ReportedBy   string    `json:"reported_by"`
	CreatedAt    time.Time `json:"created_at"`
	seq          int64
}

// NewTurnoutReport is the input of ReportTurnout. Voted and AsOf are required.
type NewTurnoutReport struct {
	ID           string     `json:"id"`
	EndpointCode string     `json:"endpoint_code"`
	AsOf         *time.Time `json:"as_of"`
	Voted        *int64     `json:"voted"`
	Complete     bool       `json:"complete,omitempty"`
	Via          string     `json:"via,omitempty"`
	Reason       string     `json:"reason,omitempty"`
}

// validate checks the input's shape. byStaff says whether a staff member reports on
// the commune's behalf (then via is required) or the endpoint itself (then via and
// reason are refused: corrections are staff's to record).
func (in *NewTurnoutReport) validate(byStaff bool, now time.Time) error {
	in.EndpointCode = strings.TrimSpace(in.EndpointCode)
	in.Reason = strings.TrimSpace(in.Reason)
	if err := validUUID("id", in.ID); err != nil {
		return err
	}
	if in.EndpointCode == "" {
		return fieldErr("endpoint_code", "required")
	}
	if in.AsOf == nil || in.AsOf.Year() < 2000 {
		return fieldErr("as_of", "required: when the figure was true (RFC 3339)")
	}
	if in.AsOf.After(now.Add(turnoutFutureSkew)) {
		return fieldErr("as_of", "may be at most %s in the future", turnoutFutureSkew)
	}
	t := in.AsOf.UTC().Truncate(time.Microsecond)
	in.AsOf = &t
	if in.Voted == nil || *in.Voted < 0 || *in.Voted > maxRegistered {
		return fieldErr("voted", "required: the cumulative number of voters, 0 to %d", maxRegistered)
	}
	if byStaff {
		if !slices.Contains(StaffAckVias, in.Via) {
			return fieldErr("via", "required when staff report for a commune: %s", strings.Join(StaffAckVias, ", "))
		}
	} else {
		if in.Via != "" {
			return fieldErr("via", "only staff reporting on a commune's behalf say how the figure came")
		}
		if in.Reason != "" {
			return fieldErr("reason", "corrections are recorded by staff")
		}
	}
	if utf8.RuneCountInString(in.Reason) > maxReason {
		return fieldErr("reason", "at most %d characters", maxReason)
	}
	return nil
}

const turnoutReportCols = `r.id::text, r.session_id::text, r.endpoint_code, e.name, r.as_of, r.voted, r.complete,
	coalesce(r.via, ''), r.reason, r.reported_by, r.created_at, r.seq`

func scanTurnoutReport(row pgx.Row) (TurnoutReport, error) {
	var r TurnoutReport
	err := row.Scan(&r.ID, &r.SessionID, &r.EndpointCode, &r.EndpointName, &r.AsOf, &r.Voted, &r.Complete,
		&r.Via, &r.Reason, &r.ReportedBy, &r.CreatedAt, &r.seq)
	r.Correction = r.Reason != ""
	return r, err
}

// ReportTurnout accepts a commune's cumulative figure under the client's id. A retry
// with the same body returns the stored report and created=false, even after the
// session ended; the same id with another body is ErrConflict. It needs a session in
// progress (ErrNoSession), a commune (FieldError endpoint_code), an as_of not before
// the session's planned start, voted not above the registered figure
// (ErrOverRegistered) and not below the figure in force at as_of, nor above a later
// one (ErrDecreasing), unless staff send it with a reason: a correction.
func (s *Store) ReportTurnout(ctx context.Context, actor string, byStaff bool, in NewTurnoutReport) (TurnoutReport, bool, error) {
	if err := in.validate(byStaff, time.Now()); err != nil {
		return TurnoutReport{}, false, err
	}
	hash := requestHash(in)
	var out TurnoutReport
	created := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = existingTurnoutReport(ctx, tx, in.ID, hash)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return err
		}
		sess, err := currentSessionTx(ctx, tx)
		if err != nil {
			return err
		}
		if in.AsOf.Before(sess.PlannedStart) {
			return fieldErr("as_of", "is before the session's planned start (%s)", sess.PlannedStart.UTC().Format(time.RFC3339))
		}
		// Serialise reports of one commune (and registered changes): the checks below
		// read what the previous report wrote.
		ep, err := lockCommune(ctx, tx, "endpoint_code", in.EndpointCode)
		if err != nil {
			return err
		}
		reg, ok, err := registeredFor(ctx, tx, ep)
		if err != nil {
			return err
		}
		if ok && *in.Voted > reg {
			return fmt.Errorf("%s: %d voted of %d registered: %w", in.EndpointCode, *in.Voted, reg, ErrOverRegistered)
		}
		if err := checkMonotonic(ctx, tx, sess.ID, in); err != nil {
			return err
		}
		var via *string
		if in.Via != "" {
			via = &in.Via
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO turnout_reports (id, session_id, endpoint_code, as_of, voted, complete, via, reason, reported_by, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (id) DO NOTHING`,
			in.ID, sess.ID, in.EndpointCode, *in.AsOf, *in.Voted, in.Complete, via, in.Reason, actor, hash)
		if err != nil {
			return fmt.Errorf("insert turnout report: %w", err)
		}
		if tag.RowsAffected() == 0 {
			out, err = existingTurnoutReport(ctx, tx, in.ID, hash)
			return err
		}
		if out, err = getTurnoutReport(ctx, tx, in.ID); err != nil {
			return err
		}
		created = true
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "turnout.reported", Entity: "turnout_report",
			EntityID: out.ID, SessionID: &out.SessionID, After: mustJSON(out)})
		return err
	})
	return out, created, err
}

// checkMonotonic refuses a figure below the one in force at its as_of, or above the
// next later one: the curve never goes down, except by a correction (a reason).
func checkMonotonic(ctx context.Context, tx pgx.Tx, sessionID string, in NewTurnoutReport) error {
	if in.Reason != "" {
		return nil
	}
	var prev, next *int64
	if err := tx.QueryRow(ctx, `
		SELECT (SELECT voted FROM turnout_reports WHERE session_id = $1 AND endpoint_code = $2 AND as_of <= $3
		        ORDER BY as_of DESC, seq DESC LIMIT 1),
		       (SELECT voted FROM turnout_reports WHERE session_id = $1 AND endpoint_code = $2 AND as_of > $3
		        ORDER BY as_of, seq LIMIT 1)`, sessionID, in.EndpointCode, *in.AsOf).Scan(&prev, &next); err != nil {
		return fmt.Errorf("read turnout of %s: %w", in.EndpointCode, err)
	}
	if prev != nil && *in.Voted < *prev {
		return fmt.Errorf("%s: %d is below the %d already reported; a correction needs staff and a reason: %w",
			in.EndpointCode, *in.Voted, *prev, ErrDecreasing)
	}
	if next != nil && *in.Voted > *next {
		return fmt.Errorf("%s: %d is above the %d reported for a later time; a correction needs staff and a reason: %w",
			in.EndpointCode, *in.Voted, *next, ErrDecreasing)
	}
	return nil
}

func existingTurnoutReport(ctx context.Context, tx pgx.Tx, id string, hash []byte) (TurnoutReport, error) {
	var stored []byte
	err := tx.QueryRow(ctx, `SELECT request_hash FROM turnout_reports WHERE id = $1`, id).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return TurnoutReport{}, ErrNotFound
	}
	if err != nil {
		return TurnoutReport{}, fmt.Errorf("read turnout report %s: %w", id, err)
	}
	if string(stored) != string(hash) {
		return TurnoutReport{}, fmt.Errorf("turnout report %s exists with a different body: %w", id, ErrConflict)
	}
	return getTurnoutReport(ctx, tx, id)
}

func getTurnoutReport(ctx context.Context, q querier, id string) (TurnoutReport, error) {
	out, err := scanTurnoutReport(q.QueryRow(ctx, `SELECT `+turnoutReportCols+`
		FROM turnout_reports r JOIN endpoints e ON e.code = r.endpoint_code WHERE r.id = $1`, id))
	if err != nil {
		return out, fmt.Errorf("turnout report %s: %w", id, notFound(err))
	}
	return out, nil
}

// currentSessionTx is the session in progress, or ErrNoSession.
func currentSessionTx(ctx context.Context, q querier) (Session, error) {
	out, err := scanSession(q.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE actual_start IS NOT NULL AND actual_end IS NULL`))
	if errors.Is(err, pgx.ErrNoRows) {
		return out, ErrNoSession
	}
	if err != nil {
		return out, fmt.Errorf("current session: %w", err)
	}
	return out, nil
}

// lockCommune locks a commune's roster row (FOR NO KEY UPDATE, which leaves foreign
// keys to it alone) and returns it; a code that is not a commune is a FieldError.
func lockCommune(ctx context.Context, tx pgx.Tx, field, code string) (Endpoint, error) {
	var e Endpoint
	err := tx.QueryRow(ctx, `SELECT code, name, kind, coalesce(parent_code, ''), roster_date::text
		FROM endpoints WHERE code = $1 FOR NO KEY UPDATE`, code).Scan(&e.Code, &e.Name, &e.Kind, &e.ParentCode, &e.RosterDate)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fieldErr(field, "%q is not in the roster", code)
	}
	if err != nil {
		return e, fmt.Errorf("lock endpoint %s: %w", code, err)
	}
	if !reportsTurnout(e.Kind, e.ParentCode) {
		return e, fieldErr(field, "%s is a %s; only communes (and provinces, at the national node) have turnout figures", code, e.Kind)
	}
	return e, nil
}

// registeredFor is the commune's registered voters for its roster date, if known.
func registeredFor(ctx context.Context, q querier, ep Endpoint) (int64, bool, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT registered FROM turnout_registered WHERE endpoint_code = $1 AND roster_date = $2`,
		ep.Code, ep.RosterDate).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("registered voters of %s: %w", ep.Code, err)
	}
	return n, true, nil
}

// TurnoutReportFilter narrows ListTurnoutReports; Code is a commune, a district (its
// communes) or empty (all). Session defaults to the session in progress, else the latest.
type TurnoutReportFilter struct {
	Code    string
	Session string
}

// ListTurnoutReports returns a session's accepted reports in the order they apply
// (as_of, then acceptance), corrections included with their reasons.
func (s *Store) ListTurnoutReports(ctx context.Context, f TurnoutReportFilter) (string, []TurnoutReport, error) {
	sess, err := s.turnoutSession(ctx, f.Session)
	if err != nil {
		return "", nil, err
	}
	if sess == nil {
		return "", []TurnoutReport{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+turnoutReportCols+`
		FROM turnout_reports r JOIN endpoints e ON e.code = r.endpoint_code
		WHERE r.session_id = $1 AND ($2 = '' OR r.endpoint_code = $2 OR e.parent_code = $2
		      OR EXISTS (SELECT 1 FROM endpoints p WHERE p.code = $2 AND p.parent_code IS NULL))
		ORDER BY r.as_of, r.seq LIMIT $3`, sess.ID, f.Code, maxTurnoutListRows)
	if err != nil {
		return "", nil, fmt.Errorf("list turnout reports: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TurnoutReport, error) { return scanTurnoutReport(r) })
	if err != nil {
		return "", nil, fmt.Errorf("scan turnout reports: %w", err)
	}
	if out == nil {
		out = []TurnoutReport{}
	}
	return sess.ID, out, nil
}

// turnoutSession resolves the session a turnout read is about: the given id (unknown
// is ErrNotFound), else the session in progress, else the latest started or planned;
// nil when there is no session at all.
func (s *Store) turnoutSession(ctx context.Context, id string) (*Session, error) {
	if id != "" {
		sess, err := s.GetSession(ctx, id)
		if err != nil {
			return nil, err
		}
		return &sess, nil
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions
		ORDER BY (actual_start IS NOT NULL AND actual_end IS NULL) DESC, coalesce(actual_start, planned_start) DESC, created_at DESC
		LIMIT 1`))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("turnout session: %w", err)
	}
	return &sess, nil
}
