package signaling_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// rtpDropRelay forwards a client's ICE/UDP traffic to the server and, while
// dropping, discards the RTP the client sends (STUN, DTLS and RTCP pass):
// a publisher whose encoder stalls while its page and ICE look fine.
type rtpDropRelay struct {
	ln      *net.UDPConn
	target  *net.UDPAddr
	drop    atomic.Bool
	dropped atomic.Int64
	mu      sync.Mutex
	up      map[string]*net.UDPConn
}

func newRTPDropRelay(t *testing.T, target string) *rtpDropRelay {
	ta, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &rtpDropRelay{ln: ln, target: ta, up: map[string]*net.UDPConn{}}
	t.Cleanup(func() {
		r.mu.Lock()
		for _, c := range r.up {
			c.Close()
		}
		r.mu.Unlock()
		ln.Close()
	})
	go r.run()
	return r
}

// isRTP: version 2 and a payload type outside RTCP's 192-223.
func isRTP(b []byte) bool { return len(b) >= 12 && b[0]&0xc0 == 0x80 && (b[1] < 192 || b[1] > 223) }

func (r *rtpDropRelay) run() {
	buf := make([]byte, 1600)
	for {
		n, from, err := r.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.drop.Load() && isRTP(buf[:n]) {
			r.dropped.Add(1)
			continue
		}
		r.mu.Lock()
		c := r.up[from.String()]
		if c == nil {
			if c, err = net.DialUDP("udp4", nil, r.target); err != nil {
				r.mu.Unlock()
				continue
			}
			r.up[from.String()] = c
			go func() { // server → client, untouched
				b := make([]byte, 1600)
				for {
					n, err := c.Read(b)
					if errors.Is(err, net.ErrClosed) {
						return
					} else if err != nil {
						continue
					}
					_, _ = r.ln.WriteToUDP(b[:n], from)
				}
			}()
		}
		r.mu.Unlock()
		_, _ = c.Write(buf[:n])
	}
}

// waitPresence waits for a presence message about code with the given state
// and reason, received by c since the given time.
func waitPresence(t *testing.T, c *client.Client, who, code, state, reason string, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	_, err := c.WaitMessage(wire.TypePresence, since, timeout, func(env wire.Envelope) bool {
		var p wire.PresenceMsg
		return json.Unmarshal(env.Payload, &p) == nil && p.Code == code && p.State == state && p.Reason == reason
	})
	if err != nil {
		t.Fatalf("%s: no presence %s/%q for %s within %v: %v", who, state, reason, code, timeout, err)
	}
	return time.Since(since)
}

// presenceSince lists the presence states about code that c received since t.
func presenceSince(c *client.Client, code string, since time.Time) []string {
	var out []string
	for _, m := range c.Messages(wire.TypePresence) {
		var p wire.PresenceMsg
		if m.At.Before(since) || json.Unmarshal(m.Payload, &p) != nil || p.Code != code {
			continue
		}
		out = append(out, fmt.Sprintf("%s/%s", p.State, p.Reason))
	}
	return out
}

// True presence: a publisher that says its camera is on and whose watched
// layer the server has not paused, but whose RTP stops arriving, is
// degraded with reason no_media within ~5 s, on the consoles and on its
// own connection, and connected again once RTP resumes. Media that is not
// expected (every layer paused, camera off) is never a fault.
func TestNoMediaPresenceE2E(t *testing.T) {
	const expect = signaling.DegradedNoMedia
	limit := 5 * expect // DESIGN.md: 5× margins
	l := startLive(t)
	x := l.communes(1)[0]
	cons := l.dial(l.leader.Token, wire.RoleConsole, false)
	relay := newRTPDropRelay(t, fmt.Sprintf("127.0.0.1:%d", l.a.Media.UDPPort()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	joinAt := time.Now()
	ep, err := client.Dial(ctx, client.Options{URL: l.a.URL(), Token: l.a.Endpoint(x).Token, Publish: true,
		Layers: testLayers, FPS: 10, MapRemoteCandidate: client.Via("udp", relay.ln.LocalAddr())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ep.Close)
	if err := ep.WaitConnected(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	// mute_state: camera on, microphone off (so only video is expected).
	if err := ep.SetMic(false); err != nil {
		t.Fatal(err)
	}
	send(t, cons, wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{{Code: x, Visible: true, Size: "small"}}})
	waitT(t, "the tile flowing", 20*time.Second, func() bool {
		return cons.Received(x, time.Time{})[signaling.TileSlot(0)].Packets > 20
	})
	waitPresence(t, cons, "console", x, wire.StateConnected, "", joinAt, 20*time.Second)
	waitPresence(t, ep, "endpoint itself", x, wire.StateConnected, "", joinAt, 20*time.Second)

	// The encoder stalls: RTP stops, signaling, ICE, DTLS and RTCP go on.
	t0 := time.Now()
	relay.drop.Store(true)
	dCons := waitPresence(t, cons, "console", x, wire.StateDegraded, signaling.ReasonNoMedia, t0, limit)
	dSelf := waitPresence(t, ep, "endpoint itself", x, wire.StateDegraded, signaling.ReasonNoMedia, t0, limit)
	t.Logf("RTP stopped: degraded/no_media on the console after %v, on the endpoint after %v (rule %v, limit %v); %d RTP packets dropped",
		dCons, dSelf, expect, limit, relay.dropped.Load())
	if p := l.a.Live.Presence(x); p != wire.StateDegraded {
		t.Errorf("Presence(%s) = %s, want degraded", x, p)
	}

	// RTP resumes: connected again on both.
	t1 := time.Now()
	relay.drop.Store(false)
	dBack := waitPresence(t, cons, "console", x, wire.StateConnected, "", t1, limit)
	waitPresence(t, ep, "endpoint itself", x, wire.StateConnected, "", t1, limit)
	t.Logf("RTP resumed: connected again after %v", dBack)

	// Not expected: nobody watches, so every layer is paused (layer_control),
	// and nothing arrives (the relay drops it anyway). Stays connected.
	send(t, cons, wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{}})
	t2 := time.Now()
	waitT(t, "every layer paused at the publisher", 20*time.Second, func() bool {
		for _, rid := range []string{"q", "h", "f"} {
			if active, ok := lastLayerControl(t, ep, rid, time.Time{}); !ok || active {
				return false
			}
		}
		return true
	})
	relay.drop.Store(true)
	time.Sleep(2 * expect)
	if got := presenceSince(cons, x, t2); len(got) > 0 {
		t.Errorf("with every layer paused, the console was told %v (want no change from connected)", got)
	}
	if p := l.a.Live.Presence(x); p != wire.StateConnected {
		t.Errorf("all layers paused: Presence(%s) = %s, want connected", x, p)
	}

	// Camera off (mute_state), then watched again: still not expected.
	t3 := time.Now()
	send(t, ep, wire.TypeMuteState, wire.MuteStateMsg{Audio: false, Video: false})
	time.Sleep(200 * time.Millisecond)
	send(t, cons, wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{{Code: x, Visible: true, Size: "small"}}})
	time.Sleep(2 * expect)
	if got := presenceSince(cons, x, t3); len(got) > 0 {
		t.Errorf("with the camera off, the console was told %v (want no change from connected)", got)
	}
	if p := l.a.Live.Presence(x); p != wire.StateConnected {
		t.Errorf("camera off: Presence(%s) = %s, want connected", x, p)
	}
	t.Logf("paused layers and a camera that is off stayed connected for %v each", 2*expect)
}
