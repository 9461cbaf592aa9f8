// @ts-check
// Turnout: the board of the console and the desk (the province's figure, the
// districts as bars sorted by percent, the communes of a chosen district, the
// province's curve as an inline SVG), and the endpoint's own figure with its report
// form on the join page. Figures come from /api/v1/turnout; the pages pass their
// live audit events in (onEvent) and the board refetches, at most once a second.
import { api, ApiError, uuid } from './api.js';
import { fmtTime, lang, t } from './i18n.js';
import { h, toast } from './ui.js';

/**
 * @typedef {Object} TurnoutUnit
 * @property {string} code
 * @property {string} name
 * @property {string} kind province | district | commune
 * @property {number} registered
 * @property {number} voted
 * @property {number} percent
 * @property {number} units_reported
 * @property {number} units_total
 * @property {number} units_complete
 * @property {number} units_stale
 * @property {string|null} last_report_at
 * @property {string|null} completed_at
 * @property {boolean} complete
 * @property {boolean} below_half
 * @property {boolean} stale
 */

/**
 * @typedef {Object} SeriesPoint
 * @property {string} at
 * @property {number} voted
 * @property {number} percent
 */

/** Audit actions after which the figures may have changed. */
export const TURNOUT_ACTIONS = ['turnout.reported', 'turnout.registered_loaded', 'turnout.registered_changed',
  'session.started', 'session.ended', 'session.created'];

const SVG = 'http://www.w3.org/2000/svg';

/** @param {number} n @returns {string} a whole number in the page's language */
export function fmtInt(n) {
  return new Intl.NumberFormat(lang() === 'vi' ? 'vi-VN' : 'en-GB').format(n);
}

/** @param {number} p @returns {string} a percent with two decimals, e.g. "99,95%" */
export function fmtPct(p) {
  return new Intl.NumberFormat(lang() === 'vi' ? 'vi-VN' : 'en-GB', { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(p) + '%';
}

/**
 * Creates an SVG element with attributes.
 * @param {string} tag
 * @param {Record<string, string|number>} [attrs]
 * @param {(Node|string)[]} [children]
 * @returns {SVGElement}
 */
function s(tag, attrs = {}, children = []) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG, tag));
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/**
 * The curve of a unit as an inline SVG: percent (0–100) over time, with the 50% line
 * (an election is valid only above half) and the last figure labelled.
 * @param {SeriesPoint[]} points
 * @param {string} label accessible title
 * @param {number} [width] drawn at this many CSS pixels wide, so its text is readable
 * @returns {SVGElement}
 */
