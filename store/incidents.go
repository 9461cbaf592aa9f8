package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Incident categories and severities, as the schema's CHECK constraints have them.
var (
	IncidentCategories = []string{"security_order", "health_covid", "complaint", "logistics", "communications", "other"}
	IncidentSeverities = []string{"info", "low", "high", "critical"}
)

// incidentMoves is the status workflow: open → acknowledged → in_progress → resolved →
// closed, and a resolved or closed incident may be reopened. Nothing else.
var incidentMoves = map[string][]string{
	"open":         {"acknowledged"},
	"acknowledged": {"in_progress"},
	"in_progress":  {"resolved"},
	"resolved":     {"closed", "open"},
	"closed":       {"open"},
}

// ValidIncidentMove reports whether status may move from one value to another.
func ValidIncidentMove(from, to string) bool { return slices.Contains(incidentMoves[from], to) }

// Limits on incident text, in characters.
const (
	maxTitle = 200
	maxBody  = 20000
)

// Incident is one logged problem, with its timeline when read on its own.
type Incident struct {
	ID           string           `json:"id"`
	SessionID    string           `json:"session_id"`
	EndpointCode string           `json:"endpoint_code"`
	EndpointName string           `json:"endpoint_name"`
	Category     string           `json:"category"`
	Severity     string           `json:"severity"`
	Title        string           `json:"title"`
	Body         string           `json:"body"`
	Status       string           `json:"status"`
	Assignee     string           `json:"assignee"`
	OccurredAt   time.Time        `json:"occurred_at"`
	CreatedAt    time.Time        `json:"created_at"`
	UpdatedAt    time.Time        `json:"updated_at"`
	Version      int              `json:"version"`
	ReportedBy   string           `json:"reported_by"`
	Timeline     []IncidentUpdate `json:"timeline,omitempty"`
}

// IncidentUpdate is one entry of an incident's append-only timeline: a comment, or
// the automatic record of a change.
type IncidentUpdate struct {
	ID         int64     `json:"id"`
	IncidentID string    `json:"incident_id"`
	ClientID   *string   `json:"client_id,omitempty"`
	Author     string    `json:"author"`
	Kind       string    `json:"kind"` // comment or change
	Body       string    `json:"body"`
	CreatedAt  time.Time `json:"created_at"`
}

// NewIncident is the input of CreateIncident. SessionID defaults to the session in
// progress, OccurredAt to now.
type NewIncident struct {
	ID           string     `json:"id"`
	SessionID    string     `json:"session_id,omitempty"`
	EndpointCode string     `json:"endpoint_code"`
	Category     string     `json:"category"`
	Severity     string     `json:"severity"`
	Title        string     `json:"title"`
	Body         string     `json:"body"`
	OccurredAt   *time.Time `json:"occurred_at,omitempty"`
}

// IncidentPatch is the input of UpdateIncident; nil fields are left alone. Version
// must be the version that was read.
type IncidentPatch struct {
	Status     *string    `json:"status,omitempty"`
	Assignee   *string    `json:"assignee,omitempty"`
	Severity   *string    `json:"severity,omitempty"`
	Category   *string    `json:"category,omitempty"`
	Title      *string    `json:"title,omitempty"`
	Body       *string    `json:"body,omitempty"`
	OccurredAt *time.Time `json:"occurred_at,omitempty"`
	Version    *int       `json:"version"`
}

// NewIncidentUpdate is a comment for an incident's timeline. ID, a client UUID, makes
// a retry harmless.
type NewIncidentUpdate struct {
	ID   string `json:"id,omitempty"`
	Body string `json:"body"`
}

const incidentCols = `i.id::text, i.session_id::text, i.endpoint_code, e.name, i.category, i.severity,
	i.title, i.body, i.status, i.assignee, i.occurred_at, i.created_at, i.updated_at, i.version, i.reported_by`

