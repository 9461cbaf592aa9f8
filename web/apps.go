package web

// appRoutes serves the embedded browser apps (/join, /login, /console, /desk).
func (s *Server) appRoutes() {}
