package signaling

import (
	"log/slog"
	"slices"

	"github.com/pion/webrtc/v3"
	"sort"
	"sync"
	"time"

	"github.com/opscenter/opscenter/wire"
)

// Presence timers from DESIGN.md.
const (
	PathLostGrace   = 10 * time.Second  // offline this long after the media path is lost
	StateRetention  = 120 * time.Second // floor, mute and hand state kept after going offline
	DegradedLoss    = 0.05              // loss above this is degraded
	DegradedNoRTCP  = 5 * time.Second   // no RTCP this long is degraded
	DegradedNoMedia = 5 * time.Second   // media expected but none arriving this long is degraded
	maxStaffConns   = 4                 // concurrent connections per staff account
	programCapacity = 8                 // remembered program publishers (newest wins)
)

// member is the live state of one endpoint code. It outlives connections: a return
// within StateRetention resumes the floor, mute and hand state.
type member struct {
	code        string
	conn        *conn
	muted       bool // muted by the command room
	selfMuted   bool // the endpoint's own microphone is off
	hand        bool
	unmuteAsked bool

	legUp       [2]bool   // publisher, subscriber leg connected
	mediaUp     bool      // a leg is connected
	mediaLostAt time.Time // a leg left connected (zero: not lost)
	wsLostAt    time.Time // the WebSocket dropped without a clean close
	unhealthy   bool      // loss or RTCP silence (from stats)
	noMedia     bool      // media expected from the publisher leg but none arriving (from stats)
	reason      string    // last published reason ("no_media" or "")
	mediaOn     mediaOn   // what the endpoint's mute_state says it sends
	pubUpAt     time.Time // when the publisher leg last came up
	offlineAt   time.Time // when presence became offline (zero: not offline)
	wasOnline   bool      // online (media path up) since it last went offline: going offline starts an outage
	state       string    // last published presence
	stats       wire.StatEntry
}

// presence computes the state from the member's facts at time now. Losing the
// path (the media legs, or the WebSocket without a clean close) makes an endpoint
// degraded, then offline PathLostGrace after the first loss, whichever part of the
// path the server noticed first: a dead network is often seen on the media legs
// well before a ping on the WebSocket times out.
func (m *member) presence(now time.Time) string {
	lost := m.mediaLostAt
	if lost.IsZero() || (!m.wsLostAt.IsZero() && m.wsLostAt.Before(lost)) {
		lost = m.wsLostAt
	}
	if m.conn == nil && lost.IsZero() {
		return wire.StateOffline // closed cleanly, or never joined
	}
	if m.state == wire.StateOffline && !lost.IsZero() && !m.mediaUp {
		return wire.StateOffline // stays offline until media or a new join returns: no flapping
	}
	switch {
	case m.mediaUp && (m.unhealthy || m.noMedia):
		return wire.StateDegraded
	case m.mediaUp:
		return wire.StateConnected
	case !lost.IsZero() && now.Sub(lost) < PathLostGrace:
		return wire.StateDegraded
	case !lost.IsZero(), m.conn == nil:
		return wire.StateOffline
	default:
		return wire.StateJoined // signaling up, no media yet
	}
}

// Room is the live session: presence, floor, hands, mutes, private line, roll call,
// the program publisher and the consoles' tiles. Methods lock mu and never call into
// the media engine; the service applies routing changes outside the lock.
type Room struct {
	mu sync.Mutex
	// actMu serialises leader actions (validate, audit, apply: leader.go), so that
	// no other action changes what one validated before it is applied. Never
	// taken with mu held.
	actMu       sync.Mutex
	members     map[string]*member
	conns       map[string]*conn // every joined connection by peer id
	staff       map[int64]int    // live connections per staff account
	tiles       map[string][]Tile
	sessionID   string // "" when no session is in progress
	floor       string
	privateLine string
	hands       []string
	rollCall    bool
	programs    []string // program-capable peers that published, oldest first
	roster      []string // endpoint codes in roster order
	inRoster    map[string]bool
	onChange    func()   // routing may have changed
	onState     func()   // durable state may have changed (never blocks)
	cmdSent     string   // the command room presence last sent to consoles
	outages     []Outage // losses of link during a session, until their incident is done (outage.go)
	log         *slog.Logger

	ext        map[string]extPeer // WHIP publishers and WHEP viewers by peer id (ingest.go)
	relayFloor string             // the relayed parent floor's peer id, "" for none (relayfloor.go)

	root string // the command room's code (Config.RootCode); read-only after New
}

