package sfu

// This file is the exported surface of the media plane. The signaling layer
// should depend only on what is declared here plus these methods:
//
//	func NewEngine(cfg Config, log *slog.Logger, hooks Hooks) (*Engine, error)
//	func (e *Engine) UDPPort() int; TCPPort() int; TURNPort() int
//	func (e *Engine) NewPeer(id string) (*Peer, error)
//	func (e *Engine) Peer(id string) *Peer
//	func (e *Engine) ActiveSpeaker() (peerID string, level float64)
//	func (e *Engine) ForwardStats() ForwardStats // forwarded packets, in-server delay quantiles
//	func (e *Engine) Collector() prometheus.Collector // the same for /metrics
//	func (e *Engine) Close() error
//
//	func (p *Peer) ID() string
//	func (p *Peer) PublishOffer(offerSDP string) (answerSDP string, err error)
//	func (p *Peer) AddCandidate(t Target, c webrtc.ICECandidateInit) error
//	func (p *Peer) OnCandidate(f func(t Target, c *webrtc.ICECandidateInit)) // c == nil: gathering done
//	func (p *Peer) AddSlot(name string, kind webrtc.RTPCodecType) (*Slot, error)
//	func (p *Peer) RemoveSlot(name string) error
//	func (p *Peer) Slot(name string) *Slot
//	func (p *Peer) OnNegotiationNeeded(f func())
//	func (p *Peer) CreateSubscriberOffer(iceRestart bool) (offerSDP string, err error)
//	func (p *Peer) SetSubscriberAnswer(answerSDP string) error
//	func (p *Peer) Tracks() (video, audio *UpTrack)
//	func (p *Peer) AudioLevel() float64
//	func (p *Peer) Stats() PeerStats
//	func (p *Peer) Close() error
//
//	func (s *Slot) Name() string; Kind() webrtc.RTPCodecType
//	func (s *Slot) SetSource(t *UpTrack, requestedLayer int) error // nil = gate off
//	func (s *Slot) SetRequestedLayer(l int)
//	func (s *Slot) SetMuted(m bool)
//	func (s *Slot) Source() *UpTrack
//	func (s *Slot) Stats() SlotStats
//
//	func (t *UpTrack) PeerID() string; Kind() webrtc.RTPCodecType; Layers() []LayerStats
//	func (t *UpTrack) Tap(layer int, sink TapSink) *Tap // the record's subscriber (ingress_tap.go)
//	func (tp *Tap) RequestKeyframe() bool; Refill(first uint16, n int) int; Close()

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/transport/v2/vnet"
	"github.com/pion/webrtc/v3"
)

