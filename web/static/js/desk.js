// @ts-check
// The duty desk: the live incident log (SSE), editing with version conflicts shown
// to the user, directives and their acknowledgement matrix, the session report, and
// the player of the record (player.js) for staff who may see every district.
import { api, ApiError, Outbox, uuid } from './api.js';
import { followEvents } from './events.js';
import { addStrings, apply, fmtTime, t, wireSwitch } from './i18n.js';
import { currentSession, logout, requireStaff, roster } from './session.js';
import { byId, exposeState, h, toast } from './ui.js';
import { CATEGORIES, SEVERITIES, STATUSES } from './constants.js';
import { mountTurnoutBoard } from './turnout.js';
import { mountPlayer } from './player.js';


/**
 * @typedef {Object} Incident
 * @property {string} id
 * @property {string} session_id
 * @property {string} endpoint_code
 * @property {string} endpoint_name
 * @property {string} category
 * @property {string} severity
 * @property {string} title
 * @property {string} body
 * @property {string} status
 * @property {string} assignee
 * @property {string} occurred_at
 * @property {string} created_at
 * @property {number} version
 * @property {{author: string, kind: string, body: string, created_at: string}[]} [timeline]
 */

const S = {
  /** @type {Map<string, Incident>} */
  incidents: new Map(),
  /** @type {any[]} */
  directives: [],
  /** @type {Map<string, any>} directive id → with receipts */
  details: new Map(),
  /** @type {import('./session.js').Endpoint[]} */
  endpoints: [],
  session: /** @type {any} */ (null),
  live: 'idle',
  canWrite: false,
  /** whether the record may be watched: staff not limited to a district */
  canWatch: false,
  /** @type {Incident|null} the incident open in the dialog */
  editing: null,
  conflict: false,
  lastEvent: 0,
  /** @type {string|null} the parent's directive the form passes on (relayed_from) */
  relayFrom: null,
};

// A node with a parent: directives from the parent, and passing one on to this
// node's own units, linked to the original (docs/tree.md).
addStrings({
  'desk.fromparent': 'Chỉ đạo của cấp trên',
  'desk.passon': 'Chuyển tiếp xuống',
  'desk.relayed': 'Chuyển tiếp chỉ đạo của cấp trên',
}, {
  'desk.fromparent': 'From the parent',
  'desk.passon': 'Pass on',
  'desk.relayed': "Passes on the parent's directive",
});

const outbox = new Outbox('ops.desk.outbox');
/** @type {ReturnType<typeof mountTurnoutBoard>|null} */
let board = null;
/** @type {ReturnType<typeof mountPlayer>|null} */
let player = null;

/** @param {string} sel */
function val(sel) {
  return /** @type {HTMLInputElement} */ (byId(sel)).value;
}

/**
 * @param {HTMLSelectElement} sel
 * @param {string[]} values
 * @param {string} prefix i18n key prefix
 * @param {boolean} [withAll]
 */
function fillSelect(sel, values, prefix, withAll = false) {
  const cur = sel.value;
  sel.replaceChildren(...(withAll ? [h('option', { value: '', text: t('common.all') + ' · ' + t(prefix === 'cat.' ? 'join.category' : prefix === 'sev.' ? 'join.severity' : 'desk.status') })] : []),
    ...values.map((v) => h('option', { value: v, text: t(prefix + v) })));
  sel.value = cur;
}

function filters() {
  return { q: val('q').trim(), status: val('fstatus'), category: val('fcategory'), severity: val('fseverity') };
}

/** @param {Incident} inc */
function matches(inc) {
  const f = filters();
  return (!f.status || inc.status === f.status) && (!f.category || inc.category === f.category) &&
    (!f.severity || inc.severity === f.severity);
}

async function loadIncidents() {
  const f = filters();
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) qs.set(k, v);
  qs.set('limit', '200');
  const page = await api('GET', '/api/v1/incidents?' + qs);
  S.incidents = new Map((page.incidents || []).map((/** @type {Incident} */ i) => [i.id, i]));
  renderIncidents();
}

