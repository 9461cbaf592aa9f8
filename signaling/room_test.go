package signaling

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/wire"
)

func testRoom(codes ...string) *Room {
	r := newRoom(func() {})
	for _, c := range append([]string{CommandCode}, codes...) {
		r.roster = append(r.roster, c)
		r.inRoster[c] = true
	}
	return r
}

func fakeConn(code, peerID, role string, staff int64) *conn {
	return &conn{code: code, peerID: peerID, role: role, staffID: staff, out: newSendQueue(1024)}
}

// drain returns the messages of one type queued for c.
func drain(c *conn, typ string) []wire.Envelope {
	var out []wire.Envelope
	for {
		m, ok := c.out.pop()
		if !ok {
			return out
		}
		var env wire.Envelope
		if json.Unmarshal(m.data, &env) == nil && env.Type == typ {
			out = append(out, env)
		}
	}
}

// Restored endpoints start offline, and their floor, hand and mute state is kept
// for StateRetention counted from the restore, not from the crashed process's clock.
func TestRestoreKeepsStateFromRestoreTime(t *testing.T) {
	r := testRoom("a", "b", "c", "d")
	st := LiveState{Version: liveStateVersion, SessionID: "s1", Floor: "a", PrivateLine: "b",
		Hands: []string{"c", "b", "zz"}, Muted: []string{"d"}, RollCall: true}
	t0 := time.Now()
	got := r.restore(st, "s1", t0)
	t.Logf("restored: %v", got)
	if r.floor != "a" || r.privateLine != "b" || !r.rollCall || !slices.Equal(r.hands, []string{"c", "b"}) || !r.members["d"].muted {
		t.Fatalf("restore: floor %q pl %q roll %v hands %v", r.floor, r.privateLine, r.rollCall, r.hands)
	}
	if p := r.Presence("a"); p != wire.StateOffline {
		t.Fatalf("restored endpoint presence %q, want offline", p)
	}
	r.tick(t0.Add(StateRetention - time.Second))
	if r.floor != "a" || len(r.hands) != 2 {
		t.Fatalf("state dropped before %v from the restore", StateRetention)
	}
	// "a" returns in time: it keeps the floor.
	c := fakeConn("a", "a#1", wire.RoleEndpoint, 0)
	r.join(c)
	r.tick(t0.Add(StateRetention + time.Second))
	if r.floor != "a" {
		t.Fatal("the floor holder returned in time but lost the floor")
	}
	if len(r.hands) != 0 || r.privateLine != "" || r.members["d"] != nil {
		t.Fatalf("state of endpoints that never returned kept past retention: hands %v pl %q", r.hands, r.privateLine)
	}
}

// A state file from another session restores only the mutes.
func TestRestoreOtherSession(t *testing.T) {
	r := testRoom("a", "b")
	r.restore(LiveState{Version: liveStateVersion, SessionID: "old", Floor: "a", Hands: []string{"b"}, Muted: []string{"b"}}, "new", time.Now())
	if r.floor != "" || len(r.hands) != 0 || r.sessionID != "" {
		t.Fatalf("session-bound state restored into another session: floor %q hands %v", r.floor, r.hands)
	}
	if !r.members["b"].muted {
		t.Fatal("mute not restored")
	}
}

func TestJudgeHealth(t *testing.T) {
	now := time.Now()
	fresh, stale := now.Add(-time.Second), now.Add(-6*time.Second)
	up := [2]bool{true, true}
	cases := []struct {
		name  string
		st    media.PeerStats
		legs  [2]bool
		wantU bool
	}{
		{"clean", media.PeerStats{Publisher: media.LegStats{RecentLoss: 0.01, LastRTCP: fresh}, BitrateIn: 1e5}, up, false},
		{"publisher loss 6%", media.PeerStats{Publisher: media.LegStats{RecentLoss: 0.06, LastRTCP: fresh}, BitrateIn: 1e5}, up, true},
		{"publisher loss 5% exactly", media.PeerStats{Publisher: media.LegStats{RecentLoss: 0.05, LastRTCP: fresh}}, up, false},
		{"old cumulative loss is not judged", media.PeerStats{Publisher: media.LegStats{Loss: 0.3, RecentLoss: 0, LastRTCP: fresh}}, up, false},
		{"subscriber loss 10%", media.PeerStats{Subscriber: media.LegStats{Loss: 0.1, LastRTCP: fresh}}, up, true},
		{"no RTCP on the subscriber leg while sending", media.PeerStats{Subscriber: media.LegStats{LastRTCP: stale}, BitrateOut: 3e5}, up, true},
		{"no RTCP on the publisher leg while receiving", media.PeerStats{Publisher: media.LegStats{LastRTCP: stale}, BitrateIn: 3e5}, up, true},
		{"paused: nothing sent, no RTCP is fine", media.PeerStats{Subscriber: media.LegStats{LastRTCP: stale}, Publisher: media.LegStats{LastRTCP: stale}}, up, false},
		{"leg down is judged by ICE, not RTCP", media.PeerStats{Subscriber: media.LegStats{LastRTCP: stale}, BitrateOut: 3e5}, [2]bool{true, false}, false},
	}
	for _, tc := range cases {
		if _, u := judgeHealth(tc.st, tc.legs, now); u != tc.wantU {
			t.Errorf("%s: unhealthy=%v, want %v", tc.name, u, tc.wantU)
		}
	}
}

