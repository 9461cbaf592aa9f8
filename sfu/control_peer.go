package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// Peer is one endpoint: a publisher PeerConnection (client offers) and a
// subscriber PeerConnection (server offers) built from slots.
//
// Its state follows the seams (doc.go): the control state is declared here;
// peerIngress (ingress_publisher.go) holds what the publisher leg reports,
// and peerEgress (egress_downlink.go) the subscriber leg's downlink: its own
// SRTP output, TWCC history, bandwidth estimate and layer allocation.
//
// # Lock order
//
// A Peer has six mutexes: negMu, tickMu and mu here, allocMu and estMu in
// peerEgress, lossWin.mu in peerIngress. A lock may be taken while holding
// the ones above it on its branch, never the other way round:
//
//	negMu                   SDP operations, AddSlot, RemoveSlot
//	├── Engine.rtcpTaps.mu  only while the publisher leg is created
//	└── allocMu             reallocate (also from RemoveSlot and the answer paths)
//	    ├── mu              this peer's, or a publishing peer's (upLayer.requestPLI)
//	    ├── Slot.mu
//	    │   └── upLayer.slotsMu
//	    └── UpTrack.mu
//	tickMu                  the periodic tick (egress_realloc.go), held across a
//	│                       whole tick; Close takes it alone, to stop the ticks
//	├── allocMu             reallocate, as above, with what it takes under it
//	└── mu                  publisherCounters, sendReports
//	estMu                   one TWCC feedback, from a slot's RTCP loop
//	└── estimator.mu
//	lossWin.mu              a leaf
//
// A slot's own locks are ordered on Slot: Slot.wmu is never taken under
// these, Slot.startMu is a leaf (taken under negMu when a slot is closed).
//
// mu, Slot.mu and UpTrack.mu are never held together: each is taken for a
// few reads or writes and released before the next one is taken, so the
// order between them is "none at a time". mu is a leaf among this package's
// locks; under it the code calls only Pion getters and, for a subscriber leg
// that lost a creation race or outlived Close, PeerConnection.Close. The
// Pion callbacks that take mu (OnICECandidate, OnICEConnectionStateChange,
// OnTrack) run on Pion's goroutines with no Pion lock held (pion/webrtc
// v3.3.6). Under allocMu, reallocate also writes PLIs to publishers and
// calls Hooks.OnLayerDemand (through Slot.setAllocation and
// UpTrack.updateDemand): a hook must not call this peer's control methods
// synchronously, since they take allocMu. Engine.mu is never held while a
// Peer lock is taken. Nothing waits for a goroutine while holding mu,
// allocMu or estMu; RemoveSlot waits for the slot's goroutines under negMu,
// which they never take.
type Peer struct {
	e   *Engine
	id  string
	log *slog.Logger

	negMu sync.Mutex // serialises SDP operations (per peer, never global)

	mu         sync.Mutex // guards the fields below up to closed; see the lock order
	pub, sub   *webrtc.PeerConnection
	pending    [2][]webrtc.ICECandidateInit
	slots      []*Slot
	slotByName map[string]*Slot
	tracks     []*UpTrack // copy on write: readers may walk a snapshot unlocked
	onCand     func(Target, *webrtc.ICECandidateInit)
	onNeg      func()
	negPending bool // slots changed since the last subscriber offer
	negFired   bool // OnNegotiationNeeded fired, CreateSubscriberOffer not called yet
	offerOut   bool // a subscriber offer awaits its answer
	negWait    bool // renegotiate once the subscriber leg is connected
	closed     bool

	// The descriptions signaling checks the client's next ones against: the
	// outstanding subscriber offer, and the last publisher offer applied
	// with our answer (kept when a failed offer drops the leg). With the
	// flags above they are the peer's whole negotiation state; signaling
	// keeps no copy (SubscriberOffer, PublisherOffer).
	subOffer, pubOffer, pubAnswer string // guarded by mu

	peerIngress // the publisher leg's RTCP and loss (ingress_publisher.go)
	peerEgress  // the subscriber leg's downlink (egress_downlink.go)

	// The periodic tick (egress_realloc.go): a runtime timer, no goroutine.
	tickMu      sync.Mutex
	tickT       *time.Timer // guarded by tickMu
	tickStopped bool        // guarded by tickMu
	ticks       uint64      // guarded by tickMu
}

func newPeer(e *Engine, id string) *Peer {
	p := &Peer{
		e:          e,
		id:         id,
		log:        e.log.With("peer", id),
		slotByName: make(map[string]*Slot),
	}
	p.probe.interval = probeMinInterval
	p.pubRTCP.peer = p
	p.est = newEstimator(e.cfg.InitialBitrate, e.cfg.MinBitrate, e.cfg.MaxBitrate)
	p.fbKey = -1
	p.probe.next = time.Now().Add(probeFirst)
	p.startTicks()
	return p
}

// ID returns the peer id.
func (p *Peer) ID() string { return p.id }

// OnCandidate sets the callback for local ICE candidates of either leg
// (c == nil when gathering for that leg is complete).
func (p *Peer) OnCandidate(f func(t Target, c *webrtc.ICECandidateInit)) {
	p.mu.Lock()
	p.onCand = f
	p.mu.Unlock()
}

// OnNegotiationNeeded sets the callback fired (on its own goroutine) when the
// subscriber leg needs a new offer: signaling then calls
// CreateSubscriberOffer and later SetSubscriberAnswer.
func (p *Peer) OnNegotiationNeeded(f func()) {
	p.mu.Lock()
	p.onNeg = f
	p.mu.Unlock()
}

func (p *Peer) publisherPC() *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub
}

