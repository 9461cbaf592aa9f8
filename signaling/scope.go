package signaling

import (
	"slices"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/wire"
)

// District authority on /ws ("phân quyền điều hành"). The console of staff limited
// to a district sees the program (the command room, 22), the floor, and its own
// district and communes: their presence, health, hands, mutes, private line and
// video tiles. Other districts' endpoints are absent from everything it is sent,
// and it cannot watch or hear them (the floor excepted: everyone sees the floor).
// Session control is refused to it anyway: auth.Principal.Can never gives scoped
// staff CapRunSession, so conn.leader is false.

// scopeOf returns the test of which codes a principal's console sees; nil means
// every code (unscoped staff, and endpoints, which are not consoles but for 22).
func (s *Service) scopeOf(p auth.Principal) func(string) bool {
	if !p.Scoped() {
		return nil
	}
	// The roster is read once at start (New), like Room.inRoster: the map is
	// read-only, so this needs no lock and no database while PostgreSQL is away.
	parentOf := func(code string) string { return s.parents[code] }
	root := CommandCode
	if s.room != nil {
		root = s.room.root
	}
	return func(code string) bool { return code == root || p.InScope(code, parentOf) }
}

// sees reports whether the connection may be told about, and watch, code.
func (c *conn) sees(code string) bool { return c.scope == nil || c.scope(code) }

// filterCodes keeps the codes in keeps, in order; never nil (JSON []).
func filterCodes(codes []string, keep func(string) bool) []string {
	out := []string{}
	for _, c := range codes {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// toConsolesAbout sends a message about endpoint code to the consoles that see
// it. Called with mu held.
func (r *Room) toConsolesAbout(code, typ string, payload any) {
	msg := encode(typ, "", payload)
	for _, c := range r.conns {
		if c.role == wire.RoleConsole && c.sees(code) {
			c.sendRaw(msg)
		}
	}
}

// sendHands tells every connection the hand queue; a district's console gets its
// own units' hands only. Called with mu held.
func (r *Room) sendHands() {
	full := encode(wire.TypeHands, "", wire.HandsMsg{Queue: r.handsCopy()})
	for _, c := range r.conns {
		if c.scope == nil {
			c.sendRaw(full)
			continue
		}
		c.send(wire.TypeHands, "", wire.HandsMsg{Queue: filterCodes(r.hands, c.scope)})
	}
}

// privateLineToConsoles tells consoles who is on the private line ("" closed); a
// district's console sees it closed while it is with another district's endpoint.
// Called with mu held.
func (r *Room) privateLineToConsoles(code string) {
	var p *string
	if code != "" {
		p = &code
	}
	full, closed := encode(wire.TypePrivateLine, "", wire.PrivateLineMsg{Code: p}), encode(wire.TypePrivateLine, "", wire.PrivateLineMsg{})
	for _, c := range r.conns {
		switch {
		case c.role != wire.RoleConsole:
		case code == "" || c.sees(code):
			c.sendRaw(full)
		default:
			c.sendRaw(closed)
		}
	}
}

// scopeSnapshot trims a welcome's live state to what the connection sees.
func (c *conn) scopeSnapshot(s wire.Snapshot) wire.Snapshot {
	if c.scope == nil {
		return s
	}
	s.Hands = filterCodes(s.Hands, c.scope)
	s.MutedCodes = filterCodes(s.MutedCodes, c.scope)
	if s.PrivateLine != nil && !c.scope(*s.PrivateLine) {
		s.PrivateLine = nil
	}
	return s
}

// scopePresence trims a presence snapshot to what the connection sees.
func (c *conn) scopePresence(m wire.PresenceSnapshotMsg) wire.PresenceSnapshotMsg {
	if c.scope == nil {
		return m
	}
	m.Endpoints = slices.DeleteFunc(m.Endpoints, func(p wire.PresenceMsg) bool { return !c.scope(p.Code) })
	return m
}

// sendStats sends the health board to consoles, each the endpoints it sees.
// Called with mu held.
func (r *Room) sendStats(msg wire.StatsMsg) {
	full := encode(wire.TypeStats, "", msg)
	for _, c := range r.conns {
		switch {
		case c.role != wire.RoleConsole:
		case c.scope == nil:
			c.sendRaw(full)
		default:
			mine := wire.StatsMsg{At: msg.At, Endpoints: []wire.StatEntry{}}
			for _, e := range msg.Endpoints {
				if c.scope(e.Code) {
					mine.Endpoints = append(mine.Endpoints, e)
				}
			}
			c.send(wire.TypeStats, "", mine)
		}
	}
}
