// @ts-check
// The signaling client: one WebSocket to /ws carrying typed JSON envelopes
// {type, id?, payload} (see docs/protocol.md and wire/wire.go). It joins,
// keeps the link alive, and reconnects with back-off. No UI and no WebRTC here.

/**
 * @typedef {'idle'|'connecting'|'open'|'reconnecting'|'closed'|'replaced'|'removed'} LinkState
 */

// The payloads, one typedef per Go struct of package wire (same names; properties are
// the JSON names, optional exactly where Go has omitempty). wire's tests fail when the
// two differ.

/**
 * @typedef {Object} Envelope
 * @property {string} type
 * @property {string} [id] the client's request id, repeated in the reply
 * @property {any} [payload]
 */

// ---- client → server ----

/**
 * @typedef {Object} JoinMsg
 * @property {'endpoint'|'console'} role
 * @property {DeviceInfo} device
 *
 * @typedef {Object} DeviceInfo
 * @property {string} [user_agent]
 * @property {string} [label]
 * @property {boolean} [camera]
 * @property {boolean} [mic]
 *
 * @typedef {Object} SDPMsg
 * @property {string} sdp
 *
 * @typedef {Object} CandidateMsg
 * @property {'publisher'|'subscriber'} target
 * @property {ICECandidateInit|null} candidate null: end of candidates
 *
 * @typedef {Object} ICECandidateInit
 * @property {string} candidate
 * @property {string|null} sdpMid
 * @property {number|null} sdpMLineIndex
 * @property {string|null} usernameFragment
 *
 * @typedef {Object} MuteStateMsg
 * @property {boolean} audio microphone on
 * @property {boolean} video camera on
 *
 * @typedef {Object} LayerRequestMsg
 * @property {string} slot
 * @property {number} layer 0 low, 1 mid, 2 high
 *
 * @typedef {Object} VisibilityMsg
 * @property {TileMsg[]} tiles
 *
 * @typedef {Object} TileMsg
 * @property {string} code
 * @property {number} [slot] assigned by the server when absent
 * @property {boolean} visible
 * @property {'small'|'large'} size
 *
 * @typedef {Object} CodeMsg
 * @property {string} code
 *
 * @typedef {Record<string, never>} Empty
 */

// ---- server → client ----

/**
 * @typedef {Object} AckMsg
 * @property {string} type the acknowledged message's type
 *
 * @typedef {Object} ErrorMsg
 * @property {string} code
 * @property {string} message
 * @property {string} [id] the refused request's id
 *
 * @typedef {Object} WelcomeMsg
 * @property {string} code
 * @property {string} peer_id
 * @property {'endpoint'|'console'} role
 * @property {boolean} leader
 * @property {boolean} replaced
 * @property {Snapshot} state
 * @property {ICEServer[]} [ice_servers] embedded TURN, when enabled
 * @property {string} [district] a district-scoped staff console's district
 * @property {string[]} [node_urls] the node's addresses in order (a standby pair)
 *
 * @typedef {Object} ICEServer
 * @property {string[]} urls
 * @property {string} [username]
 * @property {string} [credential]
 *
 * @typedef {Object} Snapshot
 * @property {'in_progress'|'none'} session
 * @property {string|null} session_id
 * @property {string|null} floor
 * @property {string[]|null} hands
 * @property {string|null} private_line
 * @property {boolean} roll_call
 * @property {boolean} muted
 * @property {boolean} hand_raised
 * @property {boolean} unmute_asked
 * @property {string[]} muted_codes
 *
 * @typedef {Object} PresenceMsg
 * @property {string} code
 * @property {'offline'|'joined'|'connected'|'degraded'} state
 * @property {string} [reason] why degraded, e.g. no_media (the server expects media and gets none)
 * @property {StatEntry} [stats] presence_snapshot only
 *
 * @typedef {Object} PresenceSnapshotMsg
 * @property {PresenceMsg[]} endpoints
 *
 * @typedef {Object} FloorMsg
 * @property {string|null} code
 *
 * @typedef {Object} HandsMsg
 * @property {string[]|null} queue
 *
 * @typedef {Object} MuteMsg
 * @property {string} code
 * @property {boolean} muted
 * @property {string} by
 *
 * @typedef {Object} UnmuteRequestMsg
 * @property {string} by
 *
 * @typedef {Object} PrivateLineMsg
 * @property {string|null} code
 *
 * @typedef {Object} RollCallMsg
 * @property {boolean} active
 *
 * @typedef {Object} LayerControlMsg
 * @property {string} rid
 * @property {boolean} active
 *
 * @typedef {Object} StatsMsg
 * @property {string} at RFC 3339
 * @property {StatEntry[]|null} endpoints
 *
 * @typedef {Object} StatEntry
 * @property {string} code
 * @property {string} state
 * @property {number} bitrate_in
 * @property {number} bitrate_out
 * @property {number} loss
 * @property {number} jitter_ms
 * @property {number} rtt_ms
 * @property {number} layer
 *
 * @typedef {Object} ReplacedMsg
 * @property {'old'|'new'} you
 * @property {string} reason
 *
 * @typedef {Object} SessionMsg
 * @property {'in_progress'|'none'} state
 * @property {string} [id]
 *
 * @typedef {Object} RemovedMsg
 * @property {string} by
 * @property {string} [reason] credential_revoked when the join link was revoked or replaced
 *
 * @typedef {Object} ProgramSourceMsg
 * @property {'own'|'parent'} source
 *
 * @typedef {Object} UplinkMsg
 * @property {string} parent the parent node's URL
 * @property {string} code this node's code at the parent
 * @property {'connecting'|'joined'|'connected'|'stopped'} state
 * @property {'own'|'parent'} program_source
 *
 * @typedef {Object} DirectiveMsg
 * @property {number} event_id
 * @property {any} directive the directive.issued event's document
 */

