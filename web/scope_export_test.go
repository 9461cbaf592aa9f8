package web

import "github.com/gin-gonic/gin"

// Routes lists every route the engine has, for the district-scope route walk.
func (s *Server) Routes() gin.RoutesInfo { return s.engine.Routes() }
