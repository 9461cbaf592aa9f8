// Package wire is the signaling wire protocol: one JSON envelope per WebSocket text
// message,
//
//	{"type": "...", "id": "client request id (optional)", "payload": {...}}
//
// with one Go struct per message type. The server (signaling) and every Go client
// (synth/client, loadgen) import it; it imports only the standard library so that a
// client does not pull in the server. docs/protocol.md documents every message with an
// example, and web/static/js/protocol.js mirrors the types for the browser (a test
// here fails when the two differ).
package wire

import (
	"encoding/json"
	"time"
)

// Envelope is the frame of every message in both directions.
type Envelope struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Client → server message types.
const (
	TypeJoin             = "join"
	TypePublishOffer     = "publish_offer"
	TypeSubscriberAnswer = "subscriber_answer"
	TypeICECandidate     = "ice_candidate"
	TypeICERestart       = "ice_restart"
	TypeMuteState        = "mute_state"
	TypeRaiseHand        = "raise_hand"
	TypeLowerHand        = "lower_hand"
	TypeLayerRequest     = "layer_request"
	TypeVisibility       = "visibility"
	TypeUnmuteAccept     = "unmute_accept"
	TypeLeave            = "leave"
	TypePing             = "ping"
	// Leader actions (staff with the run-session capability).
	TypeGiveFloor        = "give_floor"
	TypeRevokeFloor      = "revoke_floor"
	TypeMute             = "mute"
	TypeMuteAll          = "mute_all"
	TypeRequestUnmute    = "request_unmute"
	TypePrivateLineOpen  = "private_line_open"
	TypePrivateLineClose = "private_line_close"
	TypeRollCallStart    = "roll_call_start"
	TypeRollCallStop     = "roll_call_stop"
	TypeRemove           = "remove"
	TypeSessionEnd       = "session_end"
	TypeProgramSource    = "program_source" // a node with a parent: own command room or the parent's program
)

// Server → client message types (mute and ice_candidate are shared with the client
// direction).
const (
	TypeWelcome          = "welcome"
	TypeError            = "error"
	TypeSubscriberOffer  = "subscriber_offer"
	TypePublishAnswer    = "publish_answer"
	TypePresence         = "presence"
	TypePresenceSnapshot = "presence_snapshot"
	TypeFloor            = "floor"
	TypeHands            = "hands"
	TypeUnmuteRequest    = "unmute_request"
	TypePrivateLine      = "private_line"
	TypeRollCall         = "roll_call"
	TypeLayerControl     = "layer_control"
	TypeStats            = "stats"
	TypeDirective        = "directive"
	TypeReplaced         = "replaced"
	TypeSession          = "session"
	TypePong             = "pong"
	TypeRemoved          = "removed"
	TypeAck              = "ack"
	TypeUplink           = "uplink" // to consoles: the link to the parent node and the program source
)

// Roles a connection may join as.
const (
	RoleEndpoint = "endpoint"
	RoleConsole  = "console"
)

// Error codes sent in ErrorMsg.Code.
const (
	ErrBadJSON        = "bad_json"
	ErrUnknownType    = "unknown_type"
	ErrBadPayload     = "bad_payload"
	ErrTooLarge       = "too_large"
	ErrRateLimited    = "rate_limited"
	ErrNotJoined      = "not_joined"
	ErrAlreadyJoined  = "already_joined"
	ErrMissingRole    = "missing_role"
	ErrForbidden      = "forbidden"
	ErrInvalidSDP     = "invalid_sdp"
	ErrBadState       = "bad_state"
	ErrNoSession      = "no_session"
	ErrUnknownCode    = "unknown_endpoint"
	ErrOffline        = "endpoint_offline"
	ErrTooManyConns   = "too_many_connections"
	ErrInternal       = "internal"
	ErrNoUnmuteAsked  = "no_unmute_request"
	ErrNotPublisher   = "not_a_publisher"
	ErrTileOutOfRange = "tile_out_of_range"
	ErrUnavailable    = "unavailable" // the database is away; retry later
)

// ---- client → server payloads ----

// JoinMsg is the first message of a connection.
type JoinMsg struct {
	Role   string     `json:"role"` // "endpoint" or "console"
	Device DeviceInfo `json:"device"`
}

