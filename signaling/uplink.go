package signaling

// A node with a parent (package uplink) lets its leaders choose the program:
// the command room's own, or the parent's relayed down the uplink. The choice
// is a leader's action on the protocol (program_source); consoles are told the
// link's state and the choice (uplink), after welcome and on every change.

import (
	"context"
	"fmt"
	"time"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/wire"
)

// Uplink is the node's link to its parent, as signaling sees it.
type Uplink interface {
	// SetProgramSource switches the node's program (wire.ProgramSource*).
	SetProgramSource(src string) error
	// UplinkState is what consoles are told.
	UplinkState() wire.UplinkMsg
}

// SetUplink attaches the node's uplink (once, at start, before clients are
// served: internal/app starts it after the service).
func (s *Service) SetUplink(u Uplink) {
	s.uplinkMu.Lock()
	s.uplink = u
	s.uplinkMu.Unlock()
	s.UplinkChanged()
}

func (s *Service) getUplink() Uplink {
	s.uplinkMu.Lock()
	defer s.uplinkMu.Unlock()
	return s.uplink
}

// UplinkChanged tells every console the uplink's state (the uplink calls it).
func (s *Service) UplinkChanged() {
	u := s.getUplink()
	if u == nil {
		return
	}
	st := u.UplinkState()
	s.room.mu.Lock()
	s.room.toConsoles(wire.TypeUplink, st)
	s.room.mu.Unlock()
}

// sendUplink tells one console the uplink's state (after its welcome).
func (c *conn) sendUplink() {
	if c.role != wire.RoleConsole {
		return
	}
	if u := c.svc.getUplink(); u != nil {
		c.send(wire.TypeUplink, "", u.UplinkState())
	}
}

// onProgramSource switches the node's program between its own command room and
// the parent's program; the switch is audited.
func onProgramSource(c *conn, _ string, m *wire.ProgramSourceMsg) error {
	u := c.svc.getUplink()
	if u == nil {
		return perr(wire.ErrBadState, "this node has no parent: its program is its own command room's")
	}
	if m.Source != wire.ProgramSourceOwn && m.Source != wire.ProgramSourceParent {
		return perr(wire.ErrBadPayload, "source must be %q or %q", wire.ProgramSourceOwn, wire.ProgramSourceParent)
	}
	defer c.svc.room.lockActions()()
	if u.UplinkState().ProgramSource == m.Source {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	if err := c.svc.audit(ctx, c.p.Actor(), "program.source", c.svc.room.root, map[string]string{"source": m.Source}); err != nil {
		if store.IsUnavailable(err) {
			return perr(wire.ErrUnavailable, "the database is unavailable; the program was not switched, try again")
		}
		return fmt.Errorf("audit program source: %w", err)
	}
	if err := u.SetProgramSource(m.Source); err != nil { // the uplink tells the consoles
		return fmt.Errorf("program source: %w", err)
	}
	return nil
}
