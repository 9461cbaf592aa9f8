// @ts-check
// The endpoint app, opened from a join link: device check, then program + floor,
// hand, microphone policy, directives inbox, incident reports that survive a
// dropped network, and a visible connection state.
import { api, ApiError, Outbox, setActor, uuid } from './api.js';
import { apply, fmtTime, t, wireSwitch } from './i18n.js';
import { C, S as M, Signaling } from './protocol.js';
import { MediaLink } from './rtc.js';
import { beep, byId, exposeState, h, toast } from './ui.js';
import { CATEGORIES, SEVERITIES } from './constants.js';
import { mountEndpointTurnout } from './turnout.js';

const st = {
  phase: 'link', // link | nolink | badlink | devicecheck | live | replaced
  code: '',
  name: '',
  link: 'idle',
  /** @type {import('./protocol.js').WelcomeMsg|null} */
  welcome: null,
  floor: /** @type {string|null} */ (null),
  hands: /** @type {string[]} */ ([]),
  muted: false,
  unmuteAsked: false,
  privateLine: false,
  rollCall: false,
  session: 'none',
  /** @type {Map<string, any>} directive id → directive with its receipt */
  inbox: new Map(),
  /** @type {MediaStream|null} */
  stream: null,
  deviceError: '',
  /** this endpoint's presence as the server last said it (presence messages for our code) */
  presence: '',
  /** why the server says degraded, e.g. no_media */
  presenceReason: '',
};

/** @type {Signaling|null} */
let sig = null;
/** @type {MediaLink|null} */
let media = null;
/** @type {Outbox} */
let outbox;
/** @type {ReturnType<typeof mountEndpointTurnout>|null} the endpoint's own turnout and its form */
let turnout = null;

/** @param {string} phase */
function setPhase(phase) {
  st.phase = phase;
  document.body.dataset.phase = phase;
  byId('linkbox').classList.toggle('hidden', !['link', 'nolink', 'badlink', 'replaced'].includes(phase));
  byId('devicecheck').classList.toggle('hidden', phase !== 'devicecheck');
  byId('live').classList.toggle('hidden', phase !== 'live');
}

// ---- link and device check ----

async function exchangeLink() {
  const m = /(?:^#|&)t=([^&]+)/.exec(location.hash);
  if (m) {
    // Keep the secret out of history and bookmarks.
    history.replaceState(null, '', location.pathname + location.search);
    try {
      const r = await api('POST', '/api/v1/auth/join', { token: decodeURIComponent(m[1]) });
      return r.endpoint;
    } catch (e) {
      const ae = /** @type {ApiError} */ (e);
      if (ae.status === 401 || ae.status === 400 || ae.status === 429) return null;
      throw e;
    }
  }
  try {
    const me = await api('GET', '/api/v1/auth/me'); // reloaded page: the cookie is there
    return me.endpoint || undefined;
  } catch {
    return undefined;
  }
}

/** @type {{ctx: AudioContext, raf: number}|null} */
let meter = null;

async function openDevices() {
  const cam = /** @type {HTMLSelectElement} */ (byId('camsel')).value;
  const mic = /** @type {HTMLSelectElement} */ (byId('micsel')).value;
  if (st.stream) for (const tr of st.stream.getTracks()) tr.stop();
  st.deviceError = '';
  byId('deverr').textContent = '';
  try {
    st.stream = await navigator.mediaDevices.getUserMedia({
      video: { deviceId: cam ? { exact: cam } : undefined, width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 15, max: 30 } },
      audio: { deviceId: mic ? { exact: mic } : undefined, echoCancellation: true, noiseSuppression: true },
    });
  } catch (e) {
    st.stream = null;
    st.deviceError = String(/** @type {Error} */ (e).message || e);
    byId('deverr').textContent = t('join.nodevice', { msg: st.deviceError });
    if (st.phase === 'live') applyMic(); // tell the server: no camera, no microphone
    return;
  }
  /** @type {HTMLVideoElement} */ (byId('preview')).srcObject = st.stream;
  /** @type {HTMLVideoElement} */ (byId('self')).srcObject = st.stream;
  startMeter(st.stream);
  await listDevices();
  // Live: replace the tracks on the publisher leg (queued behind any negotiation),
  // and tell the server what we now send (it expects media from what mute_state says).
  if (media && st.phase === 'live') {
    await media.publish(st.stream);
    applyMic();
  }
}

