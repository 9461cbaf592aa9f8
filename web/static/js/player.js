// @ts-check
// The desk's player of the record: a timeline of a session with its recorded
// files (program row, floor row) and the duty log's markers, and two videos
// opened at a chosen moment. A moment is a system time; a file's time 0 is its
// started_at, so the offset into a file is the moment minus that.
import { api } from './api.js';
import { addStrings, fmtTime, t } from './i18n.js';
import { byId, h } from './ui.js';

addStrings({
  'player.title': 'Ghi hình phiên',
  'player.open': 'Ghi hình',
  'player.watch': 'Xem video',
  'player.program': 'Chương trình',
  'player.floor': 'Đang phát biểu',
  'player.markers': 'Mốc',
  'player.nostart': 'Phiên chưa bắt đầu: chưa có ghi hình.',
  'player.nosession': 'Chưa có phiên nào.',
  'player.none': 'Không có bản ghi tại thời điểm này.',
  'player.nofloor': 'Không có ai phát biểu tại thời điểm này.',
  'player.writing': 'Bản ghi đang được ghi, xem được khi tệp đóng (hết phiên hoặc sang giờ mới).',
  'player.at': 'Thời điểm: {t}',
  'player.source': 'Điểm cầu {code} · từ {from} · giây {off}',
  'player.kind.incident': 'Sự việc',
  'player.kind.directive': 'Chỉ đạo',
  'player.kind.floor': 'Phát biểu',
  'player.error': 'Không mở được video: {msg}',
}, {
  'player.title': 'Session record',
  'player.open': 'Record',
  'player.watch': 'Watch video',
  'player.program': 'Program',
  'player.floor': 'Floor',
  'player.markers': 'Markers',
  'player.nostart': 'The session has not started: nothing is recorded yet.',
  'player.nosession': 'No session yet.',
  'player.none': 'Nothing was recorded at this moment.',
  'player.nofloor': 'Nobody held the floor at this moment.',
  'player.writing': 'This file is still being written; it can be watched once it closes (session end or the next hour).',
  'player.at': 'Moment: {t}',
  'player.source': 'Endpoint {code} · from {from} · second {off}',
  'player.kind.incident': 'Incident',
  'player.kind.directive': 'Directive',
  'player.kind.floor': 'Floor',
  'player.error': 'Cannot open the video: {msg}',
});

/**
 * @typedef {Object} Recording
 * @property {string} id
 * @property {string} kind program | floor
 * @property {string} source_code
 * @property {string} state open | closed | repaired | deleted
 * @property {string} started_at
 * @property {string|null} ended_at
 * @property {number|null} duration_ms
 */

/**
 * @typedef {Object} Marker
 * @property {string} id the record's id (incident, directive) or event id
 * @property {'incident'|'directive'|'floor'} kind
 * @property {number} at system time, ms since the epoch
 * @property {string[]} lines the cue's text
 */

/** @typedef {{id: string, offset: number, ready: boolean, currentTime: number, openMs: number, error: string}} Slot */

const KIND_COLOUR = { incident: '#d4302b', directive: '#7cc0ff', floor: '#e0a526' };
const W = 1000; // the timeline's viewBox width; it scales with the panel
const L = 110, R = 8; // the time axis runs from L to W - R; the rows' names are left of it
const ROW = { axis: 14, program: 22, floor: 48, markers: 74, height: 100 };
const SVG = 'http://www.w3.org/2000/svg';

/**
 * @param {string} tag
 * @param {Record<string, string|number>} attrs
 * @param {(Node|string)[]} [children]
 */
function s(tag, attrs, children = []) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

/**
 * Parses the session's markers.vtt. The last line of each cue carries the record's
 * exact system time; the first line's head says its kind.
 * @param {string} text
 * @returns {Marker[]}
 */
export function parseMarkers(text) {
  const unescape = (/** @type {string} */ l) => l.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  /** @type {Marker[]} */
  const out = [];
  for (const block of text.replace(/\r\n/g, '\n').split(/\n\n+/)) {
    const lines = block.split('\n');
    const ti = lines.findIndex((l) => l.includes('-->'));
    if (ti < 0) continue;
    const body = lines.slice(ti + 1).map(unescape);
    const sys = body.find((l) => l.startsWith('system time '));
    const at = sys ? Date.parse(sys.slice('system time '.length)) : NaN;
    if (!Number.isFinite(at)) continue;
    const head = body[0] || '';
    const kind = head.startsWith('Incident') ? 'incident' : head.startsWith('Directive') ? 'directive' : 'floor';
    out.push({ id: ti > 0 ? lines[ti - 1] : '', kind, at, lines: body.filter((l) => l !== sys) });
  }
  return out;
}

