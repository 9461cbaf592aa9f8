// Package client is the synthetic endpoint: a Pion client that speaks opscenter's
// real /ws protocol with a real credential, publishes simulcast VP8 (synth/media,
// keyframes on PLI) and Opus, answers the server's subscriber offers, honours
// layer_control, trickles ICE, and records what it receives per slot and source
// (by payload marker, never by SSRC). Tests, the load generator and the fault
// tests share it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/pion/transport/v2"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/wire"
)

// Layer is one simulcast encoding the client publishes.
type Layer struct {
	RID           string
	Width, Height int
	Bitrate       int // bit/s
}

// StdLayers are the three layers of DESIGN.md: about 180p, 360p and 720p.
var StdLayers = []Layer{{"q", 320, 180, 150_000}, {"h", 640, 360, 500_000}, {"f", 1280, 720, 1_500_000}}

// Options configure a synthetic endpoint.
type Options struct {
	URL   string // server base URL, http(s)://host:port
	Token string // bearer credential: an endpoint's join token or a staff session token
	Role  string // "endpoint" (default) or "console"

	Publish    bool    // publish video and audio after joining
	NoAudio    bool    // publish video only
	NoVideo    bool    // publish audio only
	Layers     []Layer // default StdLayers; one layer = no simulcast
	FPS        int     // default 15
	AudioLevel uint8   // dBov sent in the audio-level extension, default 30

	// Network: by default loopback only (include loopback, mDNS off, udp4, lo).
	Interfaces   []string // default ["lo"]; empty slice with AllInterfaces = every interface
	AllInterface bool
	ICETimeout   time.Duration // wait for the media path, default 10 s
	// NetworkTypes the client gathers candidates on (default udp4). With
	// webrtc.NetworkTypeTCP4 alone the client uses ICE-TCP only (active TCP
	// towards the server's passive candidate).
	NetworkTypes []webrtc.NetworkType
	// UDPPortMin and UDPPortMax, when both set, bind the client's host UDP
	// candidates to that range (SettingEngine.SetEphemeralUDPPortRange), so a
	// test can cut the client's media path with a firewall rule on those ports.
	UDPPortMin, UDPPortMax uint16
	// IPFilter, if set, keeps only local addresses it accepts.
	IPFilter func(net.IP) bool
	// Net, if set, runs the client's PeerConnections on this network (a
	// pion vnet.Net, for in-process fault injection). The WebSocket always
	// uses the real network.
	Net transport.Net
	// ICE timers (Pion defaults when zero: 5 s disconnected, 25 s failed, 2 s keepalive).
	ICEDisconnectedTimeout, ICEFailedTimeout, ICEKeepalive time.Duration

	// MapRemoteCandidate, if set, is applied to every server candidate the
	// client learns: trickled ones and a=candidate lines inside the server's
	// SDPs (publish_answer, subscriber_offer). Return false to drop the
	// candidate. Tests use it to route media through a relay they control.
	MapRemoteCandidate func(webrtc.ICECandidateInit) (webrtc.ICECandidateInit, bool)

	// AutoReconnect makes the client restore itself: when the WebSocket ends
	// (other than replaced or removed) it dials again with the same credential
	// (new WebSocket, new PeerConnections), with capped exponential back-off and
	// jitter; when a media leg stays down for MediaLossGrace while the
	// WebSocket lives, it restarts ICE (and after 3 failed restarts, reconnects).
	// See Reconnects, ICERestarts, State and WaitState.
	AutoReconnect bool
	ReconnectMin  time.Duration // first back-off, default 250 ms
	ReconnectMax  time.Duration // back-off cap, default 5 s
	// MediaLossGrace is how long a media leg may be down before an ICE restart
	// (default 3 s).
	MediaLossGrace time.Duration

	// Meter, if set, counts received media allocation-free instead of
	// recording it per slot and source (meter.go): the load generator's
	// receive path. Many clients may share one Meter.
	Meter *Meter
	// OnRTP, if set, is given every packet the client receives, after it is
	// recorded, with its slot (track id). It runs on the track's reader: it must
	// not block, and must copy what it keeps (the packet is reused). Not called
	// with Meter. A node's uplink relays the parent's program with it.
	OnRTP func(slot string, p *rtp.Packet)
	// OnMessage, if set, is given every server message after it is recorded
	// (welcome included, on every connection). It runs on the WebSocket's
	// reader: it must not block. A node's uplink follows the parent's floor
	// with it.
	OnMessage func(wire.Envelope)
	// Source, if set with Publish, is published instead of the synthetic media
	// (one VP8 layer and Opus from elsewhere; Layers, FPS and NoAudio do not apply).
	Source *Source

	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.Role == "" {
		o.Role = wire.RoleEndpoint
	}
	if len(o.Layers) == 0 {
		o.Layers = StdLayers
	}
	if o.FPS <= 0 {
		o.FPS = 15
	}
	if o.AudioLevel == 0 {
		o.AudioLevel = 30
	}
	if len(o.Interfaces) == 0 && !o.AllInterface {
		o.Interfaces = []string{"lo"}
	}
	if o.ICETimeout <= 0 {
		o.ICETimeout = 10 * time.Second
	}
	if len(o.NetworkTypes) == 0 {
		o.NetworkTypes = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 250 * time.Millisecond
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 5 * time.Second
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.MediaLossGrace <= 0 {
		o.MediaLossGrace = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Client is one synthetic endpoint. It keeps its identity (credential and
// recordings) across Reconnect.
type Client struct {
	opts Options
	api  *mediaAPI

	mu      sync.Mutex
	ws      *websocket.Conn
	sess    *session // media of the current connection
	welcome wire.WelcomeMsg
	url     string // the base URL of the server the client is connected to
	msgs    map[string][]Msg
	nextID  atomic.Int64

	rec        *Recorder
	firstMedia atomic.Int64 // unix ns of the first media packet (0: none)
	micOff     atomic.Bool

	heldMu  sync.Mutex
	held    map[string]bool // layers held back (HoldLayer)
	anyHeld atomic.Bool     // fast path: the sender checks it per packet

	connMu      sync.Mutex // serialises connect and drop
	sigPaused   atomic.Bool
	closed      atomic.Bool
	stopped     atomic.Bool // AutoReconnect gave up (replaced or removed)
	reconnects  atomic.Int64
	iceRestarts atomic.Int64
	stopC       chan struct{}
	supDone     chan struct{}
}

// keyframe routes a keyframe request from the RTCP tap to the current session.
func (c *Client) keyframe(ssrc uint32) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		s.keyframe(ssrc)
	}
	if c.opts.Source != nil {
		c.opts.Source.keyframe()
	}
}

// HoldLayer stops (true) or resumes (false) sending the simulcast layer rid,
// as a browser does when its uplink is short or its camera too small for the
// layer: no packets, no signaling. A resumed layer starts at a keyframe.
func (c *Client) HoldLayer(rid string, held bool) {
	c.heldMu.Lock()
	if c.held == nil {
		c.held = map[string]bool{}
	}
	c.held[rid] = held
	any := false
	for _, h := range c.held {
		any = any || h
	}
	c.anyHeld.Store(any)
	c.heldMu.Unlock()
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s != nil && !held {
		s.vmu.Lock()
		v := s.videos[rid]
		s.vmu.Unlock()
		if v != nil {
			v.RequestKeyframe()
		}
	}
}

func (c *Client) isHeld(rid string) bool {
	if !c.anyHeld.Load() {
		return false
	}
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	return c.held[rid]
}

// PauseSignaling stops (true) or resumes (false) reading the WebSocket: a client
// whose signaling reader is stuck. The server must drop it rather than block.
func (c *Client) PauseSignaling(paused bool) { c.sigPaused.Store(paused) }

// SetMic turns the synthetic microphone on or off and tells the server (mute_state).
func (c *Client) SetMic(on bool) error {
	c.micOff.Store(!on)
	_, err := c.Send(wire.TypeMuteState, wire.MuteStateMsg{Audio: on, Video: !c.opts.NoVideo})
	return err
}

// Dial connects, joins and (with Publish) starts publishing. It returns after the
// welcome message; media set-up continues in the background (see WaitConnected).
func Dial(ctx context.Context, o Options) (*Client, error) {
	o.defaults()
	c := &Client{opts: o, msgs: map[string][]Msg{}, rec: newRecorder()}
	var err error
	if c.api, err = newMediaAPI(o, c.keyframe); err != nil {
		return nil, err
	}
	c.connMu.Lock()
	err = c.connect(ctx, c.opts.URL)
	c.connMu.Unlock()
	if err != nil {
		c.Drop()
		return nil, err
	}
	if o.AutoReconnect {
		c.startSupervisor()
	}
	return c, nil
}

// reconnect drops the current connection and connects again (AutoReconnect and
// Reconnect); it counts successes.
func (c *Client) reconnect(ctx context.Context) error {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.drop()
	var errs []error
	for _, base := range c.NodeURLs() { // a standby pair: the next address when one fails
		err := c.connect(ctx, base)
		if err == nil {
			c.reconnects.Add(1)
			return nil
		}
		c.drop()
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// connect opens a WebSocket to the server at base, joins and publishes.
func (c *Client) connect(ctx context.Context, base string) error {
	u := strings.Replace(strings.Replace(base, "https://", "wss://", 1), "http://", "ws://", 1) + "/ws"
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+c.opts.Token)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial %s: %w (status %d)", u, err, resp.StatusCode)
		}
		return fmt.Errorf("dial %s: %w", u, err)
	}
	ws.SetReadLimit(8 << 20)
	s := newSession(c, ws)
	c.mu.Lock()
	c.ws, c.sess = ws, s
	c.mu.Unlock()
	go s.readLoop()

	since := time.Now()
	if _, err := c.Send(wire.TypeJoin, wire.JoinMsg{Role: c.opts.Role,
		Device: wire.DeviceInfo{UserAgent: "opscenter-synth", Camera: !c.opts.NoVideo, Mic: !c.opts.NoAudio}}); err != nil {
		return err
	}
	env, err := c.WaitMessage(wire.TypeWelcome, since, 10*time.Second, nil)
	if err != nil {
		if e, ok := c.LastError(); ok {
			return fmt.Errorf("join refused: %s: %s", e.Code, e.Message)
		}
		return fmt.Errorf("join: %w", err)
	}
	var w wire.WelcomeMsg
	if err := json.Unmarshal(env.Payload, &w); err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	c.mu.Lock()
	c.welcome, c.url = w, base
	c.mu.Unlock()
	if c.micOff.Load() { // a reconnect keeps the microphone state
		if _, err := c.Send(wire.TypeMuteState, wire.MuteStateMsg{Audio: false, Video: !c.opts.NoVideo}); err != nil {
			return err
		}
	}
	if c.opts.Publish && c.opts.Source != nil {
		if err := s.publishSource(w.Code, c.opts.Source); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	} else if c.opts.Publish {
		if err := s.publish(w.Code); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nil
}

// NodeURLs are the addresses a reconnect tries in order: the last welcome's
// node_urls (a standby pair), or Options.URL.
func (c *Client) NodeURLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.welcome.NodeURLs) > 0 {
		return slices.Clone(c.welcome.NodeURLs)
	}
	return []string{c.opts.URL}
}

