package sfu

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v2"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/turn/v2"
	"github.com/pion/webrtc/v3"
)

// Engine owns the network sockets (one ICE UDP port, one ICE-TCP port,
// optional TURN) and the two webrtc.APIs (publisher and subscriber legs).
type Engine struct {
	cfg Config
	log *slog.Logger
	// hooks may be replaced after NewEngine (SetHooks): the caller that
	// builds the engine is not always the one its callbacks reach.
	hooks atomic.Pointer[Hooks]

	pubAPI *webrtc.API
	subAPI *webrtc.API

	udpConn net.PacketConn
	batch   *batchConn // wraps udpConn: sendmmsg per fan-out (egress_batchconn.go)
	udpMux  ice.UDPMux
	tcpLn   net.Listener
	tcpMux  ice.TCPMux
	turn    *turn.Server
	turnPC  net.PacketConn

	udpPort, tcpPort, turnPort int

	rtcpTaps *rtcpTapFactory // publisher-leg RTCP readers (ingress_rtcptap.go)
	spread   *spreader       // fan-out helpers, nil = serial fan-out (ingress_spread.go)

	// forwarding counters (egress_fwdstats.go)
	fwdPackets, fwdBytes, fwdDropped atomic.Uint64
	fwdDelay                         delayHist

	// downlink paths (egress_downlink.go): subscriber legs on the own SRTP output
	// and on Pion's writer, and whether the startup check found Pion's
	// internals the own output needs.
	legsOwn, legsPion atomic.Int64
	ownSRTPOK         atomic.Bool

	// mu guards peers and closed. A leaf: it is never held while a Peer is
	// called (NewPeer only builds one), so Peer locks never nest inside it.
	mu     sync.Mutex
	peers  map[string]*Peer
	closed bool
	wg     sync.WaitGroup // reader goroutines; added to only through goReader
}

// goReader runs f on a reader goroutine that Close waits for, unless the
// engine is closed (then it reports false and runs nothing). Pion starts
// receivers and RTCP streams on its own goroutines, which can still be at
// work while Close waits: the check and the Add under mu keep every Add
// before Wait (a WaitGroup must not be added to while it is being waited on).
func (e *Engine) goReader(f func()) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		f()
	}()
	return true
}

func (c *Config) setDefaults() {
	if c.PLIInterval <= 0 {
		c.PLIInterval = 500 * time.Millisecond
	}
	if c.PauseDelay <= 0 {
		c.PauseDelay = 1500 * time.Millisecond
	}
	if c.PacketCacheSize <= 0 {
		c.PacketCacheSize = 512
	}
	if c.InitialBitrate <= 0 {
		c.InitialBitrate = 2_500_000
	}
	if c.MinBitrate <= 0 {
		c.MinBitrate = 100_000
	}
	if c.MaxBitrate <= 0 {
		c.MaxBitrate = 10_000_000
	}
	if c.WriterIdle <= 0 {
		c.WriterIdle = 10 * time.Second
	}
	if c.WriterQueue <= 0 {
		c.WriterQueue = 256
	}
	if len(c.NetworkTypes) == 0 {
		c.NetworkTypes = []string{"udp4", "udp6", "tcp4", "tcp6"}
	}
	if c.TURN.Realm == "" {
		c.TURN.Realm = "opscenter"
	}
}

