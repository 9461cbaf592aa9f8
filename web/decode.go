package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

type decodeError struct {
	status           int
	code, msg, field string
}

func (e *decodeError) Error() string { return e.msg }

// limitBody caps every request body; reading past the cap fails with 413 in decode.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.Config.HTTP.MaxBodyBytes)
	}
	c.Next()
}

// decode reads one JSON object into v, strictly: unknown fields, trailing data,
// wrong types and oversized bodies are errors that name what is wrong.
func decode(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); !errors.Is(extra, io.EOF) {
			return &decodeError{http.StatusBadRequest, "invalid_json", "trailing data after the JSON object", ""}
		}
		return nil
	}
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return &decodeError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", mbe.Limit), ""}
	case errors.As(err, &ute):
		return &decodeError{http.StatusBadRequest, "invalid", fmt.Sprintf("%s must be %s", ute.Field, ute.Type), ute.Field}
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return &decodeError{http.StatusBadRequest, "invalid_json", "malformed JSON: " + err.Error(), ""}
	case errors.Is(err, io.EOF):
		return &decodeError{http.StatusBadRequest, "invalid_json", "empty body; a JSON object is required", ""}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &decodeError{http.StatusBadRequest, "unknown_field", "unknown field " + f, f}
	default:
		// time.Time and other UnmarshalJSON errors, e.g. a non-RFC 3339 time.
		return &decodeError{http.StatusBadRequest, "invalid", err.Error(), ""}
	}
}