// ServerURL is the base URL of the server the client last joined.
func (c *Client) ServerURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.url
}

// Welcome returns the last welcome message.
func (c *Client) Welcome() wire.WelcomeMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome
}

// Code is the endpoint code the server assigned ("22" for consoles).
func (c *Client) Code() string { return c.Welcome().Code }

// Send sends one message and returns its request id.
func (c *Client) Send(typ string, payload any) (string, error) {
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return "", err
		}
		raw = b
	}
	b, err := json.Marshal(wire.Envelope{Type: typ, ID: id, Payload: raw})
	if err != nil {
		return "", err
	}
	return id, c.SendRaw(b)
}

// sendOn sends one message on a given WebSocket (a session's own).
func (c *Client) sendOn(ws *websocket.Conn, typ string, payload any) (string, error) {
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return "", err
		}
		raw = b
	}
	b, err := json.Marshal(wire.Envelope{Type: typ, ID: id, Payload: raw})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return id, ws.Write(ctx, websocket.MessageText, b)
}

// SendRaw writes bytes as one text message (tests use it for malformed input).
func (c *Client) SendRaw(b []byte) error {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws == nil {
		return errors.New("not connected")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, b)
}

const keepPerType = 500

// Msg is a received server message with its arrival time.
type Msg struct {
	wire.Envelope
	At time.Time
}