// NewEngine opens the sockets and builds the WebRTC APIs.
func NewEngine(cfg Config, log *slog.Logger, hooks Hooks) (*Engine, error) {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Engine{cfg: cfg, log: log, peers: make(map[string]*Peer)}
	e.hooks.Store(&hooks)
	e.rtcpTaps = &rtcpTapFactory{e: e}
	if err := CheckPionInternals(); err != nil {
		// Every leg would fall back to Pion's writer at ~1.6× the CPU.
		log.Error("sfu: own SRTP output unavailable with this Pion version; every subscriber leg will use Pion's slower writer", "err", err)
	} else {
		e.ownSRTPOK.Store(true)
	}

	var types []webrtc.NetworkType
	wantUDP, wantTCP, wantV6 := false, false, false
	for _, n := range cfg.NetworkTypes {
		t, err := webrtc.NewNetworkType(n)
		if err != nil {
			return nil, fmt.Errorf("%w: network type %q", ErrConfig, n)
		}
		types = append(types, t)
		switch t {
		case webrtc.NetworkTypeUDP4:
			wantUDP = true
		case webrtc.NetworkTypeUDP6:
			wantUDP, wantV6 = true, true
		case webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6:
			wantTCP = true
		}
	}
	if cfg.TCPPort < 0 {
		types = slices.DeleteFunc(types, func(t webrtc.NetworkType) bool {
			return t == webrtc.NetworkTypeTCP4 || t == webrtc.NetworkTypeTCP6
		})
		wantTCP = false
	}
	for _, ip := range cfg.PublicIPs {
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("%w: public IP %q", ErrConfig, ip)
		}
	}

	lf := logging.NewDefaultLoggerFactory()
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	se.SetNetworkTypes(types)
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	if len(cfg.Interfaces) > 0 {
		ifs := slices.Clone(cfg.Interfaces)
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(ifs, name) })
	}
	if len(cfg.PublicIPs) > 0 {
		se.SetNAT1To1IPs(cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}

	if cfg.VNet != nil {
		se.SetVNet(cfg.VNet)
	} else {
		if wantUDP {
			network, host := "udp4", "0.0.0.0"
			if wantV6 {
				network, host = "udp", "::"
			}
			conn, err := net.ListenPacket(network, net.JoinHostPort(host, fmt.Sprint(cfg.UDPPort)))
			if err != nil {
				return nil, fmt.Errorf("sfu: listen ICE UDP: %w", err)
			}
			e.udpConn = conn
			e.udpPort = conn.LocalAddr().(*net.UDPAddr).Port
			e.batch = newBatchConn(conn)
			e.udpMux = webrtc.NewICEUDPMux(lf.NewLogger("udpmux"), e.batch)
			se.SetICEUDPMux(e.udpMux)
		}
		if wantTCP {
			ln, err := net.Listen("tcp", fmt.Sprintf(":%d", cfg.TCPPort))
			if err != nil {
				e.closeSockets()
				return nil, fmt.Errorf("sfu: listen ICE TCP: %w", err)
			}
			e.tcpLn = ln
			e.tcpPort = ln.Addr().(*net.TCPAddr).Port
			e.tcpMux = webrtc.NewICETCPMux(lf.NewLogger("tcpmux"), ln, 32)
			se.SetICETCPMux(e.tcpMux)
		}
		if cfg.TURN.Enabled {
			if err := e.startTURN(lf); err != nil {
				e.closeSockets()
				return nil, err
			}
		}
	}

	var err error
	if e.pubAPI, err = e.newPublisherAPI(se); err != nil {
		e.closeSockets()
		return nil, err
	}
	if e.subAPI, err = e.newSubscriberAPI(se); err != nil {
		e.closeSockets()
		return nil, err
	}
	// Last, so that no failure above leaves workers behind.
	e.spread = newSpreader(e.batch, spreadWorkers(), cfg.FanoutSpread)
	return e, nil
}

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "goog-remb"},
	{Type: "ccm", Parameter: "fir"},
	{Type: "nack"},
	{Type: "nack", Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBTransportCC},
}

var (
	vp8Codec  = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}
	opusCodec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
		SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}}
)

func registerCodecs(me *webrtc.MediaEngine, rtx bool) error {
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: vp8Codec, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		return err
	}
	if rtx {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/rtx", ClockRate: 90000, SDPFmtpLine: "apt=96"},
			PayloadType:        97,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opusCodec, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	return me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio)
}

// newPublisherPC creates a publisher PeerConnection whose RTCP arrivals are
// recorded in sink.
func (e *Engine) newPublisherPC(sink *rtcpSink) (*webrtc.PeerConnection, error) {
	e.rtcpTaps.mu.Lock()
	defer e.rtcpTaps.mu.Unlock()
	e.rtcpTaps.next = sink
	pc, err := e.pubAPI.NewPeerConnection(webrtc.Configuration{})
	e.rtcpTaps.next = nil
	return pc, err
}

