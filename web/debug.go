package web

import (
	"net/http/pprof"

	"github.com/gin-gonic/gin"
)

// debugRoutes serves Go's profiler to admins only: an operator can take a CPU or
// heap profile of the live server (go tool pprof with an admin bearer token)
// without a restart or a second, unauthenticated port.
func (s *Server) debugRoutes() {
	g := s.engine.Group("/debug/pprof", s.need(capAdmin))
	g.GET("/", gin.WrapF(pprof.Index))
	g.GET("/cmdline", gin.WrapF(pprof.Cmdline))
	g.GET("/profile", gin.WrapF(pprof.Profile))
	g.GET("/symbol", gin.WrapF(pprof.Symbol))
	g.GET("/trace", gin.WrapF(pprof.Trace))
	for _, name := range []string{"goroutine", "heap", "allocs", "block", "mutex", "threadcreate"} {
		g.GET("/"+name, gin.WrapH(pprof.Handler(name)))
	}
}
