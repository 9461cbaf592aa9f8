package store

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// Endpoint kinds, as in the roster.
const (
	KindProvince = "province"
	// KindNation is the root of a national roster (code "00"): its children are
	// provinces, each of which is a node of its own (DESIGN.md, beyond one machine).
	KindNation   = "nation"
	KindDistrict = "district"
	KindCommune  = "commune"
)

// Endpoint is one unit of the roster: the command room, a district or a commune.
type Endpoint struct {
	Code       string    `json:"code"`
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`
	UnitType   string    `json:"unit_type"`
	ParentCode string    `json:"parent_code,omitempty"`
	RosterDate string    `json:"roster_date"`
	HasLink    bool      `json:"has_link"`
	UpdatedAt  time.Time `json:"-"`
}

// RosterEntry is one row of a roster file.
type RosterEntry struct {
	Code, Name, Kind, UnitType, ParentCode string
}

// ParseRoster reads a roster TSV (code, name, kind, unit_type, parent_code). Parents
// must come before their children, as rostergen writes them.
func ParseRoster(r io.Reader) ([]RosterEntry, error) {
	cr := csv.NewReader(r)
	cr.Comma = '\t'
	cr.FieldsPerRecord = 5
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("roster header: %w", err)
	}
	if head[0] != "code" || head[4] != "parent_code" {
		return nil, fmt.Errorf("roster header %v: want code, name, kind, unit_type, parent_code", head)
	}
	seen := map[string]string{}
	var out []RosterEntry
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("roster: %w", err)
		}
		e := RosterEntry{rec[0], rec[1], rec[2], rec[3], rec[4]}
		if err := e.validate(seen); err != nil {
			return nil, fmt.Errorf("roster line %d: %w", len(out)+2, err)
		}
		seen[e.Code] = e.Kind
		out = append(out, e)
	}
	return out, nil
}

func (e RosterEntry) validate(seen map[string]string) error {
	wantLen := map[string]int{KindNation: 2, KindProvince: 2, KindDistrict: 3, KindCommune: 5}[e.Kind]
	wantParent := map[string]string{KindDistrict: KindProvince, KindCommune: KindDistrict}[e.Kind]
	if e.Kind == KindProvince && e.ParentCode != "" {
		wantParent = KindNation // a province in the national roster; alone, it is the root
	}
	switch {
	case wantLen == 0:
		return fmt.Errorf("code %s: unknown kind %q", e.Code, e.Kind)
	case len(e.Code) != wantLen:
		return fmt.Errorf("code %q: a %s code has %d digits", e.Code, e.Kind, wantLen)
	case e.Name == "":
		return fmt.Errorf("code %s: empty name", e.Code)
	case seen[e.Code] != "":
		return fmt.Errorf("code %s: duplicate", e.Code)
	case wantParent == "" && e.ParentCode != "":
		return fmt.Errorf("code %s: a %s has no parent", e.Code, e.Kind)
	case wantParent != "" && seen[e.ParentCode] != wantParent:
		return fmt.Errorf("code %s: parent %q must be an earlier %s", e.Code, e.ParentCode, wantParent)
	}
	return nil
}

// RosterResult counts what LoadRoster changed.
type RosterResult struct {
	Added, Updated, Unchanged int
}

// LoadRoster upserts the roster for date. It is idempotent; a changed name or parent
// is updated in place and audited, and nothing is deleted, so history keeps its keys.
func (s *Store) LoadRoster(ctx context.Context, date string, entries []RosterEntry) (RosterResult, error) {
	var res RosterResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = RosterResult{}
		for _, e := range entries {
			var parent *string
			if e.ParentCode != "" {
				parent = &e.ParentCode
			}
			var before Endpoint
			err := tx.QueryRow(ctx, `SELECT name, kind, unit_type, coalesce(parent_code, ''), roster_date::text
				FROM endpoints WHERE code = $1 FOR UPDATE`, e.Code).
				Scan(&before.Name, &before.Kind, &before.UnitType, &before.ParentCode, &before.RosterDate)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				if _, err := tx.Exec(ctx, `INSERT INTO endpoints (code, name, kind, unit_type, parent_code, roster_date)
					VALUES ($1, $2, $3, $4, $5, $6)`, e.Code, e.Name, e.Kind, e.UnitType, parent, date); err != nil {
					return fmt.Errorf("insert endpoint %s: %w", e.Code, err)
				}
				res.Added++
				continue
			case err != nil:
				return fmt.Errorf("read endpoint %s: %w", e.Code, err)
			}
			if before.Name == e.Name && before.Kind == e.Kind && before.UnitType == e.UnitType &&
				before.ParentCode == e.ParentCode && before.RosterDate == date {
				res.Unchanged++
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE endpoints SET name = $2, kind = $3, unit_type = $4, parent_code = $5,
				roster_date = $6, updated_at = now() WHERE code = $1`, e.Code, e.Name, e.Kind, e.UnitType, parent, date); err != nil {
				return fmt.Errorf("update endpoint %s: %w", e.Code, err)
			}
			before.Code = e.Code
			after := Endpoint{Code: e.Code, Name: e.Name, Kind: e.Kind, UnitType: e.UnitType, ParentCode: e.ParentCode, RosterDate: date}
			if _, err := appendEvent(ctx, tx, Event{Actor: "system", Action: "endpoint.updated", Entity: "endpoint",
				EntityID: e.Code, Before: mustJSON(before), After: mustJSON(after)}); err != nil {
				return err
			}
			res.Updated++
		}
		if res.Added > 0 {
			_, err := appendEvent(ctx, tx, Event{Actor: "system", Action: "roster.loaded", Entity: "roster", EntityID: date,
				After: mustJSON(map[string]int{"added": res.Added, "updated": res.Updated})})
			return err
		}
		return nil
	})
	return res, err
}