/**
 * The payload of each client → server message type.
 * @typedef {Object} ClientPayloads
 * @property {JoinMsg} join
 * @property {SDPMsg} publish_offer
 * @property {SDPMsg} subscriber_answer
 * @property {CandidateMsg} ice_candidate
 * @property {Empty} ice_restart
 * @property {MuteStateMsg} mute_state
 * @property {Empty} raise_hand
 * @property {Empty} lower_hand
 * @property {LayerRequestMsg} layer_request
 * @property {VisibilityMsg} visibility
 * @property {Empty} unmute_accept
 * @property {Empty} leave
 * @property {Empty} ping
 * @property {CodeMsg} give_floor
 * @property {Empty} revoke_floor
 * @property {CodeMsg} mute
 * @property {Empty} mute_all
 * @property {CodeMsg} request_unmute
 * @property {CodeMsg} private_line_open
 * @property {Empty} private_line_close
 * @property {Empty} roll_call_start
 * @property {Empty} roll_call_stop
 * @property {CodeMsg} remove
 * @property {Empty} session_end
 * @property {ProgramSourceMsg} program_source
 */

/**
 * The payload of each server → client message type.
 * @typedef {Object} ServerPayloads
 * @property {WelcomeMsg} welcome
 * @property {ErrorMsg} error
 * @property {SDPMsg} subscriber_offer
 * @property {SDPMsg} publish_answer
 * @property {CandidateMsg} ice_candidate
 * @property {PresenceMsg} presence
 * @property {PresenceSnapshotMsg} presence_snapshot
 * @property {FloorMsg} floor
 * @property {HandsMsg} hands
 * @property {MuteMsg} mute
 * @property {UnmuteRequestMsg} unmute_request
 * @property {PrivateLineMsg} private_line
 * @property {RollCallMsg} roll_call
 * @property {LayerControlMsg} layer_control
 * @property {StatsMsg} stats
 * @property {DirectiveMsg} directive
 * @property {ReplacedMsg} replaced
 * @property {SessionMsg} session
 * @property {Empty} pong
 * @property {RemovedMsg} removed
 * @property {AckMsg} ack
 * @property {UplinkMsg} uplink
 */

/**
 * What Signaling.on delivers: the server's messages plus the link's own events.
 * @typedef {ServerPayloads & {state: {state: LinkState, retryIn?: number}, down: {code: number}}} LinkEvents
 */

/** Message types, client → server. */
export const C = Object.freeze({
  join: 'join', publishOffer: 'publish_offer', subscriberAnswer: 'subscriber_answer',
  iceCandidate: 'ice_candidate', iceRestart: 'ice_restart', muteState: 'mute_state',
  raiseHand: 'raise_hand', lowerHand: 'lower_hand', layerRequest: 'layer_request',
  visibility: 'visibility', unmuteAccept: 'unmute_accept', leave: 'leave', ping: 'ping',
  giveFloor: 'give_floor', revokeFloor: 'revoke_floor', mute: 'mute', muteAll: 'mute_all',
  requestUnmute: 'request_unmute', privateLineOpen: 'private_line_open',
  privateLineClose: 'private_line_close', rollCallStart: 'roll_call_start', rollCallStop: 'roll_call_stop',
  remove: 'remove', sessionEnd: 'session_end', programSource: 'program_source',
});

/** Message types, server → client. */
export const S = Object.freeze({
  welcome: 'welcome', error: 'error', subscriberOffer: 'subscriber_offer', publishAnswer: 'publish_answer',
  iceCandidate: 'ice_candidate', presence: 'presence', presenceSnapshot: 'presence_snapshot',
  floor: 'floor', hands: 'hands', mute: 'mute',
  unmuteRequest: 'unmute_request', privateLine: 'private_line', rollCall: 'roll_call',
  layerControl: 'layer_control', stats: 'stats', directive: 'directive', replaced: 'replaced',
  session: 'session', pong: 'pong', removed: 'removed', ack: 'ack', uplink: 'uplink',
});

