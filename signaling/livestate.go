package signaling

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"time"
)

// LiveState is the room's durable state, kept in a LiveStateStore (PostgreSQL in
// production) so that a restart, even after kill -9, or the node's standby
// process taking over resumes the session where it was: the floor, who was
// muted, the hand queue in order, the private line and the roll call. Presence
// and media are not kept: restored endpoints start offline and reconnect. Who
// was online, and the outages not yet done, are kept for outage incidents
// (outage.go).
type LiveState struct {
	Version     int       `json:"version"`
	SavedAt     time.Time `json:"saved_at"`
	SessionID   string    `json:"session_id,omitempty"`
	Floor       string    `json:"floor,omitempty"`
	PrivateLine string    `json:"private_line,omitempty"`
	RollCall    bool      `json:"roll_call,omitempty"`
	Hands       []string  `json:"hands"`
	Muted       []string  `json:"muted"`
	UnmuteAsked []string  `json:"unmute_asked"`
	// Online lists the endpoints online during the session when the file was
	// saved (rewritten at least every onlineHeartbeat while any is): after a
	// restart, one that does not come back has an outage lost at SavedAt.
	Online []string `json:"online,omitempty"`
	// Outages are the losses of link whose incident is not done (outage.go).
	Outages []Outage `json:"outages,omitempty"`
}

// onlineHeartbeat: while endpoints are online in a session, the state file is
// rewritten at least this often, so SavedAt bounds when they were last seen.
const onlineHeartbeat = 5 * time.Second

const liveStateVersion = 1

// durable snapshots the durable state. Called with mu held.
func (r *Room) durable() LiveState {
	st := LiveState{Version: liveStateVersion, SessionID: r.sessionID, Floor: r.floor,
		PrivateLine: r.privateLine, RollCall: r.rollCall, Hands: r.handsCopy(), Muted: []string{}, UnmuteAsked: []string{}}
	for _, code := range sortedKeys(r.members) {
		m := r.members[code]
		if m.wasOnline && r.sessionID != "" {
			st.Online = append(st.Online, code)
		}
		if m.muted {
			st.Muted = append(st.Muted, code)
		}
		if m.unmuteAsked {
			st.UnmuteAsked = append(st.UnmuteAsked, code)
		}
	}
	st.Outages = append([]Outage(nil), r.outages...)
	return st
}

// restore loads durable state into an empty room at start. Session-bound state
// (floor, hands, private line, roll call) is taken only when the file's session
// is still the one in progress. Every endpoint named starts offline now, so the
// retention of its state (StateRetention) counts from the restore.
func (r *Room) restore(st LiveState, currentSession string, now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	known := func(code string) bool { return code != "" && code != r.root && r.inRoster[code] }
	touch := func(code string) *member {
		m := r.member(code)
		m.offlineAt = now
		return m
	}
	var restored []string
	for _, o := range st.Outages {
		if r.inRoster[o.Code] && o.SessionID != "" {
			r.outages = append(r.outages, o)
			restored = append(restored, "outage:"+o.Code)
		}
	}
	if st.SessionID != "" && st.SessionID == currentSession {
		// Online when the process stopped: offline from now, the link lost when
		// the file was last saved (at most onlineHeartbeat before the stop).
		lost := st.SavedAt
		if lost.IsZero() || lost.After(now) {
			lost = now
		}
		for _, code := range st.Online {
			if r.inRoster[code] {
				r.outages = append(r.outages, Outage{Code: code, SessionID: currentSession,
					LostAt: lost.UTC().Truncate(time.Second), OfflineAt: now.UTC()})
				restored = append(restored, "online:"+code)
			}
		}
	}
	for _, code := range st.Muted {
		if known(code) {
			touch(code).muted = true
			restored = append(restored, "muted:"+code)
		}
	}
	for _, code := range st.UnmuteAsked {
		if known(code) {
			touch(code).unmuteAsked = true
		}
	}
	if st.SessionID == "" || st.SessionID != currentSession {
		return restored
	}
	r.sessionID = currentSession
	if known(st.Floor) {
		touch(st.Floor)
		r.floor = st.Floor
		restored = append(restored, "floor:"+st.Floor)
	}
	if known(st.PrivateLine) {
		touch(st.PrivateLine)
		r.privateLine = st.PrivateLine
		restored = append(restored, "private_line:"+st.PrivateLine)
	}
	r.rollCall = st.RollCall
	for _, code := range st.Hands {
		if known(code) && !slices.Contains(r.hands, code) {
			touch(code).hand = true
			r.hands = append(r.hands, code)
			restored = append(restored, "hand:"+code)
		}
	}
	return restored
}

// ---- the service's state writer ----

// stateChanged asks the state writer to save (never blocks).
func (s *Service) stateChanged() {
	select {
	case s.saveC <- struct{}{}:
	default:
	}
}

// FreezeState stops writing the live state: what follows (shutdown) is
// tear-down, not a change of the session.
func (s *Service) FreezeState() { s.frozen.Store(true) }

// stateLoop writes the state on every change (coalesced) and checks every
// 500 ms for changes that did not signal. While endpoints are online in a
// session it rewrites it at least every onlineHeartbeat (see LiveState.Online).
func (s *Service) stateLoop() {
	defer s.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var last []byte
	var lastWrite time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.saveC:
		case <-t.C:
		}
		if s.frozen.Load() {
			continue
		}
		if b, ok := s.saveState(last, lastWrite); ok {
			last, lastWrite = b, time.Now()
		}
	}
}

// saveState writes the state when it differs from last (or the online
// heartbeat is due), and returns what it wrote. A failed write (PostgreSQL
// away) returns false: the loop tries again on its next tick with the newest
// state, which the room keeps in memory, so the room itself never waits.
func (s *Service) saveState(last []byte, lastWrite time.Time) ([]byte, bool) {
	s.room.mu.Lock()
	st := s.room.durable()
	s.room.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		s.log.Error("signaling: encode live state", "err", err)
		return nil, false
	}
	if bytes.Equal(b, last) && (len(st.Online) == 0 || time.Since(lastWrite) < onlineHeartbeat) {
		return nil, false
	}
	st.SavedAt = time.Now().UTC()
	full, _ := json.MarshalIndent(st, "", "  ")
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	defer cancel()
	if err := s.liveStore.SaveLiveState(ctx, full); err != nil {
		if s.saveFail.CompareAndSwap(false, true) { // once per outage, not every tick
			s.log.Error("signaling: live state not saved; retrying", "err", err)
		}
		return nil, false
	}
	if s.saveFail.CompareAndSwap(true, false) {
		s.log.Info("signaling: live state saved again")
	}
	return b, true
}
