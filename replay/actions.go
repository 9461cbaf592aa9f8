package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// do carries out one event through the API (REST as the endpoint or as a duty
// user, or the live protocol from an endpoint or the console).
func (r *runner) do(ctx context.Context, e Event) error {
	switch e.Kind {
	case KindSessionStart:
		return r.lead.do(ctx, "POST", "/api/v1/sessions/"+r.sessionID+"/start", nil, nil)
	case KindSessionEnd:
		return r.lead.do(ctx, "POST", "/api/v1/sessions/"+r.sessionID+"/end", nil, nil)
	case KindReport, KindCorrection:
		return r.report(ctx, e.Report)
	case KindIncident:
		return r.incident(ctx, e.Incident)
	case KindIncidentUpdate:
		return r.incidentUpdate(ctx, e.Incident, e.Update)
	case KindDirective:
		return r.directive(ctx, e.Directive)
	case KindAck:
		return r.ack(ctx, e.Directive, e.Code, e.Via)
	case KindReply:
		body := map[string]any{"text": e.Reply.Text, "done": e.Reply.Done}
		return r.endpoint(e.Code).do(ctx, "POST", "/api/v1/directives/"+r.id("directive/"+e.Directive.Key)+"/reply", body, nil)
	case KindLive:
		return r.live(e.Live)
	case KindOutage:
		return r.outage(ctx, e.Outage)
	}
	return fmt.Errorf("unknown event kind %d", e.Kind)
}

// endpoint is the API as one endpoint (its join link's secret is a bearer).
func (r *runner) endpoint(code string) *apiClient { return r.api.as(r.srv.Tokens[code]) }

// localTime writes a reporter's time with the scenario's offset, as a province
// would send it.
func (r *runner) localTime(t time.Time) string { return t.In(r.plan.S.loc).Format(time.RFC3339) }

func (r *runner) report(ctx context.Context, rep *Report) error {
	key := fmt.Sprintf("report/%s/%s/%d", rep.Code, rep.AsOf.Format(time.RFC3339), rep.Voted)
	body := map[string]any{"id": r.id(key), "as_of": r.localTime(rep.AsOf), "voted": rep.Voted}
	if rep.Complete {
		body["complete"] = true
	}
	if rep.Via == "" {
		return r.endpoint(rep.Code).do(ctx, "POST", "/api/v1/turnout/reports", body, nil)
	}
	body["endpoint_code"], body["via"] = rep.Code, rep.Via
	if rep.Reason != "" {
		body["reason"] = rep.Reason
	}
	return r.duty.do(ctx, "POST", "/api/v1/turnout/reports", body, nil)
}

func (r *runner) incident(ctx context.Context, in *IncidentSpec) error {
	occurred := in.At
	if in.OccurredAt != "" {
		occurred = in.OccurredAt
	}
	t, _ := r.plan.S.At(occurred)
	body := map[string]any{"id": r.id("incident/" + in.Key), "endpoint_code": in.Code, "category": in.Category,
		"severity": in.Severity, "title": in.Title, "body": in.Body, "occurred_at": r.localTime(t)}
	// The command room has no one to phone it in: the desk logs its own.
	if in.Via != "" || in.Code == r.plan.Units[0].Code {
		return r.duty.do(ctx, "POST", "/api/v1/incidents", body, nil)
	}
	return r.endpoint(in.Code).do(ctx, "POST", "/api/v1/incidents", body, nil)
}

type incidentDoc struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Assignee string `json:"assignee"`
	Version  int    `json:"version"`
}

// incidentUpdate walks the status forward one step at a time (the workflow
// allows no skipping), sets the assignee, then adds the comment.
func (r *runner) incidentUpdate(ctx context.Context, in *IncidentSpec, u *IncidentUpdate) error {
	id := r.id("incident/" + in.Key)
	for range 10 {
		var cur incidentDoc
		if err := r.duty.do(ctx, "GET", "/api/v1/incidents/"+id, nil, &cur); err != nil {
			return err
		}
		patch := map[string]any{"version": cur.Version}
		if u.Assignee != "" && cur.Assignee != u.Assignee {
			patch["assignee"] = u.Assignee
		}
		if i, j := slices.Index(statuses, cur.Status), slices.Index(statuses, u.Status); u.Status != "" && j > i {
			patch["status"] = statuses[i+1]
		}
		if len(patch) == 1 {
			break
		}
		err := r.duty.do(ctx, "PATCH", "/api/v1/incidents/"+id, patch, nil)
		if statusOf(err) == http.StatusConflict {
			continue // someone changed it in between: read again
		}
		if err != nil {
			return err
		}
	}
	if u.Comment == "" {
		return nil
	}
	body := map[string]string{"id": r.id("comment/" + in.Key + "/" + u.At), "body": u.Comment}
	return r.duty.do(ctx, "POST", "/api/v1/incidents/"+id+"/updates", body, nil)
}

func (r *runner) directive(ctx context.Context, d *DirectiveSpec) error {
	body := map[string]any{"id": r.id("directive/" + d.Key), "text": d.Text, "targets": d.To}
	if d.Incident != "" {
		body["incident_id"] = r.id("incident/" + d.Incident)
	}
	if d.Due != "" {
		t, _ := r.plan.S.At(d.Due)
		body["due_at"] = r.localTime(t)
	}
	// The room issues directives: a leader.
	return r.lead.do(ctx, "POST", "/api/v1/directives", body, nil)
}

func (r *runner) ack(ctx context.Context, d *DirectiveSpec, code, via string) error {
	path := "/api/v1/directives/" + r.id("directive/"+d.Key) + "/ack"
	if via == "app" {
		return r.endpoint(code).do(ctx, "POST", path, map[string]any{}, nil)
	}
	return r.duty.do(ctx, "POST", path, map[string]string{"endpoint_code": code, "via": via}, nil)
}

// live: a hand from the endpoint itself, everything else from the console.
func (r *runner) live(l *LiveSpec) error {
	if l.Code != "" {
		if err := r.back(l.Code); err != nil {
			return err
		}
	}
	switch l.Action {
	case wire.TypeRaiseHand, wire.TypeLowerHand:
		c, err := r.eps.get(l.Code, 60*time.Second)
		if err != nil {
			return err
		}
		if _, err := sendWhenUp(c, l.Action, nil); err != nil {
			return err
		}
		// The hand must be in the queue before the floor is given.
		err = client.WaitFor(func() bool { return handQueued(r.console, l.Code) == (l.Action == wire.TypeRaiseHand) }, 10*time.Second)
		if err != nil {
			return errors.New(l.Action + " " + l.Code + ": not seen in the hand queue")
		}
		return nil
	}
	if l.Code != "" {
		// An endpoint given the floor or the line must be on the link.
		if _, err := r.eps.get(l.Code, 60*time.Second); err != nil {
			return err
		}
	}
	return r.leaderAction(l.Action, l.Code)
}

// handQueued: whether code is in the last hand queue the console received.
func handQueued(c *client.Client, code string) bool {
	l := c.Messages(wire.TypeHands)
	if len(l) == 0 {
		return false
	}
	var h wire.HandsMsg
	if json.Unmarshal(l[len(l)-1].Payload, &h) != nil {
		return false
	}
	return slices.Contains(h.Queue, code)
}