func (c *Client) record(env wire.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := append(c.msgs[env.Type], Msg{env, time.Now()})
	if len(l) > keepPerType {
		l = l[len(l)-keepPerType:]
	}
	c.msgs[env.Type] = l
}

// Messages returns the recorded server messages of one type (the last 500).
func (c *Client) Messages(typ string) []Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Msg(nil), c.msgs[typ]...)
}

// WaitMessage waits for a message of type typ received at or after since for which
// match (if given) is true.
func (c *Client) WaitMessage(typ string, since time.Time, timeout time.Duration, match func(wire.Envelope) bool) (wire.Envelope, error) {
	var out wire.Envelope
	err := WaitFor(func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, m := range c.msgs[typ] {
			if !m.At.Before(since) && (match == nil || match(m.Envelope)) {
				out = m.Envelope
				return true
			}
		}
		return false
	}, timeout)
	if err != nil {
		return out, fmt.Errorf("waiting for %s: %w", typ, err)
	}
	return out, nil
}

// LastError returns the last error message received.
func (c *Client) LastError() (wire.ErrorMsg, bool) {
	l := c.Messages(wire.TypeError)
	if len(l) == 0 {
		return wire.ErrorMsg{}, false
	}
	var e wire.ErrorMsg
	_ = json.Unmarshal(l[len(l)-1].Payload, &e)
	return e, true
}

