package uplink

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Escalation is an incident this node's desk escalated to the parent.
type Escalation struct {
	ID         string    `json:"id"` // the incident's id, kept at the parent: the link both ways
	Category   string    `json:"category"`
	Severity   string    `json:"severity"`
	Title      string    `json:"title"`
	Body       string    `json:"body"`
	OccurredAt time.Time `json:"occurred_at"`
}

// Escalations connects the uplink to the node's escalated incidents.
type Escalations interface {
	// Pending are the escalations the parent has not accepted yet.
	Pending(ctx context.Context) ([]Escalation, error)
	// Delivered records that the parent accepted one.
	Delivered(ctx context.Context, id string) error
}

// syncEscalations reports each pending escalation to the parent as an incident
// of this endpoint, under the incident's own id (a retry is recognised there).
func (u *Uplink) syncEscalations(ctx context.Context) error {
	list, err := u.cfg.Escalations.Pending(ctx)
	if err != nil {
		return err
	}
	var errs []string
	for _, e := range list {
		body := map[string]any{"id": e.ID, "endpoint_code": u.cfg.Code, "category": e.Category, "severity": e.Severity,
			"title": e.Title, "body": e.Body, "occurred_at": e.OccurredAt.UTC()}
		if err := u.call(ctx, http.MethodPost, "/api/v1/incidents", body, nil); err != nil {
			errs = append(errs, fmt.Sprintf("escalate %s: %v", e.ID, err))
			continue
		}
		if err := u.cfg.Escalations.Delivered(ctx, e.ID); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		u.log.Info("uplink: incident escalated to the parent", "id", e.ID, "title", e.Title)
	}
	if len(errs) > 0 {
		return fmt.Errorf("escalations: %s", strings.Join(errs, "; "))
	}
	return nil
}
