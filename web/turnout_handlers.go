package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/opscenter/opscenter/store"
)

// turnoutRoutes registers turnout reporting: registered voters, reports, the roll-up
// and the curve. Endpoints pass writerOrEndpoint/readerOrEndpoint; turnoutReach then
// holds them to their own code.
func (s *Server) turnoutRoutes(api *gin.RouterGroup) {
	api.PUT("/turnout/registered", s.need(capRun), s.putRegistered)
	api.GET("/turnout/registered", s.need(capRead), s.listRegistered)
	api.POST("/turnout/reports", s.need(writerOrEndpoint), s.reportTurnout)
	api.GET("/turnout/reports", s.need(readerOrEndpoint), s.listTurnoutReports)
	api.GET("/turnout", s.need(readerOrEndpoint), s.turnoutPicture)
	api.GET("/turnout/series", s.need(readerOrEndpoint), s.turnoutSeries)
}

// turnoutReach is which units a principal may report for and read: every unit for
// unscoped staff, its own code for an endpoint, its district and the district's
// communes for district-scoped staff (others absent: 404).
type turnoutReach struct {
	all      bool
	own      string            // an endpoint's own code
	district string            // district-scoped staff: their district
	in       func(string) bool // district-scoped staff: whether a code is in it
}

func (s *Server) reachOf(c *gin.Context) turnoutReach {
	p := principal(c)
	if p.IsEndpoint() {
		return turnoutReach{own: p.EndpointCode}
	}
	if p.Scoped() {
		parentOf := s.parentOf(c.Request.Context())
		return turnoutReach{district: p.District, in: func(code string) bool { return p.InScope(code, parentOf) }}
	}
	return turnoutReach{all: true}
}

// pick applies the reach to a requested code (param names it for errors): an
// endpoint's defaults to its own, and another is refused; district-scoped staff's
// defaults to their district, and a unit outside it does not exist (404). ok false
// means answered.
func (r turnoutReach) pick(c *gin.Context, code, param string) (string, bool) {
	if r.all {
		return code, true
	}
	if r.district != "" {
		if code == "" {
			return r.district, true
		}
		if !r.in(code) {
			fail(c, http.StatusNotFound, "not_found", fmt.Sprintf("no unit %q", code), param)
			return "", false
		}
		return code, true
	}
	if code == "" {
		return r.own, true
	}
	if code != r.own {
		fail(c, http.StatusForbidden, "forbidden", "an endpoint reports and reads turnout only for itself", param)
		return "", false
	}
	return code, true
}

// failTurnout maps turnout's own errors, then the common ones. overField names the
// figure at fault for over_registered (voted on a report, registered on a PUT).
func (s *Server) failTurnout(c *gin.Context, err error, overField string) {
	switch {
	case errors.Is(err, store.ErrOverRegistered):
		fail(c, http.StatusUnprocessableEntity, "over_registered", err.Error(), overField)
	case errors.Is(err, store.ErrDecreasing):
		fail(c, http.StatusConflict, "decreasing", err.Error(), "voted")
	case errors.Is(err, store.ErrReasonRequired):
		fail(c, http.StatusConflict, "reason_required", err.Error(), "reason")
	default:
		s.failErr(c, err)
	}
}

// putRegistered sets communes' registered voters from a JSON list or a CSV upload.
func (s *Server) putRegistered(c *gin.Context) {
	var rows []store.RegisteredFigure
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	switch mt {
	case "text/csv", "text/tab-separated-values":
		body, err := io.ReadAll(c.Request.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(c, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", mbe.Limit), "")
			return
		}
		if err != nil {
			fail(c, http.StatusBadRequest, "invalid", "cannot read the body", "body")
			return
		}
		comma := ','
		if mt == "text/tab-separated-values" {
			comma = '\t'
		}
		if rows, err = store.ParseRegistered(bytes.NewReader(body), comma); err != nil {
			s.failErr(c, err)
			return
		}
	default:
		if err := decode(c, &rows); err != nil {
			s.failErr(c, err)
			return
		}
	}
	res, err := s.Store.SetRegistered(c.Request.Context(), principal(c).Actor(), rows)
	if err != nil {
		s.failTurnout(c, err, "registered")
		return
	}
	c.JSON(http.StatusOK, res)
}

func (s *Server) listRegistered(c *gin.Context) {
	list, err := s.Store.ListRegisteredIn(c.Request.Context(), scopeOf(principal(c)))
	if err != nil {
		s.failErr(c, err)
		return
	}
	var total int64
	for _, e := range list {
		if e.Registered != nil {
			total += *e.Registered
		}
	}
	c.JSON(http.StatusOK, gin.H{"total": total, "communes": list})
}

// reportTurnout accepts a commune's figure: from the endpoint itself, or from staff on
// its behalf (then via is required, and a reason makes it a correction).
func (s *Server) reportTurnout(c *gin.Context) {
	var in store.NewTurnoutReport
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	p := principal(c)
	r := s.reachOf(c)
	if r.district != "" && (in.EndpointCode == "" || !r.in(in.EndpointCode)) {
		// As for an unknown code: only the district's communes report through its staff.
		fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("%q is not a commune of your district", in.EndpointCode), "endpoint_code")
		return
	}
	code, ok := r.pick(c, in.EndpointCode, "endpoint_code")
	if !ok {
		return
	}
	in.EndpointCode = code
	out, created, err := s.Store.ReportTurnout(c.Request.Context(), p.Actor(), !p.IsEndpoint(), in)
	if err != nil {
		s.failTurnout(c, err, "voted")
		return
	}
	c.JSON(createdOr200(created), out)
}

