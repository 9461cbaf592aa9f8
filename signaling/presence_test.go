package signaling

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/wire"
)

// TestJudgeNoMedia: media expected (mute_state says on, negotiated, not
// paused) but none for DegradedNoMedia is degraded; media paused or turned
// off on purpose, or not yet due, is not.
func TestJudgeNoMedia(t *testing.T) {
	now := time.Now()
	long, recent := now.Add(-6*time.Second), now.Add(-2*time.Second)
	camOn := mediaOn{known: true, camera: true, cameraAt: long.Add(-time.Minute)}
	micOn := mediaOn{known: true, mic: true, micAt: long.Add(-time.Minute)}
	video := func(last time.Time) media.PeerStats {
		return media.PeerStats{PubVideo: media.PublishedMedia{Negotiated: true, LastRTP: last}}
	}
	cases := []struct {
		name   string
		on     mediaOn
		pubUp  time.Time
		legUp  bool
		st     media.PeerStats
		expect bool
	}{
		{"camera on, RTP 6 s ago", camOn, long, true, video(long), true},
		{"camera on, RTP 2 s ago", camOn, long, true, video(recent), false},
		{"camera on, never any RTP since the leg came up 6 s ago", camOn, long, true, video(time.Time{}), true},
		{"camera on, leg up 2 s ago", camOn, recent, true, video(time.Time{}), false},
		{"camera turned on 2 s ago", mediaOn{known: true, camera: true, cameraAt: recent}, long, true, video(time.Time{}), false},
		{"every layer paused", camOn, long, true, media.PeerStats{PubVideo: media.PublishedMedia{Negotiated: true, LastRTP: long, Paused: true}}, false},
		{"a layer resumed 2 s ago", camOn, long, true, media.PeerStats{PubVideo: media.PublishedMedia{Negotiated: true, LastRTP: long, ResumedAt: recent}}, false},
		{"camera off", mediaOn{known: true}, long, true, video(long), false},
		{"no mute_state yet", mediaOn{}, long, true, video(long), false},
		{"video not negotiated", camOn, long, true, media.PeerStats{}, false},
		{"publisher leg down (judged by ICE)", camOn, long, false, video(long), false},
		{"microphone on, audio 6 s ago", micOn, long, true, media.PeerStats{PubAudio: media.PublishedMedia{Negotiated: true, LastRTP: long}}, true},
		{"microphone off, no audio", mediaOn{known: true}, long, true, media.PeerStats{PubAudio: media.PublishedMedia{Negotiated: true, LastRTP: long}}, false},
	}
	for _, tc := range cases {
		m := &member{mediaOn: tc.on, pubUpAt: tc.pubUp, legUp: [2]bool{tc.legUp, true}}
		if got := judgeNoMedia(m, tc.st, now); got != tc.expect {
			t.Errorf("%s: no media = %v, want %v", tc.name, got, tc.expect)
		}
	}
}

// TestNoMediaPresence: no_media makes a connected endpoint degraded with
// the reason, tells the consoles and the endpoint itself, and clears.
func TestNoMediaPresence(t *testing.T) {
	r := testRoom("07192")
	ep := fakeConn("07192", "p1", wire.RoleEndpoint, 0)
	cons := fakeConn("", "c1", wire.RoleConsole, 1)
	r.conns[ep.peerID], r.conns[cons.peerID] = ep, cons
	m := r.member("07192")
	m.conn = ep
	m.mediaUp, m.legUp = true, [2]bool{true, true}
	now := time.Now()
	last := func(c *conn) wire.PresenceMsg {
		t.Helper()
		c.out.mu.Lock()
		defer c.out.mu.Unlock()
		for i := len(c.out.items) - 1; i >= c.out.head; i-- {
			var env struct {
				Type    string           `json:"type"`
				Payload wire.PresenceMsg `json:"payload"`
			}
			if json.Unmarshal(c.out.items[i].data, &env) == nil && env.Type == wire.TypePresence && env.Payload.Code == "07192" {
				return env.Payload
			}
		}
		t.Fatalf("%s: no presence message for 07192", c.peerID)
		return wire.PresenceMsg{}
	}
	for _, step := range []struct {
		noMedia       bool
		state, reason string
	}{{false, wire.StateConnected, ""}, {true, wire.StateDegraded, ReasonNoMedia}, {false, wire.StateConnected, ""}} {
		m.noMedia = step.noMedia
		r.publishPresence(m, now)
		for _, c := range []*conn{cons, ep} {
			if p := last(c); p.State != step.state || p.Reason != step.reason {
				t.Errorf("%s told %s/%q, want %s/%q", c.peerID, p.State, p.Reason, step.state, step.reason)
			}
		}
	}
}