// WaitError waits for an error message with the given code received after since.
func (c *Client) WaitError(code string, since time.Time, timeout time.Duration) (wire.ErrorMsg, error) {
	var e wire.ErrorMsg
	_, err := c.WaitMessage(wire.TypeError, since, timeout, func(env wire.Envelope) bool {
		var x wire.ErrorMsg
		if json.Unmarshal(env.Payload, &x) == nil && x.Code == code {
			e = x
			return true
		}
		return false
	})
	return e, err
}

// Closed reports whether the current WebSocket has ended, with its close status
// (-1 when it ended without a close frame).
func (c *Client) Closed() (bool, websocket.StatusCode) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return true, -1
	}
	select {
	case <-s.done:
		return true, s.closeStatus
	default:
		return false, 0
	}
}

// WaitFor polls cond every 10 ms until it is true or the timeout expires.
func WaitFor(cond func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// WaitFor polls cond until it is true or the timeout expires.
func (c *Client) WaitFor(cond func() bool, timeout time.Duration) error {
	return WaitFor(cond, timeout)
}

// Recorder returns what the client has received.
func (c *Client) Recorder() *Recorder { return c.rec }

// Received returns, per slot, what arrived from source code since t (zero: ever).
func (c *Client) Received(source string, since time.Time) map[string]SourceStats {
	return c.rec.From(source, since)
}

// WaitConnected waits until both PeerConnections (or the subscriber one, when not
// publishing) are connected.
func (c *Client) WaitConnected(timeout time.Duration) error {
	return WaitFor(c.Connected, timeout)
}

// Connected reports whether both PeerConnections (or the subscriber one, when
// not publishing) are connected now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	return s != nil && s.connected(c.opts.Publish)
}

// Drop ends the WebSocket and both PeerConnections abruptly (no close frame, no
// leave): what a network failure looks like to the server.
func (c *Client) Drop() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.drop()
}

func (c *Client) drop() {
	c.mu.Lock()
	s, ws := c.sess, c.ws
	c.ws, c.sess = nil, nil
	c.mu.Unlock()
	if s != nil {
		s.close()
	}
	if ws != nil {
		_ = ws.CloseNow()
	}
}

// Reconnect drops the current connection (if any) and connects again with the
// same credential: a new WebSocket and fresh ICE (new PeerConnections). The
// recordings are kept.
func (c *Client) Reconnect(ctx context.Context) error {
	return c.reconnect(ctx)
}

// RestartICE restarts ICE on both legs over the live WebSocket (a network change
// without losing signaling).
func (c *Client) RestartICE() error {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return errors.New("not connected")
	}
	return s.restartICE()
}

// Close leaves cleanly and releases everything (and stops AutoReconnect).
func (c *Client) Close() {
	if c.closed.Swap(true) {
		return
	}
	if c.stopC != nil {
		close(c.stopC)
		select {
		case <-c.supDone:
		case <-time.After(20 * time.Second):
		}
	}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.mu.Lock()
	s, ws := c.sess, c.ws
	c.ws, c.sess = nil, nil
	c.mu.Unlock()
	if ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"leave"}`))
		cancel()
		_ = ws.Close(websocket.StatusNormalClosure, "bye")
	}
	if s != nil {
		s.close()
	}
}