func (s *Server) listTurnoutReports(c *gin.Context) {
	session, ok := sessionParam(c)
	if !ok {
		return
	}
	code, ok := s.reachOf(c).pick(c, c.Query("code"), "code")
	if !ok {
		return
	}
	id, list, err := s.Store.ListTurnoutReports(c.Request.Context(), store.TurnoutReportFilter{Code: code, Session: session})
	if err != nil {
		s.failErr(c, err)
		return
	}
	var sid *string
	if id != "" {
		sid = &id
	}
	c.JSON(http.StatusOK, gin.H{"session_id": sid, "reports": list})
}

// turnoutPicture serves the roll-up: the province, a unit's children, or one unit.
func (s *Server) turnoutPicture(c *gin.Context) {
	q := store.TurnoutQuery{Parent: c.Query("parent"), Code: c.Query("code"), StaleAfter: s.staleAfter()}
	var ok bool
	if q.Session, ok = sessionParam(c); !ok {
		return
	}
	if v := c.Query("at"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			fail(c, http.StatusBadRequest, "invalid", "at must be an RFC 3339 time", "at")
			return
		}
		q.At = t
	}
	if q.Parent != "" && q.Code != "" {
		fail(c, http.StatusBadRequest, "invalid", "give parent or code, not both", "code")
		return
	}
	if r := s.reachOf(c); r.district != "" {
		// The district's own picture by default; its communes with parent=DISTRICT.
		if q.Parent != "" {
			if !r.in(q.Parent) {
				fail(c, http.StatusNotFound, "not_found", fmt.Sprintf("no unit %q", q.Parent), "parent")
				return
			}
		} else if q.Code, ok = r.pick(c, q.Code, "code"); !ok {
			return
		}
	} else if !r.all {
		if q.Parent != "" {
			fail(c, http.StatusForbidden, "forbidden", "an endpoint reads only its own figure (code)", "parent")
			return
		}
		if q.Code, ok = r.pick(c, q.Code, "code"); !ok {
			return
		}
	}
	out, err := s.Store.Turnout(c.Request.Context(), q)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// turnoutSeries serves a unit's curve over the session.
func (s *Server) turnoutSeries(c *gin.Context) {
	session, ok := sessionParam(c)
	if !ok {
		return
	}
	code, ok := s.reachOf(c).pick(c, c.Query("code"), "code")
	if !ok {
		return
	}
	if code == "" {
		fail(c, http.StatusBadRequest, "invalid", "code is required: a commune, a district or the province", "code")
		return
	}
	step := 30 * time.Minute
	if v := c.Query("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fail(c, http.StatusBadRequest, "invalid", "step must be a duration such as 30m or 1h", "step")
			return
		}
		step = d
	}
	out, err := s.Store.Series(c.Request.Context(), code, session, step, time.Now())
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// sessionParam reads the optional session query parameter; ok false means answered.
func sessionParam(c *gin.Context) (string, bool) {
	v := c.Query("session")
	if v == "" {
		return "", true
	}
	if _, err := uuid.Parse(v); err != nil || len(v) != 36 {
		fail(c, http.StatusBadRequest, "invalid", "session must be a session id", "session")
		return "", false
	}
	return v, true
}

func (s *Server) staleAfter() time.Duration {
	if d := s.Config.Turnout.StaleAfter; d > 0 {
		return d
	}
	return time.Hour
}