func newRoom(onChange func()) *Room {
	return &Room{members: map[string]*member{}, conns: map[string]*conn{}, staff: map[int64]int{},
		tiles: map[string][]Tile{}, inRoster: map[string]bool{}, onChange: onChange, onState: func() {},
		log: slog.New(slog.DiscardHandler), root: CommandCode}
}

// known reports whether code is in the roster loaded at start (read-only after New).
func (r *Room) known(code string) bool { return r.inRoster[code] }

func (r *Room) member(code string) *member {
	m := r.members[code]
	if m == nil {
		m = &member{code: code, state: wire.StateOffline}
		r.members[code] = m
	}
	return m
}

// ---- connections ----

// join registers a joined connection. For an endpoint credential it returns the
// older connection it replaces (the caller tells and closes it).
func (r *Room) join(c *conn) (old *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns[c.peerID] = c
	if c.staffID != 0 {
		return nil
	}
	m := r.member(c.code)
	if m.conn != nil && m.conn != c {
		old = m.conn
		delete(r.conns, old.peerID)
		delete(r.tiles, old.peerID)
		r.dropProgram(old.peerID)
	}
	m.conn = c
	m.legUp = [2]bool{}
	m.mediaUp, m.mediaLostAt, m.wsLostAt, m.unhealthy, m.offlineAt = false, time.Time{}, time.Time{}, false, time.Time{}
	m.noMedia, m.mediaOn, m.pubUpAt = false, mediaOn{}, time.Time{} // a new device says again what it sends
	r.publishPresence(m, time.Now())
	r.onChange()
	return old
}

// leave unregisters a connection; clean is true for a clean WebSocket close or a
// leave message (offline at once), false for a dropped one (offline after the grace).
func (r *Room) leave(c *conn, clean bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[c.peerID] == c {
		delete(r.conns, c.peerID)
	}
	delete(r.tiles, c.peerID)
	r.dropProgram(c.peerID)
	if m := r.members[c.code]; c.staffID == 0 && m != nil && m.conn == c {
		m.conn, m.mediaUp = nil, false
		if clean {
			m.mediaLostAt = time.Time{} // a clean close is offline at once
		} else {
			m.wsLostAt = time.Now()
		}
		r.publishPresence(m, time.Now())
	}
	r.onChange()
}

// staffAcquire counts a staff connection; false when the account has too many.
func (r *Room) staffAcquire(id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.staff[id] >= maxStaffConns {
		return false
	}
	r.staff[id]++
	return true
}

func (r *Room) staffRelease(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.staff[id]--; r.staff[id] <= 0 {
		delete(r.staff, id)
	}
}

// endpointConn is the live connection of an endpoint code, if any.
func (r *Room) endpointConn(code string) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.members[code]; m != nil {
		return m.conn
	}
	return nil
}

func (r *Room) connByPeer(peerID string) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns[peerID]
}

// ---- presence ----

// publishPresence recomputes m's presence and tells consoles when it changed.
// Called with mu held.
func (r *Room) publishPresence(m *member, now time.Time) {
	st := m.presence(now)
	r.outageTransition(m, m.state, st, now)
	reason := ""
	if st == wire.StateDegraded && m.mediaUp && m.noMedia {
		reason = ReasonNoMedia
	}
	if st == m.state && reason == m.reason {
		return
	}
	r.log.Info("presence", "code", m.code, "from", m.state, "to", st, "reason", reason)
	m.state, m.reason = st, reason
	m.stats.State = st
	if st == wire.StateOffline {
		m.offlineAt = now
	} else {
		m.offlineAt = time.Time{}
	}
	// The endpoint itself is told too, so its page never says "good"
	// while the server sees no media from it. Consoles get it below.
	if c := m.conn; c != nil && c.role != wire.RoleConsole {
		c.send(wire.TypePresence, "", wire.PresenceMsg{Code: m.code, State: st, Reason: reason})
	}
	if m.code == r.root {
		r.syncCommand()
		return
	}
	r.toConsolesAbout(m.code, wire.TypePresence, wire.PresenceMsg{Code: m.code, State: st, Reason: reason})
}

// effective is an endpoint's presence as shown to people. The command room (22)
// is online while its device is, or while a leader's console publishes the
// program, which is endpoint 22's camera. Called with mu held.
func (r *Room) effective(code string) string {
	st := wire.StateOffline
	if m := r.members[code]; m != nil {
		st = m.state
	}
	if code == r.root && len(r.programs) > 0 && st != wire.StateConnected && st != wire.StateDegraded {
		st = wire.StateConnected
	}
	return st
}

