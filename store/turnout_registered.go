package store

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// RegisteredFigure is one commune's registered voters, as set by PUT or a file.
// Reason is required to change a figure once the commune has reported turnout.
type RegisteredFigure struct {
	Code       string `json:"code"`
	Registered *int64 `json:"registered"`
	Reason     string `json:"reason,omitempty"`
}

// RegisteredEntry is a commune's registered voters as kept: for its roster date,
// with who last set it and why.
type RegisteredEntry struct {
	Code         string     `json:"code"`
	Name         string     `json:"name"`
	DistrictCode string     `json:"district_code"`
	RosterDate   string     `json:"roster_date"`
	Registered   *int64     `json:"registered"`
	Reason       string     `json:"reason,omitempty"`
	UpdatedBy    string     `json:"updated_by,omitempty"`
	UpdatedAt    *time.Time `json:"updated_at,omitempty"`
}

// RegisteredResult counts what SetRegistered did.
type RegisteredResult struct {
	Added     int `json:"added"`
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
}

// ParseRegistered reads a table of registered voters (comma ',' for CSV uploads, '\t'
// for the embedded files). A header row naming "code" and "registered" (and
// optionally "reason"; other columns are ignored) picks the columns; without one the
// columns are code, registered and an optional reason. A 4-digit code is a commune
// code whose leading zero a spreadsheet dropped, and gets it back.
func ParseRegistered(r io.Reader, comma rune) ([]RegisteredFigure, error) {
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cols := map[string]int{"code": 0, "registered": 1, "reason": 2}
	var out []RegisteredFigure
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fieldErr("body", "line %d: %v", line, err)
		}
		if line == 1 {
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if head := headerColumns(rec); head != nil {
				cols = head
				continue
			}
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		get := func(name string) string {
			if i, ok := cols[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		code := get("code")
		if len(code) == 4 && isDigits(code) {
			code = "0" + code
		}
		n, err := strconv.ParseInt(get("registered"), 10, 64)
		if err != nil {
			return nil, fieldErr("registered", "line %d: %q is not a whole number", line, get("registered"))
		}
		out = append(out, RegisteredFigure{Code: code, Registered: &n, Reason: get("reason")})
	}
	return out, nil
}

// headerColumns maps a header row's column names, or returns nil if rec is data.
func headerColumns(rec []string) map[string]int {
	m := map[string]int{}
	for i, c := range rec {
		m[strings.ToLower(strings.TrimSpace(c))] = i
	}
	_, hasCode := m["code"]
	_, hasReg := m["registered"]
	if !hasCode || !hasReg {
		return nil
	}
	return m
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func validRegistered(rows []RegisteredFigure) error {
	if len(rows) == 0 {
		return fieldErr("body", "no figures: send [{\"code\": \"07192\", \"registered\": 4210}, ...]")
	}
	seen := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		r.Code, r.Reason = strings.TrimSpace(r.Code), strings.TrimSpace(r.Reason)
		switch {
		case r.Code == "":
			return fieldErr("code", "row %d: required", i+1)
		case seen[r.Code]:
			return fieldErr("code", "row %d: %s appears twice", i+1, r.Code)
		case r.Registered == nil || *r.Registered < 0 || *r.Registered > maxRegistered:
			return fieldErr("registered", "row %d (%s): required, 0 to %d", i+1, r.Code, maxRegistered)
		case utf8.RuneCountInString(r.Reason) > maxReason:
			return fieldErr("reason", "row %d (%s): at most %d characters", i+1, r.Code, maxReason)
		}
		seen[r.Code] = true
	}
	return nil
}

// SetRegistered sets communes' registered voters for their roster date, all or
// nothing. A figure set for the first time needs no reason; changing one of a commune
// that has reported turnout needs a reason (ErrReasonRequired), and may not fall below
// a figure it reported (ErrOverRegistered). New figures are audited together in one
// turnout.registered_loaded event, each change in its own turnout.registered_changed.
func (s *Store) SetRegistered(ctx context.Context, actor string, rows []RegisteredFigure) (RegisteredResult, error) {
	res, _, err := s.setRegistered(ctx, actor, rows, false)
	return res, err
}

// SeedRegistered is SetRegistered only when no registered figure exists yet for the
// roster date of the given communes (the demo's embedded figures); seeded is false
// when there were figures already and nothing was written.
func (s *Store) SeedRegistered(ctx context.Context, actor string, rows []RegisteredFigure) (RegisteredResult, bool, error) {
	return s.setRegistered(ctx, actor, rows, true)
}

func (s *Store) setRegistered(ctx context.Context, actor string, rows []RegisteredFigure, onlyIfEmpty bool) (RegisteredResult, bool, error) {
	if err := validRegistered(rows); err != nil {
		return RegisteredResult{}, false, err
	}
	// Lock in code order, as reports do one commune at a time: no deadlock.
	sorted := slices.Clone(rows)
	slices.SortFunc(sorted, func(a, b RegisteredFigure) int { return strings.Compare(a.Code, b.Code) })
	var res RegisteredResult
	wrote := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = RegisteredResult{}
		if onlyIfEmpty {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM turnout_registered t JOIN endpoints e
				ON e.code = t.endpoint_code AND e.roster_date = t.roster_date)`).Scan(&exists); err != nil {
				return fmt.Errorf("read registered voters: %w", err)
			}
			if exists {
				return nil
			}
		}
		added := map[string]int64{}
		date := ""
		for _, r := range sorted {
			ep, err := lockCommune(ctx, tx, "code", r.Code)
			if err != nil {
				return err
			}
			date = ep.RosterDate
			cur, had, err := registeredFor(ctx, tx, ep)
			if err != nil {
				return err
			}
			if had && cur == *r.Registered {
				res.Unchanged++
				continue
			}
			if had {
				if err := checkRegisteredChange(ctx, tx, ep.Code, *r.Registered, r.Reason); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO turnout_registered (endpoint_code, roster_date, registered, reason, updated_by)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (endpoint_code, roster_date) DO UPDATE
				SET registered = EXCLUDED.registered, reason = EXCLUDED.reason,
				    updated_by = EXCLUDED.updated_by, updated_at = now()`,
				ep.Code, ep.RosterDate, *r.Registered, r.Reason, actor); err != nil {
				return fmt.Errorf("set registered voters of %s: %w", ep.Code, err)
			}
			if !had {
				added[ep.Code] = *r.Registered
				res.Added++
				continue
			}
			res.Changed++
			before := map[string]any{"code": ep.Code, "roster_date": ep.RosterDate, "registered": cur}
			after := map[string]any{"code": ep.Code, "roster_date": ep.RosterDate, "registered": *r.Registered, "reason": r.Reason}
			if _, err := appendEvent(ctx, tx, Event{Actor: actor, Action: "turnout.registered_changed", Entity: "turnout_registered",
				EntityID: ep.Code, Before: mustJSON(before), After: mustJSON(after)}); err != nil {
				return err
			}
		}
		if len(added) > 0 {
			if _, err := appendEvent(ctx, tx, Event{Actor: actor, Action: "turnout.registered_loaded", Entity: "turnout_registered",
				EntityID: date, After: mustJSON(map[string]any{"roster_date": date, "added": len(added), "registered": added})}); err != nil {
				return err
			}
		}
		wrote = true
		return nil
	})
	return res, wrote, err
}

