package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/synth/media"
	"github.com/opscenter/opscenter/synth/rtc"
	"github.com/opscenter/opscenter/wire"
)

// mediaAPI is the client's Pion API (shared by its successive connections).
type mediaAPI struct{ api *webrtc.API }

func newMediaAPI(o Options, onPLI func(mediaSSRC uint32)) (*mediaAPI, error) {
	me, ir, err := rtc.BrowserMediaEngine()
	if err != nil {
		return nil, err
	}
	ir.Add(rtc.NewKeyframeTap(onPLI)) // last: it reads what the others have seen
	se := rtc.Settings(o.NetworkTypes, o.Interfaces)
	if o.IPFilter != nil {
		se.SetIPFilter(o.IPFilter)
	}
	if o.UDPPortMin != 0 || o.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(o.UDPPortMin, o.UDPPortMax); err != nil {
			return nil, fmt.Errorf("udp port range: %w", err)
		}
	}
	if o.Net != nil {
		se.SetNet(o.Net)
	}
	if o.ICEDisconnectedTimeout > 0 || o.ICEFailedTimeout > 0 || o.ICEKeepalive > 0 {
		d, f, k := o.ICEDisconnectedTimeout, o.ICEFailedTimeout, o.ICEKeepalive
		if d <= 0 {
			d = 5 * time.Second
		}
		if f <= 0 {
			f = 25 * time.Second
		}
		if k <= 0 {
			k = 2 * time.Second
		}
		se.SetICETimeouts(d, f, k)
	}
	return &mediaAPI{webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*se))}, nil
}

const (
	legPub = 0
	legSub = 1
)

// session is the media and signaling of one WebSocket connection.
type session struct {
	c           *Client
	ws          *websocket.Conn
	ctx         context.Context
	cancel      context.CancelFunc
	done        chan struct{} // the WebSocket ended
	closeStatus websocket.StatusCode
	offers      chan string
	answers     chan string
	wg          sync.WaitGroup

	mu      sync.Mutex
	pcs     [2]*webrtc.PeerConnection
	states  [2]webrtc.PeerConnectionState
	everUp  [2]bool
	started time.Time
	remote  [2]bool
	pending [2][]webrtc.ICECandidateInit

	vmu     sync.Mutex
	videos  map[string]*media.Video // by rid
	ssrcRID map[uint32]string
	paused  map[string]bool
	// slotSSRC is the SSRC each received slot arrives on (RequestKeyframe).
	slotSSRC map[string]uint32
}

func newSession(c *Client, ws *websocket.Conn) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{c: c, ws: ws, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		offers: make(chan string, 16), answers: make(chan string, 4),
		videos: map[string]*media.Video{}, ssrcRID: map[uint32]string{}, paused: map[string]bool{}, started: time.Now(),
		slotSSRC: map[string]uint32{}}
	s.wg.Add(1)
	go s.negLoop()
	return s
}

func (s *session) micOff() bool { return s.c.micOff.Load() }

