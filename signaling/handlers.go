package signaling

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/wire"
)

// handler is one message type's entry: its function and what it requires.
type handler struct {
	fn     func(*conn, *wire.Envelope) error
	joined bool // needs a prior join
	// replies: the handler answers with the request's id itself (welcome, pong,
	// publish_answer, leave's ack); every other success is acknowledged with ack.
	replies bool
	leader  bool // needs a staff principal with the run-session capability
}

// on adapts a typed handler: the payload is decoded strictly into T.
func on[T any](f func(c *conn, id string, p *T) error) func(*conn, *wire.Envelope) error {
	return func(c *conn, env *wire.Envelope) error {
		var p T
		if len(env.Payload) > 0 && !bytes.Equal(env.Payload, []byte("null")) {
			dec := json.NewDecoder(bytes.NewReader(env.Payload))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				return perr(wire.ErrBadPayload, "%s payload: %v", env.Type, err)
			}
		}
		return f(c, env.ID, &p)
	}
}

func joined[T any](f func(*conn, string, *T) error) handler {
	return handler{fn: on(f), joined: true}
}

func leader[T any](f func(*conn, string, *T) error) handler {
	return handler{fn: on(f), joined: true, leader: true}
}

// handlers maps every client message type to its handler.
var handlers = map[string]handler{
	wire.TypeJoin:             {fn: on(onJoin), replies: true},
	wire.TypePing:             {fn: on(onPing), replies: true},
	wire.TypeLeave:            {fn: on(onLeave), replies: true},
	wire.TypePublishOffer:     {fn: on(onPublishOffer), joined: true, replies: true},
	wire.TypeSubscriberAnswer: joined(onSubscriberAnswer),
	wire.TypeICECandidate:     joined(onICECandidate),
	wire.TypeICERestart:       joined(onICERestart),
	wire.TypeMuteState:        joined(onMuteState),
	wire.TypeRaiseHand:        joined(onRaiseHand),
	wire.TypeLowerHand:        joined(onLowerHand),
	wire.TypeLayerRequest:     joined(onLayerRequest),
	wire.TypeVisibility:       joined(onVisibility),
	wire.TypeUnmuteAccept:     joined(onUnmuteAccept),
	wire.TypeGiveFloor:        leader(onGiveFloor),
	wire.TypeRevokeFloor:      leader(onRevokeFloor),
	wire.TypeMute:             leader(onMute),
	wire.TypeMuteAll:          leader(onMuteAll),
	wire.TypeRequestUnmute:    leader(onRequestUnmute),
	wire.TypePrivateLineOpen:  leader(onPrivateLineOpen),
	wire.TypePrivateLineClose: leader(onPrivateLineClose),
	wire.TypeRollCallStart:    leader(onRollCallStart),
	wire.TypeRollCallStop:     leader(onRollCallStop),
	wire.TypeRemove:           leader(onRemove),
	wire.TypeSessionEnd:       leader(onSessionEnd),
	wire.TypeProgramSource:    leader(onProgramSource),
}

// ---- connection and media ----

func onJoin(c *conn, id string, m *wire.JoinMsg) error {
	if c.joined {
		return perr(wire.ErrAlreadyJoined, "this connection has already joined")
	}
	switch {
	case m.Role == "":
		return perr(wire.ErrMissingRole, `join needs a role: "endpoint" or "console"`)
	case m.Role != wire.RoleEndpoint && m.Role != wire.RoleConsole:
		return perr(wire.ErrBadPayload, "unknown role %q", m.Role)
	}
	n := c.svc.seq.Add(1)
	if c.p.IsEndpoint() {
		c.code = c.p.EndpointCode
		c.role = wire.RoleEndpoint
		if c.code == c.svc.room.root { // the command room's device: console and program
			c.role, c.program = wire.RoleConsole, true
		} else if m.Role == wire.RoleConsole {
			return perr(wire.ErrForbidden, "only the command room may join as a console")
		}
		c.peerID = fmt.Sprintf("%s#%d", c.code, n)
	} else {
		if m.Role != wire.RoleConsole {
			return perr(wire.ErrForbidden, "staff join as a console")
		}
		if !c.p.Can(auth.CapRead) {
			return perr(wire.ErrForbidden, "your role cannot watch the session")
		}
		c.code, c.role = c.svc.room.root, wire.RoleConsole
		c.scope = c.svc.scopeOf(c.p)
		c.leader = c.p.Can(auth.CapRunSession)
		c.program = c.leader
		c.peerID = fmt.Sprintf("staff:%s#%d", c.p.Username, n)
	}
	peer, err := c.svc.engine.NewPeer(c.peerID)
	if err != nil {
		return fmt.Errorf("new peer: %w", err)
	}
	c.peer = peer
	for _, name := range BaseSlots {
		kind := webrtc.RTPCodecTypeVideo
		if SlotIsAudio(name) {
			kind = webrtc.RTPCodecTypeAudio
		}
		if _, err := peer.AddSlot(name, kind); err != nil {
			return fmt.Errorf("add slot %s: %w", name, err)
		}
	}
	peer.OnCandidate(func(t media.Target, ci *webrtc.ICECandidateInit) {
		c.send(wire.TypeICECandidate, "", wire.CandidateMsg{Target: t.String(), Candidate: (*wire.ICECandidateInit)(ci)})
	})
	peer.OnNegotiationNeeded(func() { c.post(func() { c.negotiate(false) }) })
	c.joined = true
	c.svc.log.Info("signaling: joined", "peer", c.peerID, "actor", c.p.Actor(), "role", c.role,
		"agent", m.Device.UserAgent, "label", m.Device.Label)

	old := c.svc.room.join(c)
	if old != nil {
		old.send(wire.TypeReplaced, "", wire.ReplacedMsg{You: "old", Reason: "a newer device joined with the same credential"})
		old.closeAfter(StatusReplaced, "replaced by a newer device")
		c.send(wire.TypeReplaced, "", wire.ReplacedMsg{You: "new", Reason: "an older device with the same credential was disconnected"})
	}
	c.svc.room.welcome(c, id, old != nil, c.svc.iceServers(c.peerID))
	c.sendUplink()
	c.negotiate(false)
	return nil
}

