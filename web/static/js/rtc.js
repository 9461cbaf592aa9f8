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

/** MediaLink runs both PeerConnections over a Signaling link. */
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
    /** @type {Map<string, MediaStreamTrack>} slot name → track */
    this.slots = new Map();
    /** @type {{pub: RTCIceCandidateInit[], sub: RTCIceCandidateInit[]}} */
    this.pending = { pub: [], sub: [] };
    /** @type {Quality} */
    this.quality = { level: 'none', rttMs: 0, lossPct: 0, sendKbps: 0, recvKbps: 0 };
    /** @type {Record<string, boolean>} rid → active, as the server asked */
    this.layers = {};
    this.prev = { t: 0, sent: 0, recv: 0, lost: 0, got: 0 };
    this.statsTimer = setInterval(() => this.#sample().catch(() => {}), 2000);
    this.failTimer = /** @type {ReturnType<typeof setTimeout>|undefined} */ (undefined);

    sig.on(S.publishAnswer, (p) => this.#onPublishAnswer(p.sdp));
    sig.on(S.subscriberOffer, (p) => this.#onSubscriberOffer(p.sdp));
    sig.on(S.iceCandidate, (p) => this.#onCandidate(p.target, p.candidate));
    sig.on(S.layerControl, (p) => this.setLayer(p.rid, p.active));
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
   * publisher PC. Call again with a new stream to replace the tracks.
   * @param {MediaStream} stream
   * @param {{simulcast?: boolean}} [opts]
   */
  async publish(stream, opts = {}) {
    if (!this.pub) this.reset();
    const pc = /** @type {RTCPeerConnection} */ (this.pub);
    this.local = stream;
    const v = stream.getVideoTracks()[0];
    const a = stream.getAudioTracks()[0];
    const senders = pc.getSenders();
    if (senders.length) {
      for (const s of senders) {
        const tr = s.track ? s.track.kind : pc.getTransceivers().find((x) => x.sender === s)?.receiver.track.kind;
        await s.replaceTrack(tr === 'video' ? v || null : a || null);
      }
      return;
    }
    if (v) {
      const h = v.getSettings().height || 0;
      pc.addTransceiver(v, {
        direction: 'sendonly', streams: [stream],
        sendEncodings: opts.simulcast === false ? [{ maxBitrate: 1_500_000 }] : simulcastEncodings(h),
      });
    }
    if (a) pc.addTransceiver(a, { direction: 'sendonly', streams: [stream] });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.sig.send(C.publishOffer, { sdp: pc.localDescription?.sdp });
  }

  /**
   * Pauses or resumes one simulcast encoding (layer_control from the server).
   * @param {string} rid
   * @param {boolean} active
   */
  async setLayer(rid, active) {
    this.layers[rid] = active;
    const s = this.pub && this.pub.getSenders().find((x) => x.track && x.track.kind === 'video');
    if (!s) return;
    const p = s.getParameters();
    const enc = p.encodings && p.encodings.find((e) => e.rid === rid);
    if (!enc || enc.active === active) return;
    enc.active = active;
    await s.setParameters(p);
  }

  /** Closes both PeerConnections (the slots' tracks end). */
  close() {
    for (const pc of [this.pub, this.sub]) if (pc) pc.close();
    this.pub = this.sub = null;
    this.slots.clear();
    this.pending = { pub: [], sub: [] };
  }

  /**
   * @param {'publisher'|'subscriber'} target
   * @returns {RTCPeerConnection}
   */
  #newPC(target) {
    const pc = new RTCPeerConnection(this.config);
    pc.onicecandidate = (ev) => {
      this.sig.send(C.iceCandidate, { target, candidate: ev.candidate ? ev.candidate.toJSON() : null });
    };
    pc.onconnectionstatechange = () => {
      this.dispatchEvent(new CustomEvent('pcstate', { detail: { target, state: pc.connectionState } }));
      clearTimeout(this.failTimer);
      if (pc.connectionState === 'failed') {
        this.dispatchEvent(new Event('failed'));
      } else if (pc.connectionState === 'disconnected') {
        // ICE may recover by itself; if not within 8 s, the app reconnects.
        this.failTimer = setTimeout(() => {
          if (pc.connectionState !== 'connected') this.dispatchEvent(new Event('failed'));
        }, 8000);
      }
    };
    return pc;
  }

  /** @param {string} sdp */
  async #onPublishAnswer(sdp) {
    if (!this.pub) return;
    await this.pub.setRemoteDescription({ type: 'answer', sdp });
    await this.#drain('pub');
    // Apply pauses that arrived before the encodings existed.
    for (const [rid, active] of Object.entries(this.layers)) await this.setLayer(rid, active);
  }

  /** @param {string} sdp */
  async #onSubscriberOffer(sdp) {
    if (!this.sub) this.reset();
    const pc = /** @type {RTCPeerConnection} */ (this.sub);
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await this.#drain('sub');
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.sig.send(C.subscriberAnswer, { sdp: pc.localDescription?.sdp });
  }

  /**
   * @param {string} target
   * @param {RTCIceCandidateInit|null} cand
   */
  async #onCandidate(target, cand) {
    const key = target === 'subscriber' ? 'sub' : 'pub';
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

  /** Computes the quality indicator from both PCs' stats every 2 s. */
  async #sample() {
    if (!this.pub && !this.sub) return;
    let sent = 0, recv = 0, lost = 0, got = 0, rtt = 0;
    for (const pc of [this.pub, this.sub]) {
      if (!pc) continue;
      const stats = await pc.getStats();
      stats.forEach((r) => {
        if (r.type === 'outbound-rtp') sent += r.bytesSent || 0;
        if (r.type === 'inbound-rtp') { recv += r.bytesReceived || 0; lost += Math.max(0, r.packetsLost || 0); got += r.packetsReceived || 0; }
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded' && r.currentRoundTripTime) rtt = Math.max(rtt, r.currentRoundTripTime * 1000);
      });
    }
    const now = performance.now();
    const p = this.prev;
    if (p.t) {
      const dt = (now - p.t) / 1000;
      const dLost = lost - p.lost, dGot = got - p.got;
      const lossPct = dLost + dGot > 0 ? (100 * dLost) / (dLost + dGot) : 0;
      const connected = [this.pub, this.sub].some((pc) => pc && pc.connectionState === 'connected');
      /** @type {Quality['level']} */
      const level = !connected ? 'none' : lossPct > 5 || rtt > 400 ? 'poor' : lossPct > 1 || rtt > 150 ? 'fair' : 'good';
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
