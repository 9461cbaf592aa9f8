package faulttest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// One endpoint's path gets 5% and 10% packet loss, then 200 ms delay with 50 ms
// jitter (both directions, through a UDP relay the test controls; as root iptables
// keeps its media from bypassing the relay). It holds the floor: its video keeps
// reaching the others (NACK retransmission and PLI keyframes), and the others'
// reception of the program is not disturbed (compared with a clean baseline).
func TestOneEndpointLossAndDelay(t *testing.T) {
	needFirewall(t)
	phase := 8 * time.Second
	const fps = 10 // rig.dial's default
	a := apptest.Start(t, nil)
	r := newRig(t, a)
	codes := communes(t, a.Store, 4)
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
	v := r.dial(client.Options{URL: link.URL(), Token: a.Endpoint(victim).Token, Publish: true,
		UDPPortMin: link.UDPPortMin, UDPPortMax: link.UDPPortMax, MapRemoteCandidate: link.MapCandidate})
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
	since := time.Now()
	send(t, r.console, wire.TypeGiveFloor, wire.CodeMsg{Code: victim})
	floorVideoFlows(t, watchers, victim, since, "before the impairment")
	waitT(t, "program at every watcher", 30*time.Second, func() bool {
		for _, w := range watchers {
			if keyframesFrom(w, signaling.CommandCode, signaling.SlotProgramVideo) == 0 {
				return false
			}
		}
		return true
	})
	victimOnly := map[string]*client.Client{victim: v}

	type result struct {
		name            string
		floor, program  map[string]flowResult
		victimProgram   flowResult
		relay0, relay1  RelayStats
		victimLoss, rtt float64
	}
	run := func(name string, imp Impairment) result {
		link.Set(imp)
		time.Sleep(time.Second) // let it settle (queues, NACK state)
		res := result{name: name, relay0: link.Relay.Stats()}
		done := make(chan struct{})
		go func() {
			defer close(done)
			res.victimProgram = measureFlow(victimOnly, signaling.CommandCode, signaling.SlotProgramVideo, phase)[victim]
		}()
		progDone := make(chan map[string]flowResult, 1)
		go func() { progDone <- measureFlow(watchers, signaling.CommandCode, signaling.SlotProgramVideo, phase) }()
		res.floor = measureFlow(watchers, victim, signaling.SlotFloorVideo, phase)
		res.program = <-progDone
		<-done
		res.relay1 = link.Relay.Stats()
		ve := lastStats(r.console, victim)
		res.victimLoss, res.rtt = ve.Loss, ve.RTTMs
		for n, f := range res.floor {
			t.Logf("%-22s floor video %s → %s: %v", name, victim, n, f)
		}
		for n, f := range res.program {
			e := lastStats(r.console, n)
			t.Logf("%-22s program video → %s: %v (health board: layer %d, out %d kbit/s, loss %.3f)", name, n, f, e.Layer, e.BitrateOut/1000, e.Loss)
		}
		t.Logf("%-22s program video → %s (impaired): %v", name, victim, res.victimProgram)
		t.Logf("%-22s relay: %d up / %d down forwarded, %d up / %d down dropped; console stats for %s: loss %.3f, rtt %.0f ms",
			name, res.relay1.Up-res.relay0.Up, res.relay1.Down-res.relay0.Down,
			res.relay1.DroppedUp-res.relay0.DroppedUp, res.relay1.DropDwn-res.relay0.DropDwn, victim, res.victimLoss, res.rtt)
		return res
	}
	t0 := time.Now()
	base := run("baseline", Impairment{})
	phases := []struct {
		name string
		imp  Impairment
	}{
		{"delay 200ms jitter 50ms", Impairment{Delay: 200 * time.Millisecond, Jitter: 50 * time.Millisecond}},
		{"loss 5%", Impairment{Loss: 0.05}},
		{"loss 10%", Impairment{Loss: 0.10}},
	}
	keyframes := 0
	for _, p := range phases {
		res := run(p.name, p.imp)
		for n, f := range res.floor {
			b := base.floor[n]
			keyframes += f.Keyframes
			// Its video keeps flowing: frames keep arriving (at least 0.8 packet per
			// frame interval: the lowest layer is about one packet per frame, so this
			// holds whatever layer the bandwidth estimate picks), and no silence
			// longer than 2 s. NACK repairs most of the loss.
			if f.Rate() < 0.8*float64(fps) {
				t.Errorf("%s: floor video at %s %.1f pkt/s, clean %.1f pkt/s (%d frames/s sent)", p.name, n, f.Rate(), b.Rate(), fps)
			}
			if f.MaxGap > 2*time.Second {
				t.Errorf("%s: floor video at %s stopped for %v", p.name, n, f.MaxGap)
			}
		}
		// The others are unaffected: their program within 20% of the clean rate, no
		// silence over 1 s.
		for n, f := range res.program {
			b := base.program[n]
			if f.Rate() < 0.8*b.Rate() || f.MaxGap > time.Second {
				t.Errorf("%s: program at unimpaired %s: %v; clean: %v", p.name, n, f, b)
			}
		}
		if res.relay1.DroppedUp+res.relay1.DropDwn == res.relay0.DroppedUp+res.relay0.DropDwn && p.imp.Loss > 0 {
			t.Errorf("%s: the relay dropped nothing", p.name)
		}
		// The impaired endpoint itself still receives the program.
		if res.victimProgram.Packets == 0 {
			t.Errorf("%s: the impaired endpoint received no program", p.name)
		}
	}
	link.Set(Impairment{})
	if keyframes == 0 {
		t.Errorf("no keyframe of the impaired endpoint reached anyone in %v of impairment", time.Since(t0))
	}
	t.Logf("presence of %s at the console during the test: %s", victim, fmtChanges(presenceOf(r.console, victim, t0), t0))
}

// lastStats returns the latest entry the console's health board shows for code.
func lastStats(c *client.Client, code string) wire.StatEntry {
	l := c.Messages(wire.TypeStats)
	for i := len(l) - 1; i >= 0; i-- {
		var m wire.StatsMsg
		if json.Unmarshal(l[i].Payload, &m) != nil {
			continue
		}
		for _, e := range m.Endpoints {
			if e.Code == code {
				return e
			}
		}
	}
	return wire.StatEntry{Code: code, Layer: -2}
}
