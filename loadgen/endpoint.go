package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/synth/media"
	"github.com/opscenter/opscenter/wire"
)

// Layer is one simulcast encoding an endpoint publishes.
type Layer struct {
	RID           string
	Width, Height int
	Bitrate       int
}

// EndpointLayers are the endpoint layers (~100/400/1200 kbit/s).
var EndpointLayers = []Layer{{"q", 320, 180, 100_000}, {"h", 640, 360, 400_000}, {"f", 1280, 720, 1_200_000}}

// ProgramLayers are the command room's program: 1.5 Mbit/s over 3 layers.
var ProgramLayers = []Layer{{"q", 320, 180, 150_000}, {"h", 640, 360, 350_000}, {"f", 1280, 720, 1_000_000}}

// EndpointOptions configure one synthetic endpoint.
type EndpointOptions struct {
	URL     string // http://host:port
	Token   string // join token or staff bearer token
	Role    string // endpoint (default) or console
	Publish bool
	Layers  []Layer
	FPS     int
	Stats   *Stats // shared receive statistics
}

// Stats are the receive figures shared by all endpoints of a run. Every
// field is updated atomically by the per-track readers.
type Stats struct {
	Packets  atomic.Uint64 // media packets received
	Bytes    atomic.Uint64 // RTP bytes received
	Expected atomic.Uint64 // sum over tracks of (highest - first + 1)
	Delay    Hist          // end to end: marker send time → receive
}

// Endpoint is a lean synthetic endpoint for load: real /ws signaling with a
// real credential, real Pion PeerConnections, and a receive path that does
// nothing per packet but read, parse the header and marker, and count.
type Endpoint struct {
	o      EndpointOptions
	api    *pionAPI
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	nextID atomic.Int64

	Code      string
	Start     time.Time    // dial started
	FirstData atomic.Int64 // unix ns of the first media packet (0: none)
	Errors    atomic.Int64

	wmu     sync.Mutex // serialises WebSocket writes
	mu      sync.Mutex
	pcs     [2]*webrtc.PeerConnection
	remote  [2]bool
	pending [2][]webrtc.ICECandidateInit
	welcome chan wire.WelcomeMsg
	answers chan string
	offers  chan string

	vmu     sync.Mutex
	videos  map[string]*media.Video
	paused  map[string]bool
	ssrcRID map[uint32]string
}

const (
	legPub = 0
	legSub = 1
)

// pionAPI is the Pion API shared by the endpoints of a run, with the RTCP
// tap that routes keyframe requests to the endpoint that owns the
// PeerConnection being read.
type pionAPI struct {
	api  *webrtc.API
	taps *client.KeyframeTap
}

// newPC creates a PeerConnection whose incoming PLI/FIR go to onPLI.
func (a *pionAPI) newPC(onPLI func(uint32)) (*webrtc.PeerConnection, error) {
	return a.taps.Build(onPLI, func() (*webrtc.PeerConnection, error) {
		return a.api.NewPeerConnection(webrtc.Configuration{})
	})
}

// newAPI builds the Pion API shared by the endpoints of a run.
func newAPI() (*pionAPI, error) {
	me, ir, err := client.BrowserMediaEngine()
	if err != nil {
		return nil, err
	}
	taps := client.NewKeyframeTap(nil)
	ir.Add(taps) // last: it reads what the others have seen
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return &pionAPI{api: api, taps: taps}, nil
}

// Dial connects and joins; with Publish it starts publishing. It returns
// after the welcome and the publish answer (media keeps setting up).
func Dial(ctx context.Context, api *pionAPI, o EndpointOptions) (*Endpoint, error) {
	if o.Role == "" {
		o.Role = wire.RoleEndpoint
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if len(o.Layers) == 0 {
		o.Layers = EndpointLayers
	}
	e := &Endpoint{o: o, api: api, Start: time.Now(),
		welcome: make(chan wire.WelcomeMsg, 1), answers: make(chan string, 2), offers: make(chan string, 16),
		videos: map[string]*media.Video{}, paused: map[string]bool{}, ssrcRID: map[uint32]string{}}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	u := strings.Replace(o.URL, "http://", "ws://", 1) + "/ws"
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+o.Token)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(8 << 20)
	e.ws = ws
	e.wg.Add(2)
	go e.readLoop()
	go e.negLoop()
	e.send(wire.TypeJoin, wire.JoinMsg{Role: o.Role,
		Device: wire.DeviceInfo{UserAgent: "opscenter-loadgen", Camera: o.Publish, Mic: o.Publish}})
	select {
	case w := <-e.welcome:
		e.Code = w.Code
	case <-time.After(15 * time.Second):
		e.Close()
		return nil, errors.New("no welcome within 15 s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	if o.Publish {
		if err := e.publish(); err != nil {
			e.Close()
			return nil, fmt.Errorf("publish: %w", err)
		}
	}
	return e, nil
}

// Send sends one signaling message (leader actions, visibility).
func (e *Endpoint) Send(typ string, payload any) error { return e.send(typ, payload) }

func (e *Endpoint) send(typ string, payload any) error {
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		raw = b
	}
	b, err := json.Marshal(wire.Envelope{Type: typ, ID: strconv.FormatInt(e.nextID.Add(1), 10), Payload: raw})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if err := e.ws.Write(ctx, websocket.MessageText, b); err != nil {
		e.Errors.Add(1)
		return err
	}
	return nil
}

