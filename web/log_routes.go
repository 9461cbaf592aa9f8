package web

import "github.com/gin-gonic/gin"

// logRoutes registers the duty log's routes: incidents, directives and the report.
// Endpoints pass writerOrEndpoint/readerOrEndpoint here; the handlers then hold them
// to their own code.
func (s *Server) logRoutes(api *gin.RouterGroup) {
	api.POST("/incidents", s.need(writerOrEndpoint), s.createIncident)
	api.GET("/incidents", s.need(readerOrEndpoint), s.listIncidents)
	api.GET("/incidents/:id", s.need(readerOrEndpoint), s.getIncident)
	api.PATCH("/incidents/:id", s.need(capWrite), s.patchIncident)
	api.POST("/incidents/:id/updates", s.need(writerOrEndpoint), s.addIncidentUpdate)
	s.escalationRoutes(api)

	api.POST("/directives", s.need(capWrite), s.issueDirective)
	api.GET("/directives", s.need(readerOrEndpoint), s.listDirectives)
	api.GET("/directives/:id", s.need(readerOrEndpoint), s.getDirective)
	api.POST("/directives/:id/ack", s.need(writerOrEndpoint), s.ackDirective)
	api.POST("/directives/:id/reply", s.need(writerOrEndpoint), s.replyDirective)

	// District-scoped staff get their district's report (loadReport).
	api.GET("/sessions/:id/report.csv", s.need(capRead), s.reportCSV)
	api.GET("/sessions/:id/report.html", s.need(capRead), s.reportHTML)
	s.turnoutRoutes(api)
	s.recordingRoutes(api)
}