const incidentFrom = ` FROM incidents i JOIN endpoints e ON e.code = i.endpoint_code`

func scanIncident(r pgx.Row) (Incident, error) {
	var i Incident
	err := r.Scan(&i.ID, &i.SessionID, &i.EndpointCode, &i.EndpointName, &i.Category, &i.Severity,
		&i.Title, &i.Body, &i.Status, &i.Assignee, &i.OccurredAt, &i.CreatedAt, &i.UpdatedAt, &i.Version, &i.ReportedBy)
	return i, err
}

func (in *NewIncident) validate(now time.Time) error {
	in.Title = strings.TrimSpace(in.Title)
	in.Body = strings.TrimSpace(in.Body)
	in.EndpointCode = strings.TrimSpace(in.EndpointCode)
	if err := validUUID("id", in.ID); err != nil {
		return err
	}
	if in.SessionID != "" {
		if err := validUUID("session_id", in.SessionID); err != nil {
			return fieldErr("session_id", "must be a session id")
		}
	}
	if in.EndpointCode == "" {
		return fieldErr("endpoint_code", "required")
	}
	if err := validIncidentFields(&in.Category, &in.Severity, &in.Title, &in.Body, in.OccurredAt, now); err != nil {
		return err
	}
	if in.OccurredAt != nil {
		t := in.OccurredAt.UTC()
		in.OccurredAt = &t
	}
	return nil
}

// validIncidentFields checks the fields that create and patch share; nil means absent.
func validIncidentFields(category, severity, title, body *string, occurred *time.Time, now time.Time) error {
	if category != nil && !slices.Contains(IncidentCategories, *category) {
		return fieldErr("category", "must be one of %s", strings.Join(IncidentCategories, ", "))
	}
	if severity != nil && !slices.Contains(IncidentSeverities, *severity) {
		return fieldErr("severity", "must be one of %s", strings.Join(IncidentSeverities, ", "))
	}
	if title != nil {
		*title = strings.TrimSpace(*title)
		if *title == "" || utf8.RuneCountInString(*title) > maxTitle {
			return fieldErr("title", "required, at most %d characters", maxTitle)
		}
	}
	if body != nil && utf8.RuneCountInString(*body) > maxBody {
		return fieldErr("body", "at most %d characters", maxBody)
	}
	// A clock on a commune PC may be a little ahead; an hour is not "a little".
	if occurred != nil && (occurred.After(now.Add(time.Hour)) || occurred.Year() < 2000) {
		return fieldErr("occurred_at", "must be a real time, not in the future (RFC 3339)")
	}
	return nil
}

