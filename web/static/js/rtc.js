// @ts-check
// WebRTC for one connection: the publisher PeerConnection (we offer, simulcast) and
// the subscriber PeerConnection (the server offers; each slot arrives as a track whose
// id is the slot name: program_video, floor_audio, tile_N...). No UI here.
import { C, S } from './protocol.js';

/** @typedef {import('./protocol.js').Signaling} Signaling */

/**
 * Simulcast encodings for a capture of the given height: q/h/f at 1/4, 1/2, 1/1, or
 * q/h at 1/2, 1/1 for small captures (360p and below), so the low layer is ~180p.
 * @param {number} height
 * @returns {RTCRtpEncodingParameters[]}
 */
export function simulcastEncodings(height) {
  if (height && height <= 400) {
    return [
      { rid: 'q', scaleResolutionDownBy: 2, maxBitrate: 150_000 },
      { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 500_000 },
    ];
  }
  return [
    { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 2_000_000 },
  ];
}

/**
 * @typedef {Object} Quality
 * @property {'good'|'fair'|'poor'|'none'} level
 * @property {number} rttMs
 * @property {number} lossPct inbound loss over the last interval
 * @property {number} sendKbps
 * @property {number} recvKbps
 */

/**
 * How long an expected kind of media may send nothing before the page says so.
 * Judged on the publisher leg's getStats (bytesSent), every 2 s.
 */
const STALL_MS = 6000;

/** How long an offer on the publisher leg may wait for its answer before it is retried. */
const ANSWER_TIMEOUT_MS = 15000;

/**
 * MediaLink runs both PeerConnections over a Signaling link.
 *
 * Negotiation is serial per leg: every step that touches a PeerConnection (offer,
 * answer, candidate, setParameters) runs on that leg's promise queue, one at a time,
 * and the publisher leg has at most one offer in flight (a later change is offered
 * after the answer). A step from before reset() (a new server peer) is dropped, and a
 * failed step is logged and the queue goes on: nothing is left as an unhandled
 * rejection.
 */
