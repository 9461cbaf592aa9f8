package signaling

// A node with a parent (package uplink) relays the parent's floor down: the
// uplink republishes what it receives on its floor slots into this node, in
// process, through the same WHIP ingest as the relayed program, marked as the
// relayed floor. Routing sends it to this node's endpoints, consoles and walls
// on their floor slots while this node has no floor of its own: a floor given
// here wins, and the relayed one comes back when it is taken away. The uplink
// ends the publication when the parent's floor ends (or the node takes its
// own program back), and the node's floor slots are gated again.
//
// The relayed floor is no member: it has no presence, no hand and no mute
// here (muting is the parent's: a muted floor's audio never reaches the
// uplink), and it is not recorded at this node.

import (
	"fmt"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/media"
)

// relayFloorPrincipal is who publishes the relayed floor (in logs and the ingest table).
var relayFloorPrincipal = auth.Principal{Username: "uplink"}

// StartRelayFloor applies a WHIP offer from this node's uplink: the parent's
// floor, relayed. It is an in-process API (no HTTP route reaches it). The
// answer carries every server candidate; Close ends the relayed floor.
func (s *Service) StartRelayFloor(offer string) (*IngestSession, error) {
	if _, err := checkIngestOffer(offer, true); err != nil {
		return nil, err
	}
	m, err := s.newIngest(IngestWHIP, relayFloorPrincipal, media.Publisher)
	if err != nil {
		return nil, err
	}
	// In the room before the offer: its first track (OnTrack → published) must
	// find it marked as the relayed floor.
	s.room.addExt(m.peerID, extPeer{relayFloor: true})
	answer, err := m.peer.PublishOffer(offer)
	if err == nil {
		answer, err = m.peer.GatheredDescription(media.Publisher, ingestGather)
	}
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("relayed floor: %w", sdpFault(err))
	}
	m.mu.Lock()
	m.offer, m.answer = offer, answer
	m.mu.Unlock()
	s.ingest.put(m)
	s.log.Info("signaling: relayed floor started", "peer", m.peerID, "resource", m.id)
	return m, nil
}

// relayFloorPublished makes a relayed-floor publisher the relayed floor when
// its media arrives (the newest wins); false if peerID is none. Called with
// mu held.
func (r *Room) relayFloorPublished(peerID string) bool {
	if !r.ext[peerID].relayFloor {
		return false
	}
	if r.relayFloor != peerID {
		r.relayFloor = peerID
		r.onChange()
	}
	return true
}

// dropRelayFloor forgets the relayed floor if peerID is it. Called with mu held.
func (r *Room) dropRelayFloor(peerID string) {
	if r.relayFloor == peerID {
		r.relayFloor = ""
	}
}

// RelayFloor is the peer id of the relayed parent floor ("" for none).
func (r *Room) RelayFloor() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.relayFloor
}

// RelayFloor is the peer id of the relayed parent floor ("" for none).
func (s *Service) RelayFloor() string { return s.room.RelayFloor() }
