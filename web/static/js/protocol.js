// @ts-check
// The signaling client: one WebSocket to /ws carrying typed JSON envelopes
// {type, id?, payload} (see docs/protocol.md and signaling/protocol.go). It joins,
// keeps the link alive, and reconnects with back-off. No UI and no WebRTC here.

/**
 * @typedef {'idle'|'connecting'|'open'|'reconnecting'|'closed'|'replaced'|'removed'} LinkState
 *
 * @typedef {Object} Snapshot
 * @property {'in_progress'|'none'} session
 * @property {string} [session_id]
 * @property {string|null} floor
 * @property {string[]} hands
 * @property {string|null} private_line
 * @property {boolean} roll_call
 * @property {boolean} muted
 * @property {boolean} hand_raised
 * @property {boolean} unmute_asked
 * @property {string[]} [muted_codes]
 *
 * @typedef {Object} Welcome
 * @property {string} code
 * @property {string} peer_id
 * @property {'endpoint'|'console'} role
 * @property {boolean} leader
 * @property {boolean} replaced
 * @property {Snapshot} state
 * @property {RTCIceServer[]} [ice_servers] embedded TURN, when enabled
 * @property {string} [district] a district-scoped staff console's district
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
 * @typedef {Object} PresenceMsg
 * @property {string} code
 * @property {string} state offline | joined | connected | degraded
 * @property {string} [reason] why degraded, e.g. no_media (the server expects media and gets none)
 * @property {StatEntry} [stats]
 *
 * @typedef {Object} Tile
 * @property {string} code
 * @property {number} [slot]
 * @property {boolean} visible
 * @property {'small'|'large'} size
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
});

/** Message types, server → client. */
export const S = Object.freeze({
  welcome: 'welcome', error: 'error', subscriberOffer: 'subscriber_offer', publishAnswer: 'publish_answer',
  iceCandidate: 'ice_candidate', presence: 'presence', floor: 'floor', hands: 'hands', mute: 'mute',
  unmuteRequest: 'unmute_request', privateLine: 'private_line', rollCall: 'roll_call',
  layerControl: 'layer_control', stats: 'stats', directive: 'directive', replaced: 'replaced',
  session: 'session', pong: 'pong', removed: 'removed',
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
   * @param {string} type
   * @param {any} [payload]
   * @param {string} [id]
   */
  send(type, payload = {}, id) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    /** @type {{type: string, id?: string, payload: any}} */
    const env = { type, payload };
    if (id) env.id = id;
    this.ws.send(JSON.stringify(env));
    return true;
  }

  /**
   * @param {string} type a server message type, or 'state' / 'down'
   * @param {(payload: any, env: any) => void} fn
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
