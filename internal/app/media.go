package app

import (
	"fmt"
	"log/slog"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/sfu"
	"github.com/opscenter/opscenter/signaling"
)

// The media engine is built here and handed to signaling, which drives it
// through interfaces it declares (signaling/engine.go). Go has no covariant
// results, so the sfu methods that return its own handles (*sfu.Peer,
// *sfu.Slot, *sfu.UpTrack) get a thin adapter; everything else is the
// engine's own method. An *sfu.UpTrack is the signaling.UpTrack itself, so
// identity comparisons and the recorder's type assertion see the engine's
// pointer.

var (
	_ signaling.MediaEngine = mediaEngine{}
	_ signaling.MediaPeer   = mediaPeer{}
	_ signaling.MediaSlot   = mediaSlot{}
	_ signaling.UpTrack     = (*sfu.UpTrack)(nil)
)

// startMedia builds the engine for the media section and the TURN credential
// signaling hands out. With TURN on and no credential configured, a secret is
// made per process: credentials go out in welcome, so none needs to persist.
func startMedia(m config.Media, log *slog.Logger) (*sfu.Engine, signaling.TURN, error) {
	cfg := MediaConfig(m)
	var turn signaling.TURN
	if cfg.TURN.Enabled {
		if cfg.TURN.Secret == "" && cfg.TURN.Username == "" {
			cfg.TURN.Secret = auth.NewToken()
		}
		turn = signaling.TURN{Secret: cfg.TURN.Secret, Username: cfg.TURN.Username, Password: cfg.TURN.Password}
		if len(cfg.PublicIPs) > 0 {
			turn.Host = cfg.PublicIPs[0]
		}
	}
	// The hooks are set once signaling exists (connectMedia): no peer, so no
	// callback, exists before then.
	e, err := sfu.NewEngine(cfg, log.With("part", "sfu"), sfu.Hooks{})
	if err != nil {
		return nil, turn, fmt.Errorf("media engine: %w", err)
	}
	return e, turn, nil
}

// connectMedia points the engine's callbacks at signaling's.
func connectMedia(e *sfu.Engine, h signaling.MediaHooks) {
	e.SetHooks(sfu.Hooks{
		OnLayerDemand: h.OnLayerDemand,
		OnTrack:       func(peerID string, _ *sfu.UpTrack) { h.OnTrack(peerID) },
		OnTrackGone:   func(peerID string, _ *sfu.UpTrack) { h.OnTrackGone(peerID) },
		OnPeerState:   h.OnPeerState,
	})
}

// MediaEngine is e as signaling drives it (tests that build their own engine
// hand this to signaling).
func MediaEngine(e *sfu.Engine) signaling.MediaEngine { return mediaEngine{e} }

// mediaEngine is an *sfu.Engine as signaling sees it.
type mediaEngine struct{ *sfu.Engine }

func (e mediaEngine) NewPeer(id string) (signaling.MediaPeer, error) {
	p, err := e.Engine.NewPeer(id)
	if err != nil {
		return nil, err
	}
	return mediaPeer{p}, nil
}

// Peer returns a nil interface, not a typed nil, when there is no such peer.
func (e mediaEngine) Peer(id string) signaling.MediaPeer {
	if p := e.Engine.Peer(id); p != nil {
		return mediaPeer{p}
	}
	return nil
}

// mediaPeer is an *sfu.Peer as signaling sees it.
type mediaPeer struct{ *sfu.Peer }

func (p mediaPeer) AddSlot(name string, kind webrtc.RTPCodecType) (signaling.MediaSlot, error) {
	s, err := p.Peer.AddSlot(name, kind)
	if err != nil {
		return nil, err
	}
	return mediaSlot{s}, nil
}

func (p mediaPeer) Slot(name string) signaling.MediaSlot {
	if s := p.Peer.Slot(name); s != nil {
		return mediaSlot{s}
	}
	return nil
}

// Tracks returns nil interfaces for missing tracks: signaling compares them
// with nil.
func (p mediaPeer) Tracks() (video, audio signaling.UpTrack) {
	v, a := p.Peer.Tracks()
	return upTrack(v), upTrack(a)
}

func upTrack(t *sfu.UpTrack) signaling.UpTrack {
	if t == nil {
		return nil
	}
	return t
}

// sfuTrack is the engine's track behind a signaling.UpTrack (nil for nil).
// Every UpTrack signaling holds came from mediaPeer.Tracks.
func sfuTrack(t signaling.UpTrack) *sfu.UpTrack {
	if t == nil {
		return nil
	}
	return t.(*sfu.UpTrack)
}

// mediaSlot is an *sfu.Slot as signaling sees it.
type mediaSlot struct{ *sfu.Slot }

func (s mediaSlot) SetSource(t signaling.UpTrack, requestedLayer int) error {
	return s.Slot.SetSource(sfuTrack(t), requestedLayer)
}
