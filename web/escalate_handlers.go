package web

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// escalationRoutes: a node with a parent escalates an incident to it (the
// uplink delivers it under the same id: package uplink).
func (s *Server) escalationRoutes(api *gin.RouterGroup) {
	api.POST("/incidents/:id/escalate", s.need(capWrite), s.escalateIncident)
	api.GET("/incidents/:id/escalation", s.need(capRead), s.getEscalation)
}

// escalateIncident marks an incident for the parent node. A decision of the
// whole node: district-scoped staff may not. Escalating again is a 200 with the
// escalation as it is.
func (s *Server) escalateIncident(c *gin.Context) {
	p := principal(c)
	if p.Scoped() {
		fail(c, http.StatusForbidden, "forbidden", "the province escalates to the parent, not a district", "")
		return
	}
	if !s.Config.Parent.Enabled() {
		fail(c, http.StatusConflict, "no_parent", "this node has no parent to escalate to", "")
		return
	}
	out, created, err := s.Store.EscalateIncident(c.Request.Context(), p.Actor(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(createdOr200(created), out)
}

func (s *Server) getEscalation(c *gin.Context) {
	if principal(c).Scoped() {
		failOutOfScope(c)
		return
	}
	out, err := s.Store.GetEscalation(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}