/** @param {Set<string>} [fresh] ids to highlight */
function renderIncidents(fresh = new Set()) {
  const rows = [...S.incidents.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  byId('incidents').replaceChildren(...rows.map((i) => h('tr', {
    class: 'inc' + (fresh.has(i.id) ? ' fresh' : ''), 'data-id': i.id, 'data-endpoint': i.endpoint_code,
    'data-status': i.status, 'data-version': i.version, 'on:click': () => openIncident(i.id),
  }, [
    h('td', { text: fmtTime(i.occurred_at) }),
    h('td', { text: `${i.endpoint_code} ${i.endpoint_name || ''}` }),
    h('td', { class: 'opt', text: t('cat.' + i.category) }),
    h('td', { class: 'sev-' + i.severity, text: t('sev.' + i.severity) }),
    h('td', { class: 'title', text: i.title }),
    h('td', { text: t('status.' + i.status) }),
    S.canWatch && i.session_id ? h('td', { class: 'pl-col' }, [h('button', {
      type: 'button', class: 'pl-watch', 'data-id': i.id, text: t('player.watch'),
      'on:click': (/** @type {Event} */ ev) => { ev.stopPropagation(); watch(i.session_id, i.created_at); },
    })]) : null,
  ])));
  byId('count').textContent = t('desk.count', { n: rows.length });
  byId('count').dataset.count = String(rows.length);
}

/** @param {import('./events.js').OpsEvent} e */
function onEvent(e) {
  S.lastEvent = e.id;
  if (e.entity === 'incident') {
    if (e.action === 'incident.commented') {
      if (S.editing && S.editing.id === e.entity_id) refreshTimeline(e.entity_id);
      return;
    }
    const inc = /** @type {Incident} */ (e.after);
    if (!inc || !inc.id) return;
    if (S.session && inc.session_id !== S.session.id) return;
    const cur = S.incidents.get(inc.id);
    if (cur && cur.version >= inc.version) return;
    if (filters().q) { scheduleReload(); return; } // the server decides what matches the words
    if (!matches(inc)) { if (cur) { S.incidents.delete(inc.id); renderIncidents(); } return; }
    S.incidents.set(inc.id, { ...cur, ...inc });
    renderIncidents(new Set([inc.id]));
  } else if (e.entity === 'directive') {
    scheduleDirectives();
  } else if (e.entity === 'session') {
    loadSession();
  }
}

/** @type {ReturnType<typeof setTimeout>|undefined} */
let reloadTimer;
function scheduleReload() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => loadIncidents().catch(showErr), 300);
}
/** @type {ReturnType<typeof setTimeout>|undefined} */
let dirTimer;
function scheduleDirectives() {
  clearTimeout(dirTimer);
  dirTimer = setTimeout(() => loadDirectives().catch(showErr), 300);
}

/** @param {any} e */
function showErr(e) {
  toast(t('common.error', { msg: e.message || String(e) }), 'error');
}

// ---- incident dialog ----

const dlg = () => /** @type {HTMLDialogElement} */ (byId('incdlg'));

/** @param {string} id @param {any} v */
function setVal(id, v) {
  /** @type {HTMLInputElement} */ (byId(id)).value = v ?? '';
}

/** @param {string|number|null|undefined} v */
function toLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** @param {Incident|null} inc */
function fillForm(inc) {
  setVal('iendpoint', inc ? inc.endpoint_code : '');
  setVal('icategory', inc ? inc.category : 'other');
  setVal('iseverity', inc ? inc.severity : 'low');
  setVal('istatus', inc ? inc.status : 'open');
  setVal('ititle', inc ? inc.title : '');
  setVal('ibody', inc ? inc.body : '');
  setVal('iassignee', inc ? inc.assignee : '');
  setVal('ioccurred', toLocalInput(inc ? inc.occurred_at : Date.now()));
}

function formValues() {
  const occ = val('ioccurred');
  return {
    endpoint_code: val('iendpoint').trim().split(/\s/)[0], category: val('icategory'), severity: val('iseverity'),
    status: val('istatus'), title: val('ititle').trim(), body: val('ibody'), assignee: val('iassignee').trim(),
    occurred_at: occ ? new Date(occ).toISOString() : undefined,
  };
}

function newIncident() {
  S.editing = null;
  S.conflict = false;
  byId('inctitle').textContent = t('desk.new');
  byId('conflict').classList.add('hidden');
  byId('timelinebox').classList.add('hidden');
  byId('istatus').setAttribute('disabled', '');
  byId('iendpoint').removeAttribute('disabled');
  byId('incerr').textContent = '';
  fillForm(null);
  dlg().showModal();
}

