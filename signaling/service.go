// Package signaling is the live session: the /ws WebSocket protocol, endpoint and
// staff authentication (done by the web layer before ServeHTTP), presence, floor,
// mutes, hands, private line and roll call, and the routing policy that turns them
// into sfu slot sources. docs/protocol.md describes the wire protocol.
package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/pion/webrtc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/eventbus"
	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/wire"
)

// Config holds the signaling limits; zero fields take the defaults.
type Config struct {
	MaxMessageBytes int           // default 64 KiB; larger messages close the connection with 1009
	RatePerSecond   float64       // token bucket refill, default 50 messages/s
	RateBurst       int           // bucket size, default 100
	SendQueue       int           // queued messages per connection before it counts as slow, default 4096 (memory is per message queued)
	WriteTimeout    time.Duration // per message, default 5 s
	PingInterval    time.Duration // default 5 s: a dead WebSocket is noticed within two intervals
	StatsInterval   time.Duration // default 2 s
	// OutageIncidentAfter: an endpoint that was online during a session and has
	// been offline this long gets a communications incident (outage.go); default 60 s.
	OutageIncidentAfter time.Duration
	// RecordPrivateLine records the private line's endpoint too
	// (recording.private_line; off: the line is private).
	RecordPrivateLine bool
	// NodeURLs are the node's addresses in order (a standby pair's two
	// processes), sent in welcome: clients reconnect to them in turn.
	NodeURLs []string
	// PublicURL and AllowedOrigins give the Origin patterns browsers may use.
	PublicURL      string
	AllowedOrigins []string
	// RootCode is the command room's code: the root of this node's roster
	// (roster.province_code; "" means CommandCode, "22").
	RootCode string
}

func (c *Config) defaults() {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.RatePerSecond <= 0 {
		c.RatePerSecond = 50
	}
	if c.RateBurst <= 0 {
		c.RateBurst = 100
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 4096
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 5 * time.Second
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = 2 * time.Second
	}
	if c.OutageIncidentAfter <= 0 {
		c.OutageIncidentAfter = DefaultOutageIncidentAfter
	}
}

// Auditor records live-session audit events. journal.Journal is the production
// one: it writes to the store, or queues durably on disk while PostgreSQL is away,
// keeping order. Record must not block for more than a couple of seconds.
type Auditor interface {
	Record(ctx context.Context, e store.Event) error
}

// storeAuditor writes straight to the store (when no journal is configured).
type storeAuditor struct{ st *store.Store }

func (a storeAuditor) Record(ctx context.Context, e store.Event) error {
	_, err := a.st.RecordEvent(ctx, e)
	return err
}

// Deps are the service's collaborators.
type Deps struct {
	Store    *store.Store
	Audit    Auditor // optional: default writes to Store directly
	Hub      *eventbus.Hub
	Log      *slog.Logger
	Media    MediaEngine // built by the caller, who connects Service.MediaHooks and closes it after Close
	TURN     TURN        // the engine's TURN credential for clients (zero: TURN is off)
	Config   Config
	Registry *prometheus.Registry // optional: presence gauges
	// Recorder, if set, records the program and the floor while a session is
	// in progress (see record.go).
	Recorder Recorder
	// LiveStore keeps the live state (see LiveState): restored at start,
	// rewritten on every change. *store.Store is the production one.
	LiveStore LiveStateStore
	// StatePath, if set and LiveStore is not, keeps the live state in a local
	// file instead (FileLiveState).
	StatePath string
}

// Service serves /ws and owns the live session; it drives the media engine.
type Service struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	auditor Auditor
	hub     *eventbus.Hub
	engine  MediaEngine
	room    *Room
	origins []string
	seq     atomic.Int64
	kickC   chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// Owned by the reconcile goroutine: what each slot was last set to.
	applied map[string]map[string]appliedSlot
	// Floor-switch and reconcile timing, for logs and tests.
	lastReconcile atomic.Int64 // ns

	uplinkMu sync.Mutex
	uplink   Uplink // the link to the parent node (uplink.go); nil for a root node

	turnSecret, turnHost string
	turnUser, turnPass   string

	// endSession ends a session in the log (the store's; fuzz tests replace it).
	endSession func(ctx context.Context, actor, id string) error

	liveStore LiveStateStore // nil: the live state is not kept
	saveC     chan struct{}
	names     map[string]string // endpoint names by code (outage incident titles)
	parents   map[string]string // roster parents by code (district scope), read-only after New
	frozen    atomic.Bool
	saveFail  atomic.Bool // the last save of the live state failed (logged once)

	// The record (record.go): the wanted recordings, handed to recordLoop.
	recorder Recorder
	recMu    sync.Mutex
	recWant  [len(recordKinds)]recordWant
	recC     chan struct{}

	ingest ingestTable // WHIP publishers and WHEP viewers (ingest.go)
}

type appliedSlot struct {
	track UpTrack
	layer int
}