/** @param {Recording} r @returns {number} the end of the file, ms since the epoch */
function recEnd(r) {
  if (r.ended_at) return Date.parse(r.ended_at);
  if (r.duration_ms != null) return Date.parse(r.started_at) + r.duration_ms;
  return Date.now();
}

/**
 * The file of kind that covers the moment: a playable one first, else one still
 * being written (to say so).
 * @param {Recording[]} recs @param {string} kind @param {number} at
 * @returns {Recording|undefined}
 */
export function covering(recs, kind, at) {
  const hits = recs.filter((r) => r.kind === kind && r.state !== 'deleted' && Date.parse(r.started_at) <= at && at < recEnd(r));
  // Consecutive files overlap while a split hands over: the later one has the moment
  // without waiting for its keyframe.
  hits.sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at));
  return hits.find((r) => r.state === 'closed' || r.state === 'repaired') || hits[0];
}

/** A tick step (ms) that puts at most about ten labels on span. */
function tickStep(/** @type {number} */ span) {
  const steps = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200].map((x) => x * 1000);
  return steps.find((st) => span / st <= 10) || 4 * 3600 * 1000;
}

/**
 * Mounts the player into the desk page's #player panel.
 * @param {{onClose?: () => void}} [opts]
 */
export function mountPlayer(opts = {}) {
  const root = byId('player');
  const svgBox = byId('pl-timeline');
  const info = byId('pl-marker');
  const vids = {
    program: /** @type {HTMLVideoElement} */ (byId('pl-program')),
    floor: /** @type {HTMLVideoElement} */ (byId('pl-floor')),
  };
  const st = {
    session: /** @type {any} */ (null),
    /** @type {Recording[]} */
    recs: [],
    /** @type {Marker[]} */
    markers: [],
    at: 0,
    /** @type {Record<string, Slot|null>} */
    slots: { program: null, floor: null },
    loading: false,
    error: '',
  };
  let seq = 0; // the newest open(); older loads give way

  const x = (/** @type {number} */ tm) => {
    const a = Date.parse(st.session.actual_start);
    const b = st.session.actual_end ? Date.parse(st.session.actual_end) : Date.now();
    return L + Math.max(0, Math.min(1, (tm - a) / Math.max(1, b - a))) * (W - L - R);
  };

  function drawTimeline() {
    svgBox.replaceChildren();
    if (!st.session || !st.session.actual_start) {
      svgBox.append(h('p', { class: 'muted', text: st.session ? t('player.nostart') : t('player.nosession') }));
      return;
    }
    const a = Date.parse(st.session.actual_start);
    const b = st.session.actual_end ? Date.parse(st.session.actual_end) : Date.now();
    const svg = s('svg', { viewBox: `0 0 ${W} ${ROW.height}`, width: '100%', role: 'img', 'data-start': a, 'data-end': b });
    const step = tickStep(b - a);
    for (let tk = Math.ceil(a / step) * step; tk <= b; tk += step) {
      if (x(tk) > W - R - 40) break; // no label cut at the right edge
      svg.append(s('line', { x1: x(tk), x2: x(tk), y1: ROW.axis + 2, y2: ROW.height, stroke: '#2d3741' }),
        s('text', { x: x(tk) + 2, y: ROW.axis - 2, 'font-size': 11, fill: '#9aa7b4' }, [fmtTime(tk).slice(0, step < 60000 ? 8 : 5)]));
    }
    svg.append(s('text', { x: 2, y: ROW.markers + 15, 'font-size': 11, fill: '#9aa7b4' }, [t('player.markers')]));
    for (const [row, y] of /** @type {const} */ ([['program', ROW.program], ['floor', ROW.floor]])) {
      svg.append(s('text', { x: 2, y: y + 15, 'font-size': 11, fill: '#9aa7b4' }, [t('player.' + row)]));
      for (const r of st.recs.filter((r) => r.kind === row && r.state !== 'deleted')) {
        const x0 = x(Date.parse(r.started_at));
        const seg = s('rect', { x: x0, y, width: Math.max(2, x(recEnd(r)) - x0), height: 20, rx: 2,
          fill: row === 'program' ? '#2fa84f' : '#e0a526', 'fill-opacity': r.state === 'open' ? 0.4 : 0.75,
          class: 'pl-seg', 'data-id': r.id, 'data-kind': row, 'data-state': r.state });
        seg.append(s('title', {}, [`${t('player.' + row)} ${r.source_code} · ${fmtTime(r.started_at)}–${r.ended_at ? fmtTime(r.ended_at) : '…'}`]));
        svg.append(seg);
      }
    }
    for (const m of st.markers) {
      const g = s('g', { class: 'pl-mark', 'data-id': m.id, 'data-kind': m.kind, 'data-at': new Date(m.at).toISOString(), tabindex: 0 });
      g.append(s('rect', { x: x(m.at) - 2, y: ROW.markers, width: 5, height: 22, fill: KIND_COLOUR[m.kind] }),
        s('title', {}, [`${fmtTime(m.at)} ${m.lines.join(' · ')}`]));
      g.addEventListener('mouseenter', () => { info.textContent = markerText(m); });
      g.addEventListener('click', (ev) => { ev.stopPropagation(); seekTo(m.at); });
      svg.append(g);
    }
    if (st.at) svg.append(s('line', { id: 'pl-head', x1: x(st.at), x2: x(st.at), y1: ROW.axis, y2: ROW.height, stroke: '#fff', 'stroke-width': 2 }));
    // A click on the rows opens the moment under the pointer.
    svg.addEventListener('click', (ev) => {
      const box = svg.getBoundingClientRect();
      const vx = box.width > 0 ? ((ev.clientX - box.left) / box.width) * W : -1;
      if (vx >= L) seekTo(a + ((vx - L) / (W - L - R)) * (b - a));
    });
    svgBox.append(svg);
  }

  function moveHead() {
    const head = svgBox.querySelector('#pl-head');
    if (head && st.session && st.session.actual_start) {
      head.setAttribute('x1', String(x(st.at)));
      head.setAttribute('x2', String(x(st.at)));
    } else drawTimeline();
  }

  /** @param {Marker} m */
  function markerText(m) {
    return `${fmtTime(m.at)} · ${t('player.kind.' + m.kind)} · ${m.lines[0] || ''}`;
  }

  /** @param {string} kind @param {string} msg */
  function note(kind, msg) {
    byId(`pl-${kind}info`).textContent = msg;
  }

  /**
   * Opens the file of kind covering at in its video, at the moment's offset.
   * @param {'program'|'floor'} kind @param {number} at @param {number} my
   */
  async function openSlot(kind, at, my) {
    const v = vids[kind];
    const box = byId(`pl-${kind}box`);
    const r = covering(st.recs, kind, at);
    if (!r || r.state === 'open') {
      st.slots[kind] = null;
      v.pause();
      v.removeAttribute('src');
      v.load();
      v.classList.add('hidden');
      box.classList.toggle('hidden', kind === 'floor' && !r);
      note(kind, r ? t('player.writing') : kind === 'floor' ? t('player.nofloor') : t('player.none'));
      return;
    }
    box.classList.remove('hidden');
    v.classList.remove('hidden');
    const offset = Math.max(0, (at - Date.parse(r.started_at)) / 1000);
    /** @type {Slot} */
    const slot = { id: r.id, offset, ready: false, currentTime: 0, openMs: 0, error: '' };
    st.slots[kind] = slot;
    note(kind, t('player.source', { code: r.source_code, from: fmtTime(r.started_at), off: offset.toFixed(1) }));
    const t0 = performance.now();
    try {
      const src = `/api/v1/recordings/${encodeURIComponent(r.id)}/media`;
      if (v.dataset.id !== r.id) {
        v.dataset.id = r.id;
        v.src = src;
      }
      if (v.readyState < HTMLMediaElement.HAVE_METADATA) await once(v, 'loadedmetadata');
      if (my !== seq) return;
      v.pause();
      v.currentTime = Math.min(offset, Number.isFinite(v.duration) ? Math.max(0, v.duration - 0.05) : offset);
      await once(v, 'seeked');
      if (my !== seq) return;
      slot.openMs = Math.round(performance.now() - t0);
      slot.currentTime = v.currentTime;
      slot.ready = true;
    } catch (e) {
      slot.error = String(/** @type {Error} */ (e).message || e);
      note(kind, t('player.error', { msg: slot.error }));
    }
  }

  /** @param {number} at system time, ms */
  async function seekTo(at) {
    const my = ++seq;
    st.at = at;
    byId('pl-at').textContent = t('player.at', { t: fmtTime(at, true) });
    byId('pl-at').dataset.at = new Date(at).toISOString();
    // The log's record at this moment, if the moment is one of its markers.
    const m = st.markers.find((mk) => Math.abs(mk.at - at) < 1000);
    info.textContent = m ? markerText(m) : '';
    moveHead();
    await Promise.all([openSlot('program', at, my), openSlot('floor', at, my)]);
  }

  /**
   * Loads a session's files and markers and, with at, opens that moment.
   * @param {string} sessionId @param {number|string|Date} [at]
   */
  async function open(sessionId, at) {
    const my = ++seq;
    root.classList.remove('hidden');
    st.loading = true;
    st.error = '';
    try {
      const [sess, recs, vtt] = await Promise.all([
        api('GET', '/api/v1/sessions/' + encodeURIComponent(sessionId)),
        api('GET', '/api/v1/recordings?session=' + encodeURIComponent(sessionId)),
        fetch(`/api/v1/sessions/${encodeURIComponent(sessionId)}/markers.vtt`, { credentials: 'same-origin' })
          .then((r) => (r.ok ? r.text() : '')),
      ]);
      if (my !== seq) return;
      st.session = sess;
      st.recs = recs.recordings || [];
      st.markers = parseMarkers(vtt);
      byId('pl-session').dataset.session = sess.id;
      byId('pl-session').textContent = sess.title;
      st.at = at === undefined ? 0 : new Date(at).getTime();
      drawTimeline();
      st.loading = false;
      if (st.at) await seekTo(st.at);
    } catch (e) {
      st.error = String(/** @type {Error} */ (e).message || e);
      info.textContent = t('common.error', { msg: st.error });
    } finally {
      if (my === seq) st.loading = false;
    }
  }

  function close() {
    ++seq;
    root.classList.add('hidden');
    for (const v of Object.values(vids)) v.pause();
    if (opts.onClose) opts.onClose();
  }

  // The floor follows the program's play and pause, at the same system time.
  vids.program.addEventListener('play', () => {
    const fl = st.slots.floor;
    if (fl && fl.ready) vids.floor.play().catch(() => {});
  });
  vids.program.addEventListener('pause', () => vids.floor.pause());
  vids.program.addEventListener('timeupdate', () => {
    const sl = st.slots.program;
    const r = sl && st.recs.find((x) => x.id === sl.id);
    if (!r || vids.program.paused) return;
    st.at = Date.parse(r.started_at) + vids.program.currentTime * 1000;
    moveHead();
  });
  byId('pl-close').addEventListener('click', close);

  return {
    open,
    close,
    /** Redraws in the current language. */
    render() { if (st.session) drawTimeline(); },
    /** For tests and diagnostics (window.__ops.player). */
    state() {
      const slot = (/** @type {'program'|'floor'} */ k) => {
        const sl = st.slots[k];
        return sl && { ...sl, currentTime: vids[k].currentTime, paused: vids[k].paused };
      };
      return {
        open: !root.classList.contains('hidden'), loading: st.loading, error: st.error,
        session: st.session && st.session.id, at: st.at ? new Date(st.at).toISOString() : '',
        recordings: st.recs.length, markers: st.markers.map((m) => ({ id: m.id, kind: m.kind, at: new Date(m.at).toISOString() })),
        program: slot('program'), floor: slot('floor'),
      };
    },
  };
}

/**
 * Resolves on the element's next event of that name; rejects on its error.
 * @param {HTMLMediaElement} el @param {string} name
 * @returns {Promise<void>}
 */
function once(el, name) {
  return new Promise((resolve, reject) => {
    const ok = () => { off(); resolve(); };
    const bad = () => { off(); reject(new Error(el.error ? el.error.message || 'media error ' + el.error.code : 'media error')); };
    const off = () => { el.removeEventListener(name, ok); el.removeEventListener('error', bad); };
    el.addEventListener(name, ok);
    el.addEventListener('error', bad);
  });
}
