package signaling

import (
	"slices"

	"github.com/opscenter/opscenter/wire"
)

// Live-session state changes. Each locks the room, changes state, tells the
// connections concerned and reports whether routing must be recomputed. They
// return an error code ("" for success) for the requester. Leader actions are
// validated (the read-only checks below) and audited before these apply them
// (leader.go); the checks the changes repeat only catch a change made meanwhile
// from outside the leader actions (a session ended through the REST API).

func (r *Room) sessionLocked() string {
	if r.sessionID == "" {
		return wire.ErrNoSession
	}
	return ""
}

// setSession records the session in progress ("" when none). Ending a session
// clears the floor, the hands, the private line and the roll call but keeps
// connections.
func (r *Room) setSession(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	if r.sessionID == id {
		return
	}
	r.sessionID = id
	if id == "" {
		r.floor, r.privateLine, r.rollCall = "", "", false
		r.hands = nil
		for _, m := range r.members {
			m.hand = false
		}
		r.toAll(wire.TypeFloor, wire.FloorMsg{})
		r.toAll(wire.TypeHands, wire.HandsMsg{Queue: []string{}})
		r.toAll(wire.TypePrivateLine, wire.PrivateLineMsg{})
		r.toAll(wire.TypeRollCall, wire.RollCallMsg{})
		r.toAll(wire.TypeSession, wire.SessionMsg{State: "none"})
	} else {
		r.toAll(wire.TypeSession, wire.SessionMsg{State: "in_progress", ID: id})
	}
	r.onChange()
}

// online reports whether an endpoint's presence is anything but offline.
func (r *Room) online(code string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.effective(code) != wire.StateOffline
}

// connected reports whether an endpoint has a live connection (to deliver to).
func (r *Room) connected(code string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[code]
	return m != nil && m.conn != nil
}

// unmuteAsked reports whether an unmute request awaits the endpoint's answer.
func (r *Room) unmuteAsked(code string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[code]
	return m != nil && m.unmuteAsked
}

func (r *Room) currentSession() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessionID
}

func (r *Room) giveFloor(code string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	if e := r.sessionLocked(); e != "" {
		return e
	}
	r.floor = code
	c := code
	r.toAll(wire.TypeFloor, wire.FloorMsg{Code: &c})
	if i := slices.Index(r.hands, code); i >= 0 {
		r.hands = slices.Delete(r.hands, i, i+1)
		if m := r.members[code]; m != nil {
			m.hand = false
		}
		r.sendHands()
	}
	r.onChange()
	return ""
}

func (r *Room) revokeFloor() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	if e := r.sessionLocked(); e != "" {
		return e
	}
	r.floor = ""
	r.toAll(wire.TypeFloor, wire.FloorMsg{})
	r.onChange()
	return ""
}

func (r *Room) floorHolder() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.floor
}

func (r *Room) setHand(code string, up bool) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	m := r.member(code)
	if m.hand == up {
		return ""
	}
	if up && r.sessionID == "" {
		return wire.ErrNoSession
	}
	m.hand = up
	if up {
		r.hands = append(r.hands, code)
	} else if i := slices.Index(r.hands, code); i >= 0 {
		r.hands = slices.Delete(r.hands, i, i+1)
	}
	r.sendHands()
	return ""
}

// setMuted mutes or unmutes an endpoint on the command room's behalf.
func (r *Room) setMuted(code string, muted bool, by string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	r.setMutedLocked(code, muted, by)
	r.onChange()
}

func (r *Room) setMutedLocked(code string, muted bool, by string) {
	m := r.member(code)
	m.muted = muted
	m.unmuteAsked = false
	msg := wire.MuteMsg{Code: code, Muted: muted, By: by}
	r.toCode(code, wire.TypeMute, msg)
	r.toConsolesAbout(code, wire.TypeMute, msg)
}

// muteAll mutes every known endpoint but the command room.
func (r *Room) muteAll(by string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	var codes []string
	for _, code := range sortedKeys(r.members) {
		if code != r.root && !r.members[code].muted {
			r.setMutedLocked(code, true, by)
			codes = append(codes, code)
		}
	}
	r.onChange()
	return codes
}

// requestUnmute asks an endpoint's user to confirm unmuting.
func (r *Room) requestUnmute(code, by string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	m := r.members[code]
	if m == nil || m.conn == nil {
		return wire.ErrOffline
	}
	m.unmuteAsked = true
	m.conn.send(wire.TypeUnmuteRequest, "", wire.UnmuteRequestMsg{By: by})
	return ""
}

// unmuteAccept is the endpoint's confirmation of a pending unmute request.
func (r *Room) unmuteAccept(code string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	m := r.members[code]
	if m == nil || !m.unmuteAsked {
		return wire.ErrNoUnmuteAsked
	}
	r.setMutedLocked(code, false, "endpoint:"+code)
	r.onChange()
	return ""
}

// selfMute records the endpoint's own microphone state.
func (r *Room) selfMute(code string, micOn bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.member(code)
	if m.selfMuted == !micOn {
		return
	}
	m.selfMuted = !micOn
	r.onChange()
}

func (r *Room) setPrivateLine(code string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	if e := r.sessionLocked(); e != "" && code != "" {
		return e
	}
	prev := r.privateLine
	r.privateLine = code
	var p *string
	if code != "" {
		p = &code
	}
	r.privateLineToConsoles(code)
	r.toCode(code, wire.TypePrivateLine, wire.PrivateLineMsg{Code: p})
	if prev != "" && prev != code { // the endpoint leaving the line is told too
		r.toCode(prev, wire.TypePrivateLine, wire.PrivateLineMsg{Code: p})
	}
	r.onChange()
	return ""
}

func (r *Room) privateLineCode() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.privateLine
}

func (r *Room) setRollCall(on bool) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	if e := r.sessionLocked(); e != "" && on {
		return e
	}
	r.rollCall = on
	r.toAll(wire.TypeRollCall, wire.RollCallMsg{Active: on})
	r.onChange()
	return ""
}

// remove takes an endpoint out of the session: its floor, hand and private line
// are cleared and its connection is returned for closing.
func (r *Room) remove(code string) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.onState()
	m := r.members[code]
	if m == nil {
		return nil
	}
	c := m.conn
	if r.floor == code {
		r.floor = ""
		r.toAll(wire.TypeFloor, wire.FloorMsg{})
	}
	if r.privateLine == code {
		r.privateLine = ""
		r.privateLineToConsoles("")
	}
	if i := slices.Index(r.hands, code); i >= 0 {
		r.hands = slices.Delete(r.hands, i, i+1)
		r.sendHands()
	}
	m.hand = false
	r.onChange()
	return c
}
