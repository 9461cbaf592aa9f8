// Package uplink is a node's link to its parent in the tree of nodes (DESIGN.md,
// "Beyond one machine"). The node joins the parent's session as one endpoint,
// its own root code, with the join link the parent issued for that code and the
// product's own protocol client (synth/client): the same /ws, Bearer
// credential, ICE and media as any endpoint, so the parent needs nothing new to
// accept a child, and the child can act only as itself there.
//
// The link is kept forever: a failed dial, a dropped WebSocket or a replaced
// connection is retried with a capped, jittered back-off. Its state is logged,
// exported as a gauge and readable by the node (Status).
//
// Along it, for now: the parent's program comes down and, when the node's
// leaders choose it, becomes the node's program through the node's own WHIP
// ingest (relay.go), with the parent's floor as the node's relayed floor
// (floorrelay.go); the node's own turnout figure goes up, through the
// parent's REST API with the same credential (turnout.go).
package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// States of the link, as Status reports them and the gauge numbers them.
const (
	StateConnecting = "connecting" // dialling, or waiting to dial again
	StateJoined     = "joined"     // welcomed by the parent; media not (yet) up
	StateConnected  = "connected"  // welcomed and the media path is up
	StateStopped    = "stopped"    // Close was called
)

// gaugeValue numbers the states for opscenter_uplink_state.
var gaugeValue = map[string]float64{StateStopped: -1, StateConnecting: 0, StateJoined: 1, StateConnected: 2}

// Config says where the parent is and who this node is there.
type Config struct {
	URL   string // the parent's public URL
	Token string // the parent's join secret for Code
	Code  string // this node's root code (the endpoint it is at the parent)

	ReconnectMin, ReconnectMax time.Duration // back-off bounds (defaults 500 ms, 30 s)

	// Figure, if set, reads the node's own turnout (ok false: nothing to report
	// yet); the uplink reports it to the parent every SyncInterval it changed.
	Figure       func(context.Context) (f Figure, ok bool, err error)
	SyncInterval time.Duration // default 1 s

	// Directives, if set, brings the parent's directives into the node's log
	// and answers their receipts from it, every SyncInterval (directives.go).
	Directives Directives
	// Escalations, if set, delivers the node's escalated incidents to the
	// parent, every SyncInterval (escalations.go).
	Escalations Escalations

	// ViewProgram, if set, makes the node's program what the parent sees of
	// this unit: the uplink publishes it (programup.go).
	ViewProgram ViewFunc

	// PublishProgram, if set, lets the node take the parent's program as its
	// own (SetProgramSource): the relay is published into the node with it.
	PublishProgram PublishFunc
	// PublishFloor, if set, relays the parent's floor into the node while its
	// program source is the parent (floorrelay.go): the node's endpoints see
	// it as their floor while the node has none of its own.
	PublishFloor PublishFunc

	// OnChange, if set, is called after the state or the program source
	// changed (the node's consoles are told: signaling.Service.UplinkChanged).
	OnChange func()

	// Client, if set, adjusts the protocol client's options before each dial
	// (tests: loopback interfaces).
	Client func(*client.Options)
}

// Status is what the node's console is told about its uplink.
type Status struct {
	Parent     string    `json:"parent"`               // the parent's URL
	Code       string    `json:"code"`                 // the endpoint this node is at the parent
	State      string    `json:"state"`                // one of the State* constants
	Since      time.Time `json:"since"`                // when State last changed
	Dials      int       `json:"dials"`                // connections made (the first and every new one)
	LastError  string    `json:"last_error,omitempty"` // why the last attempt or link failed
	ParentCode string    `json:"parent_code,omitempty"`
	// ProgramSource is what the node's endpoints see as the program: SourceOwn
	// or SourceParent.
	ProgramSource string `json:"program_source"`
	// TurnoutVoted and TurnoutAsOf are the last figure the parent accepted.
	TurnoutVoted int64     `json:"turnout_voted"`
	TurnoutAsOf  time.Time `json:"turnout_as_of,omitzero"`
}

// Uplink keeps one node's link to its parent.
type Uplink struct {
	cfg   Config
	log   *slog.Logger
	gauge prometheus.Gauge

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // side loops (turnout)

	progMu sync.Mutex            // serialises SetProgramSource
	relay  atomic.Pointer[relay] // the parent's program into the node; nil: own program
	floor  floorRelay            // the parent's floor into the node (floorrelay.go)
	http   *http.Client

	received map[string]bool // directive ids already in the node's log (runDirectives only)
	up       *programUp      // the node's program going up; nil without ViewProgram

	mu     sync.Mutex
	cli    *client.Client // current protocol client; nil while connecting
	status Status
}

