package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors that callers map to HTTP statuses.
var (
	ErrNotFound   = errors.New("not found")
	ErrConflict   = errors.New("conflict")      // same id, different body; or a state clash
	ErrStale      = errors.New("stale version") // optimistic concurrency lost
	ErrNoSession  = errors.New("no session in progress")
	ErrInProgress = errors.New("a session is already in progress")
	ErrTransition = errors.New("invalid status transition")
	ErrForbidden  = errors.New("forbidden")
)

// FieldError names the input field that is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// IsUnavailable reports whether err means the database could not be reached or is
// shutting down (as opposed to refusing the data). Callers answer 503, or queue.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "57", "53": // connection exceptions, operator intervention, resources
			return true
		}
		return false
	}
	for _, known := range []error{ErrNotFound, ErrConflict, ErrStale, ErrNoSession, ErrInProgress, ErrTransition, ErrForbidden} {
		if errors.Is(err, known) {
			return false
		}
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return false
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isNetErr(err)
}

func isNetErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "closed pool") || strings.Contains(err.Error(), "conn closed")
}
