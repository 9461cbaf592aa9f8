package sfu

// Test helpers: real Pion clients talking to a Peer directly (no signaling, so
// not synth/client, the protocol client). Their media setup (codecs, header
// extensions, ICE settings, simulcast tracks and the ids to stamp) is
// synth/rtc's, as synth/client's is; the interceptors are their own (a NACK
// generator, drops) because these tests look at loss and retransmission.

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/opscenter/opscenter/synth/media"
	"github.com/opscenter/opscenter/synth/rtc"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v2/vnet"
	"github.com/pion/webrtc/v3"
)

func testLogger() *slog.Logger {
	if os.Getenv("SFU_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testConfig() Config {
	return Config{
		UDPPort:         0,
		TCPPort:         -1,
		IncludeLoopback: true,
		NetworkTypes:    []string{"udp4"},
		Interfaces:      []string{"lo"},
		PauseDelay:      300 * time.Millisecond,
	}
}

// waitFor polls cond until it is true or the timeout expires.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timeout after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// checkGoroutines fails the test if the goroutine count does not come back
// near the baseline.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+3 {
			t.Logf("goroutines: base %d, now %d", base, n)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: base %d, now %d\n%s", base, n, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type clientOpts struct {
	tcp    bool                 // ICE over TCP only (active TCP candidates)
	pcCfg  webrtc.Configuration // e.g. TURN servers and relay-only policy
	vnet   *vnet.Net
	dropFn func(pt uint8, seq uint16) bool // drop incoming RTP on the subscriber leg
	// answerRole, if set, is the DTLS role the client takes when answering
	// the subscriber offer (Pion's default is client, a=setup:active).
	answerRole webrtc.DTLSRole
}

func newClientAPI(t *testing.T, o clientOpts) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	must(t, rtc.RegisterCodecs(me)) // what synth/client offers: the same codecs and extensions
	ir := &interceptor.Registry{}
	if o.dropFn != nil {
		ir.Add(&dropFactory{fn: o.dropFn}) // first = innermost: drops before the NACK generator sees it
	}
	gen, err := nack.NewGeneratorInterceptor(nack.GeneratorInterval(50 * time.Millisecond))
	must(t, err)
	ir.Add(gen) // no NACK responder: the test publisher ignores NACKs
	must(t, webrtc.ConfigureRTCPReports(ir))
	must(t, webrtc.ConfigureTWCCSender(me, ir))
	nt, ifs := webrtc.NetworkTypeUDP4, []string{"lo"}
	if o.tcp {
		nt = webrtc.NetworkTypeTCP4
	}
	if o.vnet != nil {
		ifs = nil
	}
	se := rtc.Settings([]webrtc.NetworkType{nt}, ifs)
	if o.dropFn != nil {
		// The drop happens after SRTP decryption, so the retransmission would
		// otherwise be rejected as a replay of the (already decrypted) original.
		se.DisableSRTPReplayProtection(true)
	}
	if o.answerRole != 0 {
		must(t, se.SetAnsweringDTLSRole(o.answerRole))
	}
	if o.vnet != nil {
		se.SetVNet(o.vnet)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*se))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dropFactory is an interceptor dropping selected incoming RTP packets.
type dropFactory struct {
	fn func(pt uint8, seq uint16) bool
}

func (f *dropFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &dropInterceptor{fn: f.fn}, nil
}

type dropInterceptor struct {
	interceptor.NoOp
	fn func(pt uint8, seq uint16) bool
}

func (d *dropInterceptor) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil || n < 12 {
				return n, attr, err
			}
			seq := uint16(b[2])<<8 | uint16(b[3])
			if d.fn(b[1]&0x7f, seq) {
				continue
			}
			return n, attr, err
		}
	})
}

// client is an endpoint: a publisher PC and a subscriber PC talking to peer.
type client struct {
	t    *testing.T
	peer *Peer
	code string
	api  *webrtc.API
	cfg  webrtc.Configuration

	pub, sub *webrtc.PeerConnection
	candMu   sync.Mutex
	pendCand [2][]webrtc.ICECandidateInit
	remote   [2]bool

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	rtcpWG    sync.WaitGroup // simulcast RTCP readers (stopped before Close, see doClose)
	vsender   *webrtc.RTPSender
	rids      []string

	// publishing
	videos  map[string]*media.Video // by rid
	plis    map[string]int
	pliMu   sync.Mutex
	ssrcRID map[uint32]string
	audio   *media.Audio
	paused  sync.Map // rid -> bool: stop sending that layer

	// subscribing
	recMu sync.Mutex
	recs  map[string]*recorder // by track id (= slot name)
	negMu sync.Mutex
}