// Errors returned by the sfu package. They are always wrapped with %w, so use
// errors.Is.
var (
	// ErrInvalidSDP is returned when a remote description cannot be parsed or
	// applied (garbage, wrong type, unsupported codecs, ...).
	ErrInvalidSDP = errors.New("sfu: invalid SDP")
	// ErrClosed is returned by operations on a closed Engine, Peer or Slot.
	ErrClosed = errors.New("sfu: closed")
	// ErrPeerExists is returned by NewPeer when the id is already in use.
	ErrPeerExists = errors.New("sfu: peer already exists")
	// ErrSlotExists is returned by AddSlot when the name is already in use.
	ErrSlotExists = errors.New("sfu: slot already exists")
	// ErrKindMismatch is returned by Slot.SetSource when the track kind does
	// not match the slot kind.
	ErrKindMismatch = errors.New("sfu: track kind does not match slot kind")
	// ErrBadState is returned when a negotiation step is called out of order
	// (e.g. SetSubscriberAnswer without a pending offer).
	ErrBadState = errors.New("sfu: wrong signaling state")
	// ErrOfferConsumed wraps ErrInvalidSDP when an answer failed after Pion had
	// applied it: the offer it answered is gone and a new one follows.
	ErrOfferConsumed = fmt.Errorf("%w (the offer was consumed; a new offer follows)", ErrInvalidSDP)
	// ErrConfig is returned by NewEngine for an invalid Config.
	ErrConfig = errors.New("sfu: invalid config")
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

// Config configures an Engine. The zero value is usable for tests only with
// IncludeLoopback set; see DefaultConfig.
type Config struct {
	// UDPPort is the single ICE UDP port (0 = pick a free port; see Engine.UDPPort).
	UDPPort int
	// TCPPort is the single ICE-TCP port (0 = free port, <0 = ICE-TCP disabled).
	TCPPort int
	// PublicIPs are announced as host candidates instead of the local ones (1:1 NAT).
	PublicIPs []string
	// IncludeLoopback gathers loopback candidates (required for tests on lo).
	IncludeLoopback bool
	// NetworkTypes: "udp4", "udp6", "tcp4", "tcp6". Empty = udp4, udp6, tcp4, tcp6.
	NetworkTypes []string
	// Interfaces, if non-empty, restricts candidate gathering to these interface names.
	Interfaces []string
	// TURN configures the optional embedded TURN server (off by default).
	TURN TURNConfig

	// PLIInterval is the minimum interval between two PLIs sent to one
	// publisher layer (default 500ms).
	PLIInterval time.Duration
	// PauseDelay is how long a layer must be unneeded before OnLayerDemand(false)
	// fires (default 1.5s). Resumes (needed=true) fire immediately.
	PauseDelay time.Duration
	// PacketCacheSize is the number of packets kept per publisher layer for
	// NACK answers (default 512, rounded up to a power of two).
	PacketCacheSize int
	// InitialBitrate, MinBitrate, MaxBitrate bound the per-subscriber
	// bandwidth estimate in bit/s (defaults 2.5M, 100k, 10M).
	InitialBitrate, MinBitrate, MaxBitrate int
	// WriterQueue is the per-slot queue length between the publisher reader and
	// the subscriber writer (default 256 packets). When full, packets are dropped.
	WriterQueue int
	// WriterIdle is how long a slot's writer goroutine waits for work before it
	// exits; the next queued packet starts a new one (default 10 s).
	WriterIdle time.Duration
	// FanoutSpread: a packet's fan-out is split across cores (one helper
	// per GOMAXPROCS beyond the first, started by NewEngine) in parts of at
	// least this many slots, so from twice as many, and its last datagram
	// leaves sooner. 0 = the default (32), negative = always serial.
	FanoutSpread int

	// VNet, if set, runs all PeerConnections on this virtual network (tests).
	// UDP/TCP muxes and TURN are not used in that case.
	VNet *vnet.Net
}

// TURNConfig configures the embedded TURN server (pion/turn).
type TURNConfig struct {
	Enabled bool
	// Port for TURN over UDP (default 3478; 0 with Enabled = free port).
	Port int
	// Realm (default "opscenter").
	Realm string
	// RelayIP is the address announced for relayed candidates (default: first
	// PublicIPs entry, else 127.0.0.1).
	RelayIP string
	// Static long-term credential (used when Secret is empty).
	Username, Password string
	// Secret enables REST-style credentials: username "<unix-expiry>[:<id>]",
	// password base64(HMAC-SHA1(secret, username)). See TURNCredentials.
	Secret string
}

// DefaultConfig returns the production defaults from DESIGN.md (UDP 7882,
// TCP 7881, TURN off).
func DefaultConfig() Config {
	return Config{
		UDPPort:      7882,
		TCPPort:      7881,
		NetworkTypes: []string{"udp4", "udp6", "tcp4", "tcp6"},
		TURN:         TURNConfig{Port: 3478, Realm: "opscenter"},
	}
}

// Hooks are callbacks from the engine to the signaling layer. They are called
// from engine goroutines; they must not block for long and must not call back
// into the Engine synchronously in a way that waits for that same callback.
type Hooks struct {
	// OnLayerDemand reports that a publisher's video encoding rid is needed
	// (some slot watches it) or not. Pauses are debounced by Config.PauseDelay.
	// It may run while a subscriber's allocation lock is held (see Peer's
	// lock order): it must not call Slot or Peer control methods directly.
	OnLayerDemand func(peerID, rid string, needed bool)
	// OnTrack reports a new published track (after the first packet arrives).
	OnTrack func(peerID string, t *UpTrack)
	// OnTrackGone reports that a published track ended (peer closed, track removed).
	OnTrackGone func(peerID string, t *UpTrack)
	// OnPeerState reports PeerConnection state changes per leg.
	OnPeerState func(peerID string, target Target, s webrtc.PeerConnectionState)
}

// Logger is the logger type used by the engine.
type Logger = slog.Logger

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
