package signaling

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// LiveState is the room's durable state, kept in a local file so that a restart
// (even after kill -9) resumes the session where it was: the floor, who was
// muted, the hand queue in order, the private line and the roll call. Presence
// and media are not kept: restored endpoints start offline and reconnect.
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
}

const liveStateVersion = 1

// durable snapshots the durable state. Called with mu held.
func (r *Room) durable() LiveState {
	st := LiveState{Version: liveStateVersion, SessionID: r.sessionID, Floor: r.floor,
		PrivateLine: r.privateLine, RollCall: r.rollCall, Hands: r.handsCopy(), Muted: []string{}, UnmuteAsked: []string{}}
	for _, code := range sortedKeys(r.members) {
		m := r.members[code]
		if m.muted {
			st.Muted = append(st.Muted, code)
		}
		if m.unmuteAsked {
			st.UnmuteAsked = append(st.UnmuteAsked, code)
		}
	}
	return st
}

// restore loads durable state into an empty room at start. Session-bound state
// (floor, hands, private line, roll call) is taken only when the file's session
// is still the one in progress. Every endpoint named starts offline now, so the
// retention of its state (StateRetention) counts from the restore.
func (r *Room) restore(st LiveState, currentSession string, now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	known := func(code string) bool { return code != "" && code != CommandCode && r.inRoster[code] }
	touch := func(code string) *member {
		m := r.member(code)
		m.offlineAt = now
		return m
	}
	var restored []string
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

// readLiveState reads the state file; a missing file is an empty state.
func readLiveState(path string) (LiveState, bool, error) {
	var st LiveState
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read live state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, false, fmt.Errorf("live state %s: %w", path, err)
	}
	if st.Version != liveStateVersion {
		return st, false, fmt.Errorf("live state %s: version %d, want %d", path, st.Version, liveStateVersion)
	}
	return st, true, nil
}

// writeFileAtomic writes b to path: a temporary file, fsync, rename, fsync of
// the folder. A crash leaves either the old or the new file, never a torn one.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ---- the service's state writer ----

// stateChanged asks the state writer to save (never blocks).
func (s *Service) stateChanged() {
	select {
	case s.saveC <- struct{}{}:
	default:
	}
}

// FreezeState stops writing the live state file: what follows (shutdown) is
// tear-down, not a change of the session.
func (s *Service) FreezeState() { s.frozen.Store(true) }

// stateLoop writes the state file on every change (coalesced) and checks every
// 500 ms for changes that did not signal.
func (s *Service) stateLoop() {
	defer s.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var last []byte
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
		s.room.mu.Lock()
		st := s.room.durable()
		s.room.mu.Unlock()
		b, err := json.Marshal(st)
		if err != nil {
			s.log.Error("signaling: encode live state", "err", err)
			continue
		}
		if bytes.Equal(b, last) {
			continue
		}
		st.SavedAt = time.Now().UTC()
		full, _ := json.MarshalIndent(st, "", "  ")
		if err := writeFileAtomic(s.statePath, full); err != nil {
			s.log.Error("signaling: write live state", "path", s.statePath, "err", err)
			continue
		}
		last = b
	}
}