/** @param {string} id */
async function openIncident(id) {
  try {
    const inc = await api('GET', '/api/v1/incidents/' + id);
    S.editing = inc;
    S.conflict = false;
    byId('inctitle').textContent = t('desk.edit');
    byId('conflict').classList.add('hidden');
    byId('timelinebox').classList.remove('hidden');
    byId('istatus').removeAttribute('disabled');
    byId('iendpoint').setAttribute('disabled', '');
    byId('incerr').textContent = '';
    fillForm(inc);
    renderTimeline(inc);
    if (!dlg().open) dlg().showModal();
  } catch (e) { showErr(e); }
}

/** @param {Incident} inc */
function renderTimeline(inc) {
  byId('timeline').replaceChildren(...(inc.timeline || []).map((u) =>
    h('li', { 'data-kind': u.kind }, [h('span', { class: 'muted', text: `${fmtTime(u.created_at)} ${u.author}: ` }), u.body])));
}

/** @param {string} id */
async function refreshTimeline(id) {
  const inc = await api('GET', '/api/v1/incidents/' + id);
  if (S.editing && S.editing.id === id) {
    S.editing.timeline = inc.timeline;
    renderTimeline(inc);
  }
}

/** The changed fields of the form against base, as a PATCH body. */
function patchFrom(/** @type {Incident} */ base) {
  const v = formValues();
  /** @type {Record<string, any>} */
  const p = {};
  for (const k of /** @type {const} */ (['category', 'severity', 'status', 'title', 'body', 'assignee'])) {
    if (v[k] !== base[k]) p[k] = v[k];
  }
  if (v.occurred_at && toLocalInput(v.occurred_at) !== toLocalInput(base.occurred_at)) p.occurred_at = v.occurred_at;
  return p;
}

/** @param {number} [version] */
async function saveIncident(version) {
  byId('incerr').textContent = '';
  if (!S.editing) {
    const v = formValues();
    const body = { id: uuid(), endpoint_code: v.endpoint_code, category: v.category, severity: v.severity,
      title: v.title, body: v.body, occurred_at: v.occurred_at };
    if (!body.endpoint_code || !body.title) { byId('incerr').textContent = t('common.error', { msg: 'endpoint, title' }); return; }
    outbox.add('incident', 'POST', '/api/v1/incidents', body);
    dlg().close();
    return;
  }
  const base = S.editing;
  const patch = patchFrom(base);
  if (Object.keys(patch).length === 0) { dlg().close(); return; }
  patch.version = version ?? base.version;
  try {
    const out = await api('PATCH', '/api/v1/incidents/' + base.id, patch);
    S.incidents.set(out.id, out);
    renderIncidents();
    dlg().close();
  } catch (e) {
    const ae = /** @type {ApiError} */ (e);
    if (ae.status === 409 && ae.code === 'stale_version') {
      await showConflict(base, patch);
      return;
    }
    byId('incerr').textContent = t('common.error', { msg: ae.message });
  }
}

/**
 * Shows the server's current version beside the user's edit; the user chooses.
 * @param {Incident} base @param {Record<string, any>} mine
 */
async function showConflict(base, mine) {
  const theirs = await api('GET', '/api/v1/incidents/' + base.id);
  S.conflict = true;
  const show = (/** @type {any} */ o) => ['status', 'severity', 'category', 'assignee', 'title', 'body']
    .filter((k) => k in o).map((k) => `${k}: ${o[k]}`).join('\n');
  byId('theirs').textContent = show(theirs) + `\nversion: ${theirs.version}`;
  byId('mine').textContent = show({ ...mine, version: undefined }).trim();
  byId('conflict').classList.remove('hidden');
  byId('conflict').dataset.theirsVersion = String(theirs.version);
  byId('incdlg').dataset.conflict = 'true';
  byId('taketheirs').onclick = () => {
    S.editing = theirs;
    S.conflict = false;
    byId('incdlg').dataset.conflict = 'false';
    byId('conflict').classList.add('hidden');
    fillForm(theirs);
    renderTimeline(theirs);
  };
  byId('keepmine').onclick = () => {
    S.conflict = false;
    byId('incdlg').dataset.conflict = 'false';
    byId('conflict').classList.add('hidden');
    // The user chose: apply my changes on top of the server's version, knowingly.
    saveIncidentWith(theirs, mine);
  };
}

