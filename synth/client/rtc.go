package client

import (
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/synth/rtc"
)

// The client's media setup lives in synth/rtc; these names stay here for the
// tests that build their own PeerConnections like the client's.

// BrowserMediaEngine is rtc.BrowserMediaEngine.
func BrowserMediaEngine() (*webrtc.MediaEngine, *interceptor.Registry, error) {
	return rtc.BrowserMediaEngine()
}

// SimulcastIDs is rtc.SimulcastIDs.
func SimulcastIDs(pc *webrtc.PeerConnection, sender *webrtc.RTPSender) (midID, ridID uint8, mid string) {
	return rtc.SimulcastIDs(pc, sender)
}

// KeyframeTap is rtc.KeyframeTap.
type KeyframeTap = rtc.KeyframeTap

// NewKeyframeTap is rtc.NewKeyframeTap.
func NewKeyframeTap(onPLI func(mediaSSRC uint32)) *KeyframeTap { return rtc.NewKeyframeTap(onPLI) }
