package signaling

import (
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/media"
)

// The media plane as signaling drives it. Signaling declares what it calls
// (as eventbus does for the store) and internal/app hands it the engine
// (package sfu, adapted where Go needs it), so this package never imports
// sfu: the routing policy, presence and the protocol can change without the
// media plane, and the other way round. The values and errors both sides
// speak are in package media.

// MediaEngine creates and finds the media peers, one per endpoint, console,
// WHIP publisher or WHEP viewer.
type MediaEngine interface {
	// NewPeer registers a peer; its PeerConnections are created on first use.
	NewPeer(id string) (MediaPeer, error)
	// Peer returns the live peer with that id, or nil.
	Peer(id string) MediaPeer
	// TURNPort is the embedded TURN server's port, 0 when it is off.
	TURNPort() int
	// ICEServers are the ICE servers a client reaches the embedded TURN
	// server through as host, with that credential (nil when TURN is off).
	ICEServers(host, username, password string) []webrtc.ICEServer
}

// MediaPeer is one peer's two legs: the publisher leg (the client offers)
// and the subscriber leg made of slots (the server offers; a WHEP viewer
// offers it instead).
type MediaPeer interface {
	ID() string
	// PublishOffer applies a client offer on the publisher leg and returns
	// the answer.
	PublishOffer(offerSDP string) (answerSDP string, err error)
	// OnCandidate sets the callback for local candidates (nil c: that leg
	// finished gathering).
	OnCandidate(f func(t media.Target, c *webrtc.ICECandidateInit))
	// AddCandidate adds a remote candidate to a leg.
	AddCandidate(t media.Target, c webrtc.ICECandidateInit) error
	// PublisherOffer returns the last publisher offer applied and our answer
	// ("" before the first): a later offer must keep its sections.
	PublisherOffer() (offerSDP, answerSDP string)
	// OnNegotiationNeeded sets the callback fired when the subscriber leg
	// needs an offer (CreateSubscriberOffer, then SetSubscriberAnswer).
	OnNegotiationNeeded(f func())
	// CreateSubscriberOffer returns media.ErrOfferOutstanding while the last
	// offer awaits its answer; the peer then asks again after the answer.
	CreateSubscriberOffer(iceRestart bool) (offerSDP string, err error)
	// SubscriberOffer returns the offer that awaits its answer, if one does.
	SubscriberOffer() (offerSDP string, outstanding bool)
	SetSubscriberAnswer(answerSDP string) error
	// AnswerSubscriberOffer answers a WHEP viewer's offer with the slots
	// added so far.
	AnswerSubscriberOffer(offerSDP string) (answerSDP string, err error)
	// GatheredDescription waits (at most timeout) for a leg's candidates and
	// returns its local description with them in it (WHIP and WHEP).
	GatheredDescription(t media.Target, timeout time.Duration) (string, error)
	// AddSlot adds an outgoing slot on the subscriber leg.
	AddSlot(name string, kind webrtc.RTPCodecType) (MediaSlot, error)
	// Slot returns the slot with that name, or nil.
	Slot(name string) MediaSlot
	// Tracks returns the first published video and audio tracks (nil if none).
	Tracks() (video, audio UpTrack)
	Stats() media.PeerStats
	Close() error
}

// MediaSlot is one outgoing slot of a subscriber leg: its source (a
// published track and a layer) switches without renegotiation.
type MediaSlot interface {
	// SetSource points the slot at a track (nil gates it off).
	SetSource(t UpTrack, requestedLayer int) error
	SetRequestedLayer(l int)
}

// UpTrack is one published track. Signaling only compares and hands them on
// (to slots and to the Recorder), so it needs no more than who and what.
type UpTrack interface {
	PeerID() string
	Kind() webrtc.RTPCodecType
}

// MediaHooks are the engine's callbacks into signaling (Service.MediaHooks);
// internal/app connects them to the engine, whose hooks carry its own types.
type MediaHooks struct {
	// OnLayerDemand: a publisher's video encoding rid is needed or not.
	OnLayerDemand func(peerID, rid string, needed bool)
	// OnTrack: a peer published a track (its first packet arrived).
	OnTrack func(peerID string)
	// OnTrackGone: a published track ended.
	OnTrackGone func(peerID string)
	// OnPeerState: a leg's PeerConnection state changed.
	OnPeerState func(peerID string, t media.Target, s webrtc.PeerConnectionState)
}

// MediaHooks returns the callbacks the engine must call.
func (s *Service) MediaHooks() MediaHooks {
	return MediaHooks{
		OnLayerDemand: s.onLayerDemand,
		OnTrack:       func(peerID string) { s.room.published(peerID); s.kick() },
		OnTrackGone:   func(string) { s.kick() },
		OnPeerState:   s.onPeerState,
	}
}

// TURN is the embedded TURN server's credential, which signaling hands to
// clients (welcome, WHIP and WHEP Link headers). With Secret set, every peer
// gets its own REST-style credential; otherwise the static Username and
// Password. Host, if set, is the address clients reach it at (else the
// public URL's host, else 127.0.0.1).
type TURN struct {
	Secret             string
	Username, Password string
	Host               string
}