func (p *Peer) wireCommon(pc *webrtc.PeerConnection, t Target) {
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		p.mu.Lock()
		f := p.onCand
		p.mu.Unlock()
		if f == nil {
			return
		}
		if c == nil {
			f(t, nil)
			return
		}
		init := c.ToJSON()
		f(t, &init)
	})
	if t == Subscriber {
		return // see ensureSub
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("connection state", "leg", t.String(), "state", s.String())
		if f := p.e.hooks.Load().OnPeerState; f != nil {
			f(p.id, t, s)
		}
	})
}

// validateSDP rejects garbage before pion sees it.
func validateSDP(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidSDP)
	}
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(s)); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	return nil
}

// safe runs f, converting a panic inside pion into an error.
func safe(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrInvalidSDP, r)
		}
	}()
	return f()
}

// PublishOffer applies a client offer on the publisher leg (first offer,
// renegotiation or ICE restart) and returns the answer. Candidates trickle
// through OnCandidate.
func (p *Peer) PublishOffer(offerSDP string) (string, error) {
	if err := validateSDP(offerSDP); err != nil {
		return "", err
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return "", ErrClosed
	}
	pc := p.pub
	p.mu.Unlock()
	if pc == nil {
		var err error
		pc, err = p.e.newPublisherPC(&p.pubRTCP)
		if err != nil {
			return "", fmt.Errorf("sfu: publisher pc: %w", err)
		}
		p.wireCommon(pc, Publisher)
		pc.OnTrack(p.onTrack)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = pc.Close()
			return "", ErrClosed
		}
		p.pub = pc
		p.mu.Unlock()
	}
	var answer webrtc.SessionDescription
	err := safe(func() error {
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
		}
		var err error
		if answer, err = pc.CreateAnswer(nil); err != nil {
			return fmt.Errorf("sfu: create answer: %w", err)
		}
		if err := pc.SetLocalDescription(answer); err != nil {
			return fmt.Errorf("sfu: set local answer: %w", err)
		}
		return nil
	})
	if err != nil {
		if pc.SignalingState() != webrtc.SignalingStateStable {
			// Pion v3 cannot roll back a remote offer: a leg left half-negotiated
			// would refuse every later offer. Drop it, so the next offer starts a
			// fresh publisher leg instead of a stuck one.
			p.dropPublisher(pc)
		}
		if !errors.Is(err, ErrInvalidSDP) {
			err = fmt.Errorf("%w: %w", ErrInvalidSDP, err)
		}
		return "", err
	}
	p.flushCandidates(Publisher, pc)
	answerSDP := pc.LocalDescription().SDP
	p.mu.Lock()
	p.pubOffer, p.pubAnswer = offerSDP, answerSDP
	p.mu.Unlock()
	return answerSDP, nil
}

// PublisherOffer returns the last offer PublishOffer applied and its answer
// ("" before the first).
func (p *Peer) PublisherOffer() (offerSDP, answerSDP string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pubOffer, p.pubAnswer
}

// dropPublisher closes a publisher leg that can no longer negotiate; its
// tracks end as on any close.
func (p *Peer) dropPublisher(pc *webrtc.PeerConnection) {
	p.mu.Lock()
	if p.pub == pc {
		p.pub = nil
	}
	p.mu.Unlock()
	_ = pc.Close()
}

// AddCandidate adds a remote ICE candidate to a leg. Candidates that arrive
// before the remote description are buffered.
func (p *Peer) AddCandidate(t Target, c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	pc := p.pub
	if t == Subscriber {
		pc = p.sub
	}
	if pc == nil || pc.RemoteDescription() == nil {
		p.pending[t] = append(p.pending[t], c)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("sfu: add candidate: %w", err)
	}
	return nil
}

func (p *Peer) flushCandidates(t Target, pc *webrtc.PeerConnection) {
	p.mu.Lock()
	cands := p.pending[t]
	p.pending[t] = nil
	p.mu.Unlock()
	for _, c := range cands {
		if err := pc.AddICECandidate(c); err != nil {
			p.log.Debug("buffered candidate rejected", "leg", t.String(), "err", err)
		}
	}
}

// Tracks returns the peer's first published video and audio tracks (nil if none).
func (p *Peer) Tracks() (video, audio *UpTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.tracks {
		if t.kind == webrtc.RTPCodecTypeVideo && video == nil {
			video = t
		}
		if t.kind == webrtc.RTPCodecTypeAudio && audio == nil {
			audio = t
		}
	}
	return video, audio
}

// UpTracks returns all published tracks of the peer.
func (p *Peer) UpTracks() []*UpTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*UpTrack(nil), p.tracks...)
}

// AudioLevel is the smoothed level 0..1 of the peer's published audio.
func (p *Peer) AudioLevel() float64 {
	_, a := p.Tracks()
	if a == nil {
		return 0
	}
	return a.AudioLevel()
}

// Close closes both legs, the slots and the published tracks.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	pub, sub := p.pub, p.sub
	slots := append([]*Slot(nil), p.slots...)
	tracks := append([]*UpTrack(nil), p.tracks...)
	p.mu.Unlock()
	p.stopTicks()
	for _, s := range slots {
		s.close()
	}
	var errs []error
	if sub != nil {
		if err := sub.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if pub != nil {
		if err := pub.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range slots {
		s.wg.Wait()
	}
	for _, t := range tracks {
		t.close()
	}
	p.mu.Lock()
	p.e.countLeg(p.legPath.Swap(pathNone), -1)
	p.mu.Unlock()
	p.e.removePeer(p)
	return errors.Join(errs...)
}
