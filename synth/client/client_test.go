package client_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/store/storetest"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

var light = []client.Layer{{RID: "q", Width: 320, Height: 180, Bitrate: 60_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 120_000}}

func dial(t *testing.T, o client.Options) *client.Client {
	t.Helper()
	if o.Layers == nil {
		o.Layers = light
	}
	if o.FPS == 0 {
		o.FPS = 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// AutoReconnect: after the WebSocket and both PeerConnections drop, the client
// dials again by itself and is connected again.
func TestAutoReconnectAfterDrop(t *testing.T) {
	a := apptest.Start(t, nil)
	tok := a.Endpoint("07192").Token
	c := dial(t, client.Options{URL: a.URL(), Token: tok, Publish: true, AutoReconnect: true})
	if err := c.WaitState(client.StateConnected, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		start := time.Now()
		c.Drop()
		if err := c.WaitReconnected(i, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("drop %d: reconnected and media connected in %v", i, time.Since(start))
	}
	if a.Live.Presence("07192") == wire.StateOffline {
		t.Fatal("server sees the endpoint offline after the reconnects")
	}
}

// A client replaced by a newer device does not fight back.
func TestAutoReconnectStopsWhenReplaced(t *testing.T) {
	a := apptest.Start(t, nil)
	tok := a.Endpoint("07192").Token
	old := dial(t, client.Options{URL: a.URL(), Token: tok, AutoReconnect: true})
	_ = dial(t, client.Options{URL: a.URL(), Token: tok})
	if err := old.WaitState(client.StateStopped, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if n := old.Reconnects(); n != 0 {
		t.Fatalf("the replaced client reconnected %d times", n)
	}
}

// MapRemoteCandidate routes the media through a relay the test controls;
// cutting the relay makes AutoReconnect restart ICE (the WebSocket stays up),
// and the media comes back when the relay does.
func TestRelayAndICERestart(t *testing.T) {
	a := apptest.Start(t, nil)
	relay, err := client.NewUDPRelay(fmt.Sprintf("127.0.0.1:%d", a.Media.UDPPort()))
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	c := dial(t, client.Options{URL: a.URL(), Token: a.Endpoint("07192").Token, Publish: true,
		AutoReconnect: true, MapRemoteCandidate: client.Via("udp", relay.Addr()),
		UDPPortMin: 42000, UDPPortMax: 42999,
		ICEDisconnectedTimeout: time.Second, ICEFailedTimeout: 3 * time.Second, ICEKeepalive: 300 * time.Millisecond,
		MediaLossGrace: time.Second, ICETimeout: 4 * time.Second})
	if err := c.WaitState(client.StateConnected, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if relay.Packets() == 0 {
		t.Fatal("media did not go through the relay")
	}
	cut := time.Now()
	relay.Blackhole(true)
	if err := c.WaitFor(func() bool { return c.ICERestarts() >= 1 }, 20*time.Second); err != nil {
		t.Fatalf("no ICE restart after the path was cut (state %s): %v", c.State(), err)
	}
	t.Logf("ICE restart started %v after the cut", time.Since(cut))
	relay.Blackhole(false)
	back := time.Now()
	before := relay.Packets()
	if err := c.WaitState(client.StateConnected, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(func() bool { return relay.Packets() > before+100 }, 10*time.Second); err != nil {
		t.Fatal("no media through the relay after it returned")
	}
	t.Logf("media back %v after the relay returned; ICE restarts %d, reconnects %d", time.Since(back), c.ICERestarts(), c.Reconnects())
	if c.Reconnects() != 0 {
		t.Logf("note: the client fell back to a full reconnect")
	}
}
