package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// Peer is one endpoint: a publisher PeerConnection (client offers) and a
// subscriber PeerConnection (server offers) built from slots.
type Peer struct {
	e   *Engine
	id  string
	log *slog.Logger

	negMu sync.Mutex // serialises SDP operations (per peer, never global)

	mu         sync.Mutex
	pub, sub   *webrtc.PeerConnection
	pending    [2][]webrtc.ICECandidateInit
	slots      []*Slot
	slotByName map[string]*Slot
	tracks     []*UpTrack
	onCand     func(Target, *webrtc.ICECandidateInit)
	onNeg      func()
	negPending bool // slots changed since the last subscriber offer
	negFired   bool // OnNegotiationNeeded fired, CreateSubscriberOffer not called yet
	offerOut   bool // a subscriber offer awaits its answer
	negWait    bool // renegotiate once the subscriber leg is connected
	closed     bool

	subReady atomic.Bool // subscriber leg connected (DTLS/SRTP up)
	// subDirect: the subscriber leg's selected ICE pair is UDP, so
	// publisher readers write to its slots directly (Slot.enqueue).
	subDirect atomic.Bool
	pubRTCP   rtcpSink   // RTCP arrivals on the publisher leg (rtcptap.go)
	lossWin   lossWindow // recent publisher loss (sampled by allocLoop)
	// own downlink output and congestion control (srtpout.go, twcc.go)
	down     atomic.Pointer[downlink]
	legPath  atomic.Int32 // pathNone, pathOwn or pathPion: counted in Engine.legs*
	tw       twccHistory
	estMu    sync.Mutex // serialises feedback into est
	est      *estimator
	fbKey    int32 // last feedback processed (count<<16 | base seq), -1 = none
	acks     []ack
	dbgAt    int64
	remb     atomic.Int64
	rembTime atomic.Int64
	maxBps   atomic.Int64

	allocMu sync.Mutex
	probe   probeState

	done chan struct{}
	wg   sync.WaitGroup
}

type probeState struct {
	active   bool
	until    time.Time
	next     time.Time
	interval time.Duration
}

const (
	// Probing is how a subscriber with headroom climbs: the estimator never
	// estimates far above what is sent, so a capped slot must try the next
	// layer. Probe early and often while probes succeed (a climb from the
	// low to the top layer takes two probes), back off only on failure.
	probeFirst       = 1 * time.Second
	probeMinInterval = 3 * time.Second
	probeMaxInterval = 80 * time.Second
	probeDuration    = 4 * time.Second
	audioReserve     = 40_000
)

func newPeer(e *Engine, id string) *Peer {
	p := &Peer{
		e:          e,
		id:         id,
		log:        e.log.With("peer", id),
		slotByName: make(map[string]*Slot),
		done:       make(chan struct{}),
	}
	p.probe.interval = probeMinInterval
	p.pubRTCP.peer = p
	p.est = newEstimator(e.cfg.InitialBitrate, e.cfg.MinBitrate, e.cfg.MaxBitrate)
	p.fbKey = -1
	p.probe.next = time.Now().Add(probeFirst)
	p.wg.Add(1)
	go p.allocLoop()
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
		if f := p.e.hooks.OnPeerState; f != nil {
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
	return pc.LocalDescription().SDP, nil
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

func (p *Peer) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	kind := remote.Kind()
	mid := ""
	if tr := recv.RTPTransceiver(); tr != nil {
		mid = tr.Mid()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	var t *UpTrack
	for _, x := range p.tracks {
		if x.mid == mid && x.kind == kind {
			t = x
		}
	}
	isNew := t == nil
	if isNew {
		t = &UpTrack{e: p.e, peer: p, id: mid, mid: mid, kind: kind}
		// Copy on write: readers (publisherCounters) walk p.tracks unlocked.
		p.tracks = append(p.tracks[:len(p.tracks):len(p.tracks)], t)
	}
	p.mu.Unlock()

	idx := layerIndex(remote.RID())
	size := p.e.cfg.PacketCacheSize
	switch {
	case kind == webrtc.RTPCodecTypeAudio:
		size = 64
	case remote.RID() != "":
		size >>= 2 - idx // q: 1/4, h: 1/2, f: full
	}
	l := &upLayer{
		track:  t,
		index:  idx,
		rid:    remote.RID(),
		remote: remote,
		recv:   recv,
		ssrc:   uint32(remote.SSRC()),
		cache:  newPacketCache(size),
	}
	if kind == webrtc.RTPCodecTypeAudio {
		l.audioLevelID = audioLevelExtID(recv.GetParameters())
	}
	t.mu.Lock()
	t.demand[idx].reported = true // the client starts with every encoding on
	t.mu.Unlock()
	t.layers[idx].Store(l)
	p.log.Debug("track", "kind", kind.String(), "mid", mid, "rid", remote.RID(), "ssrc", l.ssrc)

	p.e.wg.Add(1)
	go func() {
		defer p.e.wg.Done()
		l.readLoop()
		p.layerEnded(t, l)
	}()
	if isNew {
		if f := p.e.hooks.OnTrack; f != nil {
			f(p.id, t)
		}
	}
	t.updateDemand()
	t.reallocateWatchers()
}

// layerEnded runs when a layer's reader stops; when every layer of the track
// has stopped, the track is gone.
func (p *Peer) layerEnded(t *UpTrack, l *upLayer) {
	t.layers[l.index].CompareAndSwap(l, nil)
	for i := range t.layers {
		if t.layers[i].Load() != nil {
			t.reallocateWatchers()
			return
		}
	}
	p.mu.Lock()
	for i, x := range p.tracks {
		if x == t {
			// Copy on write, never shift in place: see onTrack.
			p.tracks = append(append(make([]*UpTrack, 0, len(p.tracks)-1), p.tracks[:i]...), p.tracks[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	t.close()
	if f := p.e.hooks.OnTrackGone; f != nil {
		f(p.id, t)
	}
}

// reallocateWatchers re-runs layer allocation for every peer watching t.
func (t *UpTrack) reallocateWatchers() {
	t.mu.Lock()
	peers := make(map[*Peer]struct{}, len(t.watchers))
	for s := range t.watchers {
		peers[s.peer] = struct{}{}
	}
	t.mu.Unlock()
	for q := range peers {
		q.reallocate()
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
	close(p.done)
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
	p.wg.Wait()
	p.mu.Lock()
	p.e.countLeg(p.legPath.Swap(pathNone), -1)
	p.mu.Unlock()
	p.e.removePeer(p)
	return errors.Join(errs...)
}