// EndpointFilter narrows ListEndpoints; empty fields match all.
type EndpointFilter struct {
	Kind     string
	District string // a district code: the district and its communes
	Scope    string // the caller's district scope: nothing outside it ("" = all)
}

// ListEndpoints returns the roster in code order (command room, districts, communes).
func (s *Store) ListEndpoints(ctx context.Context, f EndpointFilter) ([]Endpoint, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT code, name, kind, unit_type, coalesce(parent_code, ''), roster_date::text, token_hash IS NOT NULL, updated_at
		FROM endpoints
		WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR code = $2 OR parent_code = $2)
		  AND ($3 = '' OR code = $3 OR parent_code = $3)
		ORDER BY length(code), code`, f.Kind, f.District, f.Scope)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) {
		var e Endpoint
		err := r.Scan(&e.Code, &e.Name, &e.Kind, &e.UnitType, &e.ParentCode, &e.RosterDate, &e.HasLink, &e.UpdatedAt)
		return e, err
	})
}

// GetEndpoint returns one endpoint or ErrNotFound.
func (s *Store) GetEndpoint(ctx context.Context, code string) (Endpoint, error) {
	var e Endpoint
	err := s.pool.QueryRow(ctx, `
		SELECT code, name, kind, unit_type, coalesce(parent_code, ''), roster_date::text, token_hash IS NOT NULL, updated_at
		FROM endpoints WHERE code = $1`, code).
		Scan(&e.Code, &e.Name, &e.Kind, &e.UnitType, &e.ParentCode, &e.RosterDate, &e.HasLink, &e.UpdatedAt)
	if err != nil {
		return e, fmt.Errorf("endpoint %s: %w", code, notFound(err))
	}
	return e, nil
}

// EndpointParents maps every code of the roster to its parent's code ("" for the
// province): what a district scope is checked against.
func (s *Store) EndpointParents(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT code, coalesce(parent_code, '') FROM endpoints`)
	if err != nil {
		return nil, fmt.Errorf("read roster parents: %w", err)
	}
	out := map[string]string{}
	var code, parent string
	_, err = pgx.ForEachRow(rows, []any{&code, &parent}, func() error {
		out[code] = parent
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read roster parents: %w", err)
	}
	return out, nil
}
