package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/opscenter/opscenter/signaling"
)

// Client states reported by State.
const (
	StateJoined       = "joined"       // WebSocket up and welcomed; media not (yet) connected
	StateConnected    = "connected"    // WebSocket up and every needed media leg connected
	StateReconnecting = "reconnecting" // the WebSocket ended; AutoReconnect is dialling again
	StateDisconnected = "disconnected" // the WebSocket ended and AutoReconnect is off
	StateStopped      = "stopped"      // replaced or removed by the server: AutoReconnect gave up
	StateClosed       = "closed"       // Close was called
)

// State reports where the client is (see the State* constants).
func (c *Client) State() string {
	if c.closed.Load() {
		return StateClosed
	}
	if c.stopped.Load() {
		return StateStopped
	}
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil || s.isDone() {
		if c.opts.AutoReconnect {
			return StateReconnecting
		}
		return StateDisconnected
	}
	if s.connected(c.opts.Publish) {
		return StateConnected
	}
	return StateJoined
}

// Reconnects is how many times the client re-established itself (a new
// WebSocket and new PeerConnections) after the first Dial, automatically or
// through Reconnect.
func (c *Client) Reconnects() int { return int(c.reconnects.Load()) }

// ICERestarts is how many ICE restarts AutoReconnect started (RestartICE calls
// by the test are not counted).
func (c *Client) ICERestarts() int { return int(c.iceRestarts.Load()) }

// WaitState waits until State() == want.
func (c *Client) WaitState(want string, timeout time.Duration) error {
	if err := WaitFor(func() bool { return c.State() == want }, timeout); err != nil {
		return fmt.Errorf("state %q, want %q: %w", c.State(), want, err)
	}
	return nil
}

// WaitReconnected waits until the client has reconnected at least n times in all
// and is connected again.
func (c *Client) WaitReconnected(n int, timeout time.Duration) error {
	err := WaitFor(func() bool { return c.Reconnects() >= n && c.State() == StateConnected }, timeout)
	if err != nil {
		return fmt.Errorf("reconnects %d (want ≥ %d), state %q: %w", c.Reconnects(), n, c.State(), err)
	}
	return nil
}

// startSupervisor runs the AutoReconnect loop.
func (c *Client) startSupervisor() {
	c.stopC = make(chan struct{})
	c.supDone = make(chan struct{})
	go c.supervise()
}

// jitter spreads a back-off over [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func (c *Client) supervise() {
	defer close(c.supDone)
	o := c.opts
	backoff := o.ReconnectMin
	var downSince, lastRestart time.Time
	restarts := 0
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stopC:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		s := c.sess
		c.mu.Unlock()
		if s != nil && !s.isDone() {
			now := time.Now()
			if !s.mediaDown(o.Publish, o.ICETimeout) {
				downSince, restarts = time.Time{}, 0
				continue
			}
			if downSince.IsZero() {
				downSince = now
			}
			if now.Sub(downSince) < o.MediaLossGrace || (!lastRestart.IsZero() && now.Sub(lastRestart) < o.ICETimeout) {
				continue
			}
			if restarts < 3 {
				restarts++
				lastRestart = now
				c.iceRestarts.Add(1)
				o.Log.Info("synth: media path down; restarting ICE", "code", c.Code(), "down", now.Sub(downSince).Round(time.Millisecond))
				if err := c.RestartICE(); err != nil {
					o.Log.Info("synth: ICE restart", "err", err)
				}
				continue
			}
			o.Log.Info("synth: ICE restarts did not bring media back; reconnecting", "code", c.Code())
		} else if s != nil {
			if st := s.closeStatus; st == signaling.StatusReplaced || st == signaling.StatusRemoved {
				o.Log.Info("synth: not reconnecting", "code", c.Code(), "close", st)
				c.stopped.Store(true)
				return
			}
		}
		// A new WebSocket and new PeerConnections, after a jittered back-off.
		select {
		case <-c.stopC:
			return
		case <-time.After(jitter(backoff)):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := c.reconnect(ctx)
		cancel()
		if err != nil {
			o.Log.Info("synth: reconnect failed", "err", err, "next_backoff", min(backoff*2, o.ReconnectMax))
			backoff = min(backoff*2, o.ReconnectMax)
			continue
		}
		o.Log.Info("synth: reconnected", "code", c.Code(), "reconnects", c.Reconnects())
		backoff = o.ReconnectMin
		downSince, lastRestart, restarts = time.Time{}, time.Time{}, 0
	}
}