/** openDevices for event handlers: a failure is shown and logged, never left unhandled. */
function reopenDevices() {
  openDevices().catch((e) => {
    console.warn('devices:', e);
    toast(t('join.nodevice', { msg: String(/** @type {Error} */ (e).message || e) }), 'error');
  });
}

async function listDevices() {
  const devs = await navigator.mediaDevices.enumerateDevices();
  for (const [sel, kind] of /** @type {const} */ ([['camsel', 'videoinput'], ['micsel', 'audioinput']])) {
    const el = /** @type {HTMLSelectElement} */ (byId(sel));
    const track = st.stream && (kind === 'videoinput' ? st.stream.getVideoTracks()[0] : st.stream.getAudioTracks()[0]);
    const cur = track ? track.getSettings().deviceId || '' : el.value;
    el.replaceChildren(...devs.filter((d) => d.kind === kind).map((d, i) => h('option', { value: d.deviceId, text: d.label || `${kind} ${i + 1}` })));
    if (cur) el.value = cur;
  }
}

/** A level meter from the microphone through WebAudio. @param {MediaStream} stream */
function startMeter(stream) {
  if (meter) { cancelAnimationFrame(meter.raf); meter.ctx.close(); meter = null; }
  if (!stream.getAudioTracks().length) return;
  const ctx = new AudioContext();
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(an);
  const buf = new Float32Array(an.fftSize);
  const bar = byId('level');
  const tick = () => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    const level = Math.min(1, Math.sqrt(sum / buf.length) * 4);
    bar.style.width = Math.round(level * 100) + '%';
    bar.dataset.level = level.toFixed(2);
    if (meter) meter.raf = requestAnimationFrame(tick);
  };
  meter = { ctx, raf: requestAnimationFrame(tick) };
}

// ---- live ----

function joinLive() {
  setPhase('live');
  if (meter) { cancelAnimationFrame(meter.raf); meter.ctx.close(); meter = null; }
  const s = new Signaling('endpoint', { camera: !!st.stream?.getVideoTracks().length, mic: !!st.stream?.getAudioTracks().length });
  const m = new MediaLink(s);
  sig = s;
  media = m;
  s.on('state', (p) => { st.link = p.state; renderConn(p.retryIn); if (p.state === 'replaced') { setPhase('replaced'); byId('linkmsg').textContent = t('conn.replaced'); m.close(); } });
  s.on('down', () => { m.close(); st.presence = ''; st.presenceReason = ''; renderConn(); });
  s.on(M.welcome, (/** @type {import('./protocol.js').WelcomeMsg} */ w) => {
    st.welcome = w;
    st.presence = 'joined';
    st.presenceReason = '';
    applySnapshot(w.state);
    m.config.iceServers = w.ice_servers || [];
    m.reset(); // the server made a new peer: the one place PeerConnections are created
    if (st.stream) m.publish(st.stream); // queued on the publisher leg; never rejects
    loadInbox();
    if (turnout) turnout.refresh();
  });
  // The server's view of this endpoint ({code, state, reason?}): degraded with reason
  // no_media when it expects our media and gets none.
  s.on(M.presence, (/** @type {import('./protocol.js').PresenceMsg} */ p) => {
    if (!p || p.code !== st.code) return;
    st.presence = p.state;
    st.presenceReason = p.reason || '';
    renderConn();
  });
  s.on(M.floor, (p) => { st.floor = p.code; renderLive(); });
  s.on(M.hands, (p) => { st.hands = p.queue || []; renderLive(); });
  s.on(M.mute, (p) => {
    if (p.code !== st.code) return;
    st.muted = p.muted;
    if (p.muted) st.unmuteAsked = false;
    applyMic();
  });
  s.on(M.unmuteRequest, () => { st.unmuteAsked = true; beep(); applyMic(); });
  s.on(M.privateLine, (p) => { st.privateLine = p.code === st.code; applyMic(); });
  s.on(M.rollCall, (p) => { st.rollCall = !!p.active; applyMic(); });
  s.on(M.session, (p) => { st.session = p.state; if (p.state !== 'in_progress') { st.floor = null; st.hands = []; st.privateLine = false; } renderLive(); });
  s.on(M.directive, (p) => {
    const d = p.directive;
    if (!d || !d.id) return;
    const isNew = !st.inbox.has(d.id);
    st.inbox.set(d.id, { ...st.inbox.get(d.id), ...d });
    renderInbox();
    if (isNew) beep();
  });
  s.on(M.error, (p) => { if (p.code !== 'rate_limited') toast(t('common.error', { msg: p.message || p.code }), 'error'); });
  m.addEventListener('track', (ev) => {
    const { slot, track } = /** @type {CustomEvent} */ (ev).detail;
    const target = { program_video: 'program', program_audio: 'programaudio', floor_video: 'floor', floor_audio: 'flooraudio' }[/** @type {string} */ (slot)];
    if (!target) return;
    const el = /** @type {HTMLMediaElement} */ (byId(target));
    el.srcObject = new MediaStream([track]);
    el.play().catch(() => {});
  });
  m.addEventListener('quality', () => renderConn());
  m.addEventListener('sendstate', () => renderConn());
  m.addEventListener('failed', () => s.reconnect());
  s.connect();
  renderLive();
  addEventListener('pagehide', () => s.close());
}