/**
 * Signaling is the live link. Listen with on(type, fn) for server messages, and
 * on('state', fn) for link state changes ({state, retryIn}).
 */
export class Signaling extends EventTarget {
  /**
   * @param {'endpoint'|'console'} role
   * @param {{label?: string, camera?: boolean, mic?: boolean}} [device]
   */
  constructor(role, device = {}) {
    super();
    this.role = role;
    this.device = device;
    /** @type {LinkState} */
    this.state = 'idle';
    /** @type {WebSocket|null} */
    this.ws = null;
    this.attempt = 0;
    this.seq = 0;
    /** @type {number} round-trip time of the last ping, ms */
    this.rtt = 0;
    /** @type {Map<string, number>} */
    this.pings = new Map();
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this.pinger = undefined;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.retryTimer = undefined;
    this.stopped = false;
  }

  /**
   * The /ws URL of this origin. The page says who it acts as (as=endpoint from the
   * join page, as=staff from the console), because one browser can hold both a staff
   * login and an endpoint's join cookie; the server then takes the matching cookie.
   * @param {'endpoint'|'staff'} [as]
   * @returns {string}
   */
  static url(as) {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws' + (as ? '?as=' + as : '');
  }

  /** Opens the link (and keeps reopening it until close()). */
  connect() {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    this.#setState(this.attempt ? 'reconnecting' : 'connecting');
    const ws = new WebSocket(Signaling.url(this.role === 'endpoint' ? 'endpoint' : 'staff'));
    this.ws = ws;
    ws.onopen = () => {
      this.send(C.join, { role: this.role, device: { user_agent: navigator.userAgent, ...this.device } });
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.#ping(), 5000);
    };
    ws.onmessage = (m) => this.#receive(m.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      clearInterval(this.pinger);
      this.ws = null;
      this.dispatchEvent(new CustomEvent('down', { detail: { code: ev.code } }));
      if (this.stopped || this.state === 'replaced' || this.state === 'removed') {
        if (this.state !== 'replaced' && this.state !== 'removed') this.#setState('closed');
        return;
      }
      this.attempt++;
      const delay = Math.min(1000 * 2 ** Math.min(this.attempt - 1, 4), 15000) * (0.75 + Math.random() / 2);
      this.#setState('reconnecting', Math.round(delay / 1000));
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
  }

  /** Drops the socket now and reconnects (used when media fails). */
  reconnect() {
    if (this.ws) this.ws.close(4000, 'reconnect');
    else if (!this.stopped) this.connect();
  }

  /** Leaves cleanly and stops reconnecting. */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pinger);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send(C.leave, {});
    if (this.ws) this.ws.close(1000, 'bye');
    this.#setState('closed');
  }

  /**
   * Sends one message. Returns false when the link is down (the caller's state is
   * resent from the welcome snapshot after reconnecting).
   * @template {keyof ClientPayloads} K
   * @param {K} type
   * @param {ClientPayloads[K]} payload
   * @param {string} [id]
   */
  send(type, payload, id) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    /** @type {Envelope} */
    const env = { type, payload };
    if (id) env.id = id;
    this.ws.send(JSON.stringify(env));
    return true;
  }

  /**
   * @template {keyof LinkEvents} K
   * @param {K} type a server message type, or 'state' / 'down'
   * @param {(payload: LinkEvents[K], env: Envelope|null) => void} fn
   */
  on(type, fn) {
    this.addEventListener(type, (ev) => {
      const d = /** @type {CustomEvent} */ (ev).detail;
      fn(d.payload, d.env);
    });
  }

  /** @param {string} raw */
  #receive(raw) {
    let env;
    try { env = JSON.parse(raw); } catch { return; }
    if (!env || typeof env.type !== 'string') return;
    const p = env.payload ?? {};
    switch (env.type) {
      case S.welcome:
        this.attempt = 0;
        this.#setState('open');
        break;
      case S.pong: {
        const sent = this.pings.get(env.id);
        if (sent) { this.rtt = performance.now() - sent; this.pings.delete(env.id); }
        break;
      }
      case S.replaced:
        if (p.you === 'old') { this.stopped = true; this.#setState('replaced'); }
        break;
      case S.removed:
        this.stopped = true;
        this.#setState('removed');
        break;
    }
    this.dispatchEvent(new CustomEvent(env.type, { detail: { payload: p, env } }));
  }

  #ping() {
    const id = 'p' + ++this.seq;
    this.pings.set(id, performance.now());
    if (this.pings.size > 10) this.pings.delete(this.pings.keys().next().value ?? '');
    this.send(C.ping, {}, id);
  }

  /** @param {LinkState} s @param {number} [retryIn] seconds */
  #setState(s, retryIn) {
    this.state = s;
    this.dispatchEvent(new CustomEvent('state', { detail: { payload: { state: s, retryIn }, env: null } }));
  }
}