// StatusReplaced is the WebSocket close code sent to a replaced connection.
const StatusReplaced websocket.StatusCode = 4000

// StatusRemoved is the close code sent to an endpoint the command room removed.
const StatusRemoved websocket.StatusCode = 4001

// StatusCredentialRevoked closes a device whose join link was revoked or replaced;
// it needs the new link to come back.
const StatusCredentialRevoked websocket.StatusCode = 4003

func onPing(c *conn, id string, _ *wire.Empty) error {
	c.send(wire.TypePong, id, wire.Empty{})
	return nil
}

func onLeave(c *conn, id string, _ *wire.Empty) error {
	if id != "" { // before the close, which stops sending
		c.send(wire.TypeAck, id, wire.AckMsg{Type: wire.TypeLeave})
	}
	c.clean.Store(true)
	c.closeAfter(websocket.StatusNormalClosure, "bye")
	return nil
}

// negotiate sends a subscriber offer. While one awaits its answer the peer
// notes that another is needed and asks for it (OnNegotiationNeeded) after
// the answer.
func (c *conn) negotiate(iceRestart bool) {
	if c.peer == nil {
		return
	}
	sdp, err := c.peer.CreateSubscriberOffer(iceRestart)
	if err != nil {
		if !errors.Is(err, media.ErrClosed) && !errors.Is(err, media.ErrOfferOutstanding) {
			c.svc.log.Error("signaling: subscriber offer", "peer", c.peerID, "err", err)
			c.sendErr(wire.ErrInternal, "cannot create the subscriber offer", "")
		}
		return
	}
	c.send(wire.TypeSubscriberOffer, "", wire.SDPMsg{SDP: sdp})
}

func sdpError(err error) error {
	if errors.Is(err, media.ErrInvalidSDP) {
		return perr(wire.ErrInvalidSDP, "%v", err)
	}
	if errors.Is(err, media.ErrBadState) {
		return perr(wire.ErrBadState, "%v", err)
	}
	return err
}

// onPublishOffer checks the offer (sdpcheck.go) before the publisher leg sees it:
// a refused offer leaves the leg as it was.
func onPublishOffer(c *conn, id string, m *wire.SDPMsg) error {
	lastOffer, lastAnswer := c.peer.PublisherOffer()
	if err := checkOffer(m.SDP, lastOffer, lastAnswer); err != nil {
		return perr(wire.ErrInvalidSDP, "publish offer: %v", err)
	}
	answer, err := c.peer.PublishOffer(m.SDP)
	if err != nil {
		return sdpError(err)
	}
	c.send(wire.TypePublishAnswer, id, wire.SDPMsg{SDP: answer})
	return nil
}

// onSubscriberAnswer checks the answer against our outstanding offer before the
// subscriber leg sees it: a refused answer leaves the offer outstanding, so the
// client can still send the right one.
func onSubscriberAnswer(c *conn, _ string, m *wire.SDPMsg) error {
	offer, out := c.peer.SubscriberOffer()
	if !out {
		return perr(wire.ErrBadState, "no subscriber offer is outstanding")
	}
	if err := checkAnswer(m.SDP, offer); err != nil {
		return perr(wire.ErrInvalidSDP, "subscriber answer: %v", err)
	}
	// On success, a renegotiation owed meanwhile comes back through
	// OnNegotiationNeeded.
	if err := c.peer.SetSubscriberAnswer(m.SDP); err != nil {
		if errors.Is(err, media.ErrOfferConsumed) {
			// The leg is stable again but the offer is gone: offer afresh, so the
			// leg keeps working (the client answers the new offer).
			c.negotiate(false)
		}
		return sdpError(err)
	}
	return nil
}

