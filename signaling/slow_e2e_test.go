package signaling_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
)

// programPackets counts the program packets (video and audio) a client received.
func programPackets(c *client.Client) int {
	n := 0
	for _, slot := range []string{signaling.SlotProgramVideo, signaling.SlotProgramAudio} {
		if s, ok := c.Recorder().Slot(slot); ok {
			n += s.Packets
		}
	}
	return n
}

// rates measures each client's program packet rate over d.
func rates(cs []*client.Client, d time.Duration) []float64 {
	before := make([]int, len(cs))
	for i, c := range cs {
		before[i] = programPackets(c)
	}
	start := time.Now()
	time.Sleep(d)
	el := time.Since(start).Seconds()
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = float64(programPackets(c)-before[i]) / el
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Slow subscriber (issue 3): a subscriber on ICE-TCP stops reading its socket
// and its WebSocket. The other subscribers' delivery stays within 10% of a
// baseline run, the server stays responsive, and it cuts the stalled client.
func TestSlowSubscriberE2E(t *testing.T) {
	l := startLive(t)
	l.startSession()
	codes := l.communes(6)
	subCodes, slowCode := codes[:5], codes[5]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The program at the rates (~1.7 Mbit/s), so a stalled TCP path
	// backs up within seconds.
	cmd, err := client.Dial(ctx, client.Options{URL: l.a.URL(), Token: l.a.Endpoint(signaling.CommandCode).Token,
		Role: signaling.RoleConsole, Publish: true, Layers: pauseLayers, FPS: 15})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cmd.Close)
	lead := l.dial(l.leader.Token, signaling.RoleConsole, false)

	var subs []*client.Client
	for _, code := range subCodes {
		c, err := client.Dial(ctx, client.Options{URL: l.a.URL(), Token: l.a.Endpoint(code).Token})
		if err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		t.Cleanup(c.Close)
		subs = append(subs, c)
	}
	waitT(t, "program at the high layer everywhere", 30*time.Second, func() bool {
		for _, c := range subs {
			if c.Received(signaling.CommandCode, time.Time{})[signaling.SlotProgramVideo].LastKeyWidth != 1280 {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // past the start-up keyframes and bandwidth probing

	const window = 4 * time.Second
	base := rates(subs, window)
	t.Logf("baseline: %d UDP subscribers, program packets/s %v (median %.1f)", len(subs), fmtRates(base), median(base))

	// The slow one: ICE-TCP only, through a relay that will stop reading.
	relay, err := client.NewTCPRelay(fmt.Sprintf("127.0.0.1:%d", l.a.Live.Engine().TCPPort()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	slow, err := client.Dial(ctx, client.Options{URL: l.a.URL(), Token: l.a.Endpoint(slowCode).Token,
		NetworkTypes: []webrtc.NetworkType{webrtc.NetworkTypeTCP4}, MapRemoteCandidate: client.Via("tcp", relay.Addr())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	d := waitT(t, "program over ICE-TCP", 30*time.Second, func() bool {
		return slow.Received(signaling.CommandCode, time.Time{})[signaling.SlotProgramVideo].Packets > 50
	})
	slowPeer := slow.Welcome().PeerID
	t.Logf("ICE-TCP subscriber %s receives the program (%v)", slowPeer, d)

	// Stall: the relay stops reading from the server, the client stops reading
	// its WebSocket, and keeps sending pings with large ids (within the rate
	// limit) so the server has replies to write that never get read.
	stallAt := time.Now()
	relay.Stall(true)
	slow.PauseSignaling(true)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		big := fmt.Sprintf(`{"type":"ping","id":"%s"}`, strings.Repeat("x", 60_000))
		tick := time.NewTicker(25 * time.Millisecond) // 40/s, under the 50/s limit
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if slow.SendRaw([]byte(big)) != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	time.Sleep(time.Second) // let the stall bite
	// The server stays responsive meanwhile: a leader ping is answered.
	p0 := time.Now()
	send(t, lead, signaling.TypePing, nil)
	if _, err := lead.WaitMessage(signaling.TypePong, p0, 5*time.Second, nil); err != nil {
		t.Errorf("the leader's ping went unanswered during the stall: %v", err)
	}
	pong := time.Since(p0)
	stalled := rates(subs, window)
	t.Logf("with the stalled ICE-TCP subscriber: program packets/s %v (median %.1f); leader ping answered in %v",
		fmtRates(stalled), median(stalled), pong)
	// The stall did bite: the slow client's media stopped, the server's queue to it overflowed.
	slowGot := programPackets(slow)
	if p := l.a.Live.Engine().Peer(slowPeer); p != nil {
		var dropped uint64
		for _, ss := range p.Stats().Slots {
			dropped += ss.Dropped
		}
		t.Logf("stalled subscriber: %d program packets received in all; server dropped %d packets for it (queue full)", slowGot, dropped)
	}
	mb, ms := median(base), median(stalled)
	if mb == 0 {
		t.Fatal("no baseline delivery")
	}
	ratio := ms / mb
	t.Logf("median delivery during the stall / baseline = %.3f (must be within 0.90..1.10)", ratio)
	if ratio < 0.90 || ratio > 1.10 {
		t.Errorf("the others' delivery moved by %.1f%% with a stalled subscriber (baseline %.1f/s, stalled %.1f/s)",
			(ratio-1)*100, mb, ms)
	}

	// The server cuts the stalled client (its WebSocket writes time out or its
	// queue fills) and releases its media peer.
	cut := waitT(t, "the stalled subscriber is cut", 30*time.Second, func() bool {
		return l.a.Live.Engine().Peer(slowPeer) == nil
	})
	t.Logf("the server cut the stalled subscriber %v after the stall began (waited %v after the measurement)",
		time.Since(stallAt), cut)
	if p := l.a.Live.Presence(slowCode); p == signaling.StateConnected {
		t.Errorf("stalled %s still shown connected after the cut", slowCode)
	}
	// The others are untouched.
	after := rates(subs, time.Second)
	t.Logf("after the cut: program packets/s %v", fmtRates(after))
	for i, r := range after {
		if r < 0.5*mb {
			t.Errorf("%s at %.1f packets/s after the cut (baseline median %.1f)", subCodes[i], r, mb)
		}
	}
}

func fmtRates(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
