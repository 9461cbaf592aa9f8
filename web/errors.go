package web

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/store"
)

// apiError is every error body: a stable code, a message for people, and the field
// at fault when there is one.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func fail(c *gin.Context, status int, code, msg, field string) {
	c.AbortWithStatusJSON(status, apiError{Error: code, Message: msg, Field: field})
}

// failErr maps store and decoding errors to statuses; anything unknown is a 500 whose
// detail goes to the log, not the client.
func (s *Server) failErr(c *gin.Context, err error) {
	var fe *store.FieldError
	var de *decodeError
	switch {
	case errors.As(err, &de):
		fail(c, de.status, de.code, de.msg, de.field)
	case errors.As(err, &fe):
		fail(c, http.StatusBadRequest, "invalid", fe.Msg, fe.Field)
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusNotFound, "not_found", err.Error(), "")
	case errors.Is(err, store.ErrNoSession):
		fail(c, http.StatusConflict, "no_session", "no session is in progress", "session_id")
	case errors.Is(err, store.ErrInProgress):
		fail(c, http.StatusConflict, "session_in_progress", "another session is already in progress", "")
	case errors.Is(err, store.ErrStale):
		fail(c, http.StatusConflict, "stale_version", "it was changed by someone else; reload and try again", "version")
	case errors.Is(err, store.ErrConflict):
		fail(c, http.StatusConflict, "conflict", err.Error(), "")
	case errors.Is(err, store.ErrTransition):
		fail(c, http.StatusUnprocessableEntity, "invalid_transition", err.Error(), "status")
	case errors.Is(err, store.ErrForbidden):
		fail(c, http.StatusForbidden, "forbidden", err.Error(), "")
	case store.IsUnavailable(err):
		s.Log.Warn("database unavailable", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		c.Header("Retry-After", "5")
		fail(c, http.StatusServiceUnavailable, "database_unavailable",
			"the log database is unreachable; nothing was saved, retry shortly", "")
	default:
		s.Log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		fail(c, http.StatusInternalServerError, "internal", "internal error; it has been logged", "")
	}
}