func onICECandidate(c *conn, _ string, m *wire.CandidateMsg) error {
	var t media.Target
	switch m.Target {
	case "publisher":
		t = media.Publisher
	case "subscriber":
		t = media.Subscriber
	default:
		return perr(wire.ErrBadPayload, `target must be "publisher" or "subscriber"`)
	}
	if m.Candidate == nil {
		return nil // end of candidates
	}
	if err := c.peer.AddCandidate(t, webrtc.ICECandidateInit(*m.Candidate)); err != nil {
		return perr(wire.ErrBadPayload, "candidate rejected: %v", err)
	}
	return nil
}

func onICERestart(c *conn, _ string, _ *wire.Empty) error {
	if _, out := c.peer.SubscriberOffer(); out {
		return perr(wire.ErrBadState, "a subscriber offer is outstanding; answer it first")
	}
	c.negotiate(true)
	return nil
}

func onMuteState(c *conn, _ string, m *wire.MuteStateMsg) error {
	if c.staffID == 0 {
		c.svc.room.selfMute(c.code, m.Audio)
		c.svc.room.selfMedia(c, m.Video, m.Audio)
	}
	return nil
}

func onRaiseHand(c *conn, _ string, _ *wire.Empty) error {
	if c.staffID != 0 || c.code == c.svc.room.root {
		return perr(wire.ErrForbidden, "only endpoints raise hands")
	}
	if e := c.svc.room.setHand(c.code, true); e != "" {
		return perr(e, "no session is in progress")
	}
	return nil
}

func onLowerHand(c *conn, _ string, _ *wire.Empty) error {
	c.svc.room.setHand(c.code, false)
	return nil
}

// onUnmuteAccept lifts the mute a leader asked to lift: validated, audited, then
// applied, as a leader action is.
func onUnmuteAccept(c *conn, _ string, _ *wire.Empty) error {
	r := c.svc.room
	defer r.lockActions()()
	if !r.unmuteAsked(c.code) {
		return perr(wire.ErrNoUnmuteAsked, "no unmute request is pending")
	}
	if err := c.record("mute.lifted", c.code, map[string]any{"muted": false}); err != nil {
		return err
	}
	return c.applied("mute.lifted", r.unmuteAccept(c.code))
}

func onLayerRequest(c *conn, _ string, m *wire.LayerRequestMsg) error {
	if m.Layer < media.LayerLow || m.Layer > media.LayerHigh {
		return perr(wire.ErrBadPayload, "layer must be 0, 1 or 2")
	}
	if strings.HasPrefix(m.Slot, tilePrefix) {
		return perr(wire.ErrBadPayload, "tile layers follow visibility sizes")
	}
	s := c.peer.Slot(m.Slot)
	if s == nil || SlotIsAudio(m.Slot) {
		return perr(wire.ErrBadPayload, "no video slot %q", m.Slot)
	}
	s.SetRequestedLayer(m.Layer)
	return nil
}

func onVisibility(c *conn, _ string, m *wire.VisibilityMsg) error {
	if c.role != wire.RoleConsole {
		return perr(wire.ErrForbidden, "only consoles monitor tiles")
	}
	tiles := make([]Tile, 0, len(m.Tiles))
	used := map[int]bool{}
	for _, t := range m.Tiles {
		if t.Slot != nil {
			if *t.Slot < 0 || *t.Slot >= MaxTiles {
				return perr(wire.ErrTileOutOfRange, "tile slot must be 0..%d", MaxTiles-1)
			}
			used[*t.Slot] = true
		}
		if t.Size != "small" && t.Size != "large" && t.Size != "" {
			return perr(wire.ErrBadPayload, `size must be "small" or "large"`)
		}
		if t.Visible && !c.sees(t.Code) { // worded as for a code that does not exist
			return perr(wire.ErrUnknownCode, "%q is not an endpoint of district %s", t.Code, c.p.District)
		}
	}
	next := 0
	for _, t := range m.Tiles {
		if !t.Visible {
			continue
		}
		slot := 0
		if t.Slot != nil {
			slot = *t.Slot
		} else {
			for used[next] {
				next++
			}
			slot = next
			used[slot] = true
		}
		if slot >= MaxTiles {
			return perr(wire.ErrTileOutOfRange, "more than %d tiles", MaxTiles)
		}
		tiles = append(tiles, Tile{Slot: slot, Code: t.Code, Large: t.Size == "large"})
	}
	c.svc.room.setTiles(c.peerID, tiles)
	return nil
}
