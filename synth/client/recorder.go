package client

import (
	"sync"
	"time"

	"github.com/opscenter/opscenter/synth/media"
)

// SourceStats is what one slot received from one source endpoint.
type SourceStats struct {
	Packets      int
	Keyframes    int
	LastKeyWidth int       // width in the last VP8 keyframe header (0: none seen)
	LastRID      string    // rid in the last packet's marker
	First, Last  time.Time // arrival of the first and last packet
}

// Switch records that a slot started carrying another source.
type Switch struct {
	At   time.Time
	From string
	To   string
}

// SlotStats is what one slot (one received track) carried.
type SlotStats struct {
	Name     string
	Packets  int
	SeqGaps  int    // sequence discontinuities (rewriting should keep this near 0)
	Current  string // source code of the last packet
	LastAt   time.Time
	Sources  map[string]SourceStats
	Switches []Switch
}

// Recorder keeps, per slot, what arrived from which source (by payload marker).
type Recorder struct {
	mu    sync.Mutex
	slots map[string]*slotRec
}

type slotRec struct {
	SlotStats
	lastSeq uint16
	haveSeq bool
}

func newRecorder() *Recorder { return &Recorder{slots: map[string]*slotRec{}} }

// add records one packet on a slot.
func (r *Recorder) add(slot string, seq uint16, payload []byte, now time.Time) {
	m, ok := media.ParseMarker(payload)
	code := "?"
	if ok {
		code = m.Code
	}
	w, _, key := media.ParseVP8Keyframe(payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slots[slot]
	if s == nil {
		s = &slotRec{SlotStats: SlotStats{Name: slot, Sources: map[string]SourceStats{}}}
		r.slots[slot] = s
	}
	if s.haveSeq {
		if d := int16(seq - s.lastSeq); d > 1 {
			s.SeqGaps++
		}
		if int16(seq-s.lastSeq) > 0 {
			s.lastSeq = seq
		}
	} else {
		s.lastSeq, s.haveSeq = seq, true
	}
	s.Packets++
	if s.Current != code {
		s.Switches = append(s.Switches, Switch{At: now, From: s.Current, To: code})
		if len(s.Switches) > 1000 {
			s.Switches = s.Switches[len(s.Switches)-1000:]
		}
		s.Current = code
	}
	s.LastAt = now
	st := s.Sources[code]
	st.Packets++
	if st.First.IsZero() {
		st.First = now
	}
	st.Last = now
	if ok {
		st.LastRID = m.RID
	}
	if key {
		st.Keyframes++
		st.LastKeyWidth = w
	}
	s.Sources[code] = st
}

// Slot returns a copy of one slot's record (ok false if nothing arrived on it).
func (r *Recorder) Slot(name string) (SlotStats, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slots[name]
	if s == nil {
		return SlotStats{}, false
	}
	return s.copy(), true
}

func (s *slotRec) copy() SlotStats {
	out := s.SlotStats
	out.Sources = make(map[string]SourceStats, len(s.Sources))
	for k, v := range s.Sources {
		out.Sources[k] = v
	}
	out.Switches = append([]Switch(nil), s.Switches...)
	return out
}

// Slots returns copies of every slot's record.
func (r *Recorder) Slots() map[string]SlotStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]SlotStats, len(r.slots))
	for k, s := range r.slots {
		out[k] = s.copy()
	}
	return out
}

// From returns, per slot, the stats of source code for slots where it arrived at or
// after since.
func (r *Recorder) From(code string, since time.Time) map[string]SourceStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]SourceStats{}
	for name, s := range r.slots {
		if st, ok := s.Sources[code]; ok && !st.Last.Before(since) {
			out[name] = st
		}
	}
	return out
}

// FirstFrom returns when slot started carrying code at or after since (zero if it
// has not). A slot already carrying code before since counts from its next packet.
func (r *Recorder) FirstFrom(slot, code string, since time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slots[slot]
	if s == nil {
		return time.Time{}
	}
	for _, sw := range s.Switches {
		if sw.To == code && !sw.At.Before(since) {
			return sw.At
		}
	}
	if s.Current == code && !s.LastAt.Before(since) {
		return s.LastAt
	}
	return time.Time{}
}
