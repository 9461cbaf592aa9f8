package web

// WHIP (RFC 9725) at /whip/program and WHEP (draft-ietf-wish-whep) at
// /whep/program: HTTP offer/answer for the program's publisher (OBS, a
// hardware encoder) and for viewers. The media side is signaling/ingest.go;
// docs/protocol.md ("WHIP and WHEP") describes the exchange.

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
)

// Ingest serves WHIP and WHEP's media (signaling.Service). A nil Deps.Ingest
// leaves /whip and /whep unrouted.
type Ingest interface {
	StartWHIP(p auth.Principal, offer string) (*signaling.IngestSession, error)
	StartWHEP(p auth.Principal, offer string, floor bool) (*signaling.IngestSession, error)
	Ingest(kind, id string) (*signaling.IngestSession, bool)
}

const (
	mimeSDP     = "application/sdp"
	mimeSDPFrag = "application/trickle-ice-sdpfrag"
)

func (s *Server) ingestRoutes() {
	if s.Ingest == nil {
		return
	}
	for _, kind := range []string{signaling.IngestWHIP, signaling.IngestWHEP} {
		base := "/" + kind + "/program"
		s.engine.OPTIONS(base, s.ingestOptions(false))
		s.engine.POST(base, s.ingestPost(kind))
		s.engine.OPTIONS(base+"/:id", s.ingestOptions(true))
		s.engine.PATCH(base+"/:id", s.ingestPatch(kind))
		s.engine.DELETE(base+"/:id", s.ingestDelete(kind))
	}
}

// ingestCORS lets browser WHIP/WHEP players (bearer tokens, no cookies) read
// the answer and its headers from another origin.
func ingestCORS(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post")
}

func (s *Server) ingestOptions(resource bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		ingestCORS(c)
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		h.Set("Access-Control-Max-Age", "600")
		if resource {
			h.Set("Access-Control-Allow-Methods", "PATCH, DELETE, OPTIONS")
			h.Set("Accept-Patch", mimeSDPFrag)
		} else {
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Accept-Post", mimeSDP)
		}
		// Link headers with TURN servers belong to the POST answer (their
		// credentials are per session), not to this unauthenticated preflight.
		c.Status(http.StatusNoContent)
	}
}

// ingestPrincipal checks the bearer (or cookie) credential: 401 without one
// (a wrong one was already refused by authenticate).
func ingestPrincipal(c *gin.Context) (auth.Principal, bool) {
	p, ok := auth.FromContext(c.Request.Context())
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="opscenter"`)
		fail(c, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer TOKEN (a leader's token or endpoint 22's join link token)", "")
	}
	return p, ok
}

func hasType(c *gin.Context, want string) bool {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || !strings.EqualFold(mt, want) {
		fail(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be "+want, "")
		return false
	}
	return true
}

func (s *Server) ingestPost(kind string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ingestCORS(c)
		p, ok := ingestPrincipal(c)
		if !ok {
			return
		}
		allowed := signaling.CanWHIP(p)
		if kind == signaling.IngestWHEP {
			allowed = signaling.CanWHEP(p)
		}
		if !allowed {
			msg := "WHIP publishes the program: it needs an unscoped leader's or admin's token, or endpoint 22's join link"
			if kind == signaling.IngestWHEP {
				msg = "WHEP needs an unscoped staff token or a wall link"
			}
			fail(c, http.StatusForbidden, "forbidden", msg, "")
			return
		}
		if !hasType(c, mimeSDP) {
			return
		}
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			fail(c, http.StatusRequestEntityTooLarge, "too_large", "the offer is too large", "")
			return
		}
		var m *signaling.IngestSession
		if kind == signaling.IngestWHIP {
			m, err = s.Ingest.StartWHIP(p, string(body))
		} else {
			m, err = s.Ingest.StartWHEP(p, string(body), c.Query("floor") == "1" || c.Query("floor") == "true")
		}
		if err != nil {
			s.ingestFail(c, err)
			return
		}
		s.trackWallViewer(p, m)
		h := c.Writer.Header()
		h.Set("Location", "/"+kind+"/program/"+m.ID())
		h.Set("ETag", m.ETag())
		h.Set("Accept-Patch", mimeSDPFrag)
		for _, l := range iceLinks(m.ICEServers()) {
			h.Add("Link", l)
		}
		c.Data(http.StatusCreated, mimeSDP, []byte(m.Answer()))
	}
}

// resource finds the session of the request's :id, for its creator only (404
// otherwise: a resource URL names nothing to anybody else).
func (s *Server) resource(c *gin.Context, kind string) (*signaling.IngestSession, bool) {
	p, ok := ingestPrincipal(c)
	if !ok {
		return nil, false
	}
	m, found := s.Ingest.Ingest(kind, c.Param("id"))
	if !found || m.Actor() != p.Actor() {
		fail(c, http.StatusNotFound, "not_found", "no such "+strings.ToUpper(kind)+" session (ended, or never created)", "")
		return nil, false
	}
	return m, true
}

func (s *Server) ingestPatch(kind string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ingestCORS(c)
		m, ok := s.resource(c, kind)
		if !ok {
			return
		}
		if !hasType(c, mimeSDPFrag) {
			return
		}
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			fail(c, http.StatusRequestEntityTooLarge, "too_large", "the fragment is too large", "")
			return
		}
		frag, restart, err := m.Patch(c.GetHeader("If-Match"), string(body))
		if err != nil {
			s.ingestFail(c, err)
			return
		}
		if !restart {
			c.Status(http.StatusNoContent)
			return
		}
		c.Header("ETag", m.ETag())
		c.Data(http.StatusOK, mimeSDPFrag, []byte(frag))
	}
}

func (s *Server) ingestDelete(kind string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ingestCORS(c)
		m, ok := s.resource(c, kind)
		if !ok {
			return
		}
		m.Close()
		c.Status(http.StatusOK)
	}
}

func (s *Server) ingestFail(c *gin.Context, err error) {
	switch {
	case errors.Is(err, signaling.ErrIngestBadSDP):
		fail(c, http.StatusBadRequest, "invalid_sdp", err.Error(), "")
	case errors.Is(err, signaling.ErrIngestForbidden):
		fail(c, http.StatusForbidden, "forbidden", err.Error(), "")
	case errors.Is(err, signaling.ErrIngestNotFound):
		fail(c, http.StatusNotFound, "not_found", "no such session (ended, or never created)", "")
	case errors.Is(err, signaling.ErrIngestPrecond):
		fail(c, http.StatusPreconditionFailed, "precondition_failed", "If-Match does not match the session's ETag", "")
	default:
		s.Log.Error("WHIP/WHEP request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		fail(c, http.StatusInternalServerError, "internal", "internal error; it has been logged", "")
	}
}

// iceLinks renders TURN servers as RFC 9725 Link headers.
func iceLinks(servers []webrtc.ICEServer) []string {
	var out []string
	for _, srv := range servers {
		for _, u := range srv.URLs {
			l := fmt.Sprintf(`<%s>; rel="ice-server"`, u)
			if srv.Username != "" {
				l += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, srv.Username, fmt.Sprint(srv.Credential))
			}
			out = append(out, l)
		}
	}
	return out
}