export function curveSVG(points, label, width = 480) {
  const W = Math.round(Math.min(900, Math.max(240, width))), H = Math.round(Math.min(260, Math.max(150, W * 0.45)));
  const L = 40, R = 12, T = 14, B = 24;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'tb-curve', role: 'img', 'aria-label': label, 'data-points': points.length });
  svg.append(s('title', {}, [label]));
  const t0 = points.length ? Date.parse(points[0].at) : Date.now();
  let t1 = points.length ? Date.parse(points[points.length - 1].at) : t0;
  if (t1 - t0 < 600e3) t1 = t0 + 600e3;
  const x = (/** @type {number} */ ms) => L + ((ms - t0) / (t1 - t0)) * (W - L - R);
  const y = (/** @type {number} */ p) => T + (1 - Math.min(100, Math.max(0, p)) / 100) * (H - T - B);
  for (const p of [0, 25, 50, 75, 100]) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(p), y2: y(p), class: p === 50 ? 'half' : 'grid' }));
    svg.append(s('text', { x: L - 6, y: y(p) + 4, 'text-anchor': 'end', class: 'axis' }, [p + '%']));
  }
  const ticks = W < 400 ? 4 : 6;
  for (let i = 0; i <= ticks; i++) {
    const ms = t0 + ((t1 - t0) * i) / ticks;
    svg.append(s('line', { x1: x(ms), x2: x(ms), y1: H - B, y2: H - B + 4, class: 'grid' }));
    const d = new Date(ms);
    const txt = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
    svg.append(s('text', { x: x(ms), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle', class: 'axis' }, [txt]));
  }
  if (points.length) {
    const xy = points.map((p) => `${x(Date.parse(p.at)).toFixed(1)},${y(p.percent).toFixed(1)}`);
    const first = points[0], last = points[points.length - 1];
    svg.append(s('path', { class: 'area', d: `M${x(Date.parse(first.at)).toFixed(1)},${y(0)} L${xy.join(' L')} L${x(Date.parse(last.at)).toFixed(1)},${y(0)} Z` }));
    svg.append(s('polyline', { class: 'line', points: xy.join(' ') }));
    for (const p of points) svg.append(s('circle', { class: 'pt', cx: x(Date.parse(p.at)).toFixed(1), cy: y(p.percent).toFixed(1), r: 2.5 }, [s('title', {}, [`${fmtTime(p.at)} · ${fmtPct(p.percent)} · ${fmtInt(p.voted)}`])]));
    const lx = x(Date.parse(last.at)), ly = y(last.percent);
    const right = lx > L + (W - L - R) / 2;
    svg.append(s('text', { x: right ? lx - 4 : lx + 6, y: Math.max(T + 12, ly - 6), 'text-anchor': right ? 'end' : 'start', class: 'last' }, [fmtPct(last.percent)]));
  }
  return svg;
}

/**
 * One unit as a bar row: name, bar (width = percent), percent, completion.
 * @param {TurnoutUnit} u
 * @param {{selected?: boolean, onPick?: (code: string) => void}} [opts]
 * @returns {HTMLElement}
 */
export function barRow(u, opts = {}) {
  const cls = ['tb-row'];
  if (u.complete) cls.push('complete');
  if (u.below_half) cls.push('below');
  if (u.stale) cls.push('stale');
  if (opts.selected) cls.push('selected');
  const fill = h('div', { class: 'tb-fill' });
  fill.style.width = Math.min(100, Math.max(0, u.percent)) + '%';
  const flags = [];
  if (u.stale) flags.push(h('span', { class: 'tb-flag stale', title: t('turnout.legend.stale'), text: t('turnout.stale') + (u.kind !== 'commune' && u.units_stale ? ` ${u.units_stale}` : '') }));
  if (u.below_half) flags.push(h('span', { class: 'tb-flag below', title: t('turnout.legend.below'), text: t('turnout.belowHalf') }));
  const done = u.kind === 'commune'
    ? (u.complete ? t('turnout.doneAt', { t: fmtTime(u.completed_at) }) : u.last_report_at ? t('turnout.lastReport', { t: fmtTime(u.last_report_at) }) : t('turnout.noreport'))
    : t('turnout.units', { n: u.units_complete, total: u.units_total }) + (u.complete ? ' · ' + t('turnout.doneAt', { t: fmtTime(u.completed_at) }) : '');
  const row = h('div', {
    class: cls.join(' '), 'data-code': u.code, 'data-kind': u.kind, 'data-voted': u.voted, 'data-registered': u.registered,
    'data-percent': u.percent, 'data-complete': String(u.complete), 'data-stale': String(u.stale), 'data-below-half': String(u.below_half),
    'data-units-complete': u.units_complete, 'data-units-total': u.units_total, 'data-completed-at': u.completed_at || '',
    title: `${u.code} ${u.name}: ${fmtInt(u.voted)} / ${fmtInt(u.registered)}`,
  }, [
    h('div', { class: 'tb-name' }, [h('span', { text: u.name }), h('span', { class: 'tb-pct', text: fmtPct(u.percent) })]),
    h('div', { class: 'tb-bar' }, [fill]),
    h('div', { class: 'tb-meta' }, [h('span', { class: 'tb-done' + (u.complete ? ' ok' : ''), text: (u.complete ? '✓ ' : '') + done }), ...flags]),
  ]);
  if (opts.onPick) {
    const pick = opts.onPick;
    row.setAttribute('role', 'button');
    row.setAttribute('tabindex', '0');
    row.setAttribute('aria-pressed', String(!!opts.selected));
    row.addEventListener('click', () => pick(u.code));
    row.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); pick(u.code); } });
  }
  return row;
}

