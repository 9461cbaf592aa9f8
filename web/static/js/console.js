// @ts-check
// The command console (leaders): publishes the program (endpoint 22), watches the
// wall of endpoints (small layer, visible tiles only, one enlarged on the high
// layer), runs floor, microphones and the private line, and shows the health board,
// latest incidents and unacknowledged directives. A district's staff (district
// authority) get the same page without session control, on their own units only.
import { api, uuid } from './api.js';
import { followEvents } from './events.js';
import { addStrings, apply, fmtTime, t, wireSwitch } from './i18n.js';
import { C, S as M, Signaling } from './protocol.js';
import { MediaLink } from './rtc.js';
import { currentSession, logout, requireStaff, roster } from './session.js';
import { byId, exposeState, groupByDistrict, h, toast } from './ui.js';
import { mountTurnoutBoard } from './turnout.js';

/** @typedef {import('./session.js').Endpoint} Endpoint */

addStrings({
  'console.scope': 'Huyện {name}',
  'console.scope.title': 'Tài khoản cấp huyện: chỉ thấy huyện và các xã trực thuộc; điều hành phiên do tỉnh thực hiện',
}, {
  'console.scope': 'District {name}',
  'console.scope.title': 'District account: sees the district and its communes only; the province runs the session',
});

// A node with a parent (a province under the nation): its link upward, and the
// choice of program for its endpoints.
addStrings({
  'console.uplink': 'Cấp trên: {state}',
  'console.uplink.connecting': 'đang kết nối',
  'console.uplink.joined': 'đã vào, chưa có hình',
  'console.uplink.connected': 'đã kết nối',
  'console.uplink.stopped': 'đã dừng',
  'console.progsource.parent': 'Phát chương trình cấp trên',
  'console.progsource.own': 'Phát chương trình của tỉnh',
  'console.progsource.title': 'Chọn chương trình các điểm cầu nhận: phòng chỉ huy của tỉnh hoặc chương trình của cấp trên',
}, {
  'console.uplink': 'Parent: {state}',
  'console.uplink.connecting': 'connecting',
  'console.uplink.joined': 'joined, no media yet',
  'console.uplink.connected': 'connected',
  'console.uplink.stopped': 'stopped',
  'console.progsource.parent': "Relay the parent's program",
  'console.progsource.own': 'Back to our own program',
  'console.progsource.title': "What the endpoints see as the program: this command room's, or the parent's",
});

// Session control stays with the province: a district's console does not show it
// (the server refuses it anyway).
const SESSION_CONTROLS = ['sessionbtn', 'publish', 'screen', 'givefloor', 'revokefloor', 'mute', 'askunmute', 'private', 'muteall', 'rollcall'];

const st = {
  link: 'idle',
  leader: false,
  /** the district a district-scoped account is limited to ('' = the province) */
  district: '',
  /** @type {Endpoint|null} that district, from /auth/me */
  districtUnit: null,
  /** @type {Endpoint[]} every endpoint but the command room, grouped by district */
  wall: [],
  /** @type {{district: Endpoint, members: Endpoint[]}[]} */
  groups: [],
  /** @type {Map<string, Endpoint>} */
  byCode: new Map(),
  /** @type {Map<string, string>} code → presence */
  presence: new Map(),
  /** @type {Map<string, import('./protocol.js').StatEntry>} */
  stats: new Map(),
  gridSize: Number(localStorage.getItem('ops.console.grid') || 25),
  page: 0,
  /** @type {string|null} */
  selected: null,
  /** @type {string|null} */
  floor: null,
  /** @type {string[]} */
  hands: [],
  /** @type {Set<string>} */
  muted: new Set(),
  /** @type {string|null} */
  privateLine: null,
  rollCall: false,
  /** @type {import('./protocol.js').UplinkMsg|null} the link to the parent node; null: none */
  uplink: null,
  session: /** @type {any} */ (null),
  publishing: false,
  screen: false,
  /** @type {MediaStream|null} */
  camera: null,
  /** @type {any[]} */
  incidents: [],
  /** @type {any[]} */
  unacked: [],
};

