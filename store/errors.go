package store

import (
	"errors"
	"fmt"
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