/** @param {Incident} theirs @param {Record<string, any>} mine */
async function saveIncidentWith(theirs, mine) {
  const patch = { ...mine, version: theirs.version };
  try {
    const out = await api('PATCH', '/api/v1/incidents/' + theirs.id, patch);
    S.incidents.set(out.id, out);
    S.editing = out;
    renderIncidents();
    dlg().close();
  } catch (e) {
    const ae = /** @type {ApiError} */ (e);
    if (ae.status === 409 && ae.code === 'stale_version') { await showConflict(theirs, mine); return; }
    byId('incerr').textContent = t('common.error', { msg: ae.message });
  }
}

async function addComment() {
  if (!S.editing) return;
  const body = val('comment').trim();
  if (!body) return;
  try {
    await api('POST', `/api/v1/incidents/${S.editing.id}/updates`, { id: uuid(), body });
    setVal('comment', '');
    await refreshTimeline(S.editing.id);
  } catch (e) { showErr(e); }
}

// ---- directives ----

async function loadDirectives() {
  const qs = S.session ? '?session=' + S.session.id : '';
  const r = await api('GET', '/api/v1/directives' + qs);
  S.directives = Array.isArray(r) ? r : r.directives || [];
  const recent = S.directives.slice(0, 10);
  const details = await Promise.all(recent.map((d) => api('GET', '/api/v1/directives/' + d.id).catch(() => d)));
  S.details = new Map(details.map((d) => [d.id, d]));
  renderMatrix();
}

function renderMatrix() {
  const now = Date.now();
  const blocks = S.directives.slice(0, 10).map((d0) => {
    const d = S.details.get(d0.id) || d0;
    const rs = /** @type {any[]} */ (d.receipts || []);
    const sum = d.summary || { total: rs.length, acked: rs.filter((r) => r.acked_at).length };
    const mins = Math.floor((now - new Date(d.created_at).getTime()) / 60000);
    const pending = rs.filter((r) => !r.acked_at);
    const acked = rs.filter((r) => r.acked_at);
    return h('div', { class: 'directive' + (sum.acked === sum.total ? ' acked' : ''), 'data-directive-id': d.id,
      'data-acked': sum.acked, 'data-total': sum.total }, [
      String(d.issued_by || '').startsWith('parent:') ? h('div', { class: 'row' }, [
        h('span', { class: 'badge warn', text: t('desk.fromparent') }),
        S.canWrite ? h('button', { type: 'button', 'data-pass-on': d.id, text: t('desk.passon'), 'on:click': () => passOn(d) }) : null,
      ]) : null,
      d.relayed_from ? h('div', { class: 'muted', 'data-relayed-from': d.relayed_from, text: '↳ ' + t('desk.relayed') }) : null,
      h('div', { text: d.text }),
      h('div', { class: 'muted', text: `${fmtTime(d.created_at)} · ${t('desk.since', { m: mins })} · ${t('desk.notacked', { n: sum.total - sum.acked, total: sum.total })}` }),
      h('table', { class: 'matrix' }, [h('tbody', {}, [
        ...pending.slice(0, 50).map((r) => h('tr', {}, [
          h('td', { class: 'pending', 'data-code': r.endpoint_code, 'data-acked': 'false', text: `${r.endpoint_code} ${r.endpoint_name || ''}` }),
          h('td', { class: 'pending', text: r.delivered_at ? '✓' : '…' }),
          h('td', { class: 'pending', text: t('desk.since', { m: mins }) }),
        ])),
        ...acked.slice(0, 50).map((r) => h('tr', {}, [
          h('td', { class: 'acked', 'data-code': r.endpoint_code, 'data-acked': 'true', text: `${r.endpoint_code} ${r.endpoint_name || ''}` }),
          h('td', { class: 'acked', text: fmtTime(r.acked_at) }),
          h('td', { class: 'acked', text: t('desk.ackedby', { by: r.acked_by || '' }) }),
        ])),
      ])]),
    ]);
  });
  byId('matrix').replaceChildren(...blocks);
}

