package sfu

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v2"
	"github.com/pion/srtp/v2"
	"github.com/pion/webrtc/v3"
)

// peerEgress is a Peer's subscriber-leg state (embedded in Peer): the
// downlink's own SRTP output, the TWCC history, the bandwidth estimate and
// the layer allocation that follows it. The lock order is on Peer.
type peerEgress struct {
	subReady atomic.Bool // subscriber leg connected (DTLS/SRTP up)
	// subDirect: the subscriber leg's selected ICE pair is UDP, so
	// publisher readers write to its slots directly (Slot.enqueue).
	subDirect atomic.Bool
	// own downlink output (below) and congestion control (egress_twcc.go, egress_bwe.go)
	down     atomic.Pointer[downlink]
	legPath  atomic.Int32 // pathNone, pathOwn or pathPion: counted in Engine.legs*; changed under Peer.mu
	tw       twccHistory
	estMu    sync.Mutex // serialises feedback into est; guards fbKey and acks
	est      *estimator
	fbKey    int32 // last feedback processed (count<<16 | base seq), -1 = none
	acks     []ack
	remb     atomic.Int64
	rembTime atomic.Int64
	maxBps   atomic.Int64

	allocMu sync.Mutex // serialises reallocate; guards probe
	probe   probeState
}

// downlink is a subscriber leg's own SRTP output: the leg's SRTP master key
// and salt for our direction, taken from its DTLS connection, and where to
// send. Slots encrypt their packets with their own srtp.Context (one per
// slot: its SSRC state needs no lock, and the slot's writer mutex already
// serialises its writes) and hand the datagram straight to the engine's UDP
// socket, inside the fan-out's sendmmsg batch.
//
// This is the hot path of the SFU: Pion's RTPSender.WriteRTP would run the
// interceptor chain, the SRTP session's lock and map, and the ICE and mux
// layers for every packet and every subscriber, about 60 % of the server's
// CPU at N = 190 (docs/benchmarks.md). Media, NACK answers and keyframe
// re-syncs all take this path once the leg is up, so one SSRC is never
// encrypted by two contexts (their rollover counters would disagree).
//
// Pion v3 does not export a DTLS transport's connection or SRTP endpoint;
// dtlsInternals (egress_pion.go) reads them by reflection from the pinned
// version and fails cleanly (the leg then stays on Pion's write path) if
// they ever change.
type downlink struct {
	key, salt []byte
	profile   srtp.ProtectionProfile
	ep        io.Writer                   // Pion's SRTP mux endpoint: the selected ICE pair, any transport
	udp       atomic.Pointer[net.UDPAddr] // remote address while the pair is UDP on the engine socket
}

// newDownlink extracts the keys of a connected subscriber leg.
func newDownlink(pc *webrtc.PeerConnection) (*downlink, error) {
	dt := pc.SCTP().Transport()
	if dt == nil {
		return nil, fmt.Errorf("%w: no DTLS transport", errNoDTLSInternals)
	}
	// State takes the transport's lock, which Start held while it stored the
	// connection: this orders our read after that write.
	if s := dt.State(); s != webrtc.DTLSTransportStateConnected {
		return nil, fmt.Errorf("sfu: DTLS transport %s", s)
	}
	conn, ep, err := dtlsInternals(dt)
	if err != nil {
		return nil, err
	}
	state := conn.ConnectionState()
	isClient, err := dtlsClientFromSDP(pc.CurrentLocalDescription(), pc.CurrentRemoteDescription())
	if err != nil {
		return nil, err
	}
	dp, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, errors.New("sfu: no SRTP protection profile negotiated")
	}
	var profile srtp.ProtectionProfile
	switch dp {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AEAD_AES_256_GCM:
		profile = srtp.ProtectionProfileAeadAes256Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return nil, fmt.Errorf("sfu: unsupported SRTP profile %#x", uint16(dp))
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, isClient); err != nil {
		return nil, fmt.Errorf("sfu: SRTP keys: %w", err)
	}
	return &downlink{key: cfg.Keys.LocalMasterKey, salt: cfg.Keys.LocalMasterSalt, profile: profile, ep: ep}, nil
}

// newContext returns a fresh SRTP context for one slot.
func (d *downlink) newContext() (*srtp.Context, error) {
	return srtp.CreateContext(d.key, d.salt, d.profile)
}

// setPair follows the leg's selected ICE pair: a UDP pair is written on the
// engine's socket directly, anything else through Pion's endpoint.
func (d *downlink) setPair(pair *webrtc.ICECandidatePair) {
	if pair == nil || pair.Local == nil || pair.Remote == nil || pair.Local.Protocol != webrtc.ICEProtocolUDP {
		d.udp.Store(nil)
		return
	}
	ip := net.ParseIP(pair.Remote.Address)
	if ip == nil {
		d.udp.Store(nil)
		return
	}
	d.udp.Store(&net.UDPAddr{IP: ip, Port: int(pair.Remote.Port)})
}

// ensureDownlink takes the leg's SRTP keys once its DTLS is up (newDownlink).
// It runs once per leg: an ICE reconnect keeps the DTLS session, and a new
// context would restart the rollover counters the receiver is tracking.
func (p *Peer) ensureDownlink(pc *webrtc.PeerConnection) {
	if p.down.Load() != nil {
		return
	}
	d, err := newDownlink(pc)
	if err != nil {
		if p.setLegPath(pathPion) {
			p.log.Error("own SRTP output unavailable for this leg, using Pion's slower writer", "err", err)
		}
		return
	}
	p.setLegPath(pathOwn)
	it := pc.SCTP().Transport().ICETransport()
	pair, _ := it.GetSelectedCandidatePair()
	d.setPair(pair)
	p.down.Store(d)
	if again, _ := it.GetSelectedCandidatePair(); again != pair { // changed meanwhile
		d.setPair(again)
	}
}

// setLegPath counts the subscriber leg on a downlink path (gauge
// opscenter_sfu_downlink_legs); false if it was already on it or the peer
// is closed. Under mu, so Close's uncounting never misses it.
func (p *Peer) setLegPath(path int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.legPath.Load()
	if p.closed || old == path {
		return false
	}
	p.e.countLeg(old, -1)
	p.e.countLeg(path, 1)
	p.legPath.Store(path)
	return true
}

// Downlink paths, counted per subscriber leg (Engine.legsOwn/legsPion).
const (
	pathNone int32 = iota
	pathOwn
	pathPion
)

func (e *Engine) countLeg(path int32, d int64) {
	switch path {
	case pathOwn:
		e.legsOwn.Add(d)
	case pathPion:
		e.legsPion.Add(d)
	}
}

// dtlsClientFromSDP says whether we are the DTLS client of a negotiated leg,
// from a=setup (RFC 5763): it decides which half of the exported keying
// material is ours. "active" is the client; an offerer's "actpass" takes
// the role the answer did not.
func dtlsClientFromSDP(local, remote *webrtc.SessionDescription) (bool, error) {
	if local == nil || remote == nil {
		return false, errors.New("sfu: DTLS role: leg not negotiated")
	}
	switch setupAttr(local.SDP) {
	case "active":
		return true, nil
	case "passive":
		return false, nil
	}
	switch setupAttr(remote.SDP) {
	case "active":
		return false, nil
	case "passive":
		return true, nil
	}
	return false, errors.New("sfu: DTLS role: no a=setup active/passive in the descriptions")
}

// setupAttr returns the first a=setup value of an SDP (session or media level).
func setupAttr(s string) string {
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "a=setup:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
