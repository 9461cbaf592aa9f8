package signaling

import (
	"context"
	"fmt"
	"time"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/wire"
)

// Leader actions. Each one, in this order:
//
//  1. validates against the live state (session, target, presence): a refused
//     action gets an error and records nothing;
//  2. records its audit event (through the journal: recorded before applied);
//  3. applies it to the room.
//
// The room's action lock is held from 1 to 3, so another leader action cannot
// change what was validated. A change from outside (a session ended through the
// REST API between 2 and 3) can still make the room refuse at 3; that is logged.

// target validates an action's target: a roster endpoint other than the command
// room (the roster in memory, not the database: live actions work while
// PostgreSQL is away), and online when the action needs it.
func (c *conn) target(code string, needOnline bool) error {
	if code == "" {
		return perr(wire.ErrBadPayload, "code is required")
	}
	if code == c.svc.room.root || !c.svc.room.known(code) {
		return perr(wire.ErrUnknownCode, "%q is not an endpoint of the roster other than the command room", code)
	}
	if needOnline && !c.svc.room.online(code) {
		return perr(wire.ErrOffline, "endpoint %s is offline", code)
	}
	return nil
}

func (c *conn) needSession() error {
	if c.svc.room.currentSession() == "" {
		return perr(wire.ErrNoSession, "no session is in progress")
	}
	return nil
}

// record writes the action's audit event; code "" is the live session.
func (c *conn) record(action, code string, doc any) error {
	return c.svc.audit(c.ctx, c.p.Actor(), action, code, doc)
}

// applied turns the room's answer into the requester's error, and logs a refusal
// that came after the event was recorded (a change from outside the leader
// actions, see above).
func (c *conn) applied(action, code string) error {
	if code == "" {
		return nil
	}
	c.svc.log.Warn("signaling: action recorded but refused by the room (changed meanwhile)",
		"action", action, "actor", c.p.Actor(), "code", code)
	return errCode(code)
}

func (r *Room) lockActions() func() {
	r.actMu.Lock()
	return r.actMu.Unlock
}

func onGiveFloor(c *conn, _ string, m *wire.CodeMsg) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.needSession(); err != nil {
		return err
	}
	if err := c.target(m.Code, true); err != nil {
		return err
	}
	prev := r.floorHolder()
	if err := c.record("floor.given", m.Code, map[string]any{"floor": m.Code, "previous": prev}); err != nil {
		return err
	}
	return c.applied("floor.given", r.giveFloor(m.Code))
}

func onRevokeFloor(c *conn, _ string, _ *wire.Empty) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.needSession(); err != nil {
		return err
	}
	prev := r.floorHolder()
	if err := c.record("floor.revoked", prev, map[string]any{"floor": nil, "previous": prev}); err != nil {
		return err
	}
	return c.applied("floor.revoked", r.revokeFloor())
}

func onMute(c *conn, _ string, m *wire.CodeMsg) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.target(m.Code, false); err != nil {
		return err
	}
	if err := c.record("endpoint.muted", m.Code, map[string]any{"muted": true}); err != nil {
		return err
	}
	r.setMuted(m.Code, true, c.p.Actor())
	return nil
}

func onMuteAll(c *conn, _ string, _ *wire.Empty) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.record("endpoint.muted_all", "", map[string]any{"muted": "all"}); err != nil {
		return err
	}
	r.muteAll(c.p.Actor())
	return nil
}

func onRequestUnmute(c *conn, _ string, m *wire.CodeMsg) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.target(m.Code, false); err != nil {
		return err
	}
	if !r.connected(m.Code) {
		return perr(wire.ErrOffline, "endpoint %s is not connected", m.Code)
	}
	if err := c.record("unmute.requested", m.Code, nil); err != nil {
		return err
	}
	return c.applied("unmute.requested", r.requestUnmute(m.Code, c.p.Actor()))
}

func onPrivateLineOpen(c *conn, _ string, m *wire.CodeMsg) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.needSession(); err != nil {
		return err
	}
	if err := c.target(m.Code, true); err != nil {
		return err
	}
	if err := c.record("private_line.opened", m.Code, map[string]any{"private_line": m.Code}); err != nil {
		return err
	}
	return c.applied("private_line.opened", r.setPrivateLine(m.Code))
}

func onPrivateLineClose(c *conn, _ string, _ *wire.Empty) error {
	r := c.svc.room
	defer r.lockActions()()
	prev := r.privateLineCode()
	if err := c.record("private_line.closed", prev, map[string]any{"private_line": nil}); err != nil {
		return err
	}
	return c.applied("private_line.closed", r.setPrivateLine(""))
}

func onRollCallStart(c *conn, _ string, _ *wire.Empty) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.needSession(); err != nil {
		return err
	}
	if err := c.record("roll_call.started", "", map[string]any{"active": true}); err != nil {
		return err
	}
	return c.applied("roll_call.started", r.setRollCall(true))
}

func onRollCallStop(c *conn, _ string, _ *wire.Empty) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.record("roll_call.stopped", "", map[string]any{"active": false}); err != nil {
		return err
	}
	return c.applied("roll_call.stopped", r.setRollCall(false))
}

func onRemove(c *conn, _ string, m *wire.CodeMsg) error {
	r := c.svc.room
	defer r.lockActions()()
	if err := c.target(m.Code, false); err != nil {
		return err
	}
	if err := c.record("endpoint.removed", m.Code, nil); err != nil {
		return err
	}
	if old := r.remove(m.Code); old != nil {
		old.send(wire.TypeRemoved, "", wire.RemovedMsg{By: c.p.Actor()})
		old.clean.Store(true)
		old.closeAfter(StatusRemoved, "removed by the command room")
	}
	return nil
}

// onSessionEnd ends the session through the store, which validates, records
// (session.ended) and applies in one transaction; the room follows.
func onSessionEnd(c *conn, _ string, _ *wire.Empty) error {
	r := c.svc.room
	defer r.lockActions()()
	sid := r.currentSession()
	if sid == "" {
		return perr(wire.ErrNoSession, "no session is in progress")
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	if err := c.svc.endSession(ctx, c.p.Actor(), sid); err != nil { // audited by the store
		if store.IsUnavailable(err) {
			return perr(wire.ErrUnavailable, "the database is unavailable; the session was not ended, try again")
		}
		return fmt.Errorf("end session: %w", err)
	}
	r.setSession("")
	return nil
}

func errCode(code string) error {
	switch code {
	case "":
		return nil
	case wire.ErrNoSession:
		return perr(code, "no session is in progress")
	case wire.ErrOffline:
		return perr(code, "the endpoint is offline")
	case wire.ErrNoUnmuteAsked:
		return perr(code, "no unmute request is pending")
	default:
		return perr(code, "refused")
	}
}