// newPublisherAPI: receives simulcast; NACK generator (no responder), RTCP
// reports, TWCC feedback generation (for the publisher's own BWE).
func (e *Engine) newPublisherAPI(se webrtc.SettingEngine) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me, true); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return nil, err
	}
	ir.Add(e.rtcpTaps) // last: it reads what the others have seen
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// newSubscriberAPI: sends. No interceptors: slots write their packets with
// the transport-wide sequence number extension and their own SRTP
// (egress_downlink.go), send their own sender reports, feed TWCC feedback
// to the peer's estimator (egress_estimator.go, egress_twcc.go), and answer
// NACKs from the shared publisher-layer cache. Pion's per-packet
// interceptor chain was most of the server's CPU at N = 190.
func (e *Engine) newSubscriberAPI(se webrtc.SettingEngine) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me, false); err != nil {
		return nil, err
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, k); err != nil {
			return nil, err
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(se)), nil
}

// newSubscriberPC creates a subscriber PeerConnection.
func (e *Engine) newSubscriberPC() (*webrtc.PeerConnection, error) {
	return e.subAPI.NewPeerConnection(webrtc.Configuration{})
}

// SetHooks replaces the callbacks given to NewEngine. Callbacks already
// running finish with the old ones. internal/app builds the engine before
// the signaling service its hooks call exists, then sets them here.
func (e *Engine) SetHooks(h Hooks) { e.hooks.Store(&h) }

// UDPPort is the actual ICE UDP port (0 with VNet).
func (e *Engine) UDPPort() int { return e.udpPort }

// TCPPort is the actual ICE-TCP port (0 if disabled).
func (e *Engine) TCPPort() int { return e.tcpPort }

// TURNPort is the actual TURN UDP port (0 if disabled).
func (e *Engine) TURNPort() int { return e.turnPort }

// NewPeer registers a new endpoint. Its PeerConnections are created lazily.
func (e *Engine) NewPeer(id string) (*Peer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if _, ok := e.peers[id]; ok {
		return nil, fmt.Errorf("%w: %q", ErrPeerExists, id)
	}
	p := newPeer(e, id)
	e.peers[id] = p
	return p, nil
}

// Peer returns the peer with that id, or nil.
func (e *Engine) Peer(id string) *Peer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peers[id]
}

func (e *Engine) removePeer(p *Peer) {
	e.mu.Lock()
	if e.peers[p.id] == p {
		delete(e.peers, p.id)
	}
	e.mu.Unlock()
}

// ActiveSpeaker returns the peer whose published audio is loudest (smoothed
// RFC 6464 levels), or "" if everyone is silent (level below 0.1).
func (e *Engine) ActiveSpeaker() (string, float64) {
	e.mu.Lock()
	peers := make([]*Peer, 0, len(e.peers))
	for _, p := range e.peers {
		peers = append(peers, p)
	}
	e.mu.Unlock()
	best, lvl := "", 0.1
	for _, p := range peers {
		if l := p.AudioLevel(); l > lvl {
			best, lvl = p.id, l
		}
	}
	if best == "" {
		return "", 0
	}
	return best, lvl
}

// Close closes every peer and the sockets. It waits for the reader goroutines.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	peers := make([]*Peer, 0, len(e.peers))
	for _, p := range e.peers {
		peers = append(peers, p)
	}
	e.mu.Unlock()
	var errs []error
	for _, p := range peers {
		if err := p.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	e.wg.Wait()
	e.spread.stop() // after the readers: nobody hands it a part any more
	e.closeSockets()
	if len(errs) > 0 {
		return fmt.Errorf("sfu: close: %v", errs)
	}
	return nil
}

func (e *Engine) closeSockets() {
	if e.turn != nil {
		_ = e.turn.Close()
	}
	if e.udpMux != nil {
		_ = e.udpMux.Close()
	} else if e.udpConn != nil {
		_ = e.udpConn.Close()
	}
	if e.tcpMux != nil {
		e.tcpMux.Close()
	} else if e.tcpLn != nil {
		_ = e.tcpLn.Close()
	}
}

func (e *Engine) reportDemand(peerID, rid string, needed bool) {
	e.log.Debug("layer demand", "peer", peerID, "rid", rid, "needed", needed)
	if f := e.hooks.Load().OnLayerDemand; f != nil {
		f(peerID, rid, needed)
	}
}