// DeviceInfo describes the joining device (informational, logged).
type DeviceInfo struct {
	UserAgent string `json:"user_agent,omitempty"`
	Label     string `json:"label,omitempty"`
	Camera    bool   `json:"camera,omitempty"`
	Mic       bool   `json:"mic,omitempty"`
}

// SDPMsg carries an offer or answer (publish_offer, publish_answer,
// subscriber_offer, subscriber_answer).
type SDPMsg struct {
	SDP string `json:"sdp"`
}

// CandidateMsg trickles one ICE candidate; Candidate nil means end of candidates.
type CandidateMsg struct {
	Target    string            `json:"target"` // "publisher" or "subscriber"
	Candidate *ICECandidateInit `json:"candidate"`
}

// ICECandidateInit is the browser's RTCIceCandidateInit. Its fields are those of
// pion's webrtc.ICECandidateInit, so the two convert to each other directly.
type ICECandidateInit struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
	UsernameFragment *string `json:"usernameFragment"`
}

// MuteStateMsg is the client's own microphone and camera state.
type MuteStateMsg struct {
	Audio bool `json:"audio"` // true: microphone on
	Video bool `json:"video"` // true: camera on
}

// LayerRequestMsg asks for a layer on one of the subscriber's slots.
type LayerRequestMsg struct {
	Slot  string `json:"slot"`
	Layer int    `json:"layer"` // 0 low, 1 mid, 2 high
}

// VisibilityMsg replaces the console's set of monitor tiles.
type VisibilityMsg struct {
	Tiles []TileMsg `json:"tiles"`
}

// TileMsg is one monitor tile.
type TileMsg struct {
	Code    string `json:"code"`
	Slot    *int   `json:"slot,omitempty"` // tile slot index; assigned by the server when absent
	Visible bool   `json:"visible"`
	Size    string `json:"size"` // "small" or "large"
}

// CodeMsg names one endpoint (give_floor, mute, request_unmute, private_line_open, remove).
type CodeMsg struct {
	Code string `json:"code"`
}

// Empty is the payload of messages that carry none.
type Empty struct{}

// ---- server → client payloads ----

// AckMsg confirms a client message that carried an id and has no reply of its own
// (join, ping and publish_offer have one: welcome, pong, publish_answer). The
// envelope's id repeats the request's.
type AckMsg struct {
	Type string `json:"type"` // the acknowledged message's type
}

// ErrorMsg reports a rejected message; ID repeats the request id.
type ErrorMsg struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
}

// WelcomeMsg answers join with who the connection is and the live state.
type WelcomeMsg struct {
	Code     string   `json:"code"`     // endpoint code ("22" for consoles)
	PeerID   string   `json:"peer_id"`  // media peer id of this connection
	Role     string   `json:"role"`     // endpoint or console
	Leader   bool     `json:"leader"`   // may send leader actions
	Replaced bool     `json:"replaced"` // an older connection with this credential was closed
	State    Snapshot `json:"state"`
	// ICEServers lists the embedded TURN server with short-lived credentials, when enabled.
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
	// District, for district-scoped staff, is the district the console is limited
	// to: it is told about the program, the floor and that district's units only.
	District string `json:"district,omitempty"`
	// NodeURLs are the node's addresses in order (a standby pair): after losing
	// the connection, a client tries them in turn.
	NodeURLs []string `json:"node_urls,omitempty"`
}

// ICEServer is the browser's RTCIceServer with a password credential (the only kind
// the embedded TURN server issues).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Snapshot is the live session state as seen by one connection.
type Snapshot struct {
	Session     string   `json:"session"`    // "in_progress" or "none"
	SessionID   *string  `json:"session_id"` // null when none
	Floor       *string  `json:"floor"`
	Hands       []string `json:"hands"`
	PrivateLine *string  `json:"private_line"`
	RollCall    bool     `json:"roll_call"`
	Muted       bool     `json:"muted"`        // this endpoint is muted by the command room
	HandRaised  bool     `json:"hand_raised"`  // this endpoint's hand is up
	UnmuteAsked bool     `json:"unmute_asked"` // an unmute request awaits confirmation
	MutedCodes  []string `json:"muted_codes"`  // every muted endpoint; [] when none
}