/** @type {Signaling} */
let sig;
/** @type {MediaLink} */
let media;
/** @type {ReturnType<typeof mountTurnoutBoard>|null} */
let board = null;

// ---- wall ----

function pageCount() {
  return Math.max(1, Math.ceil(st.wall.length / st.gridSize));
}

/** @returns {Endpoint[]} the endpoints on the current page */
function pageItems() {
  return st.wall.slice(st.page * st.gridSize, (st.page + 1) * st.gridSize);
}

/** Tells the server which tiles are visible, each with its slot (its position). */
function sendVisibility() {
  /** @type {import('./protocol.js').TileMsg[]} */
  const tiles = pageItems().map((e, i) => ({ code: e.code, slot: i, visible: true, size: e.code === st.selected ? 'large' : 'small' }));
  sig.send(C.visibility, { tiles });
}

function renderWall() {
  const wall = byId('wall');
  const cols = st.gridSize === 49 ? 7 : 5;
  wall.style.setProperty('--cols', String(cols));
  wall.dataset.grid = String(st.gridSize);
  /** @type {HTMLElement[]} */
  const nodes = [];
  let lastDistrict = '';
  pageItems().forEach((e, i) => {
    const d = e.kind === 'district' ? e.code : e.parent_code || '';
    if (d !== lastDistrict) {
      lastDistrict = d;
      const de = st.byCode.get(d);
      nodes.push(h('div', { class: 'grouphead', text: de ? `${de.code} · ${de.name}` : d }));
    }
    const slot = 'tile_' + i;
    const pres = st.presence.get(e.code) || 'offline';
    let tile = /** @type {HTMLElement|null} */ (wall.querySelector(`.tile[data-slot="${slot}"]`));
    if (!tile) {
      tile = h('div', { class: 'tile', 'data-slot': slot }, [
        h('video', { autoplay: true, muted: true, playsinline: true, 'data-slot': slot }),
        h('span', { class: 'dot' }), h('span', { class: 'name' }),
      ]);
      tile.addEventListener('click', () => select(/** @type {HTMLElement} */ (tile).dataset.code || ''));
      const tr = media && media.slots.get(slot);
      if (tr) attach(tile, tr);
    }
    tile.dataset.code = e.code;
    tile.dataset.presence = pres;
    tile.dataset.size = e.code === st.selected ? 'large' : 'small';
    tile.className = 'tile' + (e.code === st.selected ? ' big selected' : '') + (e.code === st.floor ? ' floor' : '') + (e.kind === 'district' ? ' district' : '');
    /** @type {HTMLElement} */ (tile.querySelector('.dot')).className = 'dot st-' + pres;
    /** @type {HTMLElement} */ (tile.querySelector('.name')).textContent = `${st.muted.has(e.code) ? '⊘ ' : ''}${e.code} ${e.name}`;
    nodes.push(tile);
  });
  wall.replaceChildren(...nodes);
  byId('pageinfo').textContent = t('console.page', { p: st.page + 1, n: pageCount() });
  byId('pageinfo').dataset.page = String(st.page);
}

/** @param {HTMLElement} tile @param {MediaStreamTrack} track */
function attach(tile, track) {
  const v = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
  v.srcObject = new MediaStream([track]);
  v.play().catch(() => {});
}

/** @param {string} code */
function select(code) {
  st.selected = st.selected === code ? null : code;
  renderWall();
  renderControls();
  sendVisibility();
}

/** @param {number} p */
function goPage(p) {
  st.page = Math.min(Math.max(0, p), pageCount() - 1);
  if (st.selected && !pageItems().some((e) => e.code === st.selected)) st.selected = null;
  renderWall();
  renderControls();
  sendVisibility();
}

// ---- health board ----