// New creates the service and starts its background loops.
func New(ctx context.Context, d Deps) (*Service, error) {
	d.Config.defaults()
	if d.Log == nil {
		return nil, errors.New("signaling: a logger is required")
	}
	if d.Media == nil {
		return nil, errors.New("signaling: a media engine is required")
	}
	s := &Service{cfg: d.Config, log: d.Log, store: d.Store, auditor: d.Audit, hub: d.Hub, kickC: make(chan struct{}, 1),
		applied: map[string]map[string]appliedSlot{}, liveStore: d.LiveStore, saveC: make(chan struct{}, 1), names: map[string]string{},
		parents: map[string]string{}, recorder: d.Recorder, recC: make(chan struct{}, 1), engine: d.Media}
	if s.auditor == nil {
		s.auditor = storeAuditor{d.Store}
	}
	if s.liveStore == nil && d.StatePath != "" {
		s.liveStore = FileLiveState{Path: d.StatePath}
	}
	s.endSession = func(ctx context.Context, actor, id string) error {
		_, err := d.Store.EndSession(ctx, actor, id)
		return err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.room = newRoom(s.kick)
	s.room.log = s.log
	if d.Config.RootCode != "" {
		s.room.root = d.Config.RootCode
	}
	s.room.onState = s.stateChanged
	s.origins = originPatterns(d.Config.PublicURL, d.Config.AllowedOrigins)
	if d.TURN != (TURN{}) {
		s.turnSecret = d.TURN.Secret
		s.turnUser, s.turnPass = d.TURN.Username, d.TURN.Password
		s.turnHost = "127.0.0.1"
		if d.TURN.Host != "" {
			s.turnHost = d.TURN.Host
		} else if u, err := url.Parse(d.Config.PublicURL); err == nil && u.Hostname() != "" {
			s.turnHost = u.Hostname()
		}
	}

	eps, err := d.Store.ListEndpoints(ctx, store.EndpointFilter{})
	if err != nil {
		return nil, fmt.Errorf("signaling: roster: %w", err)
	}
	for _, e := range eps {
		s.room.roster = append(s.room.roster, e.Code)
		s.room.inRoster[e.Code] = true
		s.names[e.Code] = e.Name
		s.parents[e.Code] = e.ParentCode
	}
	curID := ""
	if cur, err := d.Store.CurrentSession(ctx); err == nil {
		curID = cur.ID
		s.room.sessionID = cur.ID
	} else if !errors.Is(err, store.ErrNoSession) {
		return nil, fmt.Errorf("signaling: current session: %w", err)
	}
	if s.liveStore != nil {
		s.restoreState(ctx, curID)
	}

	if d.Registry != nil { // presence gauges (internal/app registers the engine's)
		if err := d.Registry.Register(presenceCollector{s.room}); err != nil {
			return nil, fmt.Errorf("signaling: metrics: %w", err)
		}
	}
	s.wg.Add(4)
	go s.outageLoop()
	if s.liveStore != nil {
		s.wg.Add(1)
		go s.stateLoop()
	}
	if s.recorder != nil {
		s.wg.Add(1)
		go s.recordLoop()
	}
	go s.reconcileLoop()
	go s.statsLoop()
	go s.busLoop()
	return s, nil
}

// iceServers returns TURN credentials for one peer (nil when TURN is off).
func (s *Service) iceServers(peerID string) []webrtc.ICEServer {
	if s.engine.TURNPort() == 0 {
		return nil
	}
	host := s.turnHost
	if s.turnSecret == "" {
		if s.turnUser == "" {
			return nil
		}
		return s.engine.ICEServers(host, s.turnUser, s.turnPass) // a static credential
	}
	user, pass := media.TURNCredentials(s.turnSecret, peerID, 12*time.Hour)
	return s.engine.ICEServers(host, user, pass)
}

// Presence implements web.Presence.
func (s *Service) Presence(code string) string { return s.room.Presence(code) }

// Floor is the endpoint holding the floor ("" for nobody): the press wall names it.
func (s *Service) Floor() string { return s.room.Floor() }

// Close disconnects everyone and closes their peers; the engine is the
// caller's to close after it.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

func originPatterns(public string, allowed []string) []string {
	var out []string
	for _, o := range append([]string{public}, allowed...) {
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			out = append(out, u.Host)
		}
	}
	return out
}

// ServeHTTP upgrades an authenticated request (the web layer put the principal in
// the context) and serves the connection until it ends.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.origins})
	if err != nil {
		s.log.Info("signaling: upgrade refused", "err", err, "actor", p.Actor())
		return
	}
	c := newConn(s, ws, p)
	if c.staffID != 0 && !s.room.staffAcquire(c.staffID) {
		c.staffID = 0 // not counted
		c.sendErr(wire.ErrTooManyConns, fmt.Sprintf("at most %d connections per account", maxStaffConns), "")
		c.closeAfter(websocket.StatusPolicyViolation, "too many connections")
		c.writeLoop()
		_ = ws.CloseNow()
		return
	}
	c.run()
}

// ---- audit ----