// CreateIncident logs an incident under the client's id. A retry with the same body
// returns the stored incident and created=false; the same id with a different body is
// ErrConflict. With no session given and none in progress it is ErrNoSession.
func (s *Store) CreateIncident(ctx context.Context, actor string, in NewIncident) (Incident, bool, error) {
	now := time.Now()
	if err := in.validate(now); err != nil {
		return Incident{}, false, err
	}
	hash := requestHash(in)
	var out Incident
	created := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = existingIncident(ctx, tx, in.ID, hash)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return err
		}
		sessionID, err := resolveSession(ctx, tx, in.SessionID)
		if err != nil {
			return err
		}
		if err := endpointExists(ctx, tx, "endpoint_code", in.EndpointCode); err != nil {
			return err
		}
		occurred := now
		if in.OccurredAt != nil {
			occurred = *in.OccurredAt
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO incidents (id, session_id, endpoint_code, category, severity, title, body,
			                       occurred_at, reported_by, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (id) DO NOTHING`,
			in.ID, sessionID, in.EndpointCode, in.Category, in.Severity, in.Title, in.Body, occurred, actor, hash)
		if err != nil {
			return fmt.Errorf("insert incident: %w", err)
		}
		if tag.RowsAffected() == 0 {
			// A concurrent retry won the race; it has committed, so judge against it.
			out, err = existingIncident(ctx, tx, in.ID, hash)
			return err
		}
		if out, err = getIncident(ctx, tx, in.ID, false); err != nil {
			return err
		}
		created = true
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "incident.created", Entity: "incident",
			EntityID: out.ID, SessionID: &out.SessionID, After: mustJSON(out)})
		return err
	})
	return out, created, err
}

// existingIncident returns the incident with id if its create request hashed to hash,
// ErrConflict if it differs, and ErrNotFound if there is none.
func existingIncident(ctx context.Context, tx pgx.Tx, id string, hash []byte) (Incident, error) {
	var stored []byte
	err := tx.QueryRow(ctx, `SELECT request_hash FROM incidents WHERE id = $1`, id).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return Incident{}, ErrNotFound
	}
	if err != nil {
		return Incident{}, fmt.Errorf("read incident %s: %w", id, err)
	}
	if string(stored) != string(hash) {
		return Incident{}, fmt.Errorf("incident %s exists with a different body: %w", id, ErrConflict)
	}
	return getIncident(ctx, tx, id, false)
}

// resolveSession checks a given session id, or finds the session in progress.
func resolveSession(ctx context.Context, tx pgx.Tx, id string) (string, error) {
	if id == "" {
		err := tx.QueryRow(ctx, `SELECT id::text FROM sessions
			WHERE actual_start IS NOT NULL AND actual_end IS NULL`).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", ErrNoSession
		}
		if err != nil {
			return "", fmt.Errorf("current session: %w", err)
		}
		return id, nil
	}
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)`, id).Scan(&ok); err != nil {
		return "", fmt.Errorf("read session %s: %w", id, err)
	}
	if !ok {
		return "", fieldErr("session_id", "no such session")
	}
	return id, nil
}