function renderHealth() {
  const board = byId('health');
  let online = 0;
  const total = st.groups.reduce((n, g) => n + g.members.length, 0);
  board.replaceChildren(...st.groups.map((g) => h('div', { class: 'district', 'data-district': g.district.code }, [
    h('b', { text: `${g.district.code} · ${g.district.name}` }),
    ...g.members.map((e) => {
      const p = st.presence.get(e.code) || 'offline';
      if (p === 'connected' || p === 'degraded') online++;
      const s = st.stats.get(e.code);
      const tip = `${e.code} ${e.name} — ${t('presence.' + p)}` + (s ? `\n${Math.round(s.bitrate_in / 1000)} kbps ↑ · ${Math.round(s.bitrate_out / 1000)} kbps ↓ · ${(s.loss * 100).toFixed(1)}% · RTT ${Math.round(s.rtt_ms)} ms` : '');
      return h('span', { class: 'hcell st-' + p, 'data-code': e.code, 'data-presence': p, title: tip, tabindex: '0' });
    }),
  ])));
  const el = byId('online');
  el.textContent = t('console.online', { n: online, total });
  el.dataset.online = String(online);
  el.dataset.total = String(total);
}

/** @param {import('./protocol.js').PresenceMsg} p */
function setPresence(p) {
  if (!p || !p.code) return;
  st.presence.set(p.code, p.state);
  if (p.stats) st.stats.set(p.code, p.stats);
}

// ---- controls ----

function renderControls() {
  const sel = st.selected ? st.byCode.get(st.selected) : null;
  byId('selinfo').textContent = sel ? t('console.selected', { name: `${sel.code} ${sel.name}` }) : '';
  const lead = st.leader;
  for (const id of ['givefloor', 'mute', 'askunmute', 'private']) /** @type {HTMLButtonElement} */ (byId(id)).disabled = !lead || !sel;
  for (const id of ['revokefloor', 'muteall', 'rollcall', 'publish', 'screen']) /** @type {HTMLButtonElement} */ (byId(id)).disabled = !lead;
  byId('mute').textContent = sel && st.muted.has(sel.code) ? t('console.askunmute') : t('console.mute');
  byId('private').textContent = st.privateLine ? t('console.endprivate') : t('console.private');
  byId('rollcall').textContent = st.rollCall ? t('console.stoprollcall') : t('console.rollcall');
  byId('rollcall').dataset.on = String(st.rollCall);
  const up = st.uplink;
  const ui = byId('uplinkinfo');
  ui.classList.toggle('hidden', !up);
  const ps = /** @type {HTMLButtonElement} */ (byId('progsource'));
  ps.classList.toggle('hidden', !up || !!st.district);
  if (up) {
    ui.textContent = t('console.uplink', { state: t('console.uplink.' + up.state) });
    ui.className = 'badge ' + (up.state === 'connected' ? 'ok' : 'warn');
    ui.title = up.parent;
    const relayed = up.program_source === 'parent';
    ps.textContent = t(relayed ? 'console.progsource.own' : 'console.progsource.parent');
    ps.title = t('console.progsource.title');
    ps.dataset.on = String(relayed);
    ps.disabled = !lead;
  }
  const fl = st.floor ? st.byCode.get(st.floor) : null;
  const fi = byId('floorinfo');
  fi.textContent = fl ? t('console.floor', { name: `${fl.code} ${fl.name}` }) : t('console.nofloor');
  fi.dataset.code = st.floor || '';
  const pub = byId('publish');
  pub.dataset.on = String(st.publishing);
  pub.classList.toggle('ok', st.publishing); // classList: a district's console keeps it hidden
  pub.classList.toggle('primary', !st.publishing);
  byId('screen').textContent = st.screen ? t('console.stopscreen') : t('console.screen');
  byId('hands').replaceChildren(...(st.hands.length ? st.hands.map((c, i) => {
    const e = st.byCode.get(c);
    return h('li', { 'data-code': c }, [`${i + 1}. ${c} ${e ? e.name : ''} `,
      lead ? h('button', { type: 'button', text: t('console.givefloor'), 'on:click': () => sig.send(C.giveFloor, { code: c }) }) : null]);
  }) : [h('li', { class: 'muted', text: t('console.nohands') })]));
  const sc = byId('scope');
  sc.classList.toggle('hidden', !st.district);
  sc.dataset.district = st.district;
  sc.textContent = st.district ? t('console.scope', { name: st.districtUnit ? `${st.district} · ${st.districtUnit.name}` : st.district }) : '';
  sc.title = st.district ? t('console.scope.title') : '';
  const sb = byId('sessionbtn');
  sb.textContent = st.session ? t('console.endsession') : t('console.startsession');
  /** @type {HTMLButtonElement} */ (sb).disabled = !lead;
  byId('session').textContent = st.session ? t('console.session', { title: st.session.title }) : t('console.nosession');
  byId('session').dataset.session = st.session ? st.session.id : '';
}

