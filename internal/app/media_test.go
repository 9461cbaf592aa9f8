package app

import (
	"testing"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/sfu"
)

// TestMediaAdapterNils: what the engine does not have reaches signaling as a
// nil interface, never a typed nil, since signaling compares with nil (a
// peer to route to, a track to record, a slot to create).
func TestMediaAdapterNils(t *testing.T) {
	cfg := sfu.DefaultConfig()
	cfg.UDPPort, cfg.TCPPort, cfg.IncludeLoopback, cfg.Interfaces = 0, -1, true, []string{"lo"}
	cfg.NetworkTypes = []string{"udp4"}
	e, err := sfu.NewEngine(cfg, nil, sfu.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m := MediaEngine(e)
	if p := m.Peer("nobody"); p != nil {
		t.Errorf("Peer of an unknown id = %#v, want nil", p)
	}
	p, err := m.NewPeer("07192#1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Peer("07192#1") == nil {
		t.Error("Peer of a live peer is nil")
	}
	if v, a := p.Tracks(); v != nil || a != nil {
		t.Errorf("Tracks of a peer that publishes nothing = %#v, %#v, want nil, nil", v, a)
	}
	if s := p.Slot("program_video"); s != nil {
		t.Errorf("Slot before AddSlot = %#v, want nil", s)
	}
	s, err := p.AddSlot("program_video", webrtc.RTPCodecTypeVideo)
	if err != nil || s == nil {
		t.Fatalf("AddSlot = %v, %v", s, err)
	}
	if err := s.SetSource(nil, 0); err != nil { // gated off
		t.Errorf("SetSource(nil): %v", err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}