func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	for {
		_, b, err := e.ws.Read(e.ctx)
		if err != nil {
			return
		}
		var env wire.Envelope
		if json.Unmarshal(b, &env) != nil {
			continue
		}
		switch env.Type {
		case wire.TypeWelcome:
			var w wire.WelcomeMsg
			if json.Unmarshal(env.Payload, &w) == nil {
				select {
				case e.welcome <- w:
				default:
				}
			}
		case wire.TypeSubscriberOffer:
			var m wire.SDPMsg
			if json.Unmarshal(env.Payload, &m) == nil {
				select {
				case e.offers <- m.SDP:
				case <-e.ctx.Done():
					return
				}
			}
		case wire.TypePublishAnswer:
			var m wire.SDPMsg
			if json.Unmarshal(env.Payload, &m) == nil {
				select {
				case e.answers <- m.SDP:
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
				e.addCandidate(leg, webrtc.ICECandidateInit(*m.Candidate))
			}
		case wire.TypeLayerControl:
			var m wire.LayerControlMsg
			if json.Unmarshal(env.Payload, &m) == nil {
				e.setPaused(m.RID, !m.Active)
			}
		case wire.TypeError:
			e.Errors.Add(1)
		}
	}
}

func (e *Endpoint) addCandidate(leg int, ci webrtc.ICECandidateInit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pcs[leg] == nil || !e.remote[leg] {
		e.pending[leg] = append(e.pending[leg], ci)
		return
	}
	_ = e.pcs[leg].AddICECandidate(ci)
}

func (e *Endpoint) remoteSet(leg int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.remote[leg] = true
	for _, ci := range e.pending[leg] {
		_ = e.pcs[leg].AddICECandidate(ci)
	}
	e.pending[leg] = nil
}

func (e *Endpoint) newPC(leg int) (*webrtc.PeerConnection, error) {
	var onPLI func(uint32)
	if leg == legPub {
		onPLI = e.keyframe
	}
	pc, err := e.api.newPC(onPLI)
	if err != nil {
		return nil, err
	}
	target := "publisher"
	if leg == legSub {
		target = "subscriber"
	}
	pc.OnICECandidate(func(ci *webrtc.ICECandidate) {
		if ci != nil {
			j := wire.ICECandidateInit(ci.ToJSON())
			_ = e.send(wire.TypeICECandidate, wire.CandidateMsg{Target: target, Candidate: &j})
		}
	})
	e.mu.Lock()
	e.pcs[leg] = pc
	e.mu.Unlock()
	return pc, nil
}

func (e *Endpoint) negLoop() {
	defer e.wg.Done()
	for {
		select {
		case offer := <-e.offers:
			if err := e.answer(offer); err != nil {
				e.Errors.Add(1)
			}
		case <-e.ctx.Done():
			return
		}
	}
}

func (e *Endpoint) answer(offer string) error {
	e.mu.Lock()
	pc := e.pcs[legSub]
	e.mu.Unlock()
	if pc == nil {
		var err error
		if pc, err = e.newPC(legSub); err != nil {
			return err
		}
		pc.OnTrack(e.onTrack)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return err
	}
	e.remoteSet(legSub)
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	return e.send(wire.TypeSubscriberAnswer, wire.SDPMsg{SDP: pc.LocalDescription().SDP})
}

// onTrack starts the lean reader of one received slot.
func (e *Endpoint) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	e.wg.Add(1) // its RTCP is drained by the tap (rtcptap.go)
	go func() {
		defer e.wg.Done()
		e.readTrack(tr)
	}()
}

// readTrack: read, header, marker, count. No allocation per packet.
func (e *Endpoint) readTrack(tr *webrtc.TrackRemote) {
	st := e.o.Stats
	buf := make([]byte, 1500)
	var highest uint16
	var have bool
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if n < 12 {
			continue
		}
		now := time.Now()
		seq := binary.BigEndian.Uint16(buf[2:4])
		if !have {
			have, highest = true, seq
			st.Expected.Add(1)
			e.FirstData.CompareAndSwap(0, now.UnixNano())
		} else if d := int16(seq - highest); d > 0 {
			highest = seq
			st.Expected.Add(uint64(d))
		}
		st.Packets.Add(1)
		st.Bytes.Add(uint64(n))
		if sent, ok := markerTime(buf[:n]); ok {
			st.Delay.Record(now.Sub(sent))
		}
	}
}

var markerMagic = []byte("OPSM")

// markerTime finds the synth/media marker in an RTP packet and returns its send time.
func markerTime(pkt []byte) (time.Time, bool) {
	off := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 && len(pkt) >= off+4 {
		off += 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:off+4]))
	}
	if off >= len(pkt) {
		return time.Time{}, false
	}
	p := pkt[off:]
	if len(p) > 64 {
		p = p[:64]
	}
	i := bytes.Index(p, markerMagic)
	if i < 0 || len(p) < i+24 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(p[i+16:i+24]))), true
}

