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
)

// ParentDirective is a directive of the parent to this node, with this node's
// receipt there, as the parent serves it (GET /api/v1/directives as endpoint).
type ParentDirective struct {
	ID        string        `json:"id"`
	IssuedBy  string        `json:"issued_by"`
	Text      string        `json:"text"`
	DueAt     *time.Time    `json:"due_at"`
	CreatedAt time.Time     `json:"created_at"`
	Receipt   *ReceiptState `json:"receipt"`
}

// ReceiptState is a receipt's answer: acknowledged, replied, done.
type ReceiptState struct {
	AckedAt *time.Time `json:"acked_at"`
	Reply   string     `json:"reply"`
	DoneAt  *time.Time `json:"done_at"`
}

// Directives connects the uplink to this node's log: directives from the
// parent land there, and this node's receipt of each is read back.
type Directives interface {
	// Receive records a parent directive in the node's log (idempotent by id).
	Receive(ctx context.Context, d ParentDirective) error
	// Receipt is this node's own receipt of a received directive.
	Receipt(ctx context.Context, id string) (ReceiptState, error)
}

// syncDirectives brings the parent's directives to this node once, and answers
// the parent's receipts from this node's: an acknowledgement or a reply given
// here (by the node's desk or command room) is sent up as this endpoint's.
// Both sides are idempotent (the parent's id is the node's id; acknowledging
// twice changes nothing), so a retry after any failure is safe.
func (u *Uplink) syncDirectives(ctx context.Context) error {
	var list struct {
		Directives []ParentDirective `json:"directives"`
	}
	if err := u.call(ctx, http.MethodGet, "/api/v1/directives", nil, &list); err != nil {
		return err
	}
	var errs []string
	for _, d := range list.Directives {
		if err := u.syncDirective(ctx, d); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("directives: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (u *Uplink) syncDirective(ctx context.Context, d ParentDirective) error {
	if !u.received[d.ID] {
		if err := u.cfg.Directives.Receive(ctx, d); err != nil {
			return fmt.Errorf("receive %s: %w", d.ID, err)
		}
		u.received[d.ID] = true
		u.log.Info("uplink: directive from the parent", "id", d.ID, "issued_by", d.IssuedBy)
	}
	own, err := u.cfg.Directives.Receipt(ctx, d.ID)
	if err != nil {
		return fmt.Errorf("receipt %s: %w", d.ID, err)
	}
	up := ReceiptState{}
	if d.Receipt != nil {
		up = *d.Receipt
	}
	if own.AckedAt != nil && up.AckedAt == nil {
		if err := u.call(ctx, http.MethodPost, "/api/v1/directives/"+d.ID+"/ack", struct{}{}, nil); err != nil {
			return fmt.Errorf("acknowledge %s at the parent: %w", d.ID, err)
		}
		u.log.Info("uplink: directive acknowledged at the parent", "id", d.ID)
	}
	if (own.Reply != "" && own.Reply != up.Reply) || (own.DoneAt != nil && up.DoneAt == nil) {
		body := map[string]any{"text": own.Reply, "done": own.DoneAt != nil}
		if err := u.call(ctx, http.MethodPost, "/api/v1/directives/"+d.ID+"/reply", body, nil); err != nil {
			return fmt.Errorf("reply to %s at the parent: %w", d.ID, err)
		}
		u.log.Info("uplink: directive reply sent to the parent", "id", d.ID, "done", own.DoneAt != nil)
	}
	return nil
}

// call makes one REST call to the parent as this node's endpoint.
func (u *Uplink) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(u.cfg.URL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+u.cfg.Token)
	resp, err := u.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(raw[:min(len(raw), 300)]))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// runSync syncs directives and escalations every SyncInterval while the node runs.
func (u *Uplink) runSync() {
	defer u.wg.Done()
	t := time.NewTicker(u.cfg.SyncInterval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(u.ctx, 10*time.Second)
		var err error
		if u.cfg.Directives != nil {
			err = u.syncDirectives(ctx)
		}
		if u.cfg.Escalations != nil {
			if e := u.syncEscalations(ctx); e != nil && err == nil {
				err = e
			}
		}
		cancel()
		switch {
		case err != nil && u.ctx.Err() == nil && err.Error() != lastErr:
			u.log.Warn("uplink: not in sync with the parent", "err", err) // once per distinct error
			lastErr = err.Error()
		case err == nil:
			lastErr = ""
		}
	}
}