// New starts the uplink in the background; reg (optional) gets its gauge.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Uplink, error) {
	if cfg.URL == "" || cfg.Token == "" || cfg.Code == "" {
		return nil, errors.New("uplink: parent URL, join token and node code are required")
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 500 * time.Millisecond
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = max(30*time.Second, cfg.ReconnectMin)
	}
	u := &Uplink{cfg: cfg, log: log.With("uplink", cfg.URL, "code", cfg.Code), done: make(chan struct{}),
		http: &http.Client{Timeout: 10 * time.Second}, received: map[string]bool{},
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "opscenter_uplink_state",
			Help: "The link to the parent node: -1 stopped, 0 connecting, 1 joined, 2 connected (media up)."}),
		status: Status{Parent: cfg.URL, Code: cfg.Code, State: StateConnecting, Since: time.Now(), ProgramSource: SourceOwn}}
	if reg != nil {
		if err := reg.Register(u.gauge); err != nil {
			return nil, fmt.Errorf("uplink gauge: %w", err)
		}
	}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.floor.kick = make(chan struct{}, 1)
	if cfg.PublishFloor != nil {
		u.wg.Add(1)
		go u.runFloorRelay()
	}
	if cfg.ViewProgram != nil { // before run: its dials publish it
		u.up = &programUp{}
		u.up.src = &client.Source{OnKeyframe: u.up.keyframe}
		u.wg.Add(1)
		go u.runProgramUp(u.up)
	}
	go u.run()
	if cfg.Figure != nil {
		u.wg.Add(1)
		go u.runTurnout()
	}
	if cfg.Directives != nil || cfg.Escalations != nil {
		u.wg.Add(1)
		go u.runSync()
	}
	return u, nil
}

// Status returns the link's current status.
func (u *Uplink) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status
}

// UplinkState is the link as the node's consoles see it (signaling.Uplink).
func (u *Uplink) UplinkState() wire.UplinkMsg {
	st := u.Status()
	return wire.UplinkMsg{Parent: st.Parent, Code: st.Code, State: st.State, ProgramSource: st.ProgramSource}
}

func (u *Uplink) changed() {
	if u.cfg.OnChange != nil {
		u.cfg.OnChange()
	}
}

// Client returns the current protocol client (nil while connecting). Its
// methods are safe to call while the uplink runs; the uplink owns its life.
func (u *Uplink) Client() *client.Client {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cli
}

// Close ends the link (a clean leave) and waits for the loop to stop.
func (u *Uplink) Close() {
	u.cancel()
	<-u.done
	u.wg.Wait()
	_ = u.SetProgramSource(SourceOwn)
}

func (u *Uplink) setState(st string, err error) {
	u.mu.Lock()
	changed := u.status.State != st
	if changed {
		u.status.State, u.status.Since = st, time.Now()
	}
	if err != nil {
		u.status.LastError = err.Error()
	}
	u.mu.Unlock()
	u.gauge.Set(gaugeValue[st])
	if changed {
		u.log.Info("uplink state", "state", st, "err", err)
		u.changed()
	}
}

// run dials, watches and re-dials until Close. The protocol client restores a
// dropped WebSocket or media path by itself (AutoReconnect); this loop covers
// what it gives up on: a dial that never succeeded, and a connection the parent
// replaced or removed (another device with the link, a revoked link).
func (u *Uplink) run() {
	defer close(u.done)
	defer u.setState(StateStopped, nil)
	backoff := u.cfg.ReconnectMin
	for u.ctx.Err() == nil {
		u.setState(StateConnecting, nil)
		c, err := u.dial()
		if err != nil {
			u.setState(StateConnecting, err)
			wait := backoff/2 + rand.N(backoff/2+1)
			u.log.Warn("uplink: cannot join the parent", "err", err, "retry_in", wait.Round(time.Millisecond))
			backoff = min(backoff*2, u.cfg.ReconnectMax)
			select {
			case <-u.ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		backoff = u.cfg.ReconnectMin
		u.mu.Lock()
		u.cli = c
		u.status.Dials++
		u.status.ParentCode = c.Code()
		u.mu.Unlock()
		u.watch(c)
		u.mu.Lock()
		u.cli = nil
		u.mu.Unlock()
		u.setParentFloor("") // unknown until the next welcome
		c.Close()
		// Replaced or removed at the parent: wait the longest back-off, so two
		// holders of one link do not take it from each other in a tight loop.
		select {
		case <-u.ctx.Done():
		case <-time.After(u.cfg.ReconnectMax/2 + rand.N(u.cfg.ReconnectMax/2+1)):
		}
	}
}

func (u *Uplink) dial() (*client.Client, error) {
	o := client.Options{URL: u.cfg.URL, Token: u.cfg.Token, Role: "endpoint",
		NoAudio: true, NoVideo: true,
		AllInterface: true, NetworkTypes: []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4},
		AutoReconnect: true, ReconnectMin: u.cfg.ReconnectMin, ReconnectMax: u.cfg.ReconnectMax,
		OnRTP: u.onRTP, OnMessage: u.onMessage, Log: u.log}
	if u.up != nil {
		o.Publish, o.Source, o.NoVideo, o.NoAudio = true, u.up.src, false, false
	}
	if u.cfg.Client != nil {
		u.cfg.Client(&o)
	}
	ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("join %s as %s: %w", u.cfg.URL, u.cfg.Code, err)
	}
	if got := c.Code(); got != u.cfg.Code {
		c.Close()
		// The link is for another unit: never act as it.
		return nil, fmt.Errorf("the parent's link is for endpoint %q, not this node's %q", got, u.cfg.Code)
	}
	return c, nil
}

// watch mirrors the client's state until it stops for good or Close.
func (u *Uplink) watch(c *client.Client) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		switch c.State() {
		case client.StateConnected:
			u.setState(StateConnected, nil)
		case client.StateJoined:
			u.setState(StateJoined, nil)
		case client.StateReconnecting:
			u.setState(StateConnecting, nil)
		default: // stopped (replaced or removed) or closed: dial afresh
			u.setState(StateConnecting, fmt.Errorf("the parent ended the connection (%s)", c.State()))
			return
		}
		select {
		case <-u.ctx.Done():
			return
		case <-t.C:
		}
	}
}
