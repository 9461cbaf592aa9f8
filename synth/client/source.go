package client

import (
	"errors"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// Source is media a client publishes instead of its synthetic video and audio:
// RTP from elsewhere, one VP8 layer (no simulcast) and Opus. A node's uplink
// publishes the node's program with it (its province tile at the parent). The
// Source outlives the client's connections: each (re)connect attaches new
// tracks, and packets written between connections are dropped.
type Source struct {
	// OnKeyframe, if set, is called when the server asks for a keyframe.
	OnKeyframe func()

	mu           sync.Mutex
	video, audio *webrtc.TrackLocalStaticRTP
}

var errNoTrack = errors.New("source: not attached to a connection")

// WriteVideo publishes one VP8 packet (its payload type and SSRC are rewritten).
func (s *Source) WriteVideo(p *rtp.Packet) error { return s.write(&s.video, p) }

// WriteAudio publishes one Opus packet.
func (s *Source) WriteAudio(p *rtp.Packet) error { return s.write(&s.audio, p) }

// write publishes p on the track *track of the current connection, if any.
func (s *Source) write(track **webrtc.TrackLocalStaticRTP, p *rtp.Packet) error {
	s.mu.Lock()
	t := *track
	s.mu.Unlock()
	if t == nil {
		return errNoTrack
	}
	return t.WriteRTP(p)
}

func (s *Source) attach(video, audio *webrtc.TrackLocalStaticRTP) {
	s.mu.Lock()
	s.video, s.audio = video, audio
	s.mu.Unlock()
}

func (s *Source) keyframe() {
	if s.OnKeyframe != nil {
		s.OnKeyframe()
	}
}

// publishSource publishes the Source's tracks on a new publisher PeerConnection.
func (s *session) publishSource(code string, src *Source) error {
	pc, err := s.newPC(legPub)
	if err != nil {
		return err
	}
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "relay-"+code)
	if err != nil {
		return err
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "relay-"+code)
	if err != nil {
		return err
	}
	for _, tr := range []*webrtc.TrackLocalStaticRTP{video, audio} {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			return err
		}
		s.wg.Add(1)
		go func() { // RTCP is read for the interceptors; keyframe requests come through the tap
			defer s.wg.Done()
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	if err := s.offerPublish(pc, nil); err != nil {
		return err
	}
	src.attach(video, audio)
	return nil
}
