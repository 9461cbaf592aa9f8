package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// apiClient calls the REST API as one principal. Requests carry client ids, so
// a retry after a transport error or a 5xx (the server restarting, PostgreSQL
// away) creates nothing twice.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// apiError is a non-2xx answer.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// statusOf is the HTTP status of err, 0 when it is not an answer.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func (c *apiClient) as(token string) *apiClient {
	return &apiClient{base: c.base, token: token, http: c.http}
}

// do sends a JSON body (or raw bytes with contentType) and decodes a JSON answer
// into out; it retries transport errors, 5xx and 429 for up to retryFor.
func (c *apiClient) do(ctx context.Context, method, path string, body any, out any) error {
	var payload []byte
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case rawBody:
		payload, contentType = b.data, b.contentType
	default:
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	const retryFor = 90 * time.Second
	deadline := time.Now().Add(retryFor)
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 3*time.Second) {
		err := c.once(ctx, method, path, contentType, payload, out)
		st := statusOf(err)
		if err == nil || (st != 0 && st < 500 && st != http.StatusTooManyRequests) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		case <-time.After(wait):
		}
	}
}

type rawBody struct {
	data        []byte
	contentType string
}

func (c *apiClient) once(ctx context.Context, method, path, contentType string, payload []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, &apiError{Status: resp.StatusCode, Body: string(b)})
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = b
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}