/** @param {TurnoutUnit[]} units sorted by percent, highest first, then by code */
function byPercent(units) {
  return [...units].sort((a, b) => b.percent - a.percent || (a.code < b.code ? -1 : 1));
}

/**
 * Mounts the turnout board into root (the console's and the desk's). Call onEvent
 * with each live audit event; render() after a language switch.
 * @param {HTMLElement} root
 * @returns {{onEvent: (e: {action: string}) => void, refresh: () => Promise<void>, render: () => void}}
 */
export function mountTurnoutBoard(root) {
  const st = {
    /** @type {TurnoutUnit|null} the top unit: the province, or a district-scoped reader's district */
    province: null,
    /** whether the reader sees one district only (district-scoped staff) */
    scoped: false,
    /** @type {TurnoutUnit[]} */
    districts: [],
    /** @type {TurnoutUnit[]} */
    communes: [],
    /** @type {SeriesPoint[]} */
    series: [],
    /** @type {string|null} */
    session: null,
    at: '',
    /** @type {string} the district whose communes are shown */
    chosen: localStorage.getItem('ops.turnout.district') || '',
    error: '',
    refreshes: 0,
  };
  root.classList.add('turnout-board');

  async function refresh() {
    try {
      // The top unit first: the province, or for district-scoped staff their district.
      const top = await api('GET', '/api/v1/turnout');
      st.province = top.units[0] || null;
      st.session = top.session_id;
      st.at = top.at;
      const code = st.province ? st.province.code : '22';
      st.scoped = !!st.province && st.province.kind === 'district';
      const chosen = st.scoped ? '' : st.chosen;
      const [kids, com, ser] = await Promise.all([
        api('GET', '/api/v1/turnout?parent=' + encodeURIComponent(code)),
        chosen ? api('GET', '/api/v1/turnout?parent=' + encodeURIComponent(chosen)).catch(() => ({ units: [] })) : Promise.resolve({ units: [] }),
        st.session ? api('GET', '/api/v1/turnout/series?step=15m&code=' + encodeURIComponent(code)).catch((e) => {
          if (e instanceof ApiError && e.code === 'no_session') return { points: [] };
          throw e;
        }) : Promise.resolve({ points: [] }),
      ]);
      if (st.scoped) {
        st.districts = [];
        st.communes = kids.units || [];
      } else {
        st.districts = kids.units || [];
        if (st.chosen && !st.districts.some((d) => d.code === st.chosen)) st.chosen = '';
        st.communes = st.chosen ? com.units || [] : [];
      }
      st.series = ser.points || [];
      st.error = '';
    } catch (e) {
      st.error = String(/** @type {Error} */ (e).message || e);
    }
    st.refreshes++;
    render();
  }

  // At most one refetch a second, never two at once; a burst of events (the stream's
  // backfill, a roll of reports) becomes one refetch.
  let last = 0;
  let busy = false;
  let again = false;
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let timer;
  function schedule() {
    if (timer !== undefined) return;
    timer = setTimeout(run, Math.max(150, last + 1000 - Date.now()));
  }
  async function run() {
    timer = undefined;
    if (busy) { again = true; return; }
    busy = true;
    last = Date.now();
    try { await refresh(); } finally {
      busy = false;
      if (again) { again = false; schedule(); }
    }
  }

  /** @param {string} code */
  function pick(code) {
    st.chosen = st.chosen === code ? '' : code;
    localStorage.setItem('ops.turnout.district', st.chosen);
    st.communes = [];
    render();
    schedule();
  }

  function render() {
    const p = st.province;
    root.dataset.session = st.session || '';
    root.dataset.refreshes = String(st.refreshes);
    root.dataset.voted = p ? String(p.voted) : '';
    root.dataset.registered = p ? String(p.registered) : '';
    root.dataset.percent = p ? String(p.percent) : '';
    root.dataset.district = st.scoped && p ? p.code : st.chosen;
    root.dataset.code = p ? p.code : '';
    const head = h('div', { class: 'row' }, [h('h2', { text: t('turnout.title') }), h('span', { class: 'spacer' }),
      h('span', { class: 'muted tb-at', text: st.at ? t('turnout.at', { t: fmtTime(st.at) }) : '' })]);
    const figure = p ? h('div', { class: 'tb-figure' + (p.below_half ? ' below' : '') + (p.complete ? ' complete' : ''), id: 'turnout-province', 'data-code': p.code, 'data-voted': p.voted, 'data-registered': p.registered, 'data-percent': p.percent }, [
      h('div', { class: 'tb-unit muted', text: p.name }),
      h('div', { class: 'tb-big', text: fmtPct(p.percent) }),
      h('div', { class: 'tb-sub' }, [h('b', { text: fmtInt(p.voted) }), ' / ', fmtInt(p.registered), ' ', t('turnout.voters')]),
      h('div', { class: 'tb-sub muted' }, [
        t('turnout.communesComplete', { n: p.units_complete, total: p.units_total }),
        p.complete ? ' · ' + t('turnout.doneAt', { t: fmtTime(p.completed_at) }) : '',
        p.units_stale ? ' · ' : '', p.units_stale ? h('span', { class: 'tb-flag stale', text: t('turnout.staleCount', { n: p.units_stale }) }) : null,
      ]),
      st.session ? null : h('div', { class: 'tb-sub muted', text: t('turnout.nosession') }),
    ]) : h('p', { class: 'muted', text: st.error ? '' : t('common.loading') });
    const legend = h('div', { class: 'tb-legend' }, [
      h('span', { class: 'tb-key complete', text: t('turnout.legend.complete') }),
      h('span', { class: 'tb-key below', text: t('turnout.legend.below') }),
      h('span', { class: 'tb-key stale', text: t('turnout.legend.stale') }),
    ]);
    const curveTitle = st.scoped && p ? t('turnout.curveOf', { name: p.name }) : t('turnout.curve');
    const curve = h('div', { class: 'tb-section' }, [h('h3', { text: curveTitle }),
      st.session ? curveSVG(st.series, curveTitle, root.clientWidth - 24) : h('p', { class: 'muted', text: t('turnout.nocurve') })]);
    if (st.scoped && p) {
      // A district's staff: their communes are the list.
      const list = h('div', { class: 'tb-section', id: 'turnout-communes', 'data-district': p.code }, [
        h('h3', { text: t('turnout.communesOf', { name: p.name }) }),
        h('div', { class: 'tb-list' }, byPercent(st.communes).map((c) => barRow(c))),
      ]);
      const e = st.error ? h('p', { class: 'error', text: t('turnout.error', { msg: st.error }) }) : null;
      root.replaceChildren(...[head, e, figure, legend, curve, list].filter((x) => x !== null));
      return;
    }
    const districts = h('div', { class: 'tb-section' }, [
      h('h3', { text: t('turnout.districts') }),
      h('div', { class: 'tb-list', id: 'turnout-districts' }, byPercent(st.districts).map((d) => barRow(d, { selected: d.code === st.chosen, onPick: pick }))),
      st.chosen ? null : h('p', { class: 'muted tb-hint', text: t('turnout.pickDistrict') }),
    ]);
    const chosen = st.districts.find((d) => d.code === st.chosen);
    const communes = chosen ? h('div', { class: 'tb-section', id: 'turnout-communes', 'data-district': chosen.code }, [
      h('div', { class: 'row' }, [h('h3', { text: t('turnout.communesOf', { name: chosen.name }) }), h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'tb-close', text: t('common.close'), 'on:click': () => pick(chosen.code) })]),
      h('div', { class: 'tb-list' }, byPercent(st.communes).map((c) => barRow(c))),
    ]) : null;
    const err = st.error ? h('p', { class: 'error', text: t('turnout.error', { msg: st.error }) }) : null;
    root.replaceChildren(...[head, err, figure, legend, curve, districts, communes].filter((x) => x !== null));
  }

  /** @param {{action: string}} e */
  function onEvent(e) {
    if (e && TURNOUT_ACTIONS.includes(e.action)) schedule();
  }

  render();
  schedule();
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let resized;
  addEventListener('resize', () => { clearTimeout(resized); resized = setTimeout(render, 200); });
  // Staleness moves with the clock, not only with events.
  setInterval(schedule, 60000);
  return { onEvent, refresh: run, render };
}

