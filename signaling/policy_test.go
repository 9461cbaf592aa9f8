package signaling

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/wire"
)

func eps(codes ...string) ([]Subscriber, map[string]string) {
	var subs []Subscriber
	peers := map[string]string{}
	for _, c := range codes {
		subs = append(subs, Subscriber{PeerID: c + "#p", Code: c})
		peers[c] = c + "#p"
	}
	return subs, peers
}

func TestPolicyRoutes(t *testing.T) {
	subs, peers := eps("101", "102", "103")
	cons := Subscriber{PeerID: "22#p", Code: CommandCode, Console: true,
		Tiles: []Tile{{Slot: 0, Code: "101"}, {Slot: 1, Code: "102", Large: true}, {Slot: 2, Code: "999"}}}
	peers[CommandCode] = "22#p"
	all := append([]Subscriber{cons}, subs...)
	prog := func(r Routes) Routes {
		r[SlotProgramVideo] = Route{"22#p", media.LayerHigh}
		r[SlotProgramAudio] = Route{"22#p", 0}
		return r
	}
	tiles := func(r Routes) Routes {
		r[TileSlot(0)] = Route{"101#p", media.LayerLow}
		r[TileSlot(1)] = Route{"102#p", media.LayerHigh}
		return r
	}
	tests := []struct {
		name string
		st   PolicyState
		want map[string]Routes
	}{
		{
			name: "no session: only monitor tiles",
			st:   PolicyState{Program: "22#p", Floor: "101", Peers: peers, Subscribers: all},
			want: map[string]Routes{"22#p": tiles(Routes{}), "101#p": {}, "102#p": {}, "103#p": {}},
		},
		{
			name: "program only",
			st:   PolicyState{SessionActive: true, Program: "22#p", Peers: peers, Subscribers: all},
			want: map[string]Routes{"22#p": tiles(Routes{}), "101#p": prog(Routes{}), "102#p": prog(Routes{}), "103#p": prog(Routes{})},
		},
		{
			name: "floor: holder does not get itself back, console hears it",
			st:   PolicyState{SessionActive: true, Program: "22#p", Floor: "101", Peers: peers, Subscribers: all},
			want: map[string]Routes{
				"22#p":  tiles(Routes{SlotFloorVideo: {"101#p", media.LayerHigh}, SlotFloorAudio: {"101#p", 0}}),
				"101#p": prog(Routes{}),
				"102#p": prog(Routes{SlotFloorVideo: {"101#p", media.LayerHigh}, SlotFloorAudio: {"101#p", 0}}),
				"103#p": prog(Routes{SlotFloorVideo: {"101#p", media.LayerHigh}, SlotFloorAudio: {"101#p", 0}}),
			},
		},
		{
			name: "muted floor holder: seen, not heard",
			st: PolicyState{SessionActive: true, Program: "22#p", Floor: "101", Muted: map[string]bool{"101": true},
				Peers: peers, Subscribers: all[1:]},
			want: map[string]Routes{
				"101#p": prog(Routes{}),
				"102#p": prog(Routes{SlotFloorVideo: {"101#p", media.LayerHigh}}),
				"103#p": prog(Routes{SlotFloorVideo: {"101#p", media.LayerHigh}}),
			},
		},
		{
			name: "floor holder offline: floor gated",
			st:   PolicyState{SessionActive: true, Program: "22#p", Floor: "104", Peers: peers, Subscribers: all[1:]},
			want: map[string]Routes{"101#p": prog(Routes{}), "102#p": prog(Routes{}), "103#p": prog(Routes{})},
		},
		{
			name: "private line: only the console hears the endpoint",
			st:   PolicyState{SessionActive: true, Program: "22#p", PrivateLine: "103", Peers: peers, Subscribers: all},
			want: map[string]Routes{
				"22#p":  tiles(Routes{AuxAudioSlot(0): {"103#p", 0}}),
				"101#p": prog(Routes{}), "102#p": prog(Routes{}), "103#p": prog(Routes{}),
			},
		},
		{
			name: "muted private line: nobody hears it",
			st: PolicyState{SessionActive: true, Program: "22#p", PrivateLine: "103", Muted: map[string]bool{"103": true},
				Peers: peers, Subscribers: all[:1]},
			want: map[string]Routes{"22#p": tiles(Routes{})},
		},
		{
			name: "roll call: everyone but the floor and the muted to the console",
			st: PolicyState{SessionActive: true, Program: "22#p", Floor: "101", RollCall: true,
				Muted: map[string]bool{"102": true}, Peers: peers, Subscribers: all[:1]},
			want: map[string]Routes{"22#p": tiles(Routes{
				SlotFloorVideo: {"101#p", media.LayerHigh}, SlotFloorAudio: {"101#p", 0},
				AuxAudioSlot(0): {"103#p", 0}})},
		},
		{
			name: "staff console next to the program publisher gets program video only",
			st: PolicyState{SessionActive: true, Program: "22#p", Peers: peers,
				Subscribers: []Subscriber{{PeerID: "staff:lead#1", Code: CommandCode, Console: true}}},
			want: map[string]Routes{"staff:lead#1": {SlotProgramVideo: {"22#p", media.LayerHigh}}},
		},
		{
			name: "no program publisher",
			st:   PolicyState{SessionActive: true, Peers: peers, Subscribers: all[1:2]},
			want: map[string]Routes{"101#p": {}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.st.Route()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestPolicyDiffFloorChange(t *testing.T) {
	subs, peers := eps("101", "102", "103")
	st := PolicyState{SessionActive: true, Floor: "101", Peers: peers, Subscribers: subs}
	a := st.Route()
	st.Floor = "102"
	b := st.Route()
	got := Diff(a, b, nil)
	want := []Change{
		{"101#p", SlotFloorAudio, Route{"102#p", 0}},
		{"101#p", SlotFloorVideo, Route{"102#p", media.LayerHigh}},
		{"102#p", SlotFloorAudio, Route{}},
		{"102#p", SlotFloorVideo, Route{}},
		{"103#p", SlotFloorAudio, Route{"102#p", 0}},
		{"103#p", SlotFloorVideo, Route{"102#p", media.LayerHigh}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diff:\n got %v\nwant %v", got, want)
	}
	if d := Diff(b, b, nil); len(d) != 0 {
		t.Errorf("no change should give no diff, got %v", d)
	}
}

func TestSlotIsAudio(t *testing.T) {
	for name, want := range map[string]bool{SlotProgramAudio: true, SlotFloorAudio: true, AuxAudioSlot(3): true,
		SlotProgramVideo: false, SlotFloorVideo: false, TileSlot(7): false} {
		if SlotIsAudio(name) != want {
			t.Errorf("SlotIsAudio(%q) = %v", name, !want)
		}
	}
}

func TestPresenceTimers(t *testing.T) {
	now := time.Date(2021, 5, 23, 6, 30, 0, 0, time.UTC)
	const sec = time.Second
	c := &conn{}
	tests := []struct {
		name string
		m    member
		want string
	}{
		{"never seen", member{}, wire.StateOffline},
		{"ws up, no media", member{conn: c}, wire.StateJoined},
		{"media up", member{conn: c, mediaUp: true}, wire.StateConnected},
		{"media up, lossy", member{conn: c, mediaUp: true, unhealthy: true}, wire.StateDegraded},
		{"path lost 3 s ago", member{conn: c, mediaLostAt: now.Add(-3 * sec)}, wire.StateDegraded},
		// DESIGN.md: offline 10 s after the path is lost, even while the WebSocket
		// has not timed out yet.
		{"path lost 11 s ago, ws still open", member{conn: c, mediaLostAt: now.Add(-11 * sec)}, wire.StateOffline},
		{"ws dropped 3 s ago", member{wsLostAt: now.Add(-3 * sec)}, wire.StateDegraded},
		{"ws dropped 10 s ago", member{wsLostAt: now.Add(-10 * sec)}, wire.StateOffline},
		{"path lost 12 s ago, ws noticed 1 s ago", member{mediaLostAt: now.Add(-12 * sec), wsLostAt: now.Add(-1 * sec)}, wire.StateOffline},
		{"offline, then the ws drops", member{state: wire.StateOffline, mediaLostAt: now.Add(-2 * sec), wsLostAt: now}, wire.StateOffline},
		{"offline, media back", member{conn: c, state: wire.StateOffline, mediaUp: true, mediaLostAt: now.Add(-2 * sec)}, wire.StateConnected},
		{"offline, rejoined without media", member{conn: c, state: wire.StateOffline}, wire.StateJoined},
		{"closed cleanly", member{state: wire.StateConnected}, wire.StateOffline},
	}
	for _, tc := range tests {
		if got := tc.m.presence(now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// BenchmarkFloorChange190 measures the routing decisions of a floor change in a
// full province: 190 subscribers plus the command console watching 24 tiles.
func BenchmarkFloorChange190(b *testing.B) {
	st := PolicyState{SessionActive: true, Program: "22#p", Peers: map[string]string{CommandCode: "22#p"}}
	var codes []string
	for i := 0; i < 190; i++ {
		code := fmt.Sprintf("%05d", 7000+i)
		codes = append(codes, code)
		st.Peers[code] = code + "#p"
		st.Subscribers = append(st.Subscribers, Subscriber{PeerID: code + "#p", Code: code})
	}
	cons := Subscriber{PeerID: "22#p", Code: CommandCode, Console: true}
	for i := 0; i < 24; i++ {
		cons.Tiles = append(cons.Tiles, Tile{Slot: i, Code: codes[i]})
	}
	st.Subscribers = append(st.Subscribers, cons)
	st.Floor = codes[0]
	prev := st.Route()
	var changes []Change
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.Floor = codes[(i+1)%len(codes)]
		next := st.Route()
		changes = Diff(prev, next, changes[:0])
		prev = next
	}
	b.ReportMetric(float64(len(changes)), "slot-changes/op")
}