function issueDirective() {
  const text = val('dtext').trim();
  if (!text) return;
  const kind = val('dkind');
  /** @type {any} */
  let targets = { all: true };
  if (kind === 'district') targets = { district: val('ddistrict') };
  if (kind === 'list') targets = { endpoints: val('dlist').split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean) };
  const due = val('ddue');
  /** @type {any} */
  const body = { id: uuid(), text, targets };
  if (due) body.due_at = new Date(due).toISOString();
  if (S.relayFrom) body.relayed_from = S.relayFrom;
  S.relayFrom = null;
  outbox.add('directive', 'POST', '/api/v1/directives', body);
  setVal('dtext', '');
}

/** Fills the directive form with a parent's directive, to pass it on linked to it. @param {any} d */
function passOn(d) {
  S.relayFrom = d.id;
  setVal('dtext', d.text);
  byId('dtext').focus();
}

function renderOutbox() {
  const failed = outbox.items.filter((x) => x.state === 'failed');
  byId('doutbox').textContent = outbox.pending ? t('join.outbox', { n: outbox.pending }) : '';
  for (const f of failed) {
    toast(t('join.failed', { msg: f.error || '' }), 'error');
    outbox.discard(f.id);
  }
}

// ---- the player ----

/**
 * Opens the player at a moment (an incident's system time: its marker), and puts
 * it in the address so the view can be linked, as the printable report does.
 * @param {string} session @param {string} [at] RFC 3339
 */
function watch(session, at) {
  if (!player) return;
  const qs = new URLSearchParams({ session });
  if (at) qs.set('at', at);
  history.replaceState(null, '', '#player?' + qs);
  player.open(session, at).catch(showErr);
  byId('player').scrollIntoView({ block: 'start' });
}

/** Opens what the address asks for: #player?session=ID&at=RFC3339. */
function fromHash() {
  if (!location.hash.startsWith('#player')) return;
  const qs = new URLSearchParams(location.hash.slice('#player'.length).replace(/^\?/, ''));
  const session = qs.get('session') || (S.session && S.session.id);
  if (session) watch(session, qs.get('at') || undefined);
}

/** The player without a moment: the session in progress, else the latest one. */
async function openPlayer() {
  let id = S.session && S.session.id;
  if (!id) {
    const r = await api('GET', '/api/v1/sessions');
    const started = (r.sessions || []).filter((/** @type {any} */ x) => x.actual_start)
      .sort((/** @type {any} */ a, /** @type {any} */ b) => (a.actual_start < b.actual_start ? 1 : -1));
    id = started.length ? started[0].id : '';
  }
  if (id) watch(id);
  else toast(t('player.nosession'));
}

// ---- session and page ----

async function loadSession() {
  S.session = await currentSession();
  const badge = byId('session');
  badge.textContent = S.session ? t('console.session', { title: S.session.title }) : t('console.nosession');
  badge.dataset.session = S.session ? S.session.id : '';
  for (const [id, ext] of [['reportcsv', 'csv'], ['reporthtml', 'html']]) {
    const a = /** @type {HTMLAnchorElement} */ (byId(id));
    a.classList.toggle('hidden', !S.session);
    if (S.session) a.href = `/api/v1/sessions/${S.session.id}/report.${ext}`;
  }
}

function renderStatic() {
  apply();
  fillSelect(/** @type {HTMLSelectElement} */ (byId('fstatus')), STATUSES, 'status.', true);
  fillSelect(/** @type {HTMLSelectElement} */ (byId('fcategory')), CATEGORIES, 'cat.', true);
  fillSelect(/** @type {HTMLSelectElement} */ (byId('fseverity')), SEVERITIES, 'sev.', true);
  fillSelect(/** @type {HTMLSelectElement} */ (byId('icategory')), CATEGORIES, 'cat.');
  fillSelect(/** @type {HTMLSelectElement} */ (byId('iseverity')), SEVERITIES, 'sev.');
  fillSelect(/** @type {HTMLSelectElement} */ (byId('istatus')), STATUSES, 'status.');
  renderIncidents();
  renderMatrix();
  setLive(S.live);
  if (board) board.render();
  if (player) player.render();
}

/** @param {string} s */
function setLive(s) {
  S.live = s;
  const el = byId('live');
  el.dataset.state = s;
  el.textContent = s === 'live' ? t('desk.live') : s === 'lost' ? t('desk.stale') : t('common.loading');
  el.className = 'badge ' + (s === 'live' ? 'ok' : 'warn');
}