async function togglePublish() {
  if (st.publishing) {
    for (const tr of st.camera?.getTracks() || []) tr.stop();
    st.camera = null;
    st.publishing = false;
    media.close();
    sig.reconnect(); // a fresh peer without a publisher; the program goes dark
    renderControls();
    return;
  }
  try {
    st.camera = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 15, max: 30 } }, audio: true,
    });
  } catch (e) {
    toast(t('join.nodevice', { msg: String(/** @type {Error} */ (e).message || e) }), 'error');
    return;
  }
  st.publishing = true;
  /** @type {HTMLVideoElement} */ (byId('self')).srcObject = st.camera;
  byId('self').classList.remove('hidden');
  await media.publish(st.camera);
  renderControls();
}

/** The shared screen replaces the camera's picture in the program while it lasts. */
async function toggleScreen() {
  const sender = media.pub && media.pub.getSenders().find((s) => s.track && s.track.kind === 'video');
  if (st.screen) {
    st.screen = false;
    if (sender && st.camera) await sender.replaceTrack(st.camera.getVideoTracks()[0]);
    renderControls();
    return;
  }
  if (!sender) return toast(t('console.publish'));
  try {
    const scr = await navigator.mediaDevices.getDisplayMedia({ video: true });
    const tr = scr.getVideoTracks()[0];
    tr.addEventListener('ended', () => { if (st.screen) toggleScreen(); });
    await sender.replaceTrack(tr);
    st.screen = true;
  } catch (e) {
    toast(String(e), 'error');
  }
  renderControls();
}

async function toggleSession() {
  try {
    if (st.session) {
      await api('POST', `/api/v1/sessions/${st.session.id}/end`);
    } else {
      const now = new Date();
      const s = await api('POST', '/api/v1/sessions', { id: uuid(), title: `${t('console.title')} ${now.toLocaleDateString()}`,
        planned_start: now.toISOString(), planned_end: new Date(now.getTime() + 12 * 3600e3).toISOString() });
      await api('POST', `/api/v1/sessions/${s.id}/start`);
    }
  } catch (e) {
    toast(String(/** @type {Error} */ (e).message), 'error');
  }
  st.session = await currentSession();
  renderControls();
}

// ---- side panels ----

async function loadSide() {
  try {
    const inc = await api('GET', '/api/v1/incidents?limit=8');
    st.incidents = inc.incidents || [];
  } catch { /* no session yet or no log: keep the last list */ }
  try {
    const r = await api('GET', '/api/v1/directives');
    /** @type {any[]} */
    const list = Array.isArray(r) ? r : r.directives || [];
    st.unacked = list.filter((d) => d.summary && d.summary.acked < d.summary.total).slice(0, 8);
  } catch { /* as above */ }
  renderSide();
}

function renderSide() {
  byId('incidents').replaceChildren(...st.incidents.map((i) => h('li', { 'data-id': i.id }, [
    h('span', { class: 'sev-' + i.severity, text: `${t('sev.' + i.severity)} · ` }),
    `${fmtTime(i.occurred_at)} ${i.endpoint_code} ${i.endpoint_name || ''}: ${i.title}`])));
  byId('unacked').replaceChildren(...st.unacked.map((d) => h('li', { 'data-id': d.id },
    [`${fmtTime(d.created_at)} ${d.text} — `, h('b', { text: `${d.summary.acked}/${d.summary.total}` })])));
}