/**
 * The endpoint's own turnout on the join page: its figure, the form for the next
 * figure (kept in the page's outbox with a client UUID, so a retry never writes
 * twice), a warning in the page before a lower figure is sent, and the time of its
 * last accepted report. The page's controls: #turnout-figure, #turnout-voted,
 * #turnout-complete, #turnout-send, #turnout-last, #turnout-confirm, #turnout-outbox.
 * @param {{code: string, outbox: import('./api.js').Outbox}} opts
 * @returns {{refresh: () => Promise<void>, render: () => void, state: () => any}}
 */
export function mountEndpointTurnout(opts) {
  const { code, outbox } = opts;
  const KEY = 'ops.join.turnout.' + code;
  /** @param {string} id */
  const el = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const input = /** @type {HTMLInputElement} */ (el('turnout-voted'));
  const completeBox = /** @type {HTMLInputElement} */ (el('turnout-complete'));
  const st = {
    /** @type {TurnoutUnit|null} */
    unit: null,
    /** @type {any|null} the last accepted report (by acceptance time) */
    lastReport: null,
    /** @type {{voted: number, complete: boolean}|null} the last figure this page sent */
    remembered: null,
    /** @type {any|null} a lower figure waiting for the user's word */
    confirming: null,
  };
  try { st.remembered = JSON.parse(localStorage.getItem(KEY) || 'null'); } catch { st.remembered = null; }
  if (st.remembered && input.value === '') input.value = String(st.remembered.voted);

  /** @returns {number} the highest figure known: accepted, remembered or waiting */
  function floor() {
    let n = st.unit && st.unit.voted ? st.unit.voted : 0;
    if (st.lastReport) n = Math.max(n, st.lastReport.voted);
    if (st.remembered) n = Math.max(n, st.remembered.voted);
    for (const it of outbox.items) if (it.kind === 'turnout' && it.state === 'pending') n = Math.max(n, it.body.voted);
    return n;
  }

  async function refresh() {
    try {
      const [pic, reps] = await Promise.all([api('GET', '/api/v1/turnout'), api('GET', '/api/v1/turnout/reports')]);
      st.unit = (pic.units || [])[0] || null;
      /** @type {any[]} */
      const list = reps.reports || [];
      st.lastReport = list.reduce((a, r) => (!a || r.created_at > a.created_at ? r : a), null);
    } catch { /* shown again on the next refresh */ }
    render();
  }

  function render() {
    const fig = el('turnout-figure');
    const u = st.unit;
    fig.dataset.voted = u ? String(u.voted) : '';
    fig.dataset.registered = u ? String(u.registered) : '';
    fig.dataset.percent = u ? String(u.percent) : '';
    fig.dataset.complete = u ? String(u.complete) : '';
    fig.replaceChildren(...(u ? [
      h('span', { class: 'tb-big', text: fmtPct(u.percent) }), ' ',
      h('span', { class: 'tb-sub' }, [h('b', { text: fmtInt(u.voted) }), ' / ', fmtInt(u.registered), ' ', t('turnout.voters')]),
      u.complete ? h('span', { class: 'badge ok', text: '✓ ' + t('turnout.doneAt', { t: fmtTime(u.completed_at) }) }) : '',
    ] : [h('span', { class: 'muted', text: t('common.loading') })]));
    const lr = st.lastReport;
    const lastEl = el('turnout-last');
    lastEl.dataset.at = lr ? lr.created_at : '';
    lastEl.dataset.voted = lr ? String(lr.voted) : '';
    lastEl.textContent = lr ? t('turnout.lastAccepted', { t: fmtTime(lr.created_at), voted: fmtInt(lr.voted), asof: fmtTime(lr.as_of) }) : t('turnout.noneAccepted');
    const items = outbox.items.filter((x) => x.kind === 'turnout');
    const oc = el('turnout-outboxcount');
    oc.textContent = items.length ? t('join.outbox', { n: items.length }) : '';
    oc.dataset.pending = String(items.filter((x) => x.state === 'pending').length);
    el('turnout-outbox').replaceChildren(...items.map((it) => h('div', { class: 'outbox-item', 'data-id': it.id, 'data-state': it.state }, [
      h('span', { text: `${fmtTime(it.createdAt)} · ${fmtInt(it.body.voted)}${it.body.complete ? ' ✓' : ''} · ` }),
      it.state === 'failed'
        ? h('span', { class: 'error' }, [t('turnout.refused', { msg: refusal(it.error || '') }), ' ', h('button', { type: 'button', text: t('join.discard'), 'on:click': () => outbox.discard(it.id) })])
        : h('span', { class: 'muted', title: it.error || '', text: it.tries ? t('join.retrying') : '…' }),
    ])));
    const box = el('turnout-confirm');
    box.classList.toggle('hidden', !st.confirming);
    if (st.confirming) el('turnout-confirm-text').textContent = t('turnout.lower', { voted: fmtInt(st.confirming.voted), last: fmtInt(floor()) });
  }

  /** @param {string} msg the server's message; a known refusal in the user's words */
  function refusal(msg) {
    if (/decreas|lower|below/i.test(msg)) return t('turnout.refused.decreasing');
    if (/regist/i.test(msg)) return t('turnout.refused.over');
    return msg;
  }

  /** @param {{voted: number, complete: boolean}} fig */
  function send(fig) {
    /** @type {Record<string, any>} */
    const body = { id: uuid(), as_of: new Date().toISOString(), voted: fig.voted };
    if (fig.complete) body.complete = true;
    st.remembered = { voted: fig.voted, complete: fig.complete };
    localStorage.setItem(KEY, JSON.stringify(st.remembered));
    st.confirming = null;
    completeBox.checked = false;
    outbox.add('turnout', 'POST', '/api/v1/turnout/reports', body);
    render();
  }

  function submit() {
    const err = el('turnout-error');
    err.textContent = '';
    const raw = input.value.trim();
    const voted = Number(raw);
    if (raw === '' || !Number.isInteger(voted) || voted < 0) { err.textContent = t('turnout.invalid'); return; }
    const fig = { voted, complete: completeBox.checked };
    if (voted < floor()) { st.confirming = fig; render(); el('turnout-confirm-cancel').focus(); return; }
    send(fig);
  }

  el('turnout-form').addEventListener('submit', (ev) => { ev.preventDefault(); submit(); });
  el('turnout-confirm-send').addEventListener('click', () => { if (st.confirming) send(st.confirming); });
  el('turnout-confirm-cancel').addEventListener('click', () => { st.confirming = null; render(); });
  outbox.addEventListener('change', render);
  outbox.addEventListener('sent', (ev) => {
    const d = /** @type {CustomEvent} */ (ev).detail;
    if (d.item.kind !== 'turnout') return;
    if (d.result && d.result.id) st.lastReport = d.result;
    toast(t('turnout.sent'));
    refresh();
  });
  render();
  refresh();
  setInterval(refresh, 60000);
  return {
    refresh, render,
    state: () => ({ voted: st.unit ? st.unit.voted : null, registered: st.unit ? st.unit.registered : null, confirming: !!st.confirming,
      last: st.lastReport ? { voted: st.lastReport.voted, at: st.lastReport.created_at } : null,
      pending: outbox.items.filter((x) => x.kind === 'turnout' && x.state === 'pending').length }),
  };
}
