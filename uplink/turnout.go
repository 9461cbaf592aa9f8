package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Figure is the node's own turnout: its roll-up, which the parent counts as
// this one unit's report.
type Figure struct {
	Voted    int64
	AsOf     time.Time // when the figure was true (the node's latest report)
	Complete bool
}

// reportBody is POST /api/v1/turnout/reports (web/turnout_handlers.go).
type reportBody struct {
	ID           string    `json:"id"`
	EndpointCode string    `json:"endpoint_code"`
	AsOf         time.Time `json:"as_of"`
	Voted        int64     `json:"voted"`
	Complete     bool      `json:"complete,omitempty"`
}

// figureID is the report's client-generated id: one figure, one id, so a retry
// (or a restart of this node) never counts it twice at the parent.
func (u *Uplink) figureID(f Figure) string {
	key := fmt.Sprintf("opscenter-turnout|%s|%s|%s|%d|%t", u.cfg.URL, u.cfg.Code, f.AsOf.UTC().Format(time.RFC3339Nano), f.Voted, f.Complete)
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(key)).String()
}

// runTurnout sends the node's figure up whenever it changes, through the
// parent's REST API with the node's join link (an endpoint reports as itself).
func (u *Uplink) runTurnout() {
	defer u.wg.Done()
	var sent Figure // the last figure the parent accepted (or refused for good)
	t := time.NewTicker(u.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(u.ctx, 10*time.Second)
		f, ok, err := u.cfg.Figure(ctx)
		if err == nil && ok && f != sent {
			var final bool
			if final, err = u.postFigure(ctx, f); err == nil || final {
				sent = f
			}
			if err == nil {
				u.mu.Lock()
				u.status.TurnoutVoted, u.status.TurnoutAsOf = f.Voted, f.AsOf
				u.mu.Unlock()
				u.log.Info("uplink: turnout reported to the parent", "voted", f.Voted, "as_of", f.AsOf, "complete", f.Complete)
			}
		}
		cancel()
		if err != nil && u.ctx.Err() == nil {
			u.log.Warn("uplink: turnout not reported", "err", err)
		}
	}
}

// postFigure sends one figure. final says the parent refused it for a reason a
// retry cannot change (a decrease needs a correction by the parent's staff).
func (u *Uplink) postFigure(ctx context.Context, f Figure) (final bool, err error) {
	b, err := json.Marshal(reportBody{ID: u.figureID(f), EndpointCode: u.cfg.Code, AsOf: f.AsOf.UTC(), Voted: f.Voted, Complete: f.Complete})
	if err != nil {
		return true, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(u.cfg.URL, "/")+"/api/v1/turnout/reports", bytes.NewReader(b))
	if err != nil {
		return true, fmt.Errorf("turnout request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+u.cfg.Token)
	resp, err := u.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("turnout to the parent: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated:
		return false, nil
	case resp.StatusCode == http.StatusConflict && bytes.Contains(body, []byte(`"no_session"`)):
		return false, fmt.Errorf("the parent has no session in progress yet")
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
		return true, fmt.Errorf("the parent refused the figure: %d %s", resp.StatusCode, bytes.TrimSpace(body))
	default:
		return false, fmt.Errorf("turnout to the parent: %d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
}
