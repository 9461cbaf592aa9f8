package sfu

import (
	"fmt"

	"github.com/pion/webrtc/v3"
)

// The subscriber leg: created on first use, its slots, and the server's
// offers and the client's answers (AddSlot, RemoveSlot, needNegotiation,
// CreateSubscriberOffer, SetSubscriberAnswer).

func (p *Peer) ensureSub() (*webrtc.PeerConnection, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if p.sub != nil {
		pc := p.sub
		p.mu.Unlock()
		return pc, nil
	}
	p.mu.Unlock()
	pc, err := p.e.newSubscriberPC()
	if err != nil {
		return nil, fmt.Errorf("sfu: subscriber pc: %w", err)
	}
	p.wireCommon(pc, Subscriber)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("connection state", "leg", "subscriber", "state", s.String())
		if f := p.e.hooks.Load().OnPeerState; f != nil {
			f(p.id, Subscriber, s)
		}
		if s == webrtc.PeerConnectionStateConnected {
			p.ensureDownlink(pc)
		}
		p.subReady.Store(s == webrtc.PeerConnectionStateConnected)
		if s == webrtc.PeerConnectionStateConnected {
			p.reallocate() // asks for keyframes of every pending slot
		}
	})
	if it := pc.SCTP().Transport().ICETransport(); it != nil {
		it.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
			p.subDirect.Store(pair != nil && pair.Local != nil && pair.Local.Protocol == webrtc.ICEProtocolUDP)
			if d := p.down.Load(); d != nil {
				d.setPair(pair)
			}
		})
	}
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s != webrtc.ICEConnectionStateConnected && s != webrtc.ICEConnectionStateCompleted {
			return
		}
		p.mu.Lock()
		wait := p.negWait
		p.negWait = false
		p.mu.Unlock()
		if wait {
			p.needNegotiation()
		}
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = pc.Close()
		return nil, ErrClosed
	}
	if p.sub != nil { // lost a race
		_ = pc.Close()
		return p.sub, nil
	}
	p.sub = pc
	return pc, nil
}

// AddSlot adds an outgoing slot (a new sendonly transceiver) on the
// subscriber leg and marks negotiation needed.
func (p *Peer) AddSlot(name string, kind webrtc.RTPCodecType) (*Slot, error) {
	if kind != webrtc.RTPCodecTypeAudio && kind != webrtc.RTPCodecTypeVideo {
		return nil, fmt.Errorf("%w: slot kind %v", ErrKindMismatch, kind)
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	pc, err := p.ensureSub()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	_, dup := p.slotByName[name]
	p.mu.Unlock()
	if dup {
		return nil, fmt.Errorf("%w: %q", ErrSlotExists, name)
	}
	codec := vp8Codec
	if kind == webrtc.RTPCodecTypeAudio {
		codec = opusCodec
	}
	s := &Slot{
		peer:   p,
		name:   name,
		kind:   kind,
		closed: make(chan struct{}),
	}
	s.target.Store(-1)
	s.dt = &downTrack{id: name, streamID: name, kind: kind, codec: codec}
	tr, err := pc.AddTransceiverFromTrack(s.dt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, fmt.Errorf("sfu: add slot %q: %w", name, err)
	}
	s.sender = tr.Sender()
	p.mu.Lock()
	if p.closed {
		// Close took its snapshot of the slots before this one: close it here, or
		// its writer (started by a later SetSource) would run forever.
		p.mu.Unlock()
		s.close()
		return nil, fmt.Errorf("sfu: add slot %q: %w", name, ErrClosed)
	}
	p.slots = append(p.slots, s)
	p.slotByName[name] = s
	p.mu.Unlock()
	// The RTCP reader starts with the first source (Slot.startRTCP), the
	// writer goroutine when first needed (Slot.startWriter).
	p.needNegotiation()
	return s, nil
}

// RemoveSlot removes a slot (renegotiation needed).
func (p *Peer) RemoveSlot(name string) error {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	p.mu.Lock()
	s := p.slotByName[name]
	if s == nil {
		p.mu.Unlock()
		return fmt.Errorf("sfu: no slot %q", name)
	}
	delete(p.slotByName, name)
	for i, x := range p.slots {
		if x == s {
			p.slots = append(p.slots[:i], p.slots[i+1:]...)
			break
		}
	}
	pc := p.sub
	p.mu.Unlock()
	s.close()
	var err error
	if pc != nil {
		err = pc.RemoveTrack(s.sender)
	}
	s.wg.Wait()
	p.needNegotiation()
	p.reallocate()
	return err
}

// Slot returns the slot with that name, or nil.
func (p *Peer) Slot(name string) *Slot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.slotByName[name]
}