/** @param {import('./protocol.js').Snapshot} snap */
function applySnapshot(snap) {
  st.session = snap.session;
  st.floor = snap.floor;
  st.hands = snap.hands || [];
  st.muted = snap.muted;
  st.unmuteAsked = snap.unmute_asked;
  st.privateLine = snap.private_line === st.code;
  st.rollCall = snap.roll_call;
  applyMic();
  renderLive();
}

/** Whether the policy lets this microphone be heard now. */
function micLive() {
  return !st.muted && (st.floor === st.code || st.privateLine || st.rollCall);
}

/** Enables the local microphone track to match the audio policy, and tells the server. */
function applyMic() {
  const a = st.stream && st.stream.getAudioTracks()[0];
  if (a) a.enabled = !st.muted;
  if (sig) sig.send(C.muteState, { audio: !!a && !st.muted, video: !!st.stream?.getVideoTracks().length });
  renderLive();
}

function renderLive() {
  if (st.phase !== 'live') return;
  const mic = byId('mic');
  const live = micLive();
  mic.dataset.muted = String(st.muted);
  mic.dataset.live = String(live);
  mic.className = live ? 'mic-live' : 'mic-muted';
  mic.textContent = live ? t('join.live') : t('join.muted');
  byId('unmuteask').classList.toggle('hidden', !st.unmuteAsked);
  const raised = st.hands.includes(st.code);
  const hand = byId('hand');
  hand.dataset.raised = String(raised);
  hand.textContent = raised ? t('join.lower') : t('join.raise');
  byId('handpos').textContent = raised ? t('join.handup', { n: st.hands.indexOf(st.code) + 1 }) : '';
  byId('floorme').classList.toggle('hidden', st.floor !== st.code);
  byId('privline').classList.toggle('hidden', !st.privateLine);
  const fn = byId('floorname');
  fn.dataset.code = st.floor || '';
  fn.textContent = st.floor ? st.floor : t('join.nofloor');
  renderConn();
}

/** @param {number} [retryIn] */
function renderConn(retryIn) {
  const el = byId('conn');
  el.dataset.state = st.link;
  el.className = 'badge ' + (st.link === 'open' ? 'ok' : st.link === 'reconnecting' || st.link === 'connecting' ? 'warn' : 'bad');
  el.textContent = st.link === 'reconnecting' ? t('conn.reconnecting', { s: retryIn ?? '…' }) : t('conn.' + (st.link === 'idle' ? 'closed' : st.link === 'removed' ? 'closed' : st.link));
  const q = media ? media.quality : null;
  // The page never says "good" while the server reports this endpoint degraded or
  // while our own publisher leg sends nothing it should.
  const ms = mediaState();
  const level = !q ? 'none' : ms !== 'ok' && q.level !== 'none' ? 'poor' : q.level;
  const qe = byId('quality');
  qe.dataset.quality = level;
  qe.className = 'badge ' + (level === 'good' ? 'ok' : level === 'fair' ? 'warn' : level === 'poor' ? 'bad' : '');
  qe.textContent = t('quality.' + level);
  if (q) qe.title = t('quality.detail', { rtt: q.rttMs, loss: q.lossPct, kbps: q.sendKbps });
  const mw = byId('mediawarn');
  mw.dataset.state = ms;
  mw.dataset.reason = st.presence === 'degraded' ? st.presenceReason : '';
  mw.classList.toggle('hidden', ms === 'ok');
  mw.textContent = ms === 'degraded'
    ? (st.presenceReason === 'no_media' ? t('join.degraded.no_media') : t('join.degraded'))
    : ms === 'notsending' ? t('join.notsending', { kinds: (media ? media.send.kinds : []).map((k) => t('join.kind.' + k)).join(', ') }) : '';
}

