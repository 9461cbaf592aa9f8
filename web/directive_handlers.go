package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

func (s *Server) issueDirective(c *gin.Context) {
	var in store.NewDirective
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	if !s.directiveInScope(c, in) {
		return
	}
	out, created, err := s.Store.IssueDirective(c.Request.Context(), principal(c).Actor(), in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(createdOr200(created), out)
}

// directiveInScope holds district-scoped staff to their own units: targets the
// district itself or a list of its units, never all (400 targets); a related
// incident of another district is unknown (400 incident_id). It has answered when
// it returns false.
func (s *Server) directiveInScope(c *gin.Context, in store.NewDirective) bool {
	p := principal(c)
	if !p.Scoped() {
		return true
	}
	t := in.Targets
	switch {
	case t.All:
		fail(c, http.StatusBadRequest, "invalid", "a district's staff direct their own district, not all (the province issues those)", "targets")
		return false
	case t.District != "" && t.District != p.District:
		fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("district %q is not your district", t.District), "targets")
		return false
	}
	for _, code := range t.Endpoints {
		if !s.inScope(c, code) {
			fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("%q is not a unit of your district", code), "targets")
			return false
		}
	}
	if in.IncidentID != nil {
		inc, err := s.Store.GetIncident(c.Request.Context(), *in.IncidentID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.failErr(c, err)
			return false
		}
		if err != nil || !s.inScope(c, inc.EndpointCode) {
			fail(c, http.StatusBadRequest, "invalid", "no such incident", "incident_id")
			return false
		}
	}
	return true
}

// listDirectives lists directives, newest first. Staff may list all or one endpoint's;
// an endpoint lists only its own, each with its receipt, and reading the list counts as
// delivery.
func (s *Server) listDirectives(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	f := store.DirectiveFilter{Endpoint: c.Query("endpoint"), Session: c.Query("session"), Scope: scopeOf(p)}
	if f.Endpoint != "" && p.Scoped() && !s.inScope(c, f.Endpoint) {
		failOutOfScope(c)
		return
	}
	if p.IsEndpoint() {
		if f.Endpoint != "" && f.Endpoint != p.EndpointCode {
			fail(c, http.StatusForbidden, "forbidden", "an endpoint reads only its own directives", "endpoint")
			return
		}
		f.Endpoint = p.EndpointCode
		if _, err := s.Store.MarkAllDelivered(ctx, p.EndpointCode); err != nil {
			s.failErr(c, err)
			return
		}
	}
	list, err := s.Store.ListDirectives(ctx, f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if p.IsEndpoint() {
		for i := range list {
			list[i].Summary = nil // the others' state is the desk's business
		}
	}
	c.JSON(http.StatusOK, gin.H{"directives": list})
}

// getDirective serves a directive with every receipt (staff; district-scoped staff
// only their district's, 404 when it has no target there), or with the endpoint's
// own receipt only (404 when the endpoint is not a target).
func (s *Server) getDirective(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	d, err := s.Store.GetDirectiveIn(ctx, c.Param("id"), scopeOf(p))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if !p.IsEndpoint() {
		c.JSON(http.StatusOK, d)
		return
	}
	i := slices.IndexFunc(d.Receipts, func(r store.Receipt) bool { return r.EndpointCode == p.EndpointCode })
	if i < 0 {
		fail(c, http.StatusNotFound, "not_found", "no such directive", "")
		return
	}
	own := d.Receipts[i]
	if own.DeliveredAt == nil {
		if own, err = s.Store.MarkDelivered(ctx, d.ID, p.EndpointCode); err != nil {
			s.failErr(c, err)
			return
		}
	}
	d.Receipts, d.TargetCodes, d.Summary, d.Receipt = nil, nil, nil, &own
	c.JSON(http.StatusOK, d)
}

type ackRequest struct {
	EndpointCode string `json:"endpoint_code"`
	Via          string `json:"via"`
}

// ackDirective acknowledges a receipt: an endpoint its own (the body may be empty),
// staff on an endpoint's behalf, naming how the acknowledgement came.
func (s *Server) ackDirective(c *gin.Context) {
	var in ackRequest
	if err := decodeOptional(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	p := principal(c)
	code, ok := s.onBehalfOf(c, p, in.EndpointCode)
	if !ok {
		return
	}
	via := store.AckViaApp
	if p.IsEndpoint() {
		if in.Via != "" {
			fail(c, http.StatusBadRequest, "invalid", "via is recorded by staff acknowledging on an endpoint's behalf", "via")
			return
		}
	} else {
		if !slices.Contains(store.StaffAckVias, in.Via) {
			fail(c, http.StatusBadRequest, "invalid", "via is required: "+strings.Join(store.StaffAckVias, ", "), "via")
			return
		}
		via = in.Via
	}
	out, err := s.Store.AckDirective(c.Request.Context(), p.Actor(), c.Param("id"), code, via)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

type replyRequest struct {
	Text         string `json:"text"`
	Done         bool   `json:"done"`
	EndpointCode string `json:"endpoint_code"`
}

// replyDirective records a target's reply, sent by the endpoint or by staff for it.
func (s *Server) replyDirective(c *gin.Context) {
	var in replyRequest
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	p := principal(c)
	code, ok := s.onBehalfOf(c, p, in.EndpointCode)
	if !ok {
		return
	}
	out, err := s.Store.ReplyDirective(c.Request.Context(), p.Actor(), c.Param("id"), code, in.Text, in.Done, p.IsEndpoint())
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// onBehalfOf picks the endpoint a receipt action is for: an endpoint acts only for
// itself; staff must name the endpoint. It has answered the request when ok is false.
func (s *Server) onBehalfOf(c *gin.Context, p auth.Principal, code string) (string, bool) {
	if p.IsEndpoint() {
		if code != "" && code != p.EndpointCode {
			fail(c, http.StatusForbidden, "forbidden", "an endpoint acts only for itself", "endpoint_code")
			return "", false
		}
		return p.EndpointCode, true
	}
	if code == "" {
		fail(c, http.StatusBadRequest, "invalid", "endpoint_code is required when staff act for an endpoint", "endpoint_code")
		return "", false
	}
	if !s.inScope(c, code) {
		// Another district's receipt does not exist for district-scoped staff.
		fail(c, http.StatusNotFound, "not_found", "no such receipt", "")
		return "", false
	}
	return code, true
}