async function init() {
  apply();
  exposeState({
    app: () => 'desk', live: () => S.live, session: () => S.session && S.session.id,
    incidents: () => [...S.incidents.values()].map((i) => ({ id: i.id, endpoint_code: i.endpoint_code, title: i.title, status: i.status, version: i.version })),
    directives: () => S.directives.map((d) => ({ id: d.id, summary: (S.details.get(d.id) || d).summary })),
    conflict: () => S.conflict, outbox: () => outbox.pending, lastEvent: () => S.lastEvent,
    canWatch: () => S.canWatch, player: () => (player ? player.state() : null),
  });
  const me = await requireStaff();
  S.canWrite = me.principal.role !== 'observer';
  byId('who').textContent = `${me.principal.username} (${me.principal.role})`;
  byId('toconsole').classList.toggle('hidden', !['leader', 'admin'].includes(me.principal.role));
  if (!S.canWrite) {
    for (const id of ['newinc', 'dform']) byId(id).classList.add('hidden');
  }
  // The program and the floor show every district: district staff do not see them.
  S.canWatch = !(/** @type {any} */ (me).district);
  if (S.canWatch) {
    player = mountPlayer({ onClose: () => history.replaceState(null, '', location.pathname + location.search) });
    for (const el of [byId('playerbtn'), ...document.querySelectorAll('th.pl-col')]) el.classList.remove('hidden');
  }
  wireSwitch(byId('lang'), renderStatic);
  byId('logout').addEventListener('click', logout);
  renderStatic();

  S.endpoints = await roster();
  byId('eplist').replaceChildren(...S.endpoints.map((e) => h('option', { value: `${e.code} ${e.name}` })));
  byId('ddistrict').replaceChildren(...S.endpoints.filter((e) => e.kind === 'district').map((e) => h('option', { value: e.code, text: `${e.code} ${e.name}` })));
  if (me.principal.district) {
    // Directives to all are the province's (the server answers 400): a district's
    // staff direct their district or a list of its communes.
    const all = /** @type {HTMLOptionElement|null} */ (byId('dkind').querySelector('option[value="all"]'));
    if (all) all.remove();
    /** @type {HTMLSelectElement} */ (byId('dkind')).value = 'district';
    byId('ddistrict').classList.remove('hidden');
  }
  await loadSession();
  await Promise.all([loadIncidents().catch(showErr), loadDirectives().catch(showErr)]);
  board = mountTurnoutBoard(byId('turnout'));
  followEvents((e) => { if (board) board.onEvent(e); onEvent(e); }, setLive);
  setInterval(renderMatrix, 30000);

  let qTimer = 0;
  byId('q').addEventListener('input', () => { clearTimeout(qTimer); qTimer = setTimeout(() => loadIncidents().catch(showErr), 250); });
  for (const id of ['fstatus', 'fcategory', 'fseverity']) byId(id).addEventListener('change', () => loadIncidents().catch(showErr));
  byId('newinc').addEventListener('click', newIncident);
  byId('incsave').addEventListener('click', () => saveIncident());
  byId('inccancel').addEventListener('click', () => dlg().close());
  byId('addcomment').addEventListener('click', addComment);
  byId('dkind').addEventListener('change', () => {
    byId('ddistrict').classList.toggle('hidden', val('dkind') !== 'district');
    byId('dlist').classList.toggle('hidden', val('dkind') !== 'list');
  });
  byId('dform').addEventListener('submit', (ev) => { ev.preventDefault(); issueDirective(); });
  outbox.addEventListener('change', renderOutbox);
  outbox.addEventListener('sent', (ev) => {
    const d = /** @type {CustomEvent} */ (ev).detail;
    if (d.item.kind === 'directive') scheduleDirectives();
    if (d.item.kind === 'incident' && d.result && d.result.id && matches(d.result) && !filters().q) {
      S.incidents.set(d.result.id, d.result);
      renderIncidents(new Set([d.result.id]));
    }
  });
  outbox.flush();
  renderOutbox();
  if (location.hash === '#directive') byId('dtext').focus();
  if (player) {
    byId('playerbtn').addEventListener('click', () => openPlayer().catch(showErr));
    window.addEventListener('hashchange', fromHash);
    fromHash();
  }
}

init().catch((e) => { if (!(e instanceof ApiError && e.status === 401)) showErr(e); });
