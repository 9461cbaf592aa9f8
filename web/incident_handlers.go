package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/store"
)

// createIncident logs an incident. An endpoint reports only as itself: endpoint_code
// defaults to its own code and may not name another.
func (s *Server) createIncident(c *gin.Context) {
	var in store.NewIncident
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	p := principal(c)
	if p.IsEndpoint() {
		if in.EndpointCode == "" {
			in.EndpointCode = p.EndpointCode
		}
		if in.EndpointCode != p.EndpointCode {
			fail(c, http.StatusForbidden, "forbidden", "an endpoint reports incidents only as itself", "endpoint_code")
			return
		}
	}
	if p.Scoped() && in.EndpointCode != "" && !s.inScope(c, in.EndpointCode) {
		fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("%q is not a unit of your district", in.EndpointCode), "endpoint_code")
		return
	}
	out, created, err := s.Store.CreateIncident(c.Request.Context(), p.Actor(), in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(createdOr200(created), out)
}

// listIncidents serves one page of incidents, newest first. An endpoint sees only its
// own; asking for another endpoint's is refused. District-scoped staff see their
// district's (the store filters); naming a unit outside it is 404.
func (s *Server) listIncidents(c *gin.Context) {
	f := store.IncidentFilter{
		Status: c.Query("status"), Severity: c.Query("severity"), Category: c.Query("category"),
		Endpoint: c.Query("endpoint"), District: c.Query("district"), Session: c.Query("session"),
		Q: c.Query("q"), Cursor: c.Query("cursor"),
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fail(c, http.StatusBadRequest, "invalid", "limit must be a positive integer (at most 200)", "limit")
			return
		}
		f.Limit = n
	}
	if p := principal(c); p.IsEndpoint() {
		if f.Endpoint != "" && f.Endpoint != p.EndpointCode {
			fail(c, http.StatusForbidden, "forbidden", "an endpoint reads only its own incidents", "endpoint")
			return
		}
		f.Endpoint = p.EndpointCode
	} else if p.Scoped() {
		if (f.Endpoint != "" && !s.inScope(c, f.Endpoint)) || (f.District != "" && !s.inScope(c, f.District)) {
			failOutOfScope(c)
			return
		}
		f.Scope = p.District
	}
	page, err := s.Store.ListIncidents(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// getIncident serves one incident with its timeline. To an endpoint, another
// endpoint's incident does not exist; to district-scoped staff, another district's.
func (s *Server) getIncident(c *gin.Context) {
	out, err := s.Store.GetIncident(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if !s.inScope(c, out.EndpointCode) {
		fail(c, http.StatusNotFound, "not_found", "no such incident", "")
		return
	}
	c.JSON(http.StatusOK, out)
}

// incidentVisible answers 404 (and false) when district-scoped staff name an
// incident of another district. An incident's endpoint never changes, so checking
// before the write is enough.
func (s *Server) incidentVisible(c *gin.Context, id string) bool {
	if !principal(c).Scoped() {
		return true
	}
	inc, err := s.Store.GetIncident(c.Request.Context(), id)
	if err != nil {
		s.failErr(c, err)
		return false
	}
	if !s.inScope(c, inc.EndpointCode) {
		fail(c, http.StatusNotFound, "not_found", "no such incident", "")
		return false
	}
	return true
}

func (s *Server) patchIncident(c *gin.Context) {
	var in store.IncidentPatch
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	if !s.incidentVisible(c, c.Param("id")) {
		return
	}
	out, err := s.Store.UpdateIncident(c.Request.Context(), principal(c).Actor(), c.Param("id"), in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// addIncidentUpdate appends a comment; the reporting endpoint may comment on its own
// incident.
func (s *Server) addIncidentUpdate(c *gin.Context) {
	var in store.NewIncidentUpdate
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	p := principal(c)
	if !s.incidentVisible(c, c.Param("id")) {
		return
	}
	out, created, err := s.Store.AddIncidentUpdate(c.Request.Context(), p.Actor(), p.EndpointCode, c.Param("id"), in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(createdOr200(created), out)
}

// decodeOptional is decode for routes whose body may be empty (an endpoint
// acknowledging needs to say nothing).
func decodeOptional(c *gin.Context, v any) error {
	if c.Request.Body == nil {
		return nil
	}
	body, err := io.ReadAll(c.Request.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &decodeError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", mbe.Limit), ""}
	}
	if err != nil {
		return &decodeError{http.StatusBadRequest, "invalid_json", "cannot read the body", ""}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	return decode(c, v)
}