// readLoop receives server messages.
func (s *session) readLoop() {
	defer close(s.done)
	for {
		for s.c.sigPaused.Load() { // PauseSignaling: a client that stops reading
			select {
			case <-s.ctx.Done():
				s.closeStatus = -1
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		_, b, err := s.ws.Read(s.ctx)
		if err != nil {
			s.closeStatus = websocket.CloseStatus(err)
			return
		}
		var env wire.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			s.c.opts.Log.Warn("synth: bad server message", "err", err)
			continue
		}
		s.c.record(env)
		if f := s.c.opts.OnMessage; f != nil {
			f(env)
		}
		switch env.Type {
		case wire.TypeSubscriberOffer:
			var m wire.SDPMsg
			if json.Unmarshal(env.Payload, &m) == nil {
				select {
				case s.offers <- s.c.mapSDP(m.SDP):
				case <-s.ctx.Done():
					return
				}
			}
		case wire.TypePublishAnswer:
			var m wire.SDPMsg
			if json.Unmarshal(env.Payload, &m) == nil {
				select {
				case s.answers <- s.c.mapSDP(m.SDP):
				default:
				}
			}
		case wire.TypeICECandidate:
			var m wire.CandidateMsg
			if json.Unmarshal(env.Payload, &m) == nil && m.Candidate != nil {
				leg := legPub
				if m.Target == "subscriber" {
					leg = legSub
				}
				s.addCandidate(leg, webrtc.ICECandidateInit(*m.Candidate))
			}
		case wire.TypeLayerControl:
			var m wire.LayerControlMsg
			if json.Unmarshal(env.Payload, &m) == nil {
				s.setPaused(m.RID, !m.Active)
			}
		}
	}
}

func (s *session) send(typ string, payload any) {
	if _, err := s.c.sendOn(s.ws, typ, payload); err != nil {
		s.c.opts.Log.Debug("synth: send", "type", typ, "err", err)
	}
}

func (s *session) addCandidate(leg int, ci webrtc.ICECandidateInit) {
	ci, keep := s.c.mapCandidate(ci)
	if !keep {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pc := s.pcs[leg]
	if pc == nil || !s.remote[leg] {
		s.pending[leg] = append(s.pending[leg], ci)
		return
	}
	_ = pc.AddICECandidate(ci)
}

func (s *session) remoteSet(leg int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remote[leg] = true
	for _, ci := range s.pending[leg] {
		_ = s.pcs[leg].AddICECandidate(ci)
	}
	s.pending[leg] = nil
}

func (s *session) newPC(leg int) (*webrtc.PeerConnection, error) {
	pc, err := s.c.api.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	target := "publisher"
	if leg == legSub {
		target = "subscriber"
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.mu.Lock()
		if s.pcs[leg] == pc {
			s.states[leg] = st
			if st == webrtc.PeerConnectionStateConnected {
				s.everUp[leg] = true
			}
		}
		s.mu.Unlock()
	})
	pc.OnICECandidate(func(ci *webrtc.ICECandidate) {
		if ci != nil {
			j := wire.ICECandidateInit(ci.ToJSON())
			s.send(wire.TypeICECandidate, wire.CandidateMsg{Target: target, Candidate: &j})
		}
	})
	s.mu.Lock()
	s.pcs[leg] = pc
	s.mu.Unlock()
	return pc, nil
}

// mediaDown reports whether a needed media leg is down: failed, disconnected or
// closed, or never connected within the ICE timeout.
func (s *session) mediaDown(publishing bool, iceTimeout time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	legs := []int{legSub}
	if publishing {
		legs = append(legs, legPub)
	}
	for _, leg := range legs {
		switch s.states[leg] {
		case webrtc.PeerConnectionStateConnected:
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateClosed:
			return true
		default:
			if time.Since(s.started) > iceTimeout {
				return true
			}
		}
	}
	return false
}

func (s *session) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *session) connected(publishing bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.pcs[legSub] != nil && s.pcs[legSub].ConnectionState() == webrtc.PeerConnectionStateConnected
	if publishing {
		ok = ok && s.pcs[legPub] != nil && s.pcs[legPub].ConnectionState() == webrtc.PeerConnectionStateConnected
	}
	return ok
}

