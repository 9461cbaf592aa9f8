package signaling

// The reconcile loop: routing decisions (Route per slot) are computed from the
// room's state and applied to the media engine, one pass at a time, whenever
// something kicks it; the media engine's callbacks (layer demand, peer state)
// come back here.

import (
	"errors"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/wire"
)

// kick asks the reconcile loop to recompute routing (never blocks).
func (s *Service) kick() {
	select {
	case s.kickC <- struct{}{}:
	default:
	}
}

func (s *Service) reconcileLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.kickC:
			start := time.Now()
			n := s.reconcile()
			s.lastReconcile.Store(int64(time.Since(start)))
			if n > 0 {
				s.log.Debug("signaling: routing applied", "slots", n, "took", time.Since(start))
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// reconcile computes the routing policy and applies what changed; it returns the
// number of slots changed.
func (s *Service) reconcile() int {
	st := s.room.policyState()
	next := st.Route()
	defer s.wantRecordings(st)
	for id := range s.applied {
		if _, ok := next[id]; !ok {
			delete(s.applied, id)
		}
	}
	n := 0
	for id, routes := range next {
		p := s.engine.Peer(id)
		if p == nil {
			continue
		}
		ap := s.applied[id]
		if ap == nil {
			ap = map[string]appliedSlot{}
			s.applied[id] = ap
		}
		for slot, rt := range routes {
			if s.applySlot(p, ap, slot, rt) {
				n++
			}
		}
		for slot := range ap {
			if _, ok := routes[slot]; !ok && s.applySlot(p, ap, slot, Route{}) {
				n++
			}
		}
	}
	return n
}

// applySlot points one slot at the route's track when that changed.
func (s *Service) applySlot(p MediaPeer, ap map[string]appliedSlot, slot string, rt Route) bool {
	audio := SlotIsAudio(slot)
	var tr UpTrack
	if rt.Source != "" {
		if src := s.engine.Peer(rt.Source); src != nil {
			v, a := src.Tracks()
			tr = v
			if audio {
				tr = a
			}
		}
	}
	cur, had := ap[slot]
	if (had && cur.track == tr && cur.layer == rt.Layer) || (!had && tr == nil) {
		return false
	}
	sl := p.Slot(slot)
	if sl == nil {
		if tr == nil {
			return false
		}
		kind := webrtc.RTPCodecTypeVideo
		if audio {
			kind = webrtc.RTPCodecTypeAudio
		}
		var err error
		if sl, err = p.AddSlot(slot, kind); err != nil {
			if !errors.Is(err, media.ErrClosed) {
				s.log.Error("signaling: add slot", "peer", p.ID(), "slot", slot, "err", err)
			}
			return false
		}
	}
	if err := sl.SetSource(tr, rt.Layer); err != nil {
		if !errors.Is(err, media.ErrClosed) {
			s.log.Error("signaling: set source", "peer", p.ID(), "slot", slot, "err", err)
		}
		delete(ap, slot)
		return false
	}
	if tr == nil {
		delete(ap, slot)
	} else {
		ap[slot] = appliedSlot{tr, rt.Layer}
	}
	return true
}

// ---- media engine hooks ----

func (s *Service) onLayerDemand(peerID, rid string, needed bool) {
	if c := s.room.connByPeer(peerID); c != nil {
		c.send(wire.TypeLayerControl, "", wire.LayerControlMsg{RID: rid, Active: needed})
	}
}

func (s *Service) onPeerState(peerID string, t media.Target, st webrtc.PeerConnectionState) {
	if s.ingestPeerState(peerID, st) {
		return
	}
	c := s.room.connByPeer(peerID)
	if c == nil {
		return
	}
	leg := 0
	if t == media.Subscriber {
		leg = 1
	}
	s.room.mediaState(c, leg, st == webrtc.PeerConnectionStateConnected)
}
