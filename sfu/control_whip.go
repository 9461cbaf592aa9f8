package sfu

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v3"
)

// WHIP and WHEP (HTTP offer/answer, no trickle from the server): the server
// answers with every local candidate in the SDP, and a WHEP viewer offers the
// subscriber leg itself (the server answers with its slots).

// GatheredDescription waits until the leg has gathered its local candidates
// (at most timeout) and returns its local description with every candidate
// gathered so far in it. Use it after PublishOffer or AnswerSubscriberOffer,
// when the answer goes out in one piece (OBS 30.2 and later send no
// candidates in their offer and trickle nothing).
func (p *Peer) GatheredDescription(t Target, timeout time.Duration) (string, error) {
	p.mu.Lock()
	pc, closed := p.pub, p.closed
	if t == Subscriber {
		pc = p.sub
	}
	p.mu.Unlock()
	if closed {
		return "", ErrClosed
	}
	if pc == nil {
		return "", fmt.Errorf("%w: no %s leg", ErrBadState, t)
	}
	select {
	case <-webrtc.GatheringCompletePromise(pc):
	case <-time.After(timeout):
		p.log.Warn("candidate gathering not complete; answering with what there is", "leg", t.String(), "after", timeout)
	}
	d := pc.LocalDescription()
	if d == nil {
		return "", fmt.Errorf("%w: no local description on the %s leg", ErrBadState, t)
	}
	return d.SDP, nil
}

// AnswerSubscriberOffer applies a client's offer on the subscriber leg (a
// WHEP viewer offers recvonly sections) and returns the answer. Add the
// slots first: each offered section takes the first slot of its kind not yet
// negotiated, in AddSlot order; slots left over stay unnegotiated. A later
// offer (an ICE restart) is answered the same way. Never mix with
// CreateSubscriberOffer on one peer.
func (p *Peer) AnswerSubscriberOffer(offerSDP string) (string, error) {
	if err := validateSDP(offerSDP); err != nil {
		return "", err
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	pc, err := p.ensureSub()
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	out := p.offerOut
	p.mu.Unlock()
	if out {
		return "", fmt.Errorf("%w: a server offer is outstanding on this leg", ErrBadState)
	}
	var answer webrtc.SessionDescription
	err = safe(func() error {
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
		}
		var err error
		if answer, err = pc.CreateAnswer(nil); err != nil {
			return fmt.Errorf("%w: create answer: %w", ErrInvalidSDP, err)
		}
		if err := pc.SetLocalDescription(answer); err != nil {
			return fmt.Errorf("%w: set local answer: %w", ErrInvalidSDP, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.negPending, p.negFired = false, false
	p.mu.Unlock()
	p.flushCandidates(Subscriber, pc)
	p.reallocate()
	return pc.LocalDescription().SDP, nil
}
