// Package media holds the values and errors that the media plane (package
// sfu) and the live session (package signaling) both speak: which leg a call
// is about, the simulcast layers, the statistics snapshots and the errors
// signaling tells apart. It imports neither, so signaling can drive the
// engine through interfaces of its own without importing sfu; sfu aliases
// these names for its own callers.
package media

import (
	"errors"
	"fmt"
	"time"
)

// Errors the engine returns that its callers tell apart. They are always
// wrapped with %w, so use errors.Is. The texts keep the "sfu:" prefix: they
// reach clients in error messages, and they are the media plane's errors.
var (
	// ErrInvalidSDP is returned when a remote description cannot be parsed or
	// applied (garbage, wrong type, unsupported codecs, ...).
	ErrInvalidSDP = errors.New("sfu: invalid SDP")
	// ErrClosed is returned by operations on a closed Engine, Peer or Slot.
	ErrClosed = errors.New("sfu: closed")
	// ErrBadState is returned when a negotiation step is called out of order
	// (e.g. SetSubscriberAnswer without a pending offer).
	ErrBadState = errors.New("sfu: wrong signaling state")
	// ErrOfferConsumed wraps ErrInvalidSDP when an answer failed after Pion had
	// applied it: the offer it answered is gone and a new one follows.
	ErrOfferConsumed = fmt.Errorf("%w (the offer was consumed; a new offer follows)", ErrInvalidSDP)
	// ErrOfferOutstanding wraps ErrBadState when a subscriber offer is asked
	// for while the last one awaits its answer: the new offer is owed, and
	// the peer asks for it (OnNegotiationNeeded) once the answer is in.
	ErrOfferOutstanding = fmt.Errorf("%w: a subscriber offer awaits its answer (the next one follows it)", ErrBadState)
)

// Target tells which of the two PeerConnections of an endpoint a call refers to.
type Target int

const (
	// Publisher is the client→server PeerConnection (client offers).
	Publisher Target = iota
	// Subscriber is the server→client PeerConnection (server offers).
	Subscriber
)

func (t Target) String() string {
	if t == Subscriber {
		return "subscriber"
	}
	return "publisher"
}

// Simulcast layer indexes. Layer 0 is also used for non-simulcast tracks.
const (
	LayerLow  = 0 // rid "q"
	LayerMid  = 1 // rid "h"
	LayerHigh = 2 // rid "f"
	// LayerBest requests the highest layer the bandwidth allows.
	LayerBest = LayerHigh
)

// RIDs maps a layer index to its rid.
var RIDs = [3]string{"q", "h", "f"}

// LegStats describes one PeerConnection (leg) of a peer.
type LegStats struct {
	// State is the PeerConnection state ("" before the leg exists).
	State string `json:"state"`
	// Loss is a fraction 0..1. Publisher leg: cumulative since the track
	// started, sequence gaps seen on ingress before NACK repair, over all
	// layers. Subscriber leg: the worst slot's fraction-lost from the latest
	// RTCP receiver report (a per-report window, as sent by the client).
	Loss float64 `json:"loss"`
	// RecentLoss (publisher leg only) is the loss fraction of roughly the
	// last 4 s (sampled every 0.5 s): sequence gaps net of the gaps later
	// filled by retransmission or late arrival, over all layers. It is what
	// "loss over 5%" in presence should look at. 0 before 0.5 s of data.
	RecentLoss float64 `json:"recent_loss"`
	// JitterMs is the interarrival jitter in ms (publisher: measured on
	// ingress, worst layer; subscriber: worst slot's RR).
	JitterMs float64       `json:"jitter_ms"`
	RTT      time.Duration `json:"rtt"`
	// LastRTCP is when the last RTCP packet arrived on this leg from the
	// client (publisher: any RTCP, e.g. sender reports; subscriber: the
	// latest receiver report for one of the slots). Zero if none yet. Media
	// packets never move it, so "no RTCP for 5 s" can be judged from it.
	LastRTCP  time.Time `json:"last_rtcp"`
	BitrateBs int       `json:"bitrate"` // bit/s (in for publisher, out for subscriber)
}

// LayerStats describes one simulcast layer of an UpTrack.
type LayerStats struct {
	RID      string `json:"rid"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Bitrate  int    `json:"bitrate"` // bit/s, measured on ingress
	Packets  uint64 `json:"packets"`
	Lost     uint64 `json:"lost"` // sequence gaps seen (before NACK repair)
	Active   bool   `json:"active"`
	Needed   bool   `json:"needed"`
	Watchers int    `json:"watchers"`
}

// SlotStats describes one outgoing slot of a peer.
type SlotStats struct {
	Name           string `json:"name"`
	Kind           string `json:"kind"`
	Source         string `json:"source"` // publisher peer id, "" when gated
	RequestedLayer int    `json:"requested_layer"`
	EffectiveLayer int    `json:"effective_layer"` // layer being forwarded now (-1 = none)
	Muted          bool   `json:"muted"`
	Packets        uint64 `json:"packets"`
	Bytes          uint64 `json:"bytes"`
	Dropped        uint64 `json:"dropped"` // dropped because the writer queue was full
	NACKed         uint64 `json:"nacked"`  // retransmitted from the cache
}

// PublishedMedia describes one kind of media on a publisher leg.
type PublishedMedia struct {
	// Negotiated: the publisher leg has a transceiver receiving this kind.
	Negotiated bool `json:"negotiated"`
	// LastRTP is when the last media RTP packet of this kind arrived (any
	// layer; retransmissions and padding do not count). Zero if none yet.
	LastRTP time.Time `json:"last_rtp"`
	// Paused: every layer is paused on purpose (layer_control sent because
	// nobody watches it), so no RTP is expected. Audio is never paused (it
	// is gated at the SFU's egress, the microphone keeps sending).
	Paused bool `json:"paused"`
	// ResumedAt is when a paused layer was last asked to resume (zero if
	// never): media is not expected before the publisher had time to obey.
	ResumedAt time.Time `json:"resumed_at"`
}

// PeerStats is a snapshot of a peer's media statistics.
type PeerStats struct {
	ID          string   `json:"id"`
	Publisher   LegStats `json:"publisher"`
	Subscriber  LegStats `json:"subscriber"`
	BitrateIn   int      `json:"bitrate_in"`  // bit/s received from this peer
	BitrateOut  int      `json:"bitrate_out"` // bit/s sent to this peer
	EstimateBps int      `json:"estimate"`    // downlink bandwidth estimate bit/s
	// Congestion: the estimator's detector state ("normal", "overuse",
	// "underuse") and how many times delay made it lower the estimate.
	Congestion     string  `json:"congestion"`
	CongestionCuts int     `json:"congestion_cuts"`
	AudioLevel     float64 `json:"audio_level"` // smoothed 0 (silent) .. 1 (loud)
	// PubVideo and PubAudio say whether media of each kind can be expected
	// from the publisher leg and when it last arrived, so signaling can
	// judge "media expected but none arriving" against the mute state.
	PubVideo PublishedMedia `json:"pub_video"`
	PubAudio PublishedMedia `json:"pub_audio"`
	Video    []LayerStats   `json:"video,omitempty"`
	Slots    []SlotStats    `json:"slots"`
}
