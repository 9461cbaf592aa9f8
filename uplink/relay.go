package uplink

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/wire"
)

// Program sources of a node: what its endpoints see as the program.
const (
	SourceOwn    = wire.ProgramSourceOwn    // the node's own command room (the default)
	SourceParent = wire.ProgramSourceParent // the parent's program, relayed down the uplink
)

// PublishFunc publishes a WHIP offer into this node as its program (the node's
// own ingest path: signaling.Service.StartWHIP). It returns the answer and a
// function that ends the publication.
type PublishFunc func(offer string) (answer string, stop func(), err error)

// relay republishes the parent's program, as the uplink receives it, into the
// node through its WHIP ingest: to the node's routing, record and presence it
// is a program publisher like any other, so "newest publisher wins" makes it
// the program, and ending it gives the program back to the command room.
// The parent's floor is relayed the same way, as the node's relayed floor
// (floorrelay.go).
type relay struct {
	slot         string // the uplink's received video slot it relays (keyframes are asked on it)
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticRTP
	stop         func()
	lastPLI      atomic.Int64 // unix nanos of the last keyframe request sent up
}

// SetProgramSource chooses what the node's endpoints see as the program:
// SourceOwn or SourceParent. Choosing the current source does nothing.
func (u *Uplink) SetProgramSource(src string) error {
	if src != SourceOwn && src != SourceParent {
		return fmt.Errorf("program source %q: want %q or %q", src, SourceOwn, SourceParent)
	}
	u.progMu.Lock()
	defer u.progMu.Unlock()
	cur := u.relay.Load()
	switch {
	case src == SourceParent && cur == nil:
		if u.cfg.PublishProgram == nil {
			return errors.New("this node cannot publish a relayed program (no ingest)")
		}
		r, err := u.startRelay(u.cfg.PublishProgram, "uplink-"+u.cfg.Code, signaling.SlotProgramVideo)
		if err != nil {
			return fmt.Errorf("relay the parent's program: %w", err)
		}
		u.relay.Store(r)
		if c := u.Client(); c != nil {
			_ = c.RequestKeyframe(signaling.SlotProgramVideo) // the node's viewers start at once
		}
	case src == SourceOwn && cur != nil:
		u.relay.Store(nil)
		cur.close()
	default:
		return nil
	}
	u.mu.Lock()
	u.status.ProgramSource = src
	u.mu.Unlock()
	u.log.Info("uplink: program source", "source", src)
	u.kickFloor() // the parent's floor comes down with its program (floorrelay.go)
	u.changed()
	return nil
}

// ProgramSource is the node's current program source.
func (u *Uplink) ProgramSource() string {
	if u.relay.Load() != nil {
		return SourceParent
	}
	return SourceOwn
}

// onRTP is the protocol client's packet hook: the parent's program goes into
// the relay while the node's program source is the parent, and the parent's
// floor into the floor relay while there is one (floorrelay.go).
func (u *Uplink) onRTP(slot string, p *rtp.Packet) {
	r := u.relay.Load()
	switch slot {
	case signaling.SlotProgramVideo, signaling.SlotProgramAudio:
	case signaling.SlotFloorVideo, signaling.SlotFloorAudio:
		r = u.floor.relay.Load()
	default:
		return
	}
	if r == nil {
		return
	}
	switch slot {
	case signaling.SlotProgramVideo, signaling.SlotFloorVideo:
		_ = r.video.WriteRTP(p) // an error means the relay closed meanwhile
	default:
		_ = r.audio.WriteRTP(p)
	}
}

// nodeAPI is a Pion API for media with the node's own SFU (WHIP and WHEP).
func nodeAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true) // the node's own SFU is usually on this host
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// gatherOffer creates an offer and waits (bounded) for its candidates: WHIP and
// WHEP here have no trickle.
func gatherOffer(pc *webrtc.PeerConnection) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
	}
	return pc.LocalDescription().SDP, nil
}

// startRelay publishes a relay into the node with publish: one VP8 and one
// Opus track (stream id stream) fed from the uplink's received slots, the
// video's being videoSlot.
func (u *Uplink) startRelay(publish PublishFunc, stream, videoSlot string) (*relay, error) {
	api, err := nodeAPI()
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	r := &relay{pc: pc, slot: videoSlot}
	ok := false
	defer func() {
		if !ok {
			_ = pc.Close()
		}
	}()
	if r.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", stream); err != nil {
		return nil, err
	}
	if r.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", stream); err != nil {
		return nil, err
	}
	var senders []*webrtc.RTPSender
	for _, tr := range []*webrtc.TrackLocalStaticRTP{r.video, r.audio} {
		tx, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		senders = append(senders, tx.Sender())
	}
	offer, err := gatherOffer(pc)
	if err != nil {
		return nil, err
	}
	answer, stop, err := publish(offer)
	if err != nil {
		return nil, err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		stop()
		return nil, err
	}
	r.stop = stop
	// The node asks its publisher for keyframes (a new viewer, a lost picture):
	// pass them up, as this node is the parent's viewer.
	go r.readRTCP(senders[0], u.keyframeUp(r))
	go r.readRTCP(senders[1], nil)
	ok = true
	return r, nil
}

// keyframeUp asks the parent for a keyframe of the relayed slot, at most every 500 ms.
func (u *Uplink) keyframeUp(r *relay) func() {
	return func() {
		now := time.Now().UnixNano()
		if last := r.lastPLI.Load(); now-last < int64(500*time.Millisecond) || !r.lastPLI.CompareAndSwap(last, now) {
			return
		}
		if c := u.Client(); c != nil {
			_ = c.RequestKeyframe(r.slot)
		}
	}
}

func (r *relay) readRTCP(s *webrtc.RTPSender, onKeyframe func()) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if onKeyframe != nil {
					onKeyframe()
				}
			}
		}
	}
}

func (r *relay) close() {
	if r.stop != nil {
		r.stop()
	}
	_ = r.pc.Close()
}