// syncCommand tells consoles when the command room's effective presence changed.
// Called with mu held.
func (r *Room) syncCommand() {
	st := r.effective(r.root)
	if st == r.cmdSent {
		return
	}
	r.cmdSent = st
	r.toConsoles(wire.TypePresence, wire.PresenceMsg{Code: r.root, State: st})
}

// mediaState records a leg's connection state change for the peer's endpoint.
func (r *Room) mediaState(c *conn, leg int, up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c.code]
	if c.staffID != 0 || m == nil || m.conn != c {
		return
	}
	now := time.Now()
	if leg == 0 && up && !m.legUp[0] {
		m.pubUpAt = now
	}
	m.legUp[leg] = up
	nowUp := m.legUp[0] || m.legUp[1]
	switch {
	case nowUp:
		m.mediaUp, m.mediaLostAt = true, time.Time{}
	case m.mediaUp:
		m.mediaUp, m.mediaLostAt = false, now
	}
	r.publishPresence(m, now)
}

// wireICEServers converts the engine's TURN servers to the wire form; their
// credentials are always passwords (strings).
func wireICEServers(servers []webrtc.ICEServer) []wire.ICEServer {
	var out []wire.ICEServer
	for _, s := range servers {
		cred, _ := s.Credential.(string)
		out = append(out, wire.ICEServer{URLs: s.URLs, Username: s.Username, Credential: cred})
	}
	return out
}

// welcome sends a joined connection its state (and consoles the roster presence).
func (r *Room) welcome(c *conn, id string, replaced bool, ice []webrtc.ICEServer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.send(wire.TypeWelcome, id, wire.WelcomeMsg{Code: c.code, PeerID: c.peerID, Role: c.role, Leader: c.leader,
		District: c.p.District, Replaced: replaced, State: c.scopeSnapshot(r.snapshot(c.code)), ICEServers: wireICEServers(ice),
		NodeURLs: c.svc.cfg.NodeURLs})
	if c.role == wire.RoleConsole {
		c.send(wire.TypePresenceSnapshot, "", c.scopePresence(r.presenceSnapshot()))
	}
}

// setTiles replaces a console's visible monitor tiles.
func (r *Room) setTiles(peerID string, tiles []Tile) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tiles[peerID] = tiles
	r.onChange()
}

// Floor is the floor holder's code ("" for nobody).
func (r *Room) Floor() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.floor
}

// sendToCodes sends a message to the live connections of the given endpoints and
// returns the codes it reached.
func (r *Room) sendToCodes(codes []string, typ string, payload any) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sent []string
	msg := encode(typ, "", payload)
	for _, code := range codes {
		if m := r.members[code]; m != nil && m.conn != nil {
			m.conn.sendRaw(msg)
			sent = append(sent, code)
		}
	}
	return sent
}

// Presence returns an endpoint's presence state (web.Presence).
func (r *Room) Presence(code string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.effective(code)
}

// Counts returns how many endpoints are in each presence state (offline ones that
// were never seen are not counted).
func (r *Room) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{wire.StateJoined: 0, wire.StateConnected: 0, wire.StateDegraded: 0, wire.StateOffline: 0}
	for code, m := range r.members {
		if code != r.root {
			out[m.state]++
		}
	}
	if st := r.effective(r.root); st != wire.StateOffline || r.members[r.root] != nil {
		out[st]++
	}
	return out
}

// presenceSnapshot lists every known endpoint's presence. Called with mu held.
func (r *Room) presenceSnapshot() wire.PresenceSnapshotMsg {
	out := wire.PresenceSnapshotMsg{Endpoints: []wire.PresenceMsg{}}
	seen := map[string]bool{}
	for _, code := range r.roster {
		seen[code] = true
		if m := r.members[code]; m != nil && m.stats.Code != "" { // stats only once there are some
			st := m.stats
			out.Endpoints = append(out.Endpoints, wire.PresenceMsg{Code: code, State: r.effective(code), Reason: m.reason, Stats: &st})
		} else {
			out.Endpoints = append(out.Endpoints, wire.PresenceMsg{Code: code, State: r.effective(code)})
		}
	}
	for _, code := range sortedKeys(r.members) {
		if !seen[code] {
			m := r.members[code]
			out.Endpoints = append(out.Endpoints, wire.PresenceMsg{Code: code, State: m.state})
		}
	}
	return out
}

// tick re-evaluates timers: presence grace periods and state retention.
func (r *Room) tick(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for code, m := range r.members {
		r.publishPresence(m, now)
		if m.conn == nil && m.state == wire.StateOffline && now.Sub(m.offlineAt) >= StateRetention {
			changed = r.forget(code) || changed
		}
	}
	if changed {
		r.onChange()
		r.onState()
	}
}

