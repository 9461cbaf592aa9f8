package web

import "github.com/gin-gonic/gin"

// logRoutes registers the duty log's routes: incidents, directives and the report.
func (s *Server) logRoutes(api *gin.RouterGroup) {}
