package web

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/store"
)

func (s *Server) createSession(c *gin.Context) {
	var in store.NewSession
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	out, created, err := s.Store.CreateSession(c.Request.Context(), principal(c).Actor(), in)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(createdOr200(created), out)
}

func (s *Server) listSessions(c *gin.Context) {
	out, err := s.Store.ListSessions(c.Request.Context())
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"sessions": out})
}

func (s *Server) currentSession(c *gin.Context) {
	out, err := s.Store.CurrentSession(c.Request.Context())
	if errors.Is(err, store.ErrNoSession) {
		fail(c, http.StatusNotFound, "no_session", "no session is in progress", "")
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getSession(c *gin.Context) {
	out, err := s.Store.GetSession(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) startSession(c *gin.Context) {
	out, err := s.Store.StartSession(c.Request.Context(), principal(c).Actor(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) endSession(c *gin.Context) {
	out, err := s.Store.EndSession(c.Request.Context(), principal(c).Actor(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func createdOr200(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}