func endpointExists(ctx context.Context, tx pgx.Tx, field, code string) error {
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM endpoints WHERE code = $1)`, code).Scan(&ok); err != nil {
		return fmt.Errorf("read endpoint %s: %w", code, err)
	}
	if !ok {
		return fieldErr(field, "%q is not in the roster", code)
	}
	return nil
}

// querier is what both the pool and a transaction offer for reads.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func getIncident(ctx context.Context, q querier, id string, lock bool) (Incident, error) {
	sql := `SELECT ` + incidentCols + incidentFrom + ` WHERE i.id = $1`
	if lock {
		sql += ` FOR UPDATE OF i`
	}
	out, err := scanIncident(q.QueryRow(ctx, sql, id))
	if err != nil {
		return out, fmt.Errorf("incident %s: %w", id, notFound(err))
	}
	return out, nil
}

// GetIncident returns one incident with its timeline in order.
func (s *Store) GetIncident(ctx context.Context, id string) (Incident, error) {
	if validUUID("id", id) != nil {
		return Incident{}, fmt.Errorf("incident %q: %w", id, ErrNotFound)
	}
	out, err := getIncident(ctx, s.pool, id, false)
	if err != nil {
		return out, err
	}
	tl, err := incidentTimelines(ctx, s.pool, []string{id})
	if err != nil {
		return out, err
	}
	out.Timeline = tl[id]
	if out.Timeline == nil {
		out.Timeline = []IncidentUpdate{}
	}
	return out, nil
}

// incidentTimelines reads the timelines of several incidents, each in order.
func incidentTimelines(ctx context.Context, q querier, ids []string) (map[string][]IncidentUpdate, error) {
	rows, err := q.Query(ctx, `
		SELECT id, incident_id::text, client_id::text, author, kind, body, created_at
		FROM incident_updates WHERE incident_id = ANY($1::uuid[]) ORDER BY incident_id, id`, ids)
	if err != nil {
		return nil, fmt.Errorf("query timelines: %w", err)
	}
	ups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IncidentUpdate, error) { return scanUpdate(r) })
	if err != nil {
		return nil, fmt.Errorf("scan timelines: %w", err)
	}
	out := map[string][]IncidentUpdate{}
	for _, u := range ups {
		out[u.IncidentID] = append(out[u.IncidentID], u)
	}
	return out, nil
}

func scanUpdate(r pgx.Row) (IncidentUpdate, error) {
	var u IncidentUpdate
	err := r.Scan(&u.ID, &u.IncidentID, &u.ClientID, &u.Author, &u.Kind, &u.Body, &u.CreatedAt)
	return u, err
}

// UpdateIncident applies patch if patch.Version is the current version. A stale
// version is ErrStale and a move outside the workflow is ErrTransition; either way
// nothing changes. A real change bumps the version, records a 'change' entry on the
// timeline and an audit event; a patch that changes nothing returns the incident as is.
func (s *Store) UpdateIncident(ctx context.Context, actor, id string, p IncidentPatch) (Incident, error) {
	if validUUID("id", id) != nil {
		return Incident{}, fmt.Errorf("incident %q: %w", id, ErrNotFound)
	}
	if p.Version == nil {
		return Incident{}, fieldErr("version", "required: the version you read")
	}
	if p.Status != nil && !slices.Contains(IncidentStatuses, *p.Status) {
		return Incident{}, fieldErr("status", "must be one of %s", strings.Join(IncidentStatuses, ", "))
	}
	if p.Assignee != nil {
		a := strings.TrimSpace(*p.Assignee)
		if utf8.RuneCountInString(a) > 100 {
			return Incident{}, fieldErr("assignee", "at most 100 characters")
		}
		p.Assignee = &a
	}
	if p.Body != nil {
		b := strings.TrimSpace(*p.Body)
		p.Body = &b
	}
	if err := validIncidentFields(p.Category, p.Severity, p.Title, p.Body, p.OccurredAt, time.Now()); err != nil {
		return Incident{}, err
	}
	var out Incident
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := getIncident(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if cur.Version != *p.Version {
			return fmt.Errorf("incident %s is at version %d, not %d: %w", id, cur.Version, *p.Version, ErrStale)
		}
		next, changes := applyPatch(cur, p)
		if next.Status != cur.Status && !ValidIncidentMove(cur.Status, next.Status) {
			return fmt.Errorf("incident %s cannot move from %s to %s: %w", id, cur.Status, next.Status, ErrTransition)
		}
		if len(changes) == 0 {
			out = cur
			return nil
		}
		if _, err := tx.Exec(ctx, `
			UPDATE incidents SET status = $2, assignee = $3, severity = $4, category = $5, title = $6, body = $7,
			       occurred_at = $8, version = version + 1, updated_at = now()
			WHERE id = $1`,
			id, next.Status, next.Assignee, next.Severity, next.Category, next.Title, next.Body, next.OccurredAt); err != nil {
			return fmt.Errorf("update incident %s: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incident_updates (incident_id, author, kind, body)
			VALUES ($1, $2, 'change', $3)`, id, actor, strings.Join(changes, "; ")); err != nil {
			return fmt.Errorf("record change of incident %s: %w", id, err)
		}
		if out, err = getIncident(ctx, tx, id, false); err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "incident.updated", Entity: "incident",
			EntityID: id, SessionID: &out.SessionID, Before: mustJSON(cur), After: mustJSON(out)})
		return err
	})
	return out, err
}