/**
 * The media state the page shows: degraded (the server says so), notsending (our
 * publisher leg's bytesSent does not grow though it should), or ok.
 * @returns {'ok'|'degraded'|'notsending'}
 */
function mediaState() {
  if (st.phase !== 'live' || st.link !== 'open') return 'ok';
  if (st.presence === 'degraded') return 'degraded';
  if (media && media.send.stalled) return 'notsending';
  return 'ok';
}

// ---- directives ----

async function loadInbox() {
  try {
    const r = await api('GET', '/api/v1/directives');
    for (const d of Array.isArray(r) ? r : r.directives || []) st.inbox.set(d.id, d);
    renderInbox();
  } catch { /* retried on the next reconnect or poll */ }
}

function renderInbox() {
  const list = [...st.inbox.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  const unacked = list.filter((d) => !(d.receipt && d.receipt.acked_at));
  const cnt = byId('inboxcount');
  cnt.textContent = unacked.length ? String(unacked.length) : '';
  cnt.className = 'badge' + (unacked.length ? ' bad' : '');
  if (!list.length) { byId('inbox').replaceChildren(h('p', { class: 'muted', text: t('join.noinbox') })); return; }
  byId('inbox').replaceChildren(...list.map((d) => {
    const acked = d.receipt && d.receipt.acked_at;
    const queued = outbox.items.some((x) => x.id === 'ack:' + d.id);
    return h('div', { class: 'directive' + (acked ? ' acked' : ''), 'data-id': d.id, 'data-acked': String(!!acked) }, [
      h('div', { text: d.text }),
      h('div', { class: 'muted', text: `${fmtTime(d.created_at)} · ${d.issued_by || ''}` }),
      acked ? h('div', { class: 'muted', text: t('join.acked', { t: fmtTime(d.receipt.acked_at) }) })
        : h('button', { class: 'ok ack', type: 'button', 'data-id': d.id, disabled: queued, text: t('join.ack'), 'on:click': () => ack(d.id) }),
    ]);
  }));
}

/** @param {string} id */
function ack(id) {
  outbox.add('ack', 'POST', `/api/v1/directives/${id}/ack`, {}, 'ack:' + id);
  renderInbox();
}

// ---- incident reports ----

const DRAFT_KEY = () => 'ops.join.draft.' + st.code;

function saveDraft() {
  const f = /** @type {HTMLFormElement} */ (byId('report'));
  const d = Object.fromEntries(new FormData(f).entries());
  localStorage.setItem(DRAFT_KEY(), JSON.stringify(d));
}

function restoreDraft() {
  try {
    const d = JSON.parse(localStorage.getItem(DRAFT_KEY()) || 'null');
    if (!d) return;
    for (const [k, v] of Object.entries(d)) {
      const el = /** @type {HTMLInputElement|null} */ (byId('report').querySelector(`[name="${k}"]`));
      if (el) el.value = String(v);
    }
  } catch { /* a broken draft is dropped */ }
}

function submitReport() {
  const f = /** @type {HTMLFormElement} */ (byId('report'));
  const d = Object.fromEntries(new FormData(f).entries());
  const title = String(d.title || '').trim();
  if (!title) return;
  outbox.add('incident', 'POST', '/api/v1/incidents', {
    id: uuid(), endpoint_code: st.code, category: d.category, severity: d.severity,
    title, body: String(d.body || ''), occurred_at: new Date().toISOString(),
  });
  /** @type {HTMLInputElement} */ (byId('rtitle')).value = '';
  /** @type {HTMLTextAreaElement} */ (byId('rtext')).value = '';
  localStorage.removeItem(DRAFT_KEY());
}

function renderOutbox() {
  const items = outbox.items.filter((x) => x.kind === 'incident');
  const oc = byId('outboxcount');
  oc.textContent = items.length ? t('join.outbox', { n: items.length }) : '';
  oc.dataset.pending = String(outbox.pending);
  byId('outbox').replaceChildren(...items.map((it) => h('div', { class: 'outbox-item', 'data-id': it.id, 'data-state': it.state }, [
    h('span', { text: `${fmtTime(it.createdAt)} · ${it.body.title} · ` }),
    it.state === 'failed'
      ? h('span', { class: 'error' }, [t('join.failed', { msg: it.error || '' }), ' ', h('button', { type: 'button', text: t('join.discard'), 'on:click': () => outbox.discard(it.id) })])
      // A pending item failed only for now (network, 503): say it will be resent, in the
      // user's language, rather than show the server's technical message.
      : h('span', { class: 'muted', title: it.error || '', text: it.tries ? t('join.retrying') : '…' }),
  ])));
  renderInbox();
}

// ---- start ----

function renderStatic() {
  apply();
  for (const [id, values, prefix] of /** @type {const} */ ([['rcat', CATEGORIES, 'cat.'], ['rsev', SEVERITIES, 'sev.']])) {
    const el = /** @type {HTMLSelectElement} */ (byId(id));
    const cur = el.value;
    el.replaceChildren(...values.map((v) => h('option', { value: v, text: t(prefix + v) })));
    if (cur) el.value = cur;
  }
  renderLive();
  renderConn();
  if (outbox) { renderOutbox(); }
  if (turnout) turnout.render();
}

async function init() {
  setActor('endpoint'); // this page acts as the endpoint, even where a staff login exists
  renderStatic();
  wireSwitch(byId('lang'), renderStatic);
  exposeState({
    app: () => 'join', phase: () => st.phase, code: () => st.code, link: () => st.link,
    session: () => st.session, floor: () => st.floor, hands: () => [...st.hands], muted: () => st.muted,
    micLive: () => micLive(), unmuteAsked: () => st.unmuteAsked, privateLine: () => st.privateLine,
    inbox: () => [...st.inbox.values()].map((d) => ({ id: d.id, text: d.text, acked: !!(d.receipt && d.receipt.acked_at) })),
    outbox: () => (outbox ? outbox.pending : 0), quality: () => (media ? { ...media.quality } : null),
    slots: () => (media ? [...media.slots.keys()] : []), deviceError: () => st.deviceError,
    layers: () => (media ? { ...media.layers } : {}),
    framesDecoded: () => () => (media ? media.framesDecoded() : Promise.resolve({})),
    sending: () => () => (media ? media.sending() : Promise.resolve({})),
    sentBytes: () => () => (media ? media.sentBytes() : Promise.resolve({ audio: 0, video: 0 })),
    pcCreated: () => (media ? media.created : 0),
    presence: () => st.presence, presenceReason: () => st.presenceReason, mediaState: () => mediaState(),
    notSending: () => (media ? [...media.send.kinds] : []),
    turnout: () => (turnout ? turnout.state() : null),
  });
  const ep = await exchangeLink();
  if (ep === null) { setPhase('badlink'); byId('linkmsg').textContent = t('join.badlink'); return; }
  if (!ep) { setPhase('nolink'); byId('linkmsg').textContent = t('join.nolink'); return; }
  st.code = ep.code;
  st.name = ep.name;
  document.body.dataset.code = ep.code;
  byId('epname').textContent = `${ep.code} · ${ep.name}`;
  outbox = new Outbox('ops.join.outbox.' + ep.code);
  outbox.addEventListener('change', renderOutbox);
  outbox.addEventListener('sent', (ev) => {
    const d = /** @type {CustomEvent} */ (ev).detail;
    if (d.item.kind === 'incident') toast(t('join.sent'));
    if (d.item.kind === 'ack') {
      const id = d.item.id.slice(4);
      const cur = st.inbox.get(id);
      if (cur) st.inbox.set(id, { ...cur, receipt: d.result && d.result.acked_at ? d.result : { ...(cur.receipt || {}), acked_at: new Date().toISOString() } });
      renderInbox();
    }
  });
  turnout = mountEndpointTurnout({ code: ep.code, outbox });
  renderStatic();
  restoreDraft();
  byId('report').addEventListener('input', saveDraft);
  byId('report').addEventListener('submit', (ev) => { ev.preventDefault(); submitReport(); });
  byId('hand').addEventListener('click', () => {
    if (sig) sig.send(st.hands.includes(st.code) ? C.lowerHand : C.raiseHand, {});
  });
  byId('unmutebtn').addEventListener('click', () => {
    if (!sig) return;
    sig.send(C.unmuteAccept, {});
    st.unmuteAsked = false;
    st.muted = false;
    applyMic();
  });
  byId('camsel').addEventListener('change', reopenDevices);
  byId('micsel').addEventListener('change', reopenDevices);
  byId('joinbtn').addEventListener('click', joinLive);
  setPhase('devicecheck');
  outbox.flush().catch((e) => console.warn('outbox:', e));
  setInterval(() => { if (st.phase === 'live') loadInbox(); }, 30000);
  await openDevices();
}

init().catch((e) => toast(t('common.error', { msg: String(e) }), 'error'));
