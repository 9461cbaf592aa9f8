package uplink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/uplink"
	"github.com/opscenter/opscenter/wire"
)

// waitUp waits until the child's uplink is connected and the parent counts
// province 22 online, and returns how long it took.
func waitUp(t *testing.T, tr *tree, what string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := client.WaitFor(func() bool {
		return tr.child.Uplink.Status().State == uplink.StateConnected &&
			tr.parent.Live.Presence("22") == wire.StateConnected
	}, timeout)
	if err != nil {
		t.Fatalf("%s: uplink %+v, parent sees 22 %q: %v", what, tr.child.Uplink.Status(), tr.parent.Live.Presence("22"), err)
	}
	return time.Since(start)
}

// The province node joins the national node as endpoint 22 with the link the
// nation issued, and keeps the link through a drop and a restart of the parent.
func TestUplinkJoinsAndReconnects(t *testing.T) {
	tr := startTree(t)
	t.Logf("uplink up after %v", waitUp(t, tr, "first join", 20*time.Second))
	st := tr.child.Uplink.Status()
	if st.Code != "22" || st.ParentCode != "22" || st.Dials != 1 {
		t.Fatalf("status %+v", st)
	}
	if tr.parent.Live.Presence("01") != wire.StateOffline {
		t.Fatal("only 22 joined the parent")
	}

	// The link drops (no close frame): the protocol client dials again.
	c := tr.child.Uplink.Client()
	dropped := time.Now()
	c.Drop()
	err := client.WaitFor(func() bool { return c.Reconnects() >= 1 }, 20*time.Second)
	if err != nil {
		t.Fatalf("no reconnect after a drop: %v", err)
	}
	waitUp(t, tr, "after a drop", 20*time.Second)
	t.Logf("drop → uplink connected again: %v", time.Since(dropped))

	// The parent's process restarts on the same address and database.
	restarted := time.Now()
	tr.restartParent(t)
	waitUp(t, tr, "after the parent's restart", 30*time.Second)
	t.Logf("parent restart → uplink connected: %v (status %+v)", time.Since(restarted), tr.child.Uplink.Status())
}

// A link the parent issued for another unit is never used as that unit.
func TestUplinkRefusesAnotherUnitsLink(t *testing.T) {
	p := apptest.Start(t, nationConfig)
	link := p.URL() + "/join#t=" + p.Endpoint("01").Token
	c := apptest.Start(t, func(c *config.Config) {
		c.Parent = config.Parent{URL: p.URL(), JoinLink: link,
			ReconnectMin: 100 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, SyncInterval: time.Second}
	})
	err := client.WaitFor(func() bool { return strings.Contains(c.Uplink.Status().LastError, `not this node's "22"`) }, 10*time.Second)
	if err != nil {
		t.Fatalf("status %+v", c.Uplink.Status())
	}
	if st := c.Uplink.Status(); st.State != uplink.StateConnecting || st.Dials != 0 {
		t.Fatalf("status %+v", st)
	}
	if p.Live.Presence("22") != wire.StateOffline {
		t.Fatal("22 joined the parent")
	}
}
