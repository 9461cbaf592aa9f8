package web

import "time"

// SetLoginClock replaces the login rate limiter's clock, so that a test decides
// when a back-off ends instead of racing the wall clock.
func (s *Server) SetLoginClock(now func() time.Time) { s.limiter.setClock(now) }