// keyframe handles a PLI/FIR from the server for one of our encodings.
func (e *Endpoint) keyframe(mediaSSRC uint32) {
	e.vmu.Lock()
	v := e.videos[e.ssrcRID[mediaSSRC]]
	e.vmu.Unlock()
	if v != nil {
		v.RequestKeyframe()
	}
}

func (e *Endpoint) setPaused(rid string, paused bool) {
	e.vmu.Lock()
	e.paused[rid] = paused
	v := e.videos[rid]
	e.vmu.Unlock()
	if !paused && v != nil {
		v.RequestKeyframe()
	}
}

func (e *Endpoint) isPaused(rid string) bool {
	e.vmu.Lock()
	defer e.vmu.Unlock()
	return e.paused[rid]
}

// publish sends simulcast VP8 and Opus (synth/media) on the publisher leg.
func (e *Endpoint) publish() error {
	pc, err := e.newPC(legPub)
	if err != nil {
		return err
	}
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	var vtracks []*webrtc.TrackLocalStaticRTP
	var vsender *webrtc.RTPSender
	for i, l := range e.o.Layers {
		tr, err := webrtc.NewTrackLocalStaticRTP(vp8, "video", "lg-"+e.Code, webrtc.WithRTPStreamID(l.RID))
		if err != nil {
			return err
		}
		vtracks = append(vtracks, tr)
		if i == 0 {
			if vsender, err = pc.AddTrack(tr); err != nil {
				return err
			}
		} else if err := vsender.AddEncoding(tr); err != nil {
			return err
		}
	}
	atrack, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "lg-"+e.Code)
	if err != nil {
		return err
	}
	asender, err := pc.AddTrack(atrack)
	if err != nil {
		return err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	if err := e.send(wire.TypePublishOffer, wire.SDPMsg{SDP: pc.LocalDescription().SDP}); err != nil {
		return err
	}
	select {
	case ans := <-e.answers:
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
			return err
		}
	case <-time.After(15 * time.Second):
		return errors.New("no publish_answer within 15 s")
	}
	e.remoteSet(legPub)
	e.startVideo(pc, vsender, vtracks)
	var levelID uint8
	for _, h := range asender.GetParameters().HeaderExtensions {
		if h.URI == sdp.AudioLevelURI {
			levelID = uint8(h.ID)
		}
	}
	a := media.NewAudio(media.AudioConfig{Code: e.Code, LevelExtID: levelID, Level: 30, SSRC: 2000})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = a.Run(e.ctx, func(p *rtp.Packet) error { _ = atrack.WriteRTP(p); return nil })
	}()
	return nil
}

func (e *Endpoint) startVideo(pc *webrtc.PeerConnection, sender *webrtc.RTPSender, tracks []*webrtc.TrackLocalStaticRTP) {
	params := sender.GetParameters()
	midID, ridID, mid := client.SimulcastIDs(pc, sender)
	e.vmu.Lock()
	for i, enc := range params.Encodings {
		if i < len(e.o.Layers) {
			e.ssrcRID[uint32(enc.SSRC)] = e.o.Layers[i].RID
		}
	}
	e.vmu.Unlock()
	for i, l := range e.o.Layers {
		v := media.NewVideo(media.VideoConfig{Code: e.Code, RID: l.RID, Width: l.Width, Height: l.Height,
			FPS: e.o.FPS, Bitrate: l.Bitrate, KeyframeInterval: 10 * time.Second, SSRC: uint32(1000 + i)})
		e.vmu.Lock()
		e.videos[l.RID] = v
		e.vmu.Unlock()
		tr, ridB, midB, lrid := tracks[i], []byte(l.RID), []byte(mid), l.RID
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			_ = v.Run(e.ctx, func(p *rtp.Packet) error {
				if e.isPaused(lrid) {
					return nil
				}
				if midID != 0 {
					_ = p.Header.SetExtension(midID, midB)
				}
				if ridID != 0 {
					_ = p.Header.SetExtension(ridID, ridB)
				}
				_ = tr.WriteRTP(p)
				return nil
			})
		}()
	}
}

// Connected reports whether the subscriber leg (and the publisher leg, when
// publishing) is connected.
func (e *Endpoint) Connected() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ok := e.pcs[legSub] != nil && e.pcs[legSub].ConnectionState() == webrtc.PeerConnectionStateConnected
	if e.o.Publish {
		ok = ok && e.pcs[legPub] != nil && e.pcs[legPub].ConnectionState() == webrtc.PeerConnectionStateConnected
	}
	return ok
}

// Close leaves and releases everything (bounded: at most ~7 s).
func (e *Endpoint) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	e.wmu.Lock()
	_ = e.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"leave"}`))
	e.wmu.Unlock()
	cancel()
	e.cancel()
	_ = e.ws.CloseNow()
	e.mu.Lock()
	pcs := e.pcs
	e.mu.Unlock()
	for _, pc := range pcs {
		if pc != nil {
			_ = pc.Close()
		}
	}
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
