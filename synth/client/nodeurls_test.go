package client_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/synth/client"
)

// A reconnect tries the welcome's node_urls in order: a dead address (refused),
// a standby (503), then the active server, where it joins again.
func TestReconnectTriesNodeURLsInOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	var standbyHits atomic.Int64
	standby := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		standbyHits.Add(1)
		http.Error(w, `{"error":"standby"}`, http.StatusServiceUnavailable)
	}))
	defer standby.Close()
	var urls []string
	a := apptest.Start(t, func(c *config.Config) {
		urls = []string{dead, standby.URL, c.HTTP.PublicURL}
		c.Standby.NodeURLs = urls
	})
	c := dial(t, client.Options{URL: a.URL(), Token: a.Endpoint("07192").Token, AutoReconnect: true,
		ReconnectMax: time.Second})
	if got := c.NodeURLs(); !slices.Equal(got, urls) {
		t.Fatalf("node URLs from welcome %v, want %v", got, urls)
	}
	start := time.Now()
	c.Drop()
	if err := c.WaitFor(func() bool { return c.Reconnects() >= 1 && c.State() != client.StateReconnecting }, 20*time.Second); err != nil {
		t.Fatalf("no reconnect: %v", err)
	}
	if c.ServerURL() != a.URL() || standbyHits.Load() == 0 {
		t.Fatalf("reconnected to %s after %d tries of the standby; want %s after trying it", c.ServerURL(), standbyHits.Load(), a.URL())
	}
	t.Logf("reconnected to the third address in %v (standby tried %d times)", time.Since(start).Round(time.Millisecond), standbyHits.Load())
}
