// Package web is opscenter's HTTP surface (gin): the REST API, the live event stream,
// login, health and metrics, and the embedded browser apps.
package web

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/eventbus"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/store"
)

// Presence tells the roster API how each endpoint is connected. Signaling provides
// it; without signaling every endpoint is offline.
type Presence interface {
	Presence(code string) string
	// Floor is the endpoint holding the floor ("" for nobody).
	Floor() string
}

type offline struct{}

func (offline) Presence(string) string { return "offline" }
func (offline) Floor() string          { return "" }

// Deps are the server's dependencies, passed in by main (no package globals).
type Deps struct {
	Store    *store.Store
	Hub      *eventbus.Hub
	Config   config.Config
	Log      *slog.Logger
	Registry *prometheus.Registry
	Presence Presence
	// Live serves /ws (signaling); nil leaves it unrouted.
	Live http.Handler
	// Ingest serves /whip/program and /whep/program (whip.go); nil leaves them unrouted.
	Ingest Ingest
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
	engine  *gin.Engine
	metrics *httpMetrics
	limiter *loginLimiter
	parents rosterParents // the roster's parents, for district scopes (scope.go)
	// wallViewers are the walls' WHEP sessions, ended with the wall (wall_handlers.go).
	wallViewers wallViewers
}

// New builds the server and registers every route in one place.
func New(d Deps) *Server {
	if d.Presence == nil {
		d.Presence = offline{}
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{Deps: d, engine: gin.New(), limiter: newLoginLimiter(5, time.Minute, time.Now)}
	s.metrics = newHTTPMetrics(d.Registry, d.Store)
	s.engine.Use(gin.Recovery(), s.observe, s.limitBody, s.authenticate, s.checkOrigin)
	s.engine.HandleMethodNotAllowed = true
	s.engine.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "not_found", "no such route", "") })
	s.engine.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "method_not_allowed", "this route does not take "+c.Request.Method, "")
	})

	s.engine.GET("/healthz", s.healthz)
	s.engine.GET("/readyz", s.readyz)

	api := s.engine.Group("/api/v1")
	api.POST("/auth/login", s.login)
	api.POST("/auth/join", s.join)
	api.POST("/auth/wall", s.wallAuth)
	api.POST("/auth/logout", s.logout)
	api.GET("/auth/me", s.need(anyone), s.me)

	api.GET("/endpoints", s.need(anyone), s.listEndpoints)
	api.POST("/endpoints/:code/link", s.need(capAdmin), s.issueLink)
	api.DELETE("/endpoints/:code/link", s.need(capAdmin), s.revokeLink)

	api.POST("/sessions", s.need(capRun), s.createSession)
	api.GET("/sessions", s.need(capRead), s.listSessions)
	api.GET("/sessions/current", s.need(anyone), s.currentSession)
	api.GET("/sessions/:id", s.need(capRead), s.getSession)
	api.POST("/sessions/:id/start", s.need(capRun), s.startSession)
	api.POST("/sessions/:id/end", s.need(capRun), s.endSession)

	api.GET("/events", s.need(capRead), s.streamEvents)
	api.GET("/events/head", s.need(capRead), s.eventsHead)
	s.logRoutes(api)
	s.wallRoutes(api)

	if d.Live != nil {
		// District authority on /ws is signaling's part: the request context carries
		// the principal, and a district-scoped one (p.Scoped(), p.District) has no
		// CapRunSession; signaling must limit its console to p.InScope(code,
		// parentOf) units (store.EndpointParents gives the roster's parents).
		s.engine.GET("/ws", s.need(anyone), gin.WrapH(d.Live))
	}
	s.ingestRoutes()
	s.debugRoutes()
	s.appRoutes()
	return s
}

// Handler is the root http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// need returns middleware that admits principals for which ok is true; 401 when no
// credential came with the request, 403 when it came but does not allow this.
func (s *Server) need(ok func(auth.Principal) bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, authed := auth.FromContext(c.Request.Context())
		if !authed {
			fail(c, http.StatusUnauthorized, "unauthorized", "log in or present a join link", "")
			return
		}
		if !ok(p) {
			fail(c, http.StatusForbidden, "forbidden", "your role does not allow this", "")
			return
		}
		c.Next()
	}
}

// anyone admits every staff member and endpoint. Not a wall: a wall link reaches
// only the routes made for it (wall_handlers.go) and WHEP.
func anyone(p auth.Principal) bool   { return !p.IsWall() }
func capRead(p auth.Principal) bool  { return p.Can(auth.CapRead) }
func capWrite(p auth.Principal) bool { return p.Can(auth.CapWriteLog) }
func capRun(p auth.Principal) bool   { return p.Can(auth.CapRunSession) }
func capAdmin(p auth.Principal) bool { return p.Can(auth.CapAdmin) }

// writerOrEndpoint admits log writers and endpoints; handlers then hold endpoints to
// their own code.
func writerOrEndpoint(p auth.Principal) bool { return p.IsEndpoint() || p.Can(auth.CapWriteLog) }

// readerOrEndpoint admits log readers and endpoints (their own records only).
func readerOrEndpoint(p auth.Principal) bool { return p.IsEndpoint() || p.Can(auth.CapRead) }

func principal(c *gin.Context) auth.Principal {
	p, _ := auth.FromContext(c.Request.Context())
	return p
}
