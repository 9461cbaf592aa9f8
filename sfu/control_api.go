package sfu

// This file is the exported surface of the media plane. The signaling layer
// reaches it only through interfaces of its own (signaling/engine.go), which
// internal/app fills with these methods:
//
//	func NewEngine(cfg Config, log *slog.Logger, hooks Hooks) (*Engine, error)
//	func (e *Engine) SetHooks(h Hooks)
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
//	func (p *Peer) SubscriberOffer() (offerSDP string, outstanding bool)
//	func (p *Peer) PublisherOffer() (offerSDP, answerSDP string)
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
	"log/slog"
	"time"

	"github.com/pion/transport/v2/vnet"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/media"
)

// Errors returned by the sfu package. They are always wrapped with %w, so use
// errors.Is. The ones signaling tells apart are declared in package media.
var (
	ErrInvalidSDP    = media.ErrInvalidSDP
	ErrClosed        = media.ErrClosed
	ErrBadState      = media.ErrBadState
	ErrOfferConsumed = media.ErrOfferConsumed
	// ErrOfferOutstanding: see CreateSubscriberOffer.
	ErrOfferOutstanding = media.ErrOfferOutstanding
	// ErrPeerExists is returned by NewPeer when the id is already in use.
	ErrPeerExists = errors.New("sfu: peer already exists")
	// ErrSlotExists is returned by AddSlot when the name is already in use.
	ErrSlotExists = errors.New("sfu: slot already exists")
	// ErrKindMismatch is returned by Slot.SetSource when the track kind does
	// not match the slot kind.
	ErrKindMismatch = errors.New("sfu: track kind does not match slot kind")
	// ErrConfig is returned by NewEngine for an invalid Config.
	ErrConfig = errors.New("sfu: invalid config")
)

// Target tells which of the two PeerConnections of an endpoint a call refers
// to (declared in package media, which signaling shares).
type Target = media.Target

// The two legs.
const (
	Publisher  = media.Publisher
	Subscriber = media.Subscriber
)

// Simulcast layer indexes (package media).
const (
	LayerLow  = media.LayerLow
	LayerMid  = media.LayerMid
	LayerHigh = media.LayerHigh
	LayerBest = media.LayerBest
)

// RIDs maps a layer index to its rid (package media).
var RIDs = media.RIDs

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
	// password base64(HMAC-SHA1(secret, username)). See media.TURNCredentials.
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

// The statistics snapshots are plain values declared in package media, so
// signaling reads them without importing this package.
type (
	LegStats       = media.LegStats
	LayerStats     = media.LayerStats
	SlotStats      = media.SlotStats
	PublishedMedia = media.PublishedMedia
	PeerStats      = media.PeerStats
)