export class MediaLink extends EventTarget {
  /**
   * @param {Signaling} sig
   * @param {{iceServers?: RTCIceServer[]}} [opts]
   */
  constructor(sig, opts = {}) {
    super();
    this.sig = sig;
    this.config = /** @type {RTCConfiguration} */ ({ iceServers: opts.iceServers || [], bundlePolicy: 'max-bundle' });
    /** @type {RTCPeerConnection|null} */
    this.pub = null;
    /** @type {RTCPeerConnection|null} */
    this.sub = null;
    /** @type {MediaStream|null} what we publish */
    this.local = null;
    /** @type {{simulcast?: boolean}} */
    this.localOpts = {};
    /** @type {Map<string, MediaStreamTrack>} slot name → track */
    this.slots = new Map();
    /** @type {{pub: RTCIceCandidateInit[], sub: RTCIceCandidateInit[]}} */
    this.pending = { pub: [], sub: [] };
    /** @type {Quality} */
    this.quality = { level: 'none', rttMs: 0, lossPct: 0, sendKbps: 0, recvKbps: 0 };
    /** @type {Record<string, boolean>} rid → active, as the server asked */
    this.layers = {};
    this.prev = { t: 0, sent: 0, recv: 0, lost: 0, got: 0 };
    /** generation: bumped by reset() and close(); queued steps of an older one are dropped */
    this.gen = 0;
    /** PeerConnections this link has created (instrumentation for tests) */
    this.created = 0;
    /** @type {{pub: Promise<void>, sub: Promise<void>}} */
    this.queue = { pub: Promise.resolve(), sub: Promise.resolve() };
    /** the publisher leg's offer state: one offer in flight */
    this.offer = { out: false, again: false, id: '', seq: 0, timer: /** @type {ReturnType<typeof setTimeout>|undefined} */ (undefined) };
    /**
     * Whether the publisher leg sends what it should: per kind, the last bytesSent and
     * since when an expected kind has not grown.
     */
    this.send = {
      stalled: false,
      /** @type {string[]} kinds that send nothing though they should */
      kinds: /** @type {string[]} */ ([]),
      /** @type {Record<string, {bytes: number, since: number}>} */
      last: {},
    };
    /** @type {{pub?: ReturnType<typeof setTimeout>, sub?: ReturnType<typeof setTimeout>}} */
    this.failTimers = {};
    this.statsTimer = setInterval(() => this.#sample().catch((e) => this.#warn('stats', e)), 2000);

    sig.on(S.publishAnswer, (p, env) => this.#enqueue('pub', () => this.#onPublishAnswer(p.sdp, env?.id)));
    sig.on(S.subscriberOffer, (p) => this.#enqueue('sub', () => this.#onSubscriberOffer(p.sdp)));
    sig.on(S.iceCandidate, (p) => {
      const key = p.target === 'subscriber' ? 'sub' : 'pub';
      this.#enqueue(key, () => this.#onCandidate(key, p.candidate));
    });
    sig.on(S.layerControl, (p) => { this.setLayer(p.rid, p.active); });
    sig.on(S.error, (p, env) => {
      const id = (env && env.id) || p.id;
      if (id && id === this.offer.id) this.#enqueue('pub', () => this.#offerRefused(id, p.code, p.message));
    });
  }

  /** Starts fresh PeerConnections (after each welcome: the server made a new peer). */
  reset() {
    this.close();
    this.pub = this.#newPC('publisher');
    this.sub = this.#newPC('subscriber');
    this.sub.ontrack = (ev) => {
      const slot = ev.track.id && !/^[0-9a-f-]{36}$|^\{/.test(ev.track.id) ? ev.track.id : (ev.streams[0] && ev.streams[0].id) || ev.transceiver.mid || '';
      this.slots.set(slot, ev.track);
      this.dispatchEvent(new CustomEvent('track', { detail: { slot, track: ev.track } }));
    };
    this.prev = { t: 0, sent: 0, recv: 0, lost: 0, got: 0 };
  }

  /**
   * Publishes a camera/microphone stream (video as simulcast) by offering on the
   * publisher PC. Call again with a new stream to replace the tracks. Before the
   * first welcome (no PeerConnection yet) it only keeps the stream: reset() is the
   * caller's, after each welcome, and the app publishes then.
   * @param {MediaStream} stream
   * @param {{simulcast?: boolean}} [opts]
   * @returns {Promise<void>} settles when the offer is sent (never rejects)
   */
  publish(stream, opts = {}) {
    this.local = stream;
    this.localOpts = opts;
    if (!this.pub) return Promise.resolve();
    return this.#enqueue('pub', () => this.#attach(stream, opts));
  }

  /**
   * Pauses or resumes one simulcast encoding (layer_control from the server). It is
   * applied on the publisher leg's queue, so it never races an offer or another
   * setParameters; a change before the encodings exist is applied after the answer.
   * @param {string} rid
   * @param {boolean} active
   * @returns {Promise<void>} never rejects
   */
  setLayer(rid, active) {
    this.layers[rid] = active;
    return this.#enqueue('pub', () => this.#applyLayers());
  }

  /** Closes both PeerConnections (the slots' tracks end). */
  close() {
    this.gen++;
    for (const pc of [this.pub, this.sub]) if (pc) pc.close();
    this.pub = this.sub = null;
    this.slots.clear();
    this.pending = { pub: [], sub: [] };
    this.queue = { pub: Promise.resolve(), sub: Promise.resolve() };
    clearTimeout(this.offer.timer);
    this.offer = { out: false, again: false, id: '', seq: this.offer.seq, timer: undefined };
    clearTimeout(this.failTimers.pub);
    clearTimeout(this.failTimers.sub);
    this.failTimers = {};
    this.#setSendState(false, []);
    this.send.last = {};
  }

  /**
   * Runs fn on the leg's queue, after every step queued before it, unless the link
   * was reset in between. Errors are logged, never thrown.
   * @param {'pub'|'sub'} key
   * @param {() => Promise<void>} fn
   * @returns {Promise<void>}
   */
  #enqueue(key, fn) {
    const gen = this.gen;
    const step = this.queue[key].then(async () => {
      if (gen !== this.gen) return;
      try {
        await fn();
      } catch (e) {
        if (gen === this.gen) this.#warn(key, e);
      }
    });
    this.queue[key] = step;
    return step;
  }

  /**
   * Logs a recovered WebRTC error (the app carries on) and tells listeners.
   * @param {string} where
   * @param {unknown} e
   */
  #warn(where, e) {
    console.warn(`rtc ${where}:`, e);
    this.dispatchEvent(new CustomEvent('rtcerror', { detail: { where, error: String(e) } }));
  }

  /**
   * @param {'publisher'|'subscriber'} target
   * @returns {RTCPeerConnection}
   */
  #newPC(target) {
    const pc = new RTCPeerConnection(this.config);
    this.created++;
    const key = target === 'publisher' ? 'pub' : 'sub';
    pc.onicecandidate = (ev) => {
      if (pc !== this[key]) return;
      const c = ev.candidate;
      // Field by field rather than toJSON(), whose fields are all optional in the DOM types.
      const candidate = c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment } : null;
      this.sig.send(C.iceCandidate, { target, candidate });
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this[key]) return;
      this.dispatchEvent(new CustomEvent('pcstate', { detail: { target, state: pc.connectionState } }));
      clearTimeout(this.failTimers[key]);
      if (pc.connectionState === 'failed') {
        this.dispatchEvent(new Event('failed'));
      } else if (pc.connectionState === 'disconnected') {
        // ICE may recover by itself; if not within 8 s, the app reconnects.
        this.failTimers[key] = setTimeout(() => {
          if (pc === this[key] && pc.connectionState !== 'connected') this.dispatchEvent(new Event('failed'));
        }, 8000);
      }
    };
    return pc;
  }

  /**
   * Puts the stream's tracks on the publisher leg: replaces the tracks of existing
   * transceivers, adds missing ones, and offers when something was added.
   * @param {MediaStream} stream
   * @param {{simulcast?: boolean}} opts
   */
  async #attach(stream, opts) {
    const pc = this.pub;
    if (!pc) return;
    let added = false;
    for (const kind of /** @type {const} */ (['video', 'audio'])) {
      const track = (kind === 'video' ? stream.getVideoTracks() : stream.getAudioTracks())[0] || null;
      const tr = pc.getTransceivers().find((x) => x.receiver.track && x.receiver.track.kind === kind);
      if (tr) {
        if (tr.sender.track !== track) await tr.sender.replaceTrack(track);
        continue;
      }
      if (!track) continue;
      if (kind === 'video') {
        const h = track.getSettings().height || 0;
        pc.addTransceiver(track, {
          direction: 'sendonly', streams: [stream],
          sendEncodings: opts.simulcast === false ? [{ maxBitrate: 1_500_000 }] : simulcastEncodings(h),
        });
      } else {
        pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      }
      added = true;
    }
    if (added) await this.#offer();
  }

  /** Sends an offer on the publisher leg, or notes that one is due after the outstanding one. */
  async #offer() {
    const pc = this.pub;
    if (!pc) return;
    if (this.offer.out) {
      this.offer.again = true;
      return;
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const id = 'pub' + ++this.offer.seq;
    if (!this.sig.send(C.publishOffer, { sdp: pc.localDescription?.sdp ?? '' }, id)) {
      // The link is down: the next welcome resets the PeerConnections and publishes again.
      await pc.setLocalDescription({ type: 'rollback' });
      return;
    }
    this.offer.out = true;
    this.offer.again = false;
    this.offer.id = id;
    const gen = this.gen;
    clearTimeout(this.offer.timer);
    this.offer.timer = setTimeout(() => {
      if (gen !== this.gen || this.offer.id !== id || !this.offer.out) return;
      this.#warn('pub', new Error(`no answer to ${id} after ${ANSWER_TIMEOUT_MS} ms; offering again`));
      this.#enqueue('pub', () => this.#offerRefused(id, 'timeout', ''));
    }, ANSWER_TIMEOUT_MS);
  }

  /**
   * The server refused the outstanding offer (or it timed out): roll back and, on a
   * time-out or when a change is due, offer again.
   * @param {string} id
   * @param {string} code
   * @param {string} message
   */
  async #offerRefused(id, code, message) {
    const pc = this.pub;
    if (!pc || this.offer.id !== id || !this.offer.out) return;
    clearTimeout(this.offer.timer);
    this.offer.out = false;
    if (code !== 'timeout') this.#warn('pub', new Error(`publish offer refused: ${code} ${message}`));
    if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
    if (code === 'timeout' || this.offer.again) await this.#offer();
  }

  /**
   * @param {string} sdp
   * @param {string} [id] the offer it answers
   */
  async #onPublishAnswer(sdp, id) {
    const pc = this.pub;
    if (!pc) return;
    if (!this.offer.out || pc.signalingState !== 'have-local-offer' || (id && id !== this.offer.id)) {
      // An answer to an offer we no longer have (rolled back, or from before a reset).
      console.warn('rtc pub: ignoring a publish answer in state', pc.signalingState, id || '', 'want', this.offer.id);
      return;
    }
    clearTimeout(this.offer.timer);
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
    } finally {
      this.offer.out = false;
    }
    await this.#drain('pub');
    // Apply pauses that arrived before the encodings existed.
    await this.#applyLayers();
    if (this.offer.again) {
      this.offer.again = false;
      await this.#offer();
    }
  }

  /** Sets each simulcast encoding's active flag as the server last asked (one setParameters). */
  async #applyLayers() {
    const pc = this.pub;
    if (!pc || pc.signalingState !== 'stable' || !pc.remoteDescription) return; // after the answer
    const s = pc.getSenders().find((x) => x.track && x.track.kind === 'video');
    if (!s) return;
    const p = s.getParameters();
    let changed = false;
    for (const enc of p.encodings || []) {
      const want = enc.rid !== undefined ? this.layers[enc.rid] : undefined;
      if (want === undefined || enc.active === want) continue;
      enc.active = want;
      changed = true;
    }
    if (changed) await s.setParameters(p);
  }

  /** @param {string} sdp */
  async #onSubscriberOffer(sdp) {
    const pc = this.sub;
    if (!pc) return;
    if (pc.signalingState !== 'stable') {
      // We never offer on this leg; a half-applied offer is rolled back.
      await pc.setLocalDescription({ type: 'rollback' });
    }
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await this.#drain('sub');
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.sig.send(C.subscriberAnswer, { sdp: pc.localDescription?.sdp ?? '' });
  }

  /**
   * @param {'pub'|'sub'} key
   * @param {RTCIceCandidateInit|null} cand
   */
  async #onCandidate(key, cand) {
    const pc = this[key];
    if (!pc) return;
    if (!pc.remoteDescription) {
      if (cand) this.pending[key].push(cand);
      return;
    }
    try {
      await pc.addIceCandidate(cand || undefined);
    } catch {
      // a candidate for an old generation: harmless
    }
  }

  /** @param {'pub'|'sub'} key */
  async #drain(key) {
    const pc = this[key];
    const list = this.pending[key];
    this.pending[key] = [];
    for (const c of list) {
      try { await pc?.addIceCandidate(c); } catch { /* stale */ }
    }
  }

  /**
   * @param {boolean} stalled
   * @param {string[]} kinds
   */
  #setSendState(stalled, kinds) {
    const changed = stalled !== this.send.stalled || kinds.join() !== this.send.kinds.join();
    this.send.stalled = stalled;
    this.send.kinds = kinds;
    if (changed) this.dispatchEvent(new CustomEvent('sendstate', { detail: { stalled, kinds } }));
  }

  /**
   * Judges whether the publisher leg sends what it should: audio whenever a live,
   * enabled microphone track is attached, video whenever a live, enabled camera track
   * has an encoding the server has not paused. An expected kind whose bytesSent has
   * not grown for STALL_MS is a stall.
   * @param {RTCStatsReport} stats the publisher leg's
   * @param {number} now
   */
  #judgeSending(stats, now) {
    const pc = this.pub;
    /** @type {Record<string, number>} */
    const bytes = { audio: 0, video: 0 };
    stats.forEach((r) => { if (r.type === 'outbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) bytes[r.kind] += r.bytesSent || 0; });
    /** @type {string[]} */
    const stalled = [];
    for (const kind of ['audio', 'video']) {
      const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === kind);
      let expected = !!pc && pc.connectionState === 'connected' && !!sender && !!sender.track &&
        sender.track.readyState === 'live' && sender.track.enabled;
      if (expected && kind === 'video') {
        const encs = /** @type {RTCRtpSender} */ (sender).getParameters().encodings || [];
        expected = encs.length === 0 || encs.some((e) => e.active !== false);
      }
      const last = this.send.last[kind];
      if (!expected || !last || bytes[kind] > last.bytes) {
        this.send.last[kind] = { bytes: bytes[kind], since: now };
        continue;
      }
      if (now - last.since >= STALL_MS) stalled.push(kind);
    }
    this.#setSendState(stalled.length > 0, stalled);
  }

  /**
   * bytesSent on the publisher leg, per kind (tests and diagnostics).
   * @returns {Promise<{audio: number, video: number}>}
   */
  async sentBytes() {
    const out = { audio: 0, video: 0 };
    if (!this.pub) return out;
    const st = await this.pub.getStats();
    st.forEach((r) => { if (r.type === 'outbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) out[/** @type {'audio'|'video'} */ (r.kind)] += r.bytesSent || 0; });
    return out;
  }

  /** Computes the quality indicator from both PCs' stats every 2 s. */
  async #sample() {
    if (!this.pub && !this.sub) return;
    const gen = this.gen;
    let sent = 0, recv = 0, lost = 0, got = 0, rtt = 0;
    const now = performance.now();
    for (const pc of [this.pub, this.sub]) {
      if (!pc) continue;
      const stats = await pc.getStats();
      if (gen !== this.gen) return;
      if (pc === this.pub) this.#judgeSending(stats, now);
      stats.forEach((r) => {
        if (r.type === 'outbound-rtp') sent += r.bytesSent || 0;
        if (r.type === 'inbound-rtp') { recv += r.bytesReceived || 0; lost += Math.max(0, r.packetsLost || 0); got += r.packetsReceived || 0; }
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded' && r.currentRoundTripTime) rtt = Math.max(rtt, r.currentRoundTripTime * 1000);
      });
    }
    const p = this.prev;
    if (p.t) {
      const dt = (now - p.t) / 1000;
      const dLost = lost - p.lost, dGot = got - p.got;
      const lossPct = dLost + dGot > 0 ? (100 * dLost) / (dLost + dGot) : 0;
      const connected = [this.pub, this.sub].some((pc) => pc && pc.connectionState === 'connected');
      /** @type {Quality['level']} */
      const level = !connected ? 'none' : this.send.stalled || lossPct > 5 || rtt > 400 ? 'poor' : lossPct > 1 || rtt > 150 ? 'fair' : 'good';
      this.quality = {
        level, rttMs: Math.round(rtt), lossPct: Math.round(lossPct * 10) / 10,
        sendKbps: Math.round(((sent - p.sent) * 8) / 1000 / dt), recvKbps: Math.round(((recv - p.recv) * 8) / 1000 / dt),
      };
      this.dispatchEvent(new CustomEvent('quality', { detail: this.quality }));
    }
    this.prev = { t: now, sent, recv, lost, got };
  }

  /**
   * What the publisher sends, per simulcast encoding (tests and diagnostics).
   * @returns {Promise<Record<string, {width: number, fps: number, kbytes: number, limit: string}>>}
   */
  async sending() {
    /** @type {Record<string, any>} */
    const out = {};
    if (!this.pub) return out;
    const st = await this.pub.getStats();
    st.forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        out[r.rid || '-'] = { width: r.frameWidth || 0, fps: r.framesPerSecond || 0, kbytes: Math.round((r.bytesSent || 0) / 1000), limit: r.qualityLimitationReason || '' };
      }
    });
    return out;
  }

  /**
   * Frames decoded so far per slot (tests and diagnostics).
   * @returns {Promise<Record<string, number>>}
   */
  async framesDecoded() {
    /** @type {Record<string, number>} */
    const out = {};
    if (!this.sub) return out;
    for (const tr of this.sub.getTransceivers()) {
      const track = tr.receiver.track;
      if (!track || track.kind !== 'video') continue;
      const slot = [...this.slots.entries()].find(([, t]) => t === track)?.[0];
      if (!slot) continue;
      const st = await tr.receiver.getStats();
      st.forEach((r) => { if (r.type === 'inbound-rtp') out[slot] = r.framesDecoded || 0; });
    }
    return out;
  }
}