// Slots returns the slots in creation order.
func (p *Peer) Slots() []*Slot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Slot(nil), p.slots...)
}

// needNegotiation fires OnNegotiationNeeded, coalescing bursts (several
// AddSlot calls give one offer). While a first negotiation has not connected
// yet, the follow-up round waits for the connection: Pion answerers treat a
// re-offer that arrives before their ICE transport started as an ICE restart.
func (p *Peer) needNegotiation() {
	p.mu.Lock()
	p.negPending = true
	f := p.onNeg
	fire := !p.offerOut && !p.negFired && f != nil && !p.closed
	if fire && p.sub != nil && p.sub.CurrentRemoteDescription() != nil {
		switch p.sub.ICEConnectionState() {
		case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
		default:
			p.negWait = true
			fire = false
		}
	}
	if fire {
		p.negFired = true
	}
	p.mu.Unlock()
	if fire {
		go f()
	}
}

// CreateSubscriberOffer creates and applies an offer for the subscriber leg.
// While the last offer awaits its answer it creates none and returns
// ErrOfferOutstanding: the new offer is owed, and OnNegotiationNeeded fires
// once the answer is in (an offer on top of an unanswered one would leave the
// client answering the wrong one).
func (p *Peer) CreateSubscriberOffer(iceRestart bool) (string, error) {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	pc, err := p.ensureSub()
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	out := p.offerOut
	if out {
		p.negPending = true
	}
	p.mu.Unlock()
	if out {
		return "", ErrOfferOutstanding
	}
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: iceRestart})
	if err != nil {
		return "", fmt.Errorf("sfu: create offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("sfu: set local offer: %w", err)
	}
	offerSDP := pc.LocalDescription().SDP
	p.mu.Lock()
	p.negPending = false
	p.negFired = false
	p.offerOut = true
	p.subOffer = offerSDP
	p.mu.Unlock()
	return offerSDP, nil
}

// SubscriberOffer returns the subscriber offer that awaits its answer, if
// one does.
func (p *Peer) SubscriberOffer() (offerSDP string, outstanding bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.offerOut {
		return "", false
	}
	return p.subOffer, true
}

// SetSubscriberAnswer applies the client's answer to the last subscriber
// offer. If slots changed meanwhile, OnNegotiationNeeded fires again.
func (p *Peer) SetSubscriberAnswer(answerSDP string) error {
	if err := validateSDP(answerSDP); err != nil {
		return err
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	p.mu.Lock()
	pc := p.sub
	out := p.offerOut
	p.mu.Unlock()
	if pc == nil || !out {
		return fmt.Errorf("%w: no subscriber offer outstanding", ErrBadState)
	}
	err := safe(func() error {
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answerSDP}); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
		}
		return nil
	})
	if err != nil {
		if pc.SignalingState() == webrtc.SignalingStateStable {
			// Pion applied the answer before it failed: the offer is gone, so a
			// correct answer could never land. Say so; the caller offers afresh.
			p.mu.Lock()
			p.offerOut = false
			p.mu.Unlock()
			return fmt.Errorf("%w: %w", ErrOfferConsumed, err)
		}
		return err
	}
	p.mu.Lock()
	p.offerOut = false
	again := p.negPending
	p.mu.Unlock()
	p.flushCandidates(Subscriber, pc)
	if again {
		p.needNegotiation()
	}
	p.reallocate()
	return nil
}
