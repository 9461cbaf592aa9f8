// Package rtc is the media side of opscenter's Go clients: the codecs and
// header extensions a browser offers, the ICE settings of a loopback client,
// simulcast tracks and the extension ids a Pion v3 publisher stamps itself,
// and the RTCP tap that turns PLI/FIR into keyframes. synth/client (the
// protocol client, which the load generator drives) and the sfu package's
// tests (Pion clients talking to a Peer without signaling) build their
// PeerConnections from it, so both look to the server like the same peer.
package rtc

import (
	"slices"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// RegisterCodecs registers what a browser offers opscenter: VP8 with NACK,
// PLI and transport-wide CC feedback, Opus, and the simulcast and audio-level
// header extensions.
func RegisterCodecs(me *webrtc.MediaEngine) error {
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: webrtc.TypeRTCPFBTransportCC}}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		return err
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return err
	}
	return me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio)
}

// BrowserMediaEngine is RegisterCodecs with Pion's default interceptors.
func BrowserMediaEngine() (*webrtc.MediaEngine, *interceptor.Registry, error) {
	me := &webrtc.MediaEngine{}
	if err := RegisterCodecs(me); err != nil {
		return nil, nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, nil, err
	}
	return me, ir, nil
}

// Settings is the setting engine of a client on the test machine: no mDNS,
// loopback candidates included, gathering on networkTypes and, when
// interfaces is not empty, only on those interfaces.
func Settings(networkTypes []webrtc.NetworkType, interfaces []string) *webrtc.SettingEngine {
	se := &webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes(slices.Clone(networkTypes))
	if len(interfaces) > 0 {
		ifs := slices.Clone(interfaces)
		se.SetInterfaceFilter(func(n string) bool { return slices.Contains(ifs, n) })
	}
	return se
}

// AddSimulcast adds one VP8 video track with an encoding per rid (one rid:
// no simulcast, no rid) to pc, and returns its sender and tracks in rid order.
func AddSimulcast(pc *webrtc.PeerConnection, streamID string, rids []string) (*webrtc.RTPSender, []*webrtc.TrackLocalStaticRTP, error) {
	return addSimulcast(pc, streamID, rids, pc.AddTrack)
}

// AddSimulcastSendOnly is AddSimulcast on a send-only transceiver, as OBS
// (a WHIP publisher) adds its video.
func AddSimulcastSendOnly(pc *webrtc.PeerConnection, streamID string, rids []string) (*webrtc.RTPSender, []*webrtc.TrackLocalStaticRTP, error) {
	return addSimulcast(pc, streamID, rids, func(tr webrtc.TrackLocal) (*webrtc.RTPSender, error) {
		x, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		return x.Sender(), nil
	})
}

// addSimulcast adds the first track with add and the others as its sender's
// encodings.
func addSimulcast(pc *webrtc.PeerConnection, streamID string, rids []string,
	add func(webrtc.TrackLocal) (*webrtc.RTPSender, error)) (*webrtc.RTPSender, []*webrtc.TrackLocalStaticRTP, error) {
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	var tracks []*webrtc.TrackLocalStaticRTP
	var sender *webrtc.RTPSender
	for i, rid := range rids {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if len(rids) > 1 {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(vp8, "video", streamID, opts...)
		if err != nil {
			return nil, nil, err
		}
		tracks = append(tracks, tr)
		if i == 0 {
			if sender, err = add(tr); err != nil {
				return nil, nil, err
			}
		} else if err := sender.AddEncoding(tr); err != nil {
			return nil, nil, err
		}
	}
	return sender, tracks, nil
}

// AddOpus adds one Opus audio track to pc.
func AddOpus(pc *webrtc.PeerConnection, streamID string) (*webrtc.RTPSender, *webrtc.TrackLocalStaticRTP, error) {
	tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", streamID)
	if err != nil {
		return nil, nil, err
	}
	s, err := pc.AddTrack(tr)
	if err != nil {
		return nil, nil, err
	}
	return s, tr, nil
}

// SimulcastIDs returns what a simulcast publisher must stamp on each packet itself
// with Pion v3: the negotiated ids of the mid and rid header extensions, and the
// sender's mid.
func SimulcastIDs(pc *webrtc.PeerConnection, sender *webrtc.RTPSender) (midID, ridID uint8, mid string) {
	for _, h := range sender.GetParameters().HeaderExtensions {
		switch h.URI {
		case sdp.SDESMidURI:
			midID = uint8(h.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(h.ID)
		}
	}
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == sender {
			mid = tr.Mid()
		}
	}
	return midID, ridID, mid
}

// AudioLevelID is the negotiated id of the audio-level extension (0: none).
func AudioLevelID(sender *webrtc.RTPSender) uint8 {
	for _, h := range sender.GetParameters().HeaderExtensions {
		if h.URI == sdp.AudioLevelURI {
			return uint8(h.ID)
		}
	}
	return 0
}

// LoopbackAPI is the API of a plain browser-like client on loopback (UDP4
// on lo): BrowserMediaEngine with Settings, for tests that drive their own
// PeerConnections.
func LoopbackAPI() (*webrtc.API, error) {
	me, ir, err := BrowserMediaEngine()
	if err != nil {
		return nil, err
	}
	se := Settings([]webrtc.NetworkType{webrtc.NetworkTypeUDP4}, []string{"lo"})
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*se)), nil
}
