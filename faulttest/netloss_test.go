package faulttest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// An endpoint holding the floor, and muted, loses its whole network path (WebSocket
// and media) for 5 s, 20 s and then 60 s. Each time it comes back by itself
// (AutoReconnect) with the floor and the mute kept, and its video reaches the others
// again; meanwhile the console sees it degraded and, for the long cuts, offline, by the
// conventions' timers (degraded: no ICE consent for 5 s; offline: 10 s after the path
// is lost). The times each presence change reached the console are logged.
func TestEndpointLosesNetwork(t *testing.T) {
	needFirewall(t)
	outages := []time.Duration{5 * time.Second, 20 * time.Second, 60 * time.Second}
	if testing.Short() {
		outages = []time.Duration{5 * time.Second, 20 * time.Second}
	}
	if s := os.Getenv("FAULTTEST_OUTAGES"); s != "" { // e.g. "60s" to look at one case
		outages = nil
		for _, f := range strings.Split(s, ",") {
			d, err := time.ParseDuration(f)
			if err != nil {
				t.Fatalf("FAULTTEST_OUTAGES: %v", err)
			}
			outages = append(outages, d)
		}
	}
	a := apptest.Start(t, nil)
	r := newRig(t, a)
	codes := communes(t, a.Store, 3)
	victim := codes[0]
	link, err := NewLink(a.HTTPAddr(), a.Media.UDPPort(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := link.Close(); err != nil {
			t.Errorf("link close: %v", err)
		}
	})
	t.Logf("cut method: %s; victim %s media ports %d-%d via relay %v, WebSocket via %s",
		link.CutMethod(), victim, link.UDPPortMin, link.UDPPortMax, link.Relay.Addr(), link.Proxy.Addr())
	v := r.dial(client.Options{URL: link.URL(), Token: a.Endpoint(victim).Token, Publish: true,
		AutoReconnect: true, UDPPortMin: link.UDPPortMin, UDPPortMax: link.UDPPortMax,
		MapRemoteCandidate: link.MapCandidate})
	watchers := map[string]*client.Client{}
	for _, code := range codes[1:] {
		watchers[code] = r.dial(client.Options{URL: a.URL(), Token: a.Endpoint(code).Token, Publish: true})
	}
	waitT(t, "everyone connected", 30*time.Second, func() bool {
		if v.State() != client.StateConnected {
			return false
		}
		for _, w := range watchers {
			if w.State() != client.StateConnected {
				return false
			}
		}
		return true
	})
	if st := link.Relay.Stats(); st.Up == 0 || st.Down == 0 || st.Flows < 2 {
		t.Fatalf("the victim's media does not take the relay: %+v", st)
	}

	since := time.Now()
	send(t, r.console, wire.TypeGiveFloor, wire.CodeMsg{Code: victim})
	send(t, r.console, wire.TypeMute, wire.CodeMsg{Code: victim})
	if _, err := r.console.WaitMessage(wire.TypeMute, since, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	floorVideoFlows(t, watchers, victim, since, "before the cuts")

	for _, out := range outages {
		t.Run(out.String(), func(t *testing.T) {
			// Start from a settled state: right after the previous cut, the windowed loss
			// can still mark it degraded for a few seconds, and a "degraded" that
			// arrived before the cut would not be seen as a change.
			waitT(t, "victim settled as connected", 60*time.Second, func() bool {
				return a.Live.Presence(victim) == wire.StateConnected &&
					len(presenceOf(r.console, victim, time.Now().Add(-6*time.Second))) == 0
			})
			reconn0 := v.Reconnects()
			t0 := time.Now()
			if err := link.Cut(true); err != nil {
				t.Fatal(err)
			}
			time.Sleep(out)
			if err := link.Cut(false); err != nil {
				t.Fatal(err)
			}
			restored := time.Now()
			// Back: the console sees it connected again, and its video reaches the others.
			waitT(t, "victim connected again at the console", 90*time.Second, func() bool {
				l := presenceOf(r.console, victim, restored)
				return v.State() == client.StateConnected && (len(l) > 0 && l[len(l)-1].State == wire.StateConnected ||
					len(l) == 0 && a.Live.Presence(victim) == wire.StateConnected)
			})
			back := time.Now()
			floorVideoFlows(t, watchers, victim, restored, "after the cut")
			changes := presenceOf(r.console, victim, t0)
			t.Logf("cut %v: console saw %s (times from the cut; restored at %.1fs, connected and video flowing by %.1fs); client reconnected %d times, %d ICE restarts",
				out, fmtChanges(changes, t0), restored.Sub(t0).Seconds(), time.Since(t0).Seconds(), v.Reconnects()-reconn0, v.ICERestarts())
			_ = back

			// Presence by the conventions' timers (5× margins).
			deg, sawDeg := firstState(changes, wire.StateDegraded)
			off, sawOff := firstState(changes, wire.StateOffline)
			switch {
			case out >= 20*time.Second:
				if !sawDeg {
					t.Errorf("cut %v: the console never saw %s degraded", out, victim)
				} else if d := deg.Sub(t0); d > 25*time.Second {
					t.Errorf("cut %v: degraded after %v, want about 5 s (≤ 25 s)", out, d)
				}
				if !sawOff {
					t.Errorf("cut %v: the console never saw %s offline", out, victim)
				} else {
					d := off.Sub(t0)
					if d < 9*time.Second || d > 50*time.Second {
						t.Errorf("cut %v: offline after %v, want about 10 s after the path was lost (9–50 s)", out, d)
					}
					if sawDeg && off.Before(deg) {
						t.Errorf("cut %v: offline before degraded", out)
					}
				}
			default:
				if sawOff {
					t.Errorf("cut %v: offline after %v; a 5 s cut is shorter than the 10 s grace", out, off.Sub(t0))
				}
			}

			// State kept: the floor and the mute are unchanged at the console, and the
			// client's own welcome (if it rejoined) says so too.
			for _, m := range r.console.Messages(wire.TypeFloor) {
				var f wire.FloorMsg
				if !m.At.Before(t0) && json.Unmarshal(m.Payload, &f) == nil && (f.Code == nil || *f.Code != victim) {
					t.Errorf("cut %v: the floor changed at %.1fs: %s", out, m.At.Sub(t0).Seconds(), m.Payload)
				}
			}
			for _, m := range r.console.Messages(wire.TypeMute) {
				var mm wire.MuteMsg
				if !m.At.Before(t0) && json.Unmarshal(m.Payload, &mm) == nil && mm.Code == victim && !mm.Muted {
					t.Errorf("cut %v: the mute was lifted at %.1fs", out, m.At.Sub(t0).Seconds())
				}
			}
			if v.Reconnects() > reconn0 {
				w := v.Welcome().State
				if w.Floor == nil || *w.Floor != victim || !w.Muted {
					t.Errorf("cut %v: welcome after rejoining: floor %v muted %v, want floor %s and muted", out, strp(w.Floor), w.Muted, victim)
				}
			}
		})
	}
}

func strp(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// floorVideoFlows waits until every watcher receives the holder's video on the floor
// slot (40 more packets).
func floorVideoFlows(t *testing.T, watchers map[string]*client.Client, holder string, since time.Time, when string) {
	t.Helper()
	base := map[string]int{}
	for n, w := range watchers {
		base[n] = packetsFrom(w, holder, signaling.SlotFloorVideo)
	}
	d := waitT(t, "floor video from "+holder+" "+when, 60*time.Second, func() bool {
		for n, w := range watchers {
			if packetsFrom(w, holder, signaling.SlotFloorVideo)-base[n] < 40 {
				return false
			}
		}
		return true
	})
	t.Logf("floor video from %s reaches %d watchers %s (waited %v)", holder, len(watchers), when, d.Round(10*time.Millisecond))
}