// PresenceMsg is one endpoint's presence (consoles get them all).
type PresenceMsg struct {
	Code   string     `json:"code"`
	State  string     `json:"state"`
	Reason string     `json:"reason,omitempty"` // why degraded, when known: "no_media"
	Stats  *StatEntry `json:"stats,omitempty"`  // presence_snapshot only, once the endpoint has stats
}

// PresenceSnapshotMsg is the whole roster's presence, sent on console join.
type PresenceSnapshotMsg struct {
	Endpoints []PresenceMsg `json:"endpoints"`
}

// FloorMsg names the floor holder (nil: nobody).
type FloorMsg struct {
	Code *string `json:"code"`
}

// HandsMsg is the ordered hand queue.
type HandsMsg struct {
	Queue []string `json:"queue"`
}

// MuteMsg reports a mute change.
type MuteMsg struct {
	Code  string `json:"code"`
	Muted bool   `json:"muted"`
	By    string `json:"by"`
}

// UnmuteRequestMsg asks the endpoint's user to turn the microphone back on.
type UnmuteRequestMsg struct {
	By string `json:"by"`
}

// PrivateLineMsg names the endpoint on the private line (nil: closed).
type PrivateLineMsg struct {
	Code *string `json:"code"`
}

// RollCallMsg reports the open-mic roll call.
type RollCallMsg struct {
	Active bool `json:"active"`
}

// LayerControlMsg tells a publisher to pause or resume one simulcast encoding.
type LayerControlMsg struct {
	RID    string `json:"rid"`
	Active bool   `json:"active"`
}

// StatsMsg is the 2-second health report for consoles.
type StatsMsg struct {
	At        time.Time   `json:"at"`
	Endpoints []StatEntry `json:"endpoints"`
}

// StatEntry is one endpoint's media health.
type StatEntry struct {
	Code       string  `json:"code"`
	State      string  `json:"state"`
	BitrateIn  int     `json:"bitrate_in"`  // bit/s received from the endpoint
	BitrateOut int     `json:"bitrate_out"` // bit/s sent to the endpoint
	Loss       float64 `json:"loss"`        // worst of uplink and downlink, 0..1
	JitterMs   float64 `json:"jitter_ms"`
	RTTMs      float64 `json:"rtt_ms"`
	Layer      int     `json:"layer"` // highest layer forwarded to the endpoint (-1: none)
}

// ReplacedMsg tells both devices that a newer one took over the credential.
type ReplacedMsg struct {
	You    string `json:"you"` // "old" (this connection is being closed) or "new"
	Reason string `json:"reason"`
}

// SessionMsg reports the session state.
type SessionMsg struct {
	State string `json:"state"` // "in_progress" or "none"
	ID    string `json:"id,omitempty"`
}

// RemovedMsg tells an endpoint the command room removed it.
type RemovedMsg struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"` // "credential_revoked" when its join link was revoked or replaced
}

// ProgramSourceMsg chooses a node's program (program_source, leaders only, at a
// node with a parent): "own" (the command room) or "parent" (the parent's
// program, relayed down the uplink).
type ProgramSourceMsg struct {
	Source string `json:"source"`
}

// Program sources (ProgramSourceMsg.Source, UplinkMsg.ProgramSource).
const (
	ProgramSourceOwn    = "own"
	ProgramSourceParent = "parent"
)

// UplinkMsg tells consoles about the node's link to its parent (uplink), after
// welcome and on every change. State is connecting, joined, connected or stopped.
type UplinkMsg struct {
	Parent        string `json:"parent"`
	Code          string `json:"code"`
	State         string `json:"state"`
	ProgramSource string `json:"program_source"`
}

// DirectiveMsg wraps a directive.issued event's document for its targets.
type DirectiveMsg struct {
	EventID   int64           `json:"event_id"`
	Directive json.RawMessage `json:"directive"`
}

// Presence states.
const (
	StateOffline   = "offline"
	StateJoined    = "joined"
	StateConnected = "connected"
	StateDegraded  = "degraded"
)