// Presence state machine: joined → connected → degraded (loss) → connected →
// degraded (path lost) → offline after the grace; consoles are told each change.
func TestPresenceTransitions(t *testing.T) {
	r := testRoom("a")
	con := fakeConn(CommandCode, "staff:x#1", wire.RoleConsole, 7)
	r.join(con)
	c := fakeConn("a", "a#1", wire.RoleEndpoint, 0)
	r.join(c)
	seen := func() []string {
		var out []string
		for _, e := range drain(con, wire.TypePresence) {
			var p wire.PresenceMsg
			_ = json.Unmarshal(e.Payload, &p)
			if p.Code == "a" {
				out = append(out, p.State)
			}
		}
		return out
	}
	now := time.Now()
	r.mediaState(c, 0, true)
	r.mediaState(c, 1, true)
	r.updateStats(c, media.PeerStats{Publisher: media.LegStats{RecentLoss: 0.08, LastRTCP: now}, BitrateIn: 1e5}, now)
	if p := r.Presence("a"); p != wire.StateDegraded {
		t.Fatalf("8%% loss: %s", p)
	}
	r.updateStats(c, media.PeerStats{Publisher: media.LegStats{RecentLoss: 0.01, LastRTCP: now}, BitrateIn: 1e5}, now)
	r.mediaState(c, 0, false)
	r.mediaState(c, 1, false)
	if p := r.Presence("a"); p != wire.StateDegraded {
		t.Fatalf("path just lost: %s", p)
	}
	// The media path stays lost while the WebSocket still looks alive: offline after
	// the grace, as the conventions say, not "joined".
	r.tick(time.Now().Add(PathLostGrace + time.Second))
	want := []string{wire.StateJoined, wire.StateConnected, wire.StateDegraded, wire.StateConnected, wire.StateDegraded, wire.StateOffline}
	if got := seen(); !slices.Equal(got, want) {
		t.Fatalf("presence sequence %v, want %v", got, want)
	}
	// The dead WebSocket is noticed later: no flap back to degraded.
	r.leave(c, false)
	if got := seen(); len(got) != 0 || r.Presence("a") != wire.StateOffline {
		t.Fatalf("after the WebSocket timed out: %v, %s", got, r.Presence("a"))
	}
	// Back on a new connection and media: connected again.
	c2 := fakeConn("a", "a#2", wire.RoleEndpoint, 0)
	r.join(c2)
	r.mediaState(c2, 0, true)
	if got := seen(); !slices.Equal(got, []string{wire.StateJoined, wire.StateConnected}) {
		t.Fatalf("on return: %v", got)
	}
	r.leave(c2, true)
	if got := seen(); !slices.Equal(got, []string{wire.StateOffline}) || r.Presence("a") != wire.StateOffline {
		t.Fatalf("after a clean close: %v", got)
	}
	// A WebSocket that drops without a clean close: degraded, offline after the grace.
	c3 := fakeConn("a", "a#3", wire.RoleEndpoint, 0)
	r.join(c3)
	r.mediaState(c3, 0, true)
	seen()
	r.leave(c3, false)
	if p := r.Presence("a"); p != wire.StateDegraded {
		t.Fatalf("just dropped: %s", p)
	}
	r.tick(time.Now().Add(PathLostGrace + time.Second))
	if p := r.Presence("a"); p != wire.StateOffline {
		t.Fatalf("dropped %v ago: %s", PathLostGrace+time.Second, p)
	}
}

// The command room counts as online while a leader's console publishes the
// program, even though no device joined with endpoint 22's link.
func TestCommandRoomOnlineFromConsoleProgram(t *testing.T) {
	r := testRoom("a")
	watcher := fakeConn(CommandCode, "staff:duty#1", wire.RoleConsole, 8)
	r.join(watcher)
	lead := fakeConn(CommandCode, "staff:lead#2", wire.RoleConsole, 9)
	lead.program = true
	r.join(lead)
	if p := r.Presence(CommandCode); p != wire.StateOffline {
		t.Fatalf("before publishing: %s", p)
	}
	r.published(lead.peerID)
	if p := r.Presence(CommandCode); p != wire.StateConnected {
		t.Fatalf("while the console publishes the program: %s", p)
	}
	if n := r.Counts()[wire.StateConnected]; n != 1 {
		t.Fatalf("online count %d, want 1 (the command room)", n)
	}
	var snap wire.PresenceSnapshotMsg
	snap = r.presenceSnapshot()
	if snap.Endpoints[0].Code != CommandCode || snap.Endpoints[0].State != wire.StateConnected {
		t.Fatalf("snapshot: %+v", snap.Endpoints[0])
	}
	msgs := drain(watcher, wire.TypePresence)
	if len(msgs) != 1 || !json.Valid(msgs[0].Payload) || string(msgs[0].Payload) != `{"code":"22","state":"connected"}` {
		t.Fatalf("consoles told %v", msgs)
	}
	r.leave(lead, true)
	if p := r.Presence(CommandCode); p != wire.StateOffline {
		t.Fatalf("after the console left: %s", p)
	}
	if msgs := drain(watcher, wire.TypePresence); len(msgs) != 1 {
		t.Fatalf("consoles not told the command room went offline: %v", msgs)
	}
}