// applyPatch returns the incident with p applied and a description of each change.
func applyPatch(cur Incident, p IncidentPatch) (Incident, []string) {
	next := cur
	var changes []string
	str := func(name string, dst *string, v *string, quote bool) {
		if v == nil || *v == *dst {
			return
		}
		switch {
		case name == "body":
			changes = append(changes, "body edited")
		case quote:
			changes = append(changes, fmt.Sprintf("%s: %q → %q", name, *dst, *v))
		default:
			changes = append(changes, fmt.Sprintf("%s: %s → %s", name, *dst, *v))
		}
		*dst = *v
	}
	str("status", &next.Status, p.Status, false)
	str("severity", &next.Severity, p.Severity, false)
	str("category", &next.Category, p.Category, false)
	str("assignee", &next.Assignee, p.Assignee, true)
	str("title", &next.Title, p.Title, true)
	str("body", &next.Body, p.Body, false)
	if p.OccurredAt != nil && !p.OccurredAt.Equal(cur.OccurredAt) {
		t := p.OccurredAt.UTC()
		changes = append(changes, fmt.Sprintf("occurred_at: %s → %s",
			cur.OccurredAt.UTC().Format(time.RFC3339), t.Format(time.RFC3339)))
		next.OccurredAt = t
	}
	return next, changes
}

// AddIncidentUpdate appends a comment to an incident's timeline. When onlyEndpoint is
// set, the incident must concern that endpoint (otherwise ErrNotFound, so nothing
// leaks). A retry with the same client id returns the stored entry and created=false.
func (s *Store) AddIncidentUpdate(ctx context.Context, actor, onlyEndpoint, incidentID string, in NewIncidentUpdate) (IncidentUpdate, bool, error) {
	if validUUID("id", incidentID) != nil {
		return IncidentUpdate{}, false, fmt.Errorf("incident %q: %w", incidentID, ErrNotFound)
	}
	in.Body = strings.TrimSpace(in.Body)
	var clientID *string
	if in.ID != "" {
		if err := validUUID("id", in.ID); err != nil {
			return IncidentUpdate{}, false, err
		}
		clientID = &in.ID
	}
	if in.Body == "" || utf8.RuneCountInString(in.Body) > maxBody {
		return IncidentUpdate{}, false, fieldErr("body", "required, at most %d characters", maxBody)
	}
	var out IncidentUpdate
	created := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		inc, err := getIncident(ctx, tx, incidentID, true)
		if err != nil {
			return err
		}
		if onlyEndpoint != "" && inc.EndpointCode != onlyEndpoint {
			return fmt.Errorf("incident %s: %w", incidentID, ErrNotFound)
		}
		if clientID != nil {
			prev, err := scanUpdate(tx.QueryRow(ctx, `SELECT id, incident_id::text, client_id::text, author, kind, body, created_at
				FROM incident_updates WHERE client_id = $1`, *clientID))
			if err == nil {
				if prev.IncidentID != incidentID || prev.Body != in.Body || prev.Author != actor {
					return fmt.Errorf("update %s exists with a different body: %w", *clientID, ErrConflict)
				}
				out = prev
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("read update %s: %w", *clientID, err)
			}
		}
		out, err = scanUpdate(tx.QueryRow(ctx, `INSERT INTO incident_updates (incident_id, client_id, author, kind, body)
			VALUES ($1, $2, $3, 'comment', $4)
			RETURNING id, incident_id::text, client_id::text, author, kind, body, created_at`,
			incidentID, clientID, actor, in.Body))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return fmt.Errorf("update %s is already used elsewhere: %w", *clientID, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert update: %w", err)
		}
		created = true
		_, err = appendEvent(ctx, tx, Event{Actor: actor, Action: "incident.commented", Entity: "incident",
			EntityID: incidentID, SessionID: &inc.SessionID, After: mustJSON(out)})
		return err
	})
	return out, created, err
}

// IncidentFilter narrows ListIncidents; empty fields match all.
type IncidentFilter struct {
	Status, Severity, Category string
	Endpoint                   string
	District                   string // the district unit and its communes
	Scope                      string // the caller's district scope: nothing outside it ("" = all)
	Session                    string
	Q                          string // words that must all appear, diacritics ignored
	Cursor                     string // from a previous page's NextCursor
	Limit                      int    // default 50, at most 200
}

