package signaling

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/opscenter/opscenter/media"
)

// The routing policy: a pure function from the live session state to, for every
// subscriber, the source of each of its slots. The service applies the difference
// between two results with Slot.SetSource on the changed slots only.

// Slot names. Every endpoint and console has the four base slots; consoles add
// tile_N (video) and aux_audio_N (private line, roll call) slots on demand.
const (
	SlotProgramVideo = "program_video"
	SlotProgramAudio = "program_audio"
	SlotFloorVideo   = "floor_video"
	SlotFloorAudio   = "floor_audio"
	tilePrefix       = "tile_"
	auxAudioPrefix   = "aux_audio_"
)

// CommandCode is the default command room's endpoint code (the province of the
// reference case): the program is published as it. A node whose roster has
// another root (the nation, another province) sets Config.RootCode.
const CommandCode = "22"

// MaxTiles bounds a console's monitor tiles (the whole roster).
const MaxTiles = 256

// BaseSlots are created for every connection when it joins.
var BaseSlots = []string{SlotProgramVideo, SlotProgramAudio, SlotFloorVideo, SlotFloorAudio}

// TileSlot is the name of monitor tile i.
func TileSlot(i int) string { return tilePrefix + strconv.Itoa(i) }

// AuxAudioSlot is the name of the console's i-th extra audio slot.
func AuxAudioSlot(i int) string { return auxAudioPrefix + strconv.Itoa(i) }

// SlotIsAudio tells the media kind of a slot from its name.
func SlotIsAudio(name string) bool {
	return strings.HasSuffix(name, "_audio") || strings.HasPrefix(name, auxAudioPrefix)
}

// PolicyState is what the routing policy reads.
type PolicyState struct {
	SessionActive bool
	SessionID     string // the session in progress (the record's), "" for none
	// Program is the peer id publishing the program (endpoint 22's media), "" for none.
	Program string
	// Floor, PrivateLine: endpoint codes, "" for none.
	Floor       string
	PrivateLine string
	// RelayFloor is the peer id of the parent's floor relayed down by this
	// node's uplink (relayfloor.go), "" for none. It is the floor while Floor
	// is "": a floor given at this node wins.
	RelayFloor string
	RollCall   bool
	// Muted holds the codes whose microphone must reach no one (command-room mute
	// or the endpoint's own mute).
	Muted map[string]bool
	// Peers maps an endpoint code to the peer id of its live connection.
	Peers map[string]string
	// Subscribers are every live connection that receives media.
	Subscribers []Subscriber
	// Root is the command room's code at this node ("" means CommandCode).
	Root string
}

// root is the command room's code the state is about.
func (st *PolicyState) root() string {
	if st.Root == "" {
		return CommandCode
	}
	return st.Root
}

// Subscriber is one receiving connection.
type Subscriber struct {
	PeerID  string
	Code    string // "22" for consoles
	Console bool
	Tiles   []Tile
	// Only, when not nil, lists the only slots it has (a WHEP viewer: ingest.go).
	Only []string
	// Sees, when not nil, limits a district-scoped console's tiles and extra audio
	// to the codes it reports true for (scope.go); the program and floor pass.
	Sees func(code string) bool
}

// Tile is one visible monitor tile of a console.
type Tile struct {
	Slot  int
	Code  string
	Large bool
}

// Route is the source of one slot: a publisher's peer id and the layer wanted.
type Route struct {
	Source string
	Layer  int
}

// Routes maps slot names to routes. A slot absent from the map is gated.
type Routes map[string]Route

// Route computes every subscriber's routes.
func (st *PolicyState) Route() map[string]Routes {
	out := make(map[string]Routes, len(st.Subscribers))
	floorPeer := st.Peers[st.Floor]
	aux := st.consoleAudio()
	for i := range st.Subscribers {
		s := &st.Subscribers[i]
		r := Routes{}
		if st.SessionActive {
			if st.Program != "" && s.PeerID != st.Program {
				r[SlotProgramVideo] = Route{st.Program, media.LayerHigh}
				if !s.Console { // the command room hears itself in the room
					r[SlotProgramAudio] = Route{st.Program, 0}
				}
			}
			if floorPeer != "" && s.Code != st.Floor {
				r[SlotFloorVideo] = Route{floorPeer, media.LayerHigh}
				if !st.Muted[st.Floor] {
					r[SlotFloorAudio] = Route{floorPeer, 0}
				}
			} else if st.Floor == "" && st.RelayFloor != "" && s.PeerID != st.RelayFloor {
				r[SlotFloorVideo] = Route{st.RelayFloor, media.LayerHigh}
				r[SlotFloorAudio] = Route{st.RelayFloor, 0} // the parent gates a muted floor
			}
		}
		if s.Console {
			for _, t := range s.Tiles {
				p := st.Peers[t.Code]
				if p == "" || p == s.PeerID || (s.Sees != nil && !s.Sees(t.Code)) {
					continue
				}
				l := media.LayerLow
				if t.Large {
					l = media.LayerHigh
				}
				r[TileSlot(t.Slot)] = Route{p, l}
			}
			n := 0
			for _, code := range aux {
				if p := st.Peers[code]; p != s.PeerID && (s.Sees == nil || s.Sees(code)) {
					r[AuxAudioSlot(n)] = Route{p, 0}
					n++
				}
			}
		}
		if s.Only != nil {
			maps.DeleteFunc(r, func(slot string, _ Route) bool { return !slices.Contains(s.Only, slot) })
		}
		out[s.PeerID] = r
	}
	return out
}

// consoleAudio lists the codes whose audio goes to consoles besides the floor: the
// private line, and everyone during an open-mic roll call. Sorted so the
// assignment to aux slots is stable.
func (st *PolicyState) consoleAudio() []string {
	if !st.SessionActive {
		return nil
	}
	var codes []string
	if st.RollCall {
		for code := range st.Peers {
			if code != st.root() && code != st.Floor && !st.Muted[code] {
				codes = append(codes, code)
			}
		}
		slices.Sort(codes)
	} else if pl := st.PrivateLine; pl != "" && pl != st.Floor && !st.Muted[pl] && st.Peers[pl] != "" {
		codes = []string{pl}
	}
	return codes
}

// Change is one slot whose route differs between two policy results.
type Change struct {
	Peer  string
	Slot  string
	Route Route // Source "" = gate off
}

func (c Change) String() string {
	return fmt.Sprintf("%s/%s<-%s@%d", c.Peer, c.Slot, c.Route.Source, c.Route.Layer)
}

// Diff lists the slot changes from prev to next, for subscribers in next. Slots
// routed in prev and absent in next are gated. Output is sorted for determinism.
func Diff(prev, next map[string]Routes, out []Change) []Change {
	for _, peer := range slices.Sorted(maps.Keys(next)) {
		nr, pr := next[peer], prev[peer]
		for _, slot := range slices.Sorted(maps.Keys(nr)) {
			if r := nr[slot]; pr[slot] != r {
				out = append(out, Change{peer, slot, r})
			}
		}
		for _, slot := range slices.Sorted(maps.Keys(pr)) {
			if _, ok := nr[slot]; !ok {
				out = append(out, Change{peer, slot, Route{}})
			}
		}
	}
	return out
}
