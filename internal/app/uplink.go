package app

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/uplink"
)

// startUplink joins the parent node's session as this node's root code, when a
// parent is configured (DESIGN.md, beyond one machine).
func (a *App) startUplink(reg prometheus.Registerer) error {
	p := a.Config.Parent
	if !p.Enabled() {
		return nil
	}
	u, err := uplink.New(uplink.Config{URL: p.URL, Token: p.Token(), Code: a.Config.Roster.ProvinceCode,
		ReconnectMin: p.ReconnectMin, ReconnectMax: p.ReconnectMax,
		Figure: a.ownFigure, SyncInterval: p.SyncInterval, PublishProgram: a.publishProgram,
		PublishFloor: a.publishFloor,
		OnChange:     a.Live.UplinkChanged,
		ViewProgram:  a.viewProgram,
		Directives:   uplinkDirectives{a.Store, a.Config.Roster.ProvinceCode},
		Escalations:  uplinkEscalations{a.Store}}, a.Log, reg)
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	a.Uplink = u
	a.Live.SetUplink(u)
	return nil
}

// ownFigure is this node's roll-up at its root: the figure its uplink reports
// as this unit's, by itself, at the parent. Nothing before the first report.
func (a *App) ownFigure(ctx context.Context) (uplink.Figure, bool, error) {
	pic, err := a.Store.Turnout(ctx, store.TurnoutQuery{Code: a.Config.Roster.ProvinceCode})
	if err != nil {
		return uplink.Figure{}, false, fmt.Errorf("own turnout: %w", err)
	}
	if pic.SessionID == nil || len(pic.Units) != 1 || pic.Units[0].LastReportAt == nil {
		return uplink.Figure{}, false, nil
	}
	u := pic.Units[0]
	return uplink.Figure{Voted: u.Voted, AsOf: *u.LastReportAt, Complete: u.Complete}, true, nil
}

// viewProgram is the uplink's WHEP viewer of this node's program (what the
// parent sees of this unit), through this node's ingest, as an observer.
func (a *App) viewProgram(offer string) (string, func(), error) {
	m, err := a.Live.StartWHEP(auth.Principal{Username: "uplink", Role: auth.RoleObserver}, offer, false)
	if err != nil {
		return "", nil, err
	}
	return m.Answer(), m.Close, nil
}

// publishProgram publishes the uplink's relay of the parent's program through
// this node's WHIP ingest, as the command room's device (endpoint root): the
// newest program publisher, until it stops.
func (a *App) publishProgram(offer string) (string, func(), error) {
	m, err := a.Live.StartWHIP(auth.Principal{EndpointCode: a.Config.Roster.ProvinceCode}, offer)
	if err != nil {
		return "", nil, err
	}
	return m.Answer(), m.Close, nil
}

// publishFloor publishes the uplink's relay of the parent's floor through this
// node's ingest: this node's floor while it has none of its own, until it stops.
func (a *App) publishFloor(offer string) (string, func(), error) {
	m, err := a.Live.StartRelayFloor(offer)
	if err != nil {
		return "", nil, err
	}
	return m.Answer(), m.Close, nil
}

// uplinkDirectives is this node's log as the uplink sees it: directives from
// the parent are received under the parent's id, with one receipt, the root's.
type uplinkDirectives struct {
	st   *store.Store
	root string
}

func (d uplinkDirectives) Receive(ctx context.Context, p uplink.ParentDirective) error {
	_, _, err := d.st.ReceiveParentDirective(ctx, d.root, store.ParentDirective{ID: p.ID, IssuedBy: p.IssuedBy,
		Text: p.Text, DueAt: p.DueAt, CreatedAt: p.CreatedAt})
	return err
}

func (d uplinkDirectives) Receipt(ctx context.Context, id string) (uplink.ReceiptState, error) {
	dir, err := d.st.GetDirective(ctx, id)
	if err != nil {
		return uplink.ReceiptState{}, err
	}
	for _, r := range dir.Receipts {
		if r.EndpointCode == d.root {
			return uplink.ReceiptState{AckedAt: r.AckedAt, Reply: r.Reply, DoneAt: r.DoneAt}, nil
		}
	}
	return uplink.ReceiptState{}, fmt.Errorf("directive %s has no receipt for %s: %w", id, d.root, store.ErrNotFound)
}

// uplinkEscalations are this node's incidents escalated to the parent.
type uplinkEscalations struct{ st *store.Store }

func (e uplinkEscalations) Pending(ctx context.Context) ([]uplink.Escalation, error) {
	list, err := e.st.PendingEscalations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]uplink.Escalation, len(list))
	for i, x := range list {
		in := x.Incident
		out[i] = uplink.Escalation{ID: in.ID, Category: in.Category, Severity: in.Severity, Title: in.Title,
			Body: in.Body, OccurredAt: in.OccurredAt}
	}
	return out, nil
}

func (e uplinkEscalations) Delivered(ctx context.Context, id string) error {
	return e.st.EscalationDelivered(ctx, id)
}