// audit writes a live-session action to the audit log through the journal: it
// returns once the event is committed or queued durably on local disk, so a
// PostgreSQL outage never blocks or loses a live action.
func (s *Service) audit(ctx context.Context, actor, action, code string, after any) error {
	var sid *string
	if id := s.room.currentSession(); id != "" {
		sid = &id
	}
	var doc json.RawMessage
	if after != nil {
		b, err := json.Marshal(after)
		if err != nil {
			return fmt.Errorf("audit payload: %w", err)
		}
		doc = b
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	entity, id := "endpoint", code
	if code == "" {
		entity, id = "live_session", "all"
		if sid != nil {
			id = *sid
		}
	}
	if err := s.auditor.Record(ctx, store.Event{Key: uuid.NewString(), At: time.Now(), Actor: actor, Action: action,
		Entity: entity, EntityID: id, SessionID: sid, After: doc}); err != nil {
		s.log.Error("signaling: audit", "action", action, "err", err)
		return perr(wire.ErrInternal, "the action could not be written to the audit log; it was not applied")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		s.log.Warn("signaling: slow audit write", "action", action, "took", d)
	}
	return nil
}

// ---- event bus ----

// busLoop follows committed events: session start and end, and new directives.
// It resumes by id after any cut (a slow moment, a database outage), so an event
// in the gap, such as a revoked link, is never lost.
func (s *Service) busLoop() {
	defer s.wg.Done()
	var after int64
	for {
		// The position is taken before the session is read, so a change in between
		// is replayed rather than missed (replaying one is harmless).
		p, err := s.hub.Position(s.ctx)
		if err == nil {
			after = p
			break
		}
		s.log.Warn("signaling: event bus position", "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	s.syncSession()
	_ = s.hub.Follow(s.ctx, after, 256, s.onEvent)
}

func (s *Service) syncSession() {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	cur, err := s.store.CurrentSession(ctx)
	switch {
	case err == nil:
		s.room.setSession(cur.ID)
	case errors.Is(err, store.ErrNoSession):
		s.room.setSession("")
	case s.ctx.Err() == nil:
		s.log.Error("signaling: current session", "err", err)
	}
}

func (s *Service) onEvent(ev store.Event) {
	switch ev.Action {
	case "session.started":
		s.room.setSession(ev.EntityID)
	case "session.ended":
		if s.room.currentSession() == ev.EntityID {
			s.room.setSession("")
		}
	case "endpoint.link_revoked", "endpoint.link_issued":
		// The credential this device joined with no longer exists (revoked, or replaced
		// by a new link): it must not stay in the room on the strength of an old login.
		// A device that authenticated after the change holds the new credential.
		if c := s.room.endpointConn(ev.EntityID); c != nil && c.authAt.Before(ev.At) {
			c.send(wire.TypeRemoved, "", wire.RemovedMsg{By: ev.Actor, Reason: "credential_revoked"})
			c.clean.Store(true)
			c.closeAfter(StatusCredentialRevoked, "join link revoked or replaced")
		}
	case "directive.issued":
		var doc struct {
			TargetCodes []string `json:"target_codes"`
		}
		if len(ev.After) == 0 || json.Unmarshal(ev.After, &doc) != nil || len(doc.TargetCodes) == 0 {
			return
		}
		sent := s.room.sendToCodes(doc.TargetCodes, wire.TypeDirective, wire.DirectiveMsg{EventID: ev.ID, Directive: ev.After})
		if len(sent) > 0 {
			s.wg.Add(1)
			go s.markDelivered(ev.EntityID, sent)
		}
	}
}

// markDelivered records the receipts of a directive pushed to live endpoints,
// retrying for a while if PostgreSQL is away (off the bus loop: never blocks it).
func (s *Service) markDelivered(directiveID string, codes []string) {
	defer s.wg.Done()
	for _, code := range codes {
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			_, err := s.store.MarkDelivered(ctx, directiveID, code)
			cancel()
			if err == nil || s.ctx.Err() != nil {
				break
			}
			if !store.IsUnavailable(err) || attempt >= 30 {
				s.log.Error("signaling: mark directive delivered", "directive", directiveID, "code", code, "err", err)
				break
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}
}

// ---- presence and stats ----

func (s *Service) statsLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastStats := time.Now()
	for {
		select {
		case now := <-tick.C:
			s.room.tick(now)
			if now.Sub(lastStats) >= s.cfg.StatsInterval-100*time.Millisecond {
				lastStats = now
				s.collectStats(now)
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// collectStats reads every live endpoint's media statistics, judges degraded
// presence from loss, RTCP and media expected but not arriving (never from media
// paused or gated on purpose) and sends consoles the health board.
func (s *Service) collectStats(now time.Time) {
	type item struct {
		code string
		c    *conn
		st   media.PeerStats
	}
	var items []item
	for _, c := range s.room.liveEndpoints() {
		items = append(items, item{code: c.code, c: c})
	}
	for i := range items {
		items[i].st = items[i].c.peer.Stats()
	}
	entries := make([]wire.StatEntry, 0, len(items))
	for _, it := range items {
		if e, ok := s.room.updateStats(it.c, it.st, now); ok {
			entries = append(entries, e)
		}
	}
	s.room.broadcastStats(wire.StatsMsg{At: now.UTC(), Endpoints: entries})
}
