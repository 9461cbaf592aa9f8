package uplink_test

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/synth/media"
	"github.com/opscenter/opscenter/uplink"
	"github.com/opscenter/opscenter/wire"
)

// delays collects, per packet of the program's video from one source, the time
// from its capture (the synthetic marker's SentAt) to its arrival here.
type delays struct {
	source string
	mu     sync.Mutex
	d      []time.Duration
}

func (d *delays) onRTP(slot string, p *rtp.Packet) {
	if slot != signaling.SlotProgramVideo {
		return
	}
	m, ok := media.ParseMarker(p.Payload)
	if !ok || m.Code != d.source {
		return
	}
	d.mu.Lock()
	d.d = append(d.d, time.Since(m.SentAt))
	d.mu.Unlock()
}

// median and p95 of what was collected since reset.
func (d *delays) stats() (n int, med, p95 time.Duration) {
	d.mu.Lock()
	s := slices.Clone(d.d)
	d.mu.Unlock()
	if len(s) == 0 {
		return 0, 0, 0
	}
	slices.Sort(s)
	return len(s), s[len(s)/2], s[len(s)*95/100]
}

func (d *delays) reset() {
	d.mu.Lock()
	d.d = nil
	d.mu.Unlock()
}

func dialT(t *testing.T, a *apptest.App, code string, o client.Options) *client.Client {
	t.Helper()
	o.URL, o.Token = a.URL(), a.Endpoint(code).Token
	c, err := client.Dial(t.Context(), o)
	if err != nil {
		t.Fatalf("dial %s: %v", code, err)
	}
	t.Cleanup(c.Close)
	return c
}

// The parent's program reaches a commune of the child, two hops down, when the
// child's leaders choose the parent as their program source, and the child's
// own command room comes back when they choose it again.
func TestParentProgramReachesCommune(t *testing.T) {
	tr := startTree(t)
	waitUp(t, tr, "join", 20*time.Second)
	startSession(t, tr.parent.User("nat-lead", auth.RoleLeader), "Bầu cử 23/5/2021 (toàn quốc)")
	lead := tr.child.User("qn-lead", auth.RoleLeader)
	startSession(t, lead, "Bầu cử 23/5/2021 (Quảng Ninh)")
	// The province's leader at the console: the switch is a protocol message.
	console, err := client.Dial(t.Context(), client.Options{URL: tr.child.URL(), Token: lead.Token, Role: wire.RoleConsole})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(console.Close)
	uplinkMsg := func(src string) func(wire.Envelope) bool {
		return func(e wire.Envelope) bool {
			var m wire.UplinkMsg
			return json.Unmarshal(e.Payload, &m) == nil && m.ProgramSource == src && m.Code == "22" && m.State == uplink.StateConnected
		}
	}
	if _, err := console.WaitMessage(wire.TypeUplink, time.Time{}, 5*time.Second, uplinkMsg(uplink.SourceOwn)); err != nil {
		t.Fatalf("the console is told the uplink's state after welcome: %v", err)
	}

	// The nation's command room (00) and the province's (22) publish programs.
	dialT(t, tr.parent, "00", client.Options{Role: wire.RoleConsole, Publish: true, NoAudio: true})
	dialT(t, tr.child, "22", client.Options{Role: wire.RoleConsole, Publish: true, NoAudio: true})
	// One hop: a province endpoint of the nation (01) watching its program.
	hop1 := &delays{source: "00"}
	dialT(t, tr.parent, "01", client.Options{OnRTP: hop1.onRTP})
	// Two hops: a commune of the province.
	hop2 := &delays{source: "00"}
	commune := dialT(t, tr.child, "07192", client.Options{OnRTP: hop2.onRTP})

	waitProgram := func(code string, since time.Time, what string) time.Duration {
		t.Helper()
		err := client.WaitFor(func() bool {
			return !commune.Recorder().FirstFrom(signaling.SlotProgramVideo, code, since).IsZero()
		}, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: the commune's program never came from %s: %v (slots %+v)", what, code, err, commune.Recorder().Slots())
		}
		return commune.Recorder().FirstFrom(signaling.SlotProgramVideo, code, since).Sub(since)
	}
	waitProgram("22", time.Time{}, "own program")
	if !commune.Recorder().FirstFrom(signaling.SlotProgramVideo, "00", time.Time{}).IsZero() {
		t.Fatal("the parent's program reached the commune before the switch")
	}

	// A commune may not switch the province's program.
	since := time.Now()
	if _, err := commune.Send(wire.TypeProgramSource, wire.ProgramSourceMsg{Source: uplink.SourceParent}); err != nil {
		t.Fatal(err)
	}
	if _, err := commune.WaitError(wire.ErrForbidden, since, 5*time.Second); err != nil {
		t.Fatalf("a commune's program_source: %v", err)
	}

	switched := time.Now()
	if _, err := console.Send(wire.TypeProgramSource, wire.ProgramSourceMsg{Source: uplink.SourceParent}); err != nil {
		t.Fatal(err)
	}
	if _, err := console.WaitMessage(wire.TypeUplink, switched, 10*time.Second, uplinkMsg(uplink.SourceParent)); err != nil {
		t.Fatalf("the console is told of the switch: %v", err)
	}
	t.Logf("switch to the parent's program → first packet at the commune: %v", waitProgram("00", switched, "parent's program"))
	if st := tr.child.Uplink.Status(); st.ProgramSource != uplink.SourceParent {
		t.Fatalf("status %+v", st)
	}

	// Measure for 3 s of steady flow.
	hop1.reset()
	hop2.reset()
	time.Sleep(3 * time.Second)
	n1, m1, p1 := hop1.stats()
	n2, m2, p2 := hop2.stats()
	t.Logf("capture → nation's endpoint 01 (one hop): %d packets, median %v, p95 %v", n1, m1, p1)
	t.Logf("capture → province's commune 07192 (two hops): %d packets, median %v, p95 %v", n2, m2, p2)
	t.Logf("the second hop (uplink relay + province SFU) adds: median %v, p95 %v", m2-m1, p2-p1)
	if n1 == 0 || n2 == 0 {
		t.Fatal("no program packets measured")
	}
	// Loopback, two SFUs: generous bounds (5× a 100 ms goal per hop).
	if m2 > time.Second {
		t.Fatalf("two hops take %v (median)", m2)
	}

	back := time.Now()
	if _, err := console.Send(wire.TypeProgramSource, wire.ProgramSourceMsg{Source: uplink.SourceOwn}); err != nil {
		t.Fatal(err)
	}
	t.Logf("switch back → the command room's program at the commune: %v", waitProgram("22", back, "own program again"))
	// The relay ends (the program comes back) before the uplink records the
	// new source: wait for the status rather than read it once.
	if err := client.WaitFor(func() bool { return tr.child.Uplink.Status().ProgramSource == uplink.SourceOwn }, 5*time.Second); err != nil {
		t.Fatal("status still says parent")
	}
	// Both switches are in the province's audit log, by the leader.
	n := 0
	err = client.WaitFor(func() bool { // the journal writes live-session events behind the action
		evs, err := tr.child.Store.EventsAfter(t.Context(), 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		n = 0
		for _, e := range evs {
			if e.Action == "program.source" && e.Actor == "user:qn-lead" {
				n++
			}
		}
		return n == 2
	}, 5*time.Second)
	if err != nil {
		t.Fatalf("program.source events by the leader: %d, want 2", n)
	}
}
