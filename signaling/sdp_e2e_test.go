package signaling_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/synth/rtc"
	"github.com/opscenter/opscenter/wire"
)

// loopbackAPI is a Pion API like the synthetic client's: browser codecs, loopback
// only, no mDNS.
func loopbackAPI(t *testing.T) *webrtc.API {
	t.Helper()
	api, err := rtc.LoopbackAPI()
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// legs are a client's two PeerConnections; pump feeds them the server's trickled
// candidates once their remote description is set.
type legs struct {
	c        *wsClient
	pub, sub *webrtc.PeerConnection
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newLegs(t *testing.T, c *wsClient) *legs {
	api := loopbackAPI(t)
	g := &legs{c: c, stop: make(chan struct{})}
	var err error
	if g.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if g.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	g.wg.Add(1)
	go g.pump()
	t.Cleanup(func() {
		close(g.stop)
		g.wg.Wait()
		_ = g.pub.Close()
		_ = g.sub.Close()
	})
	return g
}

func (g *legs) pump() {
	defer g.wg.Done()
	next := 0
	var pending []wire.CandidateMsg
	for {
		select {
		case <-g.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		g.c.mu.Lock()
		for ; next < len(g.c.msgs); next++ {
			if e := g.c.msgs[next].env; e.Type == wire.TypeICECandidate {
				var m wire.CandidateMsg
				if json.Unmarshal(e.Payload, &m) == nil && m.Candidate != nil {
					pending = append(pending, m)
				}
			}
		}
		g.c.mu.Unlock()
		pending = slices.DeleteFunc(pending, func(m wire.CandidateMsg) bool {
			pc := g.pub
			if m.Target == "subscriber" {
				pc = g.sub
			}
			if pc.RemoteDescription() == nil {
				return false
			}
			_ = pc.AddICECandidate(webrtc.ICECandidateInit(*m.Candidate))
			return true
		})
	}
}

// local applies a local description and returns it with its candidates.
func local(t *testing.T, pc *webrtc.PeerConnection, d webrtc.SessionDescription) string {
	t.Helper()
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ICE gathering did not complete")
	}
	return pc.LocalDescription().SDP
}

func waitPC(t *testing.T, what string, pc *webrtc.PeerConnection) {
	t.Helper()
	waitT(t, what, 15*time.Second, func() bool { return pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
}

// Descriptions that parse but are not usable.
func noMedia(s string) string { return s[:strings.Index(s, "m=")] }

func withoutLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\r\n") {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(l, p) }) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

func noICE(s string) string { return withoutLines(s, "a=ice-ufrag:", "a=ice-pwd:") }

// TestBadSDPKeepsLegsE2E sends answers and offers that parse but are not valid
// (no media section, no ICE credentials, ...) to a real server from real Pion
// PeerConnections. Each is refused with invalid_sdp, and the legs keep their last
// good state: the right answer to the same offer is accepted, ice_restart works,
// and later publish offers are answered, all on the same WebSocket.
func TestBadSDPKeepsLegsE2E(t *testing.T) {
	l := startLive(t)
	code := l.communes(1)[0]
	c := dialWS(t, l, l.a.Endpoint(code).Token)
	g := newLegs(t, c)
	n := 0
	id := func() string { n++; return fmt.Sprintf("r%d", n) }
	sdpMsg := func(s string) wire.SDPMsg { return wire.SDPMsg{SDP: s} }

	// Subscriber leg: bad answers to the first offer, then the right one.
	from := c.mark()
	c.join(wire.RoleEndpoint)
	answerOffer := func(from int) (good string) {
		t.Helper()
		m := c.wait(from, "subscriber_offer", func(e wire.Envelope) bool { return e.Type == wire.TypeSubscriberOffer })
		var o wire.SDPMsg
		_ = json.Unmarshal(m.env.Payload, &o)
		if err := g.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o.SDP}); err != nil {
			t.Fatal(err)
		}
		a, err := g.sub.CreateAnswer(nil)
		if err != nil {
			t.Fatal(err)
		}
		good = local(t, g.sub, a)
		for name, bad := range map[string]string{
			"no media section":   noMedia(good),
			"no ICE credentials": noICE(good),
			"no fingerprint":     withoutLines(good, "a=fingerprint:"),
			"setup actpass":      strings.ReplaceAll(good, "a=setup:active", "a=setup:actpass"),
			"a section missing":  good[:strings.LastIndex(good, "m=")],
		} {
			f, r := c.mark(), id()
			c.send(wire.TypeSubscriberAnswer, r, sdpMsg(bad))
			e := c.expectError(f, r, wire.ErrInvalidSDP)
			t.Logf("subscriber answer with %s: %s", name, e.Message)
		}
		f, r := c.mark(), id()
		c.send(wire.TypeSubscriberAnswer, r, sdpMsg(good))
		c.expectAck(f, r, wire.TypeSubscriberAnswer)
		return good
	}
	answerOffer(from)
	waitPC(t, "subscriber leg connected after the bad answers", g.sub)

	// ice_restart still works, and so does the same dance on its offer.
	f, r := c.mark(), id()
	c.send(wire.TypeICERestart, r, nil)
	c.expectAck(f, r, wire.TypeICERestart)
	answerOffer(f)
	waitPC(t, "subscriber leg connected after the ICE restart", g.sub)

	// Publisher leg: bad offers, then the right one, then a renegotiation.
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", code)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	publish := func(opts *webrtc.OfferOptions) {
		t.Helper()
		o, err := g.pub.CreateOffer(opts)
		if err != nil {
			t.Fatal(err)
		}
		good := local(t, g.pub, o)
		for name, bad := range map[string]string{
			"no media section":     noMedia(good),
			"no ICE credentials":   noICE(good),
			"no mid":               withoutLines(good, "a=mid:"),
			"no setup":             withoutLines(good, "a=setup:"),
			"an unknown codec":     strings.Replace(good, "UDP/TLS/RTP/SAVPF 96", "UDP/TLS/RTP/SAVPF 77 96", 1),
			"a broken candidate":   strings.Replace(good, "a=candidate:", "a=candidate:x ", 1),
			"conflicting ufrags":   good + "a=ice-ufrag:zzzzzzzz\r\n",
			"garbage fingerprints": strings.ReplaceAll(good, "a=fingerprint:sha-256 ", "a=fingerprint:sha-256 00"),
		} {
			f, r := c.mark(), id()
			c.send(wire.TypePublishOffer, r, sdpMsg(bad))
			e := c.expectError(f, r, wire.ErrInvalidSDP)
			t.Logf("publish offer with %s: %s", name, e.Message)
		}
		f, r := c.mark(), id()
		c.send(wire.TypePublishOffer, r, sdpMsg(good))
		m := c.reply(f, r)
		if m.env.Type != wire.TypePublishAnswer {
			t.Fatalf("the right publish offer after bad ones answered with %s", m.raw)
		}
		var a wire.SDPMsg
		_ = json.Unmarshal(m.env.Payload, &a)
		if err := g.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
			t.Fatal(err)
		}
	}
	publish(nil)
	waitPC(t, "publisher leg connected after the bad offers", g.pub)
	publish(&webrtc.OfferOptions{ICERestart: true})
	waitPC(t, "publisher leg connected after a restart with bad offers first", g.pub)

	// The subscriber leg still answers too.
	f, r = c.mark(), id()
	c.send(wire.TypeICERestart, r, nil)
	c.expectAck(f, r, wire.TypeICERestart)
	answerOffer(f)
	waitPC(t, "subscriber leg connected at the end", g.sub)
}
