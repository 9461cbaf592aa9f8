package sfu

import (
	"fmt"

	"github.com/pion/webrtc/v3"
)

// The control surface of a Slot: what signaling sets (source, requested
// layer, mute) and reads (stats). The Slot itself is egress (egress_slot.go).

// Name is the slot name given to AddSlot (also the track and stream id).
func (s *Slot) Name() string { return s.name }

// Kind is audio or video.
func (s *Slot) Kind() webrtc.RTPCodecType { return s.kind }

// Source returns the current source track (nil when gated).
func (s *Slot) Source() *UpTrack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.source
}

// SetSource switches the slot to track t (nil = gate off, nothing is sent)
// and sets the requested layer. It never renegotiates.
func (s *Slot) SetSource(t *UpTrack, requestedLayer int) error {
	if t != nil && t.kind != s.kind {
		return fmt.Errorf("%w: slot %s is %s, track is %s", ErrKindMismatch, s.name, s.kind, t.kind)
	}
	if s.isClosed() {
		return ErrClosed
	}
	if t != nil {
		t.mu.Lock()
		gone := t.gone
		t.mu.Unlock()
		if gone {
			return fmt.Errorf("%w: track of %s has ended", ErrClosed, t.peer.id)
		}
	}
	s.mu.Lock()
	old := s.source
	s.source = t
	s.requested = clampLayer(requestedLayer)
	s.mu.Unlock()
	if old != t {
		if old != nil {
			old.removeWatcher(s)
		}
		if t != nil {
			t.addWatcher(s)
		}
	}
	if t != nil {
		s.startRTCP()
	}
	s.peer.reallocate()
	return nil
}

// SetRequestedLayer sets the layer signaling wants for this slot (0..2). The
// effective layer is min(requested, bandwidth, available).
func (s *Slot) SetRequestedLayer(l int) {
	s.mu.Lock()
	s.requested = clampLayer(l)
	s.mu.Unlock()
	s.peer.reallocate()
}

// SetMuted gates the slot without forgetting its source.
func (s *Slot) SetMuted(m bool) {
	s.mu.Lock()
	s.muted = m
	s.mu.Unlock()
	s.peer.reallocate()
}

// Stats returns a snapshot of the slot's statistics.
func (s *Slot) Stats() SlotStats {
	s.mu.Lock()
	st := SlotStats{Name: s.name, Kind: s.kind.String(), RequestedLayer: s.requested, Muted: s.muted}
	if s.source != nil {
		st.Source = s.source.peer.id
	}
	s.mu.Unlock()
	st.EffectiveLayer = -1
	if c := s.current.Load(); c != nil {
		st.EffectiveLayer = c.index
	}
	st.Packets = s.packets.Load()
	st.Bytes = s.bytes.Load()
	st.Dropped = s.dropped.Load()
	st.NACKed = s.nacked.Load()
	return st
}

func clampLayer(l int) int {
	if l < 0 {
		return 0
	}
	if l > 2 {
		return 2
	}
	return l
}

// sourceGone is called when the source track ends.
func (s *Slot) sourceGone(t *UpTrack) {
	s.mu.Lock()
	if s.source == t {
		s.source = nil
	}
	s.mu.Unlock()
	s.peer.reallocate()
}
