package web

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

// District authority ("phân quyền điều hành"): staff limited to a district see and
// direct that district and its communes only. What lies outside is absent (404), not
// forbidden, so nothing leaks. Lists are filtered in the store queries (a Scope
// field); single records are checked against the roster's parents here.

// rosterParents caches the roster's code → parent map. The roster changes only when
// it is loaded (at start), so a short refresh interval is plenty; an unknown code
// forces a refresh (at most once a second).
type rosterParents struct {
	mu      sync.Mutex
	parents map[string]string
	loaded  time.Time
}

const rosterParentsTTL = time.Minute

func (r *rosterParents) get(ctx context.Context, st *store.Store, code string) (string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	age := time.Since(r.loaded)
	parent, known := r.parents[code]
	if r.parents == nil || age > rosterParentsTTL || (!known && age > time.Second) {
		m, err := st.EndpointParents(ctx)
		if err != nil {
			return "", false, err
		}
		r.parents, r.loaded = m, time.Now()
		parent, known = m[code]
	}
	return parent, known, nil
}

// parentOf returns a lookup of a code's parent for auth.Principal.InScope. A
// database error makes every code unknown (out of scope): the scope fails closed.
func (s *Server) parentOf(ctx context.Context) func(string) string {
	return func(code string) string {
		p, _, err := s.parents.get(ctx, s.Store, code)
		if err != nil {
			s.Log.Warn("scope: read roster parents", "err", err)
			return ""
		}
		return p
	}
}

// inScope reports whether the request's principal may see the unit code.
func (s *Server) inScope(c *gin.Context, code string) bool {
	return principal(c).InScope(code, s.parentOf(c.Request.Context()))
}

// scopeOf is the district a staff principal's store queries are limited to ("" =
// the whole province).
func scopeOf(p auth.Principal) string {
	if p.Scoped() {
		return p.District
	}
	return ""
}

// failOutOfScope answers 404 as if the record did not exist.
func failOutOfScope(c *gin.Context) {
	fail(c, http.StatusNotFound, "not_found", "no such record", "")
}

// ---- the event stream ----

// eventView decides what of an audit event a principal's stream carries: the event
// as is, a trimmed copy, or nothing (ok false). Unscoped staff get every event.
// District-scoped staff get the events about units of their district (incidents,
// directives and their receipts, turnout reports, live-session actions on an
// endpoint) and the events that concern no unit (the session's start and end, live
// actions on the whole room); never events about users, links, the roster, the
// registered-voter list or the video record.
func (s *Server) eventView(ctx context.Context, p auth.Principal, e store.Event) (store.Event, bool) {
	if !p.Scoped() {
		return e, true
	}
	in := func(code string) bool { return p.InScope(code, s.parentOf(ctx)) }
	switch e.Entity {
	case "session", "live_session":
		return e, true
	case "incident":
		code, ok := s.incidentCode(ctx, e)
		return e, ok && in(code)
	case "turnout_report":
		return e, in(docCode(e.After, "endpoint_code"))
	case "directive":
		return scopedDirectiveEvent(e, in)
	case "endpoint":
		switch e.Action {
		case "endpoint.link_issued", "endpoint.link_revoked", "endpoint.updated":
			return e, false // links and the roster are the province's
		}
		if !in(e.EntityID) {
			return e, false
		}
		// A live action on one of its units (floor, mute, private line): the
		// previous holder of the floor may be another district's.
		if prev := docCode(e.After, "previous"); prev != "" && !in(prev) {
			e.After = withField(e.After, "previous", nil)
		}
		return e, true
	}
	// user, roster, turnout_registered, recording and anything new: not for a district.
	return e, false
}

// incidentCode finds the endpoint an incident event concerns: in the incident itself
// (created, updated), or by its id (a comment's event carries only the entry).
func (s *Server) incidentCode(ctx context.Context, e store.Event) (string, bool) {
	if code := docCode(e.After, "endpoint_code"); code != "" {
		return code, true
	}
	inc, err := s.Store.GetIncident(ctx, e.EntityID)
	if err != nil {
		return "", false
	}
	return inc.EndpointCode, true
}

// scopedDirectiveEvent trims a directive event to the district's units: a receipt
// event passes when its endpoint is in scope; directive.issued passes when one of its
// targets is, carrying only those targets' receipts.
func scopedDirectiveEvent(e store.Event, in func(string) bool) (store.Event, bool) {
	if code := docCode(e.After, "endpoint_code"); code != "" {
		return e, in(code)
	}
	if e.Action != "directive.issued" {
		return e, false
	}
	var d store.Directive
	if json.Unmarshal(e.After, &d) != nil {
		return e, false
	}
	var kept []store.Receipt
	codes := []string{}
	for _, r := range d.Receipts {
		if in(r.EndpointCode) {
			kept = append(kept, r)
			codes = append(codes, r.EndpointCode)
		}
	}
	if len(kept) == 0 {
		return e, false
	}
	if d.Targets.Endpoints != nil {
		var eps []string
		for _, c := range d.Targets.Endpoints {
			if in(c) {
				eps = append(eps, c)
			}
		}
		d.Targets.Endpoints = eps
	}
	d.Receipts, d.TargetCodes = kept, codes
	sum := store.ReceiptSummary{Total: len(kept)}
	for _, r := range kept {
		if r.DeliveredAt != nil {
			sum.Delivered++
		}
		if r.AckedAt != nil {
			sum.Acked++
		}
		if r.RepliedAt != nil {
			sum.Replied++
		}
		if r.DoneAt != nil {
			sum.Done++
		}
	}
	d.Summary = &sum
	b, err := json.Marshal(d)
	if err != nil {
		return e, false
	}
	e.After = b
	return e, true
}

// docCode reads one string field of an event's JSON document ("" when absent).
func docCode(doc json.RawMessage, field string) string {
	if len(doc) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(doc, &m) != nil {
		return ""
	}
	v, _ := m[field].(string)
	return v
}

// withField returns doc with field set to v.
func withField(doc json.RawMessage, field string, v any) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(doc, &m) != nil {
		return doc
	}
	m[field] = v
	b, err := json.Marshal(m)
	if err != nil {
		return doc
	}
	return b
}