// recorder keeps what a subscriber received on one track.
type recorder struct {
	mu      sync.Mutex
	pkts    []rxPacket
	started time.Time
}

type rxPacket struct {
	seq   uint16
	ts    uint32
	code  string
	rid   string
	keyW  int // width if keyframe start
	at    time.Time
	frame uint32
}

func (r *recorder) snapshot() []rxPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rxPacket(nil), r.pkts...)
}

func newClient(t *testing.T, p *Peer, code string, o clientOpts) *client {
	c := &client{t: t, peer: p, code: code, api: newClientAPI(t, o), cfg: o.pcCfg, recs: map[string]*recorder{},
		videos: map[string]*media.Video{}, plis: map[string]int{}, ssrcRID: map[uint32]string{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	p.OnCandidate(func(tg Target, ci *webrtc.ICECandidateInit) {
		if ci != nil {
			c.addCandidate(tg, *ci)
		}
	})
	p.OnNegotiationNeeded(func() { c.negotiateSub() })
	t.Cleanup(c.close)
	return c
}

func (c *client) addCandidate(tg Target, ci webrtc.ICECandidateInit) {
	if os.Getenv("SFU_DEBUG") != "" {
		c.t.Logf("server cand %v: %s", tg, ci.Candidate)
	}
	c.candMu.Lock()
	defer c.candMu.Unlock()
	pc := c.pub
	if tg == Subscriber {
		pc = c.sub
	}
	if pc == nil || !c.remote[tg] {
		c.pendCand[tg] = append(c.pendCand[tg], ci)
		return
	}
	_ = pc.AddICECandidate(ci)
}

func (c *client) remoteSet(tg Target, pc *webrtc.PeerConnection) {
	c.candMu.Lock()
	defer c.candMu.Unlock()
	c.remote[tg] = true
	for _, ci := range c.pendCand[tg] {
		_ = pc.AddICECandidate(ci)
	}
	c.pendCand[tg] = nil
}

type layerSpec struct {
	rid           string
	width, height int
	bitrate       int
}

var stdLayers = []layerSpec{{"q", 320, 180, 150_000}, {"h", 640, 360, 500_000}, {"f", 1280, 720, 1_500_000}}

// publish sends simulcast video (layers) and audio to the peer.
func (c *client) publish(layers []layerSpec, fps int) {
	t := c.t
	pc, err := c.api.NewPeerConnection(c.cfg)
	must(t, err)
	c.candMu.Lock()
	c.pub = pc
	c.candMu.Unlock()
	pc.OnICECandidate(func(ci *webrtc.ICECandidate) {
		if ci != nil {
			_ = c.peer.AddCandidate(Publisher, ci.ToJSON())
		}
	})
	rids := make([]string, len(layers))
	for i, l := range layers {
		rids[i] = l.rid
	}
	sender, tracks, err := rtc.AddSimulcast(pc, "s"+c.code, rids)
	must(t, err)
	asender, atrack, err := rtc.AddOpus(pc, "s"+c.code)
	must(t, err)

	offer, err := pc.CreateOffer(nil)
	must(t, err)
	must(t, pc.SetLocalDescription(offer))
	answer, err := c.peer.PublishOffer(offer.SDP)
	must(t, err)
	must(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}))
	c.remoteSet(Publisher, pc)

	params := sender.GetParameters()
	midID, ridID, mid := rtc.SimulcastIDs(pc, sender)
	for i, enc := range params.Encodings {
		c.ssrcRID[uint32(enc.SSRC)] = layers[i].rid
	}
	// RTCP from the server: PLIs → keyframes (one reader per encoding).
	c.vsender = sender
	for _, l := range layers {
		rid := l.rid
		c.rids = append(c.rids, rid)
		c.rtcpWG.Add(1)
		go func() {
			defer c.rtcpWG.Done()
			for c.ctx.Err() == nil { // Pion's ReadSimulcast races with Stop: stop reading before close
				var pkts []rtcp.Packet
				var err error
				if len(layers) > 1 {
					pkts, _, err = sender.ReadSimulcastRTCP(rid)
				} else {
					pkts, _, err = sender.ReadRTCP()
				}
				if err != nil {
					return
				}
				for _, p := range pkts {
					if _, ok := p.(*rtcp.PictureLossIndication); ok {
						c.pliMu.Lock()
						c.plis[rid]++
						v := c.videos[rid]
						c.pliMu.Unlock()
						if v != nil {
							v.RequestKeyframe()
						}
					}
				}
			}
		}()
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			if _, _, err := asender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	for i, l := range layers {
		rid := l.rid
		if len(layers) == 1 {
			rid = ""
		}
		v := media.NewVideo(media.VideoConfig{Code: c.code, RID: l.rid, Width: l.width, Height: l.height,
			FPS: fps, Bitrate: l.bitrate, KeyframeInterval: 20 * time.Second, SSRC: uint32(1000 + i)})
		c.pliMu.Lock()
		c.videos[l.rid] = v
		c.pliMu.Unlock()
		tr := tracks[i]
		ridB := []byte(rid)
		midB := []byte(mid)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_ = v.Run(c.ctx, func(p *rtp.Packet) error {
				if pz, _ := c.paused.Load(l.rid); pz == true {
					return nil
				}
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
	c.audio = media.NewAudio(media.AudioConfig{Code: c.code, LevelExtID: rtc.AudioLevelID(asender), SSRC: 2000})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = c.audio.Run(c.ctx, func(p *rtp.Packet) error { _ = atrack.WriteRTP(p); return nil })
	}()
}

func (c *client) pliCount(rid string) int {
	c.pliMu.Lock()
	defer c.pliMu.Unlock()
	return c.plis[rid]
}

// ensureSub creates the subscriber PC (answers server offers).
func (c *client) ensureSub() *webrtc.PeerConnection {
	c.candMu.Lock()
	defer c.candMu.Unlock()
	if c.sub != nil {
		return c.sub
	}
	pc, err := c.api.NewPeerConnection(c.cfg)
	must(c.t, err)
	pc.OnICECandidate(func(ci *webrtc.ICECandidate) {
		if ci != nil {
			_ = c.peer.AddCandidate(Subscriber, ci.ToJSON())
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rec := c.recorder(tr.ID())
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			buf := make([]byte, 1500)
			var p rtp.Packet
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				if p.Unmarshal(buf[:n]) != nil {
					continue
				}
				rx := rxPacket{seq: p.SequenceNumber, ts: p.Timestamp, at: time.Now()}
				if m, ok := media.ParseMarker(p.Payload); ok {
					rx.code, rx.rid, rx.frame = m.Code, m.RID, m.Frame
				}
				if w, _, ok := media.ParseVP8Keyframe(p.Payload); ok {
					rx.keyW = w
				}
				rec.mu.Lock()
				rec.pkts = append(rec.pkts, rx)
				rec.mu.Unlock()
			}
		}()
	})
	c.sub = pc
	return pc
}

func (c *client) recorder(id string) *recorder {
	c.recMu.Lock()
	defer c.recMu.Unlock()
	r := c.recs[id]
	if r == nil {
		r = &recorder{started: time.Now()}
		c.recs[id] = r
	}
	return r
}

// negotiateSub runs one server-offer / client-answer round.
func (c *client) negotiateSub() {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	pc := c.ensureSub()
	offer, err := c.peer.CreateSubscriberOffer(false)
	if err != nil {
		c.t.Errorf("CreateSubscriberOffer: %v", err)
		return
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		c.t.Errorf("client SetRemoteDescription: %v", err)
		return
	}
	c.remoteSet(Subscriber, pc)
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		c.t.Errorf("CreateAnswer: %v", err)
		return
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		c.t.Errorf("client SetLocalDescription: %v", err)
		return
	}
	if err := c.peer.SetSubscriberAnswer(answer.SDP); err != nil {
		c.t.Errorf("SetSubscriberAnswer: %v", err)
	}
}

func (c *client) close() { c.closeOnce.Do(c.doClose) }

func (c *client) doClose() {
	c.cancel()
	if c.vsender != nil && len(c.rids) > 1 {
		for _, rid := range c.rids {
			_ = c.vsender.SetReadDeadlineSimulcast(time.Now(), rid)
		}
		c.rtcpWG.Wait()
	}
	c.candMu.Lock()
	pub, sub := c.pub, c.sub
	c.candMu.Unlock()
	if pub != nil {
		_ = pub.Close()
	}
	if sub != nil {
		_ = sub.Close()
	}
	c.wg.Wait()
	c.rtcpWG.Wait()
}

// lastKeyWidth returns the width of the last keyframe received on a track.
func lastKeyWidth(pk []rxPacket) int {
	for i := len(pk) - 1; i >= 0; i-- {
		if pk[i].keyW > 0 {
			return pk[i].keyW
		}
	}
	return 0
}

// checkContinuity asserts seq numbers around index i are consecutive.
func seqContinuousAt(pk []rxPacket, i int) bool {
	if i == 0 {
		return true
	}
	// find the highest seq received before index i (loopback may reorder slightly)
	prev := pk[i-1].seq
	for j := i - 1; j >= 0 && j >= i-5; j-- {
		if int16(pk[j].seq-prev) > 0 {
			prev = pk[j].seq
		}
	}
	return pk[i].seq == prev+1
}