/** @type {ReturnType<typeof setTimeout>|undefined} */
let sideTimer;

// ---- start ----

function renderAll() {
  apply();
  renderWall();
  renderHealth();
  renderControls();
  renderSide();
  if (board) board.render();
  const c = byId('conn');
  c.dataset.state = st.link;
  c.className = 'badge ' + (st.link === 'open' ? 'ok' : 'warn');
  c.textContent = t('conn.' + (st.link === 'idle' ? 'connecting' : st.link === 'reconnecting' ? 'connecting' : st.link === 'removed' ? 'closed' : st.link));
}

async function init() {
  apply();
  exposeState({
    app: () => 'console', link: () => st.link, leader: () => st.leader, district: () => st.district, floor: () => st.floor, hands: () => [...st.hands],
    selected: () => st.selected, page: () => st.page, gridSize: () => st.gridSize, publishing: () => st.publishing,
    tiles: () => pageItems().map((e, i) => ({ code: e.code, slot: 'tile_' + i, size: e.code === st.selected ? 'large' : 'small', presence: st.presence.get(e.code) || 'offline' })),
    presence: () => Object.fromEntries(st.presence), online: () => Number(byId('online').dataset.online || 0),
    muted: () => [...st.muted], privateLine: () => st.privateLine, slots: () => (media ? [...media.slots.keys()] : []),
    framesDecoded: () => () => (media ? media.framesDecoded() : Promise.resolve({})),
    sending: () => () => (media ? media.sending() : Promise.resolve({})),
    layers: () => (media ? { ...media.layers } : {}),
  });
  const me = await requireStaff();
  byId('who').textContent = `${me.principal.username} (${me.principal.role})`;
  st.district = /** @type {any} */ (me.principal).district || '';
  st.districtUnit = /** @type {any} */ (me).district || null;
  if (st.district) {
    document.body.dataset.scoped = st.district;
    for (const id of SESSION_CONTROLS) byId(id).classList.add('hidden');
  }
  wireSwitch(byId('lang'), renderAll);
  byId('logout').addEventListener('click', logout);

  const eps = await roster();
  st.byCode = new Map(eps.map((e) => [e.code, e]));
  for (const e of eps) st.presence.set(e.code, e.presence || 'offline');
  st.groups = /** @type {any} */ (groupByDistrict(eps));
  st.wall = st.groups.flatMap((g) => g.members).filter((e) => !!e.parent_code); // all but the root
  st.session = await currentSession();
  /** @type {HTMLSelectElement} */ (byId('grid')).value = String(st.gridSize);

  sig = new Signaling('console');
  media = new MediaLink(sig);
  sig.on('state', (p) => { st.link = p.state; renderAll(); });
  sig.on('down', () => media.close());
  sig.on(M.welcome, (/** @type {import('./protocol.js').WelcomeMsg} */ w) => {
    st.leader = w.leader;
    const s = w.state;
    st.floor = s.floor;
    st.hands = s.hands || [];
    st.privateLine = s.private_line;
    st.rollCall = s.roll_call;
    st.muted = new Set(s.muted_codes || []);
    media.config.iceServers = w.ice_servers || [];
    media.reset();
    if (st.publishing && st.camera) media.publish(st.camera).catch((e) => toast(String(e), 'error'));
    sendVisibility();
    renderAll();
  });
  sig.on(M.presence, (p) => {
    setPresence(p);
    renderHealth();
    renderWall();
  });
  // The whole roster's presence (with the last stats), sent after each welcome.
  sig.on(M.presenceSnapshot, (p) => {
    for (const x of p.endpoints || []) setPresence(x);
    renderHealth();
    renderWall();
  });
  sig.on(M.stats, (p) => {
    for (const s of p.endpoints || []) { st.stats.set(s.code, s); if (s.state) st.presence.set(s.code, s.state); }
    renderHealth();
  });
  sig.on(M.floor, (p) => { st.floor = p.code; renderWall(); renderControls(); });
  sig.on(M.hands, (p) => { st.hands = p.queue || []; renderControls(); });
  sig.on(M.mute, (p) => { if (p.muted) st.muted.add(p.code); else st.muted.delete(p.code); renderWall(); renderControls(); });
  sig.on(M.privateLine, (p) => { st.privateLine = p.code; renderControls(); });
  sig.on(M.rollCall, (p) => { st.rollCall = !!p.active; renderControls(); });
  sig.on(M.uplink, (p) => { st.uplink = p; renderControls(); });
  sig.on(M.session, async () => { st.session = await currentSession(); renderControls(); });
  sig.on(M.error, (p) => toast(t('common.error', { msg: p.message || p.code }), 'error'));
  media.addEventListener('track', (ev) => {
    const { slot, track } = /** @type {CustomEvent} */ (ev).detail;
    if (slot.startsWith('tile_')) {
      const tile = /** @type {HTMLElement|null} */ (byId('wall').querySelector(`.tile[data-slot="${slot}"]`));
      if (tile) attach(tile, track);
    } else if (track.kind === 'audio' && slot !== 'program_audio') {
      // floor audio and aux audio (private line, roll call) are heard in the room
      let el = /** @type {HTMLAudioElement|null} */ (document.querySelector(`audio[data-slot="${slot}"]`));
      if (!el) { el = /** @type {HTMLAudioElement} */ (h('audio', { autoplay: true, 'data-slot': slot })); document.body.append(el); }
      el.srcObject = new MediaStream([track]);
      el.play().catch(() => {});
    }
  });
  media.addEventListener('quality', () => {
    const q = media.quality;
    const el = byId('quality');
    el.dataset.quality = q.level;
    el.textContent = t('quality.' + q.level);
    el.title = t('quality.detail', { rtt: q.rttMs, loss: q.lossPct, kbps: q.sendKbps });
  });
  media.addEventListener('failed', () => sig.reconnect());
  sig.connect();
  addEventListener('pagehide', () => sig.close());

  byId('grid').addEventListener('change', () => {
    st.gridSize = Number(/** @type {HTMLSelectElement} */ (byId('grid')).value);
    localStorage.setItem('ops.console.grid', String(st.gridSize));
    byId('wall').replaceChildren();
    goPage(0);
  });
  byId('prev').addEventListener('click', () => goPage(st.page - 1));
  byId('next').addEventListener('click', () => goPage(st.page + 1));
  byId('publish').addEventListener('click', togglePublish);
  byId('screen').addEventListener('click', toggleScreen);
  byId('sessionbtn').addEventListener('click', toggleSession);
  byId('givefloor').addEventListener('click', () => st.selected && sig.send(C.giveFloor, { code: st.selected }));
  byId('revokefloor').addEventListener('click', () => sig.send(C.revokeFloor, {}));
  byId('mute').addEventListener('click', () => {
    if (!st.selected) return;
    sig.send(st.muted.has(st.selected) ? C.requestUnmute : C.mute, { code: st.selected });
  });
  byId('askunmute').addEventListener('click', () => st.selected && sig.send(C.requestUnmute, { code: st.selected }));
  byId('muteall').addEventListener('click', () => sig.send(C.muteAll, {}));
  byId('private').addEventListener('click', () => {
    if (st.privateLine) sig.send(C.privateLineClose, {});
    else if (st.selected) sig.send(C.privateLineOpen, { code: st.selected });
  });
  byId('rollcall').addEventListener('click', () => sig.send(st.rollCall ? C.rollCallStop : C.rollCallStart, {}));
  byId('progsource').addEventListener('click', () => st.uplink &&
    sig.send(C.programSource, { source: st.uplink.program_source === 'parent' ? 'own' : 'parent' }));

  board = mountTurnoutBoard(byId('turnout'));
  renderAll();
  await loadSide();
  followEvents((e) => {
    if (board) board.onEvent(e);
    if (e.entity === 'incident' || e.entity === 'directive') {
      clearTimeout(sideTimer);
      sideTimer = setTimeout(loadSide, 500);
    }
  }, () => {});
}

init().catch((e) => toast(t('common.error', { msg: String(e) }), 'error'));