// checkRegisteredChange: once a commune has reported, its figure changes only with a
// reason, and never below the highest figure it reported.
func checkRegisteredChange(ctx context.Context, tx pgx.Tx, code string, registered int64, reason string) error {
	var maxVoted *int64
	if err := tx.QueryRow(ctx, `SELECT max(voted) FROM turnout_reports WHERE endpoint_code = $1`, code).Scan(&maxVoted); err != nil {
		return fmt.Errorf("read turnout of %s: %w", code, err)
	}
	if maxVoted == nil {
		return nil
	}
	if reason == "" {
		return fmt.Errorf("%s has reported turnout; say why its registered figure changes: %w", code, ErrReasonRequired)
	}
	if registered < *maxVoted {
		return fmt.Errorf("%s: %d registered is below the %d it reported as voted: %w", code, registered, *maxVoted, ErrOverRegistered)
	}
	return nil
}

// ListRegistered returns every commune of the roster with its registered voters for
// its roster date (nil when not set), in code order.
func (s *Store) ListRegistered(ctx context.Context) ([]RegisteredEntry, error) {
	return s.ListRegisteredIn(ctx, "")
}

// ListRegisteredIn is ListRegistered limited to one district's communes ("" = all).
func (s *Store) ListRegisteredIn(ctx context.Context, district string) ([]RegisteredEntry, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.code, e.name, coalesce(e.parent_code, ''), e.roster_date::text, t.registered, coalesce(t.reason, ''),
		       coalesce(t.updated_by, ''), t.updated_at
		FROM endpoints e LEFT JOIN turnout_registered t ON t.endpoint_code = e.code AND t.roster_date = e.roster_date
		WHERE e.kind = 'commune' AND ($1 = '' OR e.parent_code = $1) ORDER BY e.code`, district)
	if err != nil {
		return nil, fmt.Errorf("list registered voters: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RegisteredEntry, error) {
		var x RegisteredEntry
		err := r.Scan(&x.Code, &x.Name, &x.DistrictCode, &x.RosterDate, &x.Registered, &x.Reason, &x.UpdatedBy, &x.UpdatedAt)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan registered voters: %w", err)
	}
	return out, nil
}
