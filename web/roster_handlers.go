package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/store"
)

type endpointView struct {
	store.Endpoint
	Presence string `json:"presence"`
}

// listEndpoints serves the roster with live presence. ?kind= and ?district= filter.
func (s *Server) listEndpoints(c *gin.Context) {
	f := store.EndpointFilter{Kind: c.Query("kind"), District: c.Query("district"), Scope: scopeOf(principal(c))}
	if f.District != "" && f.Scope != "" && !s.inScope(c, f.District) {
		failOutOfScope(c)
		return
	}
	switch f.Kind {
	case "", store.KindProvince, store.KindDistrict, store.KindCommune:
	default:
		fail(c, http.StatusBadRequest, "invalid", "kind must be province, district or commune", "kind")
		return
	}
	eps, err := s.Store.ListEndpoints(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, err)
		return
	}
	out := make([]endpointView, len(eps))
	for i, e := range eps {
		out[i] = endpointView{Endpoint: e, Presence: s.Presence.Presence(e.Code)}
	}
	c.JSON(http.StatusOK, gin.H{"endpoints": out, "count": len(out)})
}

// issueLink gives one endpoint a fresh join link (the old one stops working).
func (s *Server) issueLink(c *gin.Context) {
	code := c.Param("code")
	tok, err := s.Store.IssueEndpointToken(c.Request.Context(), principal(c).Actor(), code)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"endpoint_code": code, "join_url": JoinURL(s.Config.HTTP.PublicURL, tok)})
}

func (s *Server) revokeLink(c *gin.Context) {
	if err := s.Store.RevokeEndpointToken(c.Request.Context(), principal(c).Actor(), c.Param("code")); err != nil {
		s.failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// JoinURL builds an endpoint's join link; the secret rides in the fragment so it never
// reaches server logs.
func JoinURL(publicURL, token string) string {
	return publicURL + "/join#t=" + token
}