// IncidentPage is one page of incidents, newest first.
type IncidentPage struct {
	Incidents  []Incident `json:"incidents"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// ListIncidents returns incidents newest first (created_at, then id, descending), one
// page at a time. The cursor is opaque to clients.
func (s *Store) ListIncidents(ctx context.Context, f IncidentFilter) (IncidentPage, error) {
	where, args, err := f.sql()
	if err != nil {
		return IncidentPage{}, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 200)
	args = append(args, limit+1)
	sql := `SELECT ` + incidentCols + incidentFrom + where +
		fmt.Sprintf(` ORDER BY i.created_at DESC, i.id DESC LIMIT $%d`, len(args))
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return IncidentPage{}, fmt.Errorf("list incidents: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Incident, error) { return scanIncident(r) })
	if err != nil {
		return IncidentPage{}, fmt.Errorf("scan incidents: %w", err)
	}
	page := IncidentPage{Incidents: list}
	if len(list) > limit {
		page.Incidents = list[:limit]
		last := list[limit-1]
		page.NextCursor = encodeCursor(last.CreatedAt, last.ID)
	}
	if page.Incidents == nil {
		page.Incidents = []Incident{}
	}
	return page, nil
}

// sql builds the WHERE clause and its arguments.
func (f IncidentFilter) sql() (string, []any, error) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	for _, e := range []struct {
		field, v string
		allowed  []string
	}{{"status", f.Status, IncidentStatuses}, {"severity", f.Severity, IncidentSeverities}, {"category", f.Category, IncidentCategories}} {
		if e.v != "" && !slices.Contains(e.allowed, e.v) {
			return "", nil, fieldErr(e.field, "must be one of %s", strings.Join(e.allowed, ", "))
		}
	}
	if f.Status != "" {
		add(`i.status = $?`, f.Status)
	}
	if f.Severity != "" {
		add(`i.severity = $?`, f.Severity)
	}
	if f.Category != "" {
		add(`i.category = $?`, f.Category)
	}
	if f.Endpoint != "" {
		add(`i.endpoint_code = $?`, f.Endpoint)
	}
	if f.District != "" {
		add(`(e.code = $? OR e.parent_code = $?)`, f.District)
	}
	if f.Scope != "" {
		add(`(e.code = $? OR e.parent_code = $?)`, f.Scope)
	}
	if f.Session != "" {
		if validUUID("session", f.Session) != nil {
			return "", nil, fieldErr("session", "must be a session id")
		}
		add(`i.session_id = $?`, f.Session)
	}
	if utf8.RuneCountInString(f.Q) > 200 {
		return "", nil, fieldErr("q", "at most 200 characters")
	}
	words := strings.Fields(f.Q)
	if len(words) > 10 {
		return "", nil, fieldErr("q", "at most 10 words")
	}
	for _, w := range words {
		add(`f_unaccent(i.title || ' ' || i.body) LIKE '%' || f_unaccent($?) || '%'`, escapeLike(w))
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return "", nil, fieldErr("cursor", "not a cursor from this API")
		}
		args = append(args, at, id)
		conds = append(conds, fmt.Sprintf(`(i.created_at, i.id) < ($%d, $%d::uuid)`, len(args)-1, len(args)))
	}
	if len(conds) == 0 {
		return "", args, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// escapeLike makes a user's word match literally in LIKE (backslash is the escape).
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// A cursor is the (created_at, id) of the last row of a page, in microseconds since
// the epoch (PostgreSQL's precision), base64url-encoded so clients treat it as opaque.
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "," + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("cursor: %w", err)
	}
	us, id, ok := strings.Cut(string(b), ",")
	if !ok {
		return time.Time{}, "", errors.New("cursor: malformed")
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("cursor time: %w", err)
	}
	if _, err := uuid.Parse(id); err != nil {
		return time.Time{}, "", fmt.Errorf("cursor id: %w", err)
	}
	return time.UnixMicro(n).UTC(), id, nil
}