// negLoop answers subscriber offers in order.
func (s *session) negLoop() {
	defer s.wg.Done()
	for {
		select {
		case offer := <-s.offers:
			if err := s.answerOffer(offer); err != nil {
				s.c.opts.Log.Warn("synth: subscriber negotiation", "err", err)
			}
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *session) answerOffer(offer string) error {
	s.mu.Lock()
	pc := s.pcs[legSub]
	s.mu.Unlock()
	if pc == nil {
		var err error
		if pc, err = s.newPC(legSub); err != nil {
			return err
		}
		pc.OnTrack(s.onTrack)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	s.remoteSet(legSub)
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	s.send(wire.TypeSubscriberAnswer, wire.SDPMsg{SDP: pc.LocalDescription().SDP})
	return nil
}

// onTrack reads a received slot (track id = slot name). Its RTCP is drained
// by the keyframe tap (rtcptap.go).
func (s *session) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	s.vmu.Lock()
	s.slotSSRC[tr.ID()] = uint32(tr.SSRC())
	s.vmu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.c.readTrack(tr)
	}()
}

// keyframe answers a PLI or FIR for one of the published encodings.
func (s *session) keyframe(ssrc uint32) {
	s.vmu.Lock()
	v := s.videos[s.ssrcRID[ssrc]]
	s.vmu.Unlock()
	if v != nil {
		v.RequestKeyframe()
	}
}

func (s *session) setPaused(rid string, paused bool) {
	s.vmu.Lock()
	s.paused[rid] = paused
	v := s.videos[rid]
	s.vmu.Unlock()
	if !paused && v != nil {
		v.RequestKeyframe()
	}
}

// Paused reports whether the server asked to pause an encoding.
func (s *session) isPaused(rid string) bool {
	s.vmu.Lock()
	defer s.vmu.Unlock()
	return s.paused[rid]
}

// publish sends simulcast VP8 and Opus on a new publisher PeerConnection.
func (s *session) publish(code string) error {
	o := s.c.opts
	pc, err := s.newPC(legPub)
	if err != nil {
		return err
	}
	var vtracks []*webrtc.TrackLocalStaticRTP
	var vsender *webrtc.RTPSender
	if !o.NoVideo {
		rids := make([]string, len(o.Layers))
		for i, l := range o.Layers {
			rids[i] = l.RID
		}
		if vsender, vtracks, err = rtc.AddSimulcast(pc, "synth-"+code, rids); err != nil {
			return err
		}
	}
	var atrack *webrtc.TrackLocalStaticRTP
	var asender *webrtc.RTPSender
	if !o.NoAudio {
		if asender, atrack, err = rtc.AddOpus(pc, "synth-"+code); err != nil {
			return err
		}
	}
	if err := s.offerPublish(pc, nil); err != nil {
		return err
	}
	if vsender != nil {
		s.startVideo(code, pc, vsender, vtracks)
	}
	if asender != nil {
		a := media.NewAudio(media.AudioConfig{Code: code, LevelExtID: rtc.AudioLevelID(asender), Level: o.AudioLevel, SSRC: 2000})
		s.wg.Add(2)
		go func() {
			defer s.wg.Done()
			for {
				if _, _, err := asender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		go func() {
			defer s.wg.Done()
			_ = a.Run(s.ctx, func(p *rtp.Packet) error {
				if s.micOff() {
					return nil
				}
				_ = atrack.WriteRTP(p) // errors mean the PeerConnection closed; ctx ends the loop
				return nil
			})
		}()
	}
	return nil
}

// offerPublish runs one publish_offer / publish_answer round.
func (s *session) offerPublish(pc *webrtc.PeerConnection, opts *webrtc.OfferOptions) error {
	offer, err := pc.CreateOffer(opts)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	for len(s.answers) > 0 { // drop stale answers
		<-s.answers
	}
	s.send(wire.TypePublishOffer, wire.SDPMsg{SDP: pc.LocalDescription().SDP})
	select {
	case ans := <-s.answers:
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
			return fmt.Errorf("set publish answer: %w", err)
		}
	case <-time.After(10 * time.Second):
		return errors.New("no publish_answer within 10 s")
	case <-s.done:
		return errors.New("connection closed")
	}
	s.remoteSet(legPub)
	return nil
}

func (s *session) startVideo(code string, pc *webrtc.PeerConnection, sender *webrtc.RTPSender, tracks []*webrtc.TrackLocalStaticRTP) {
	o := s.c.opts
	params := sender.GetParameters()
	midID, ridID, mid := rtc.SimulcastIDs(pc, sender)
	s.vmu.Lock()
	for i, enc := range params.Encodings {
		if i < len(o.Layers) {
			s.ssrcRID[uint32(enc.SSRC)] = o.Layers[i].RID
		}
	}
	s.vmu.Unlock()
	// RTCP from the server (PLI and FIR → keyframes) comes through the tap
	// (rtcptap.go, Client.keyframe → session.keyframe).
	for i, l := range o.Layers {
		rid := l.RID
		if len(o.Layers) == 1 {
			rid = ""
		}
		v := media.NewVideo(media.VideoConfig{Code: code, RID: l.RID, Width: l.Width, Height: l.Height,
			FPS: o.FPS, Bitrate: l.Bitrate, KeyframeInterval: 10 * time.Second, SSRC: uint32(1000 + i)})
		s.vmu.Lock()
		s.videos[l.RID] = v
		s.vmu.Unlock()
		tr, ridB, midB, lrid := tracks[i], []byte(rid), []byte(mid), l.RID
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// Like a browser, a paused encoding uses no sequence numbers: what is not
			// sent leaves no gap, so a resume is not mistaken for uplink loss.
			var skipped uint16
			_ = v.Run(s.ctx, func(p *rtp.Packet) error {
				if s.isPaused(lrid) || s.c.isHeld(lrid) {
					skipped++
					return nil
				}
				p.SequenceNumber -= skipped
				if midID != 0 {
					_ = p.Header.SetExtension(midID, midB)
				}
				if ridID != 0 && len(ridB) > 0 {
					_ = p.Header.SetExtension(ridID, ridB)
				}
				_ = tr.WriteRTP(p)
				return nil
			})
		}()
	}
}

// restartICE renegotiates the publisher leg with an ICE restart and asks the
// server for a restarting subscriber offer.
func (s *session) restartICE() error {
	s.mu.Lock()
	pub := s.pcs[legPub]
	s.mu.Unlock()
	if pub != nil {
		if err := s.offerPublish(pub, &webrtc.OfferOptions{ICERestart: true}); err != nil {
			return err
		}
	}
	s.send(wire.TypeICERestart, wire.Empty{})
	return nil
}

// close stops media and closes both PeerConnections.
func (s *session) close() {
	s.cancel()
	s.mu.Lock()
	pcs := s.pcs
	s.mu.Unlock()
	for _, pc := range pcs {
		if pc != nil {
			_ = pc.Close()
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// RequestKeyframe asks the server for a keyframe on a received video slot (a
// PLI on the subscriber leg), as a decoder that lost its picture does.
func (c *Client) RequestKeyframe(slot string) error {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return errors.New("not connected")
	}
	s.vmu.Lock()
	ssrc, ok := s.slotSSRC[slot]
	s.vmu.Unlock()
	s.mu.Lock()
	pc := s.pcs[legSub]
	s.mu.Unlock()
	if !ok || pc == nil {
		return fmt.Errorf("no slot %q received", slot)
	}
	return pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}