// forget drops an endpoint's retained state. Called with mu held.
func (r *Room) forget(code string) (routing bool) {
	delete(r.members, code)
	if r.floor == code {
		r.floor, routing = "", true
		r.toAll(wire.TypeFloor, wire.FloorMsg{})
	}
	if r.privateLine == code {
		r.privateLine, routing = "", true
		r.privateLineToConsoles("")
	}
	if i := slices.Index(r.hands, code); i >= 0 {
		r.hands = slices.Delete(r.hands, i, i+1)
		r.sendHands()
	}
	return routing
}

// ---- program ----

// published records that a peer published media; program-capable peers become the
// program (the newest publisher replaces the older).
func (r *Room) published(peerID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.relayFloorPublished(peerID) {
		return
	}
	c := r.conns[peerID]
	if (c == nil || !c.program) && !r.ext[peerID].program { // a WHIP publisher is one too
		return
	}
	r.programs = slices.DeleteFunc(r.programs, func(p string) bool { return p == peerID })
	r.programs = append(r.programs, peerID)
	if len(r.programs) > programCapacity {
		r.programs = r.programs[1:]
	}
	r.syncCommand()
	r.onChange()
}

// dropProgram forgets a program publisher. Called with mu held.
func (r *Room) dropProgram(peerID string) {
	r.programs = slices.DeleteFunc(r.programs, func(p string) bool { return p == peerID })
	r.syncCommand()
}

func (r *Room) programPeer() string {
	if n := len(r.programs); n > 0 {
		return r.programs[n-1]
	}
	return ""
}

// ---- policy input ----

// policyState snapshots what the routing policy needs.
func (r *Room) policyState() *PolicyState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &PolicyState{Root: r.root,
		SessionActive: r.sessionID != "",
		SessionID:     r.sessionID,
		Program:       r.programPeer(),
		Floor:         r.floor,
		RelayFloor:    r.relayFloor,
		PrivateLine:   r.privateLine,
		RollCall:      r.rollCall,
		Muted:         map[string]bool{},
		Peers:         map[string]string{},
	}
	for code, m := range r.members {
		if m.muted || m.selfMuted {
			st.Muted[code] = true
		}
		if m.conn != nil {
			st.Peers[code] = m.conn.peerID
		}
	}
	for _, id := range sortedKeys(r.conns) {
		c := r.conns[id]
		st.Subscribers = append(st.Subscribers, Subscriber{PeerID: id, Code: c.code, Console: c.role == wire.RoleConsole, Tiles: r.tiles[id], Sees: c.scope})
	}
	st.Subscribers = append(st.Subscribers, r.extSubscribers()...) // WHEP viewers
	return st
}

// ---- messages ----

// toAll sends to every joined connection. Called with mu held (sends never block).
func (r *Room) toAll(typ string, payload any) {
	msg := encode(typ, "", payload)
	for _, c := range r.conns {
		c.sendRaw(msg)
	}
}

// toConsoles sends to console connections. Called with mu held.
func (r *Room) toConsoles(typ string, payload any) {
	msg := encode(typ, "", payload)
	for _, c := range r.conns {
		if c.role == wire.RoleConsole {
			c.sendRaw(msg)
		}
	}
}

// toCode sends to the endpoint's live connection, if any. Called with mu held.
func (r *Room) toCode(code, typ string, payload any) bool {
	if m := r.members[code]; m != nil && m.conn != nil {
		m.conn.send(typ, "", payload)
		return true
	}
	return false
}

func (r *Room) handsCopy() []string { return append([]string{}, r.hands...) }

// snapshot is the state a connection gets in its welcome. Called with mu held.
func (r *Room) snapshot(code string) wire.Snapshot {
	s := wire.Snapshot{Session: "none", Hands: r.handsCopy(), RollCall: r.rollCall, MutedCodes: []string{}}
	if r.sessionID != "" {
		id := r.sessionID
		s.Session, s.SessionID = "in_progress", &id
	}
	if r.floor != "" {
		f := r.floor
		s.Floor = &f
	}
	if r.privateLine != "" {
		p := r.privateLine
		s.PrivateLine = &p
	}
	if m := r.members[code]; m != nil {
		s.Muted, s.HandRaised, s.UnmuteAsked = m.muted, m.hand, m.unmuteAsked
	}
	for _, c := range sortedKeys(r.members) {
		if r.members[c].muted {
			s.MutedCodes = append(s.MutedCodes, c)
		}
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
