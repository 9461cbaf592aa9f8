package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// pauseLayers are the three layers: about 100, 400 and 1200 kbit/s.
var pauseLayers = []client.Layer{
	{RID: "q", Width: 320, Height: 180, Bitrate: 100_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 400_000},
	{RID: "f", Width: 1280, Height: 720, Bitrate: 1_200_000},
}

func layersString(ls []media.LayerStats) string {
	s := ""
	for _, l := range ls {
		s += fmt.Sprintf(" %s:%dk active=%v needed=%v watchers=%d", l.RID, l.Bitrate/1000, l.Active, l.Needed, l.Watchers)
	}
	return s
}

// lastLayerControl returns the last layer_control for rid received since t
// (ok false if none).
func lastLayerControl(t *testing.T, c *client.Client, rid string, since time.Time) (active, ok bool) {
	for _, m := range c.Messages(wire.TypeLayerControl) {
		if m.At.Before(since) {
			continue
		}
		if lc := payloadOf[wire.LayerControlMsg](t, m.Envelope); lc.RID == rid {
			active, ok = lc.Active, true
		}
	}
	return active, ok
}

// Pausing (issue 3): when nobody watches an endpoint's high layers, the server
// pauses them at the publisher (layer_control) and its ingress falls below
// 200 kbit/s within a few seconds; when someone watches again, it recovers.
func TestPauseUnwatchedLayersE2E(t *testing.T) {
	l := startLive(t)
	l.startSession()
	x := l.communes(1)[0]
	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	lead := l.dial(l.leader.Token, wire.RoleConsole, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ep, err := client.Dial(ctx, client.Options{URL: l.a.URL(), Token: l.a.Endpoint(x).Token, Publish: true,
		Layers: pauseLayers, FPS: 15})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ep.Close)
	if err := ep.WaitConnected(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	peer := l.a.Media.Peer(ep.Welcome().PeerID)
	if peer == nil {
		t.Fatalf("no media peer %s", ep.Welcome().PeerID)
	}
	in := func() int { return peer.Stats().BitrateIn }

	// Watched at full size: x holds the floor (high layer to both consoles) and
	// the command device watches it on a small tile (low layer).
	send(t, cmd, wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{{Code: x, Visible: true, Size: "small"}}})
	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: x})
	d := waitT(t, "ingress with the high layer watched", 20*time.Second, func() bool {
		st := peer.Stats()
		for _, ls := range st.Video {
			if ls.RID == "f" && ls.Needed && ls.Active {
				return st.BitrateIn > 1_000_000
			}
		}
		return false
	})
	st := peer.Stats()
	t.Logf("watched (floor + small tile): ingress %d kbit/s after %v;%s", st.BitrateIn/1000, d, layersString(st.Video))

	// Nobody needs h or f any more: only the small tile (q) is watched.
	t0 := time.Now()
	send(t, lead, wire.TypeRevokeFloor, nil)
	dPause := waitT(t, "layer_control pausing f", 15*time.Second, func() bool {
		active, ok := lastLayerControl(t, ep, "f", t0)
		return ok && !active
	})
	dLow := waitT(t, "ingress below 200 kbit/s", 20*time.Second, func() bool { return in() < 200_000 })
	dLow = time.Since(t0)
	st = peer.Stats()
	t.Logf("floor revoked: layer_control f paused after %v (pause delay 1.5 s); ingress below 200 kbit/s (%d kbit/s) %v after the revoke (limit 15 s);%s",
		dPause, st.BitrateIn/1000, dLow, layersString(st.Video))
	if dLow > 15*time.Second {
		t.Errorf("ingress took %v to fall below 200 kbit/s", dLow)
	}
	if active, ok := lastLayerControl(t, ep, "h", time.Time{}); !ok || active {
		t.Errorf("h not paused at the publisher (last layer_control active=%v, seen=%v)", active, ok)
	}
	if active, ok := lastLayerControl(t, ep, "q", time.Time{}); ok && !active {
		t.Errorf("q (watched on a tile) was paused")
	}
	for _, ls := range st.Video {
		if ls.RID == "f" && ls.Needed {
			t.Errorf("f still needed: %+v", ls)
		}
	}
	// The tile keeps flowing while the others are paused.
	w := time.Now()
	time.Sleep(500 * time.Millisecond)
	if n := cmd.Received(x, w)[signaling.TileSlot(0)].Packets; n == 0 {
		t.Errorf("the small tile of %s stopped while h and f were paused", x)
	}
	// Still below over a few seconds: paused, not a dip.
	time.Sleep(time.Second)
	if b := in(); b >= 200_000 {
		t.Errorf("ingress back to %d kbit/s with nobody watching h or f", b/1000)
	}

	// The console enlarges the tile: f is needed again.
	t1 := time.Now()
	send(t, cmd, wire.TypeVisibility, wire.VisibilityMsg{Tiles: []wire.TileMsg{{Code: x, Visible: true, Size: "large"}}})
	dResume := waitT(t, "layer_control resuming f", 10*time.Second, func() bool {
		active, ok := lastLayerControl(t, ep, "f", t1)
		return ok && active
	})
	waitT(t, "ingress back above 800 kbit/s", 20*time.Second, func() bool { return in() > 800_000 })
	dUp := time.Since(t1)
	waitT(t, "the large tile at 1280 wide", 20*time.Second, func() bool {
		return cmd.Received(x, t1)[signaling.TileSlot(0)].LastKeyWidth == 1280
	})
	dKey := time.Since(t1)
	st = peer.Stats()
	t.Logf("tile enlarged: layer_control f resumed after %v; ingress %d kbit/s (> 800) %v after; 1280-wide keyframe on the tile %v after (limit 15 s);%s",
		dResume, st.BitrateIn/1000, dUp, dKey, layersString(st.Video))
	if dUp > 15*time.Second || dKey > 15*time.Second {
		t.Errorf("recovery took %v (bitrate) / %v (keyframe)", dUp, dKey)
	}
	// Paused media is never a fault (DESIGN.md): through the pause and the resume,
	// and for the loss window after it, the endpoint was never shown degraded.
	time.Sleep(5 * time.Second)
	connected := false // the join itself goes offline → joined → connected
	for _, m := range cmd.Messages(wire.TypePresence) {
		var p wire.PresenceMsg
		if json.Unmarshal(m.Payload, &p) != nil || p.Code != x {
			continue
		}
		if !connected {
			connected = p.State == wire.StateConnected
			continue
		}
		if p.State != wire.StateConnected {
			t.Errorf("%s shown %s at %v (pausing or resuming a layer is not a fault)", x, p.State, m.At.Format(time.TimeOnly))
		}
	}
	if p := l.a.Live.Presence(x); p != wire.StateConnected {
		t.Errorf("%s is %s after the resume, want connected", x, p)
	}
}
