// @ts-check
// The press wall: the press room's screens. The program and the floor (WHEP,
// receive only), the turnout board and the clock; no controls, nothing internal.
// It opens from a wall link (/wall#t=TOKEN), keeps the wall's cookie, and runs
// unattended: the feed and the video each reconnect by themselves, with back-off,
// after a network drop, a server restart or a revoked-then-reissued link.
import { addStrings, apply, fmtTime, lang, t } from './i18n.js';
import { barRow, curveSVG, fmtInt, fmtPct } from './turnout.js';
import { exposeState, h } from './ui.js';

addStrings({
  'wall.title': 'Màn hình báo chí',
  'wall.program': 'Chương trình (Ban chỉ đạo tỉnh)',
  'wall.floor': 'Đang phát biểu',
  'wall.nosignal': 'Chưa có tín hiệu',
  'wall.novideo': 'Đang kết nối hình…',
  'wall.linking': 'Đang xác thực đường dẫn…',
  'wall.badlink': 'Đường dẫn màn hình không hợp lệ hoặc đã bị thu hồi. Hãy xin đường dẫn mới.',
  'wall.nolink': 'Hãy mở trang này bằng đường dẫn của màn hình báo chí.',
  'wall.revoked': 'Màn hình này đã bị thu hồi quyền xem.',
  'wall.reconnecting': 'Mất kết nối, đang kết nối lại…',
  'wall.session.none': 'Chưa có phiên',
  'wall.session.planned': 'Dự kiến {from}–{to}',
  'wall.session.in_progress': 'Đang diễn ra từ {t}',
  'wall.session.ended': 'Đã kết thúc lúc {t}',
  'wall.sound': 'Chạm vào màn hình để bật tiếng',
}, {
  'wall.title': 'Press wall',
  'wall.program': 'Program (provincial command room)',
  'wall.floor': 'Speaking',
  'wall.nosignal': 'No signal yet',
  'wall.novideo': 'Connecting video…',
  'wall.linking': 'Checking the link…',
  'wall.badlink': 'This wall link is not valid or has been revoked. Ask for a new link.',
  'wall.nolink': 'Open this page with the press wall\'s link.',
  'wall.revoked': 'This screen\'s access has been revoked.',
  'wall.reconnecting': 'Connection lost, reconnecting…',
  'wall.session.none': 'No session',
  'wall.session.planned': 'Planned {from}–{to}',
  'wall.session.in_progress': 'In progress since {t}',
  'wall.session.ended': 'Ended at {t}',
  'wall.sound': 'Touch the screen to turn the sound on',
});

// A wall may be shown in English from its URL (/wall?lang=en), since it has no button.
const urlLang = new URLSearchParams(location.search).get('lang');
if (urlLang === 'en' || urlLang === 'vi') localStorage.setItem('ops.lang', urlLang);

/**
 * @typedef {import('./turnout.js').TurnoutUnit} TurnoutUnit
 * @typedef {{title: string, state: 'planned'|'in_progress'|'ended', planned_start: string, planned_end: string,
 *   actual_start: string|null, actual_end: string|null, floor: {code: string, name: string}|null}} WallSession
 * @typedef {{at: string, session: WallSession|null, turnout: {at: string, province: TurnoutUnit|null,
 *   districts: TurnoutUnit[], series: import('./turnout.js').SeriesPoint[]}}} WallState
 */

const st = {
  /** @type {'link'|'live'|'badlink'|'nolink'} */
  phase: 'link',
  /** @type {'connecting'|'open'|'retrying'|'revoked'} */
  feed: 'connecting',
  /** @type {string} the WHEP connection's state */
  video: 'idle',
  /** @type {WallState|null} */
  state: null,
  /** server clock minus ours, in ms, from each state */
  offset: 0,
  states: 0,
  feedConnects: 0,
  videoConnects: 0,
  /** whether the page plays sound (a kiosk without autoplay starts muted) */
  sound: true,
};

/** Back-off: 1 s, 2 s, 4 s … 30 s, with jitter so that many walls do not beat together. */
/** @param {number} n failures in a row */
function backoff(n) {
  const base = Math.min(30000, 1000 * 2 ** Math.min(n, 5));
  return base / 2 + Math.random() * base / 2;
}

/** @param {string} path */
const asWall = (path) => path + (path.includes('?') ? '&' : '?') + 'as=wall';

/**
 * The feed's status for this page's cookie, read from its headers (then dropped).
 * @returns {Promise<number>} the HTTP status, 0 when the server cannot be reached
 */
async function probe() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 10000);
  try {
    const r = await fetch(asWall('/api/v1/wall/feed'), { credentials: 'same-origin', signal: ctl.signal });
    return r.status;
  } catch {
    return 0;
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
}

// ---- layout -------------------------------------------------------------------

const root = h('div', { class: 'pw', id: 'pw' });
const clockTime = h('div', { class: 'pw-time', id: 'pw-clock' });
const clockDate = h('div', { class: 'pw-date' });
const sessTitle = h('div', { class: 'pw-title', id: 'pw-session-title' });
const sessState = h('div', { class: 'pw-state', id: 'pw-session' });
const status = h('div', { class: 'pw-status hidden', id: 'pw-status', role: 'status', 'aria-live': 'polite' });
const program = /** @type {HTMLVideoElement} */ (h('video', { id: 'program', autoplay: true, playsinline: true }));
const floor = /** @type {HTMLVideoElement} */ (h('video', { id: 'floor', autoplay: true, playsinline: true }));
const programBox = h('div', { class: 'pw-video pw-program', 'data-live': 'false' }, [program,
  h('div', { class: 'pw-label', 'data-i18n': 'wall.program' }), h('div', { class: 'pw-nosignal', 'data-i18n': 'wall.nosignal' })]);
// The floor's label names who speaks (from the feed), after "Đang phát biểu".
const floorWho = h('span', { class: 'pw-who', id: 'pw-floor-who' });
const floorBox = h('div', { class: 'pw-video pw-floor', 'data-live': 'false' }, [floor,
  h('div', { class: 'pw-label' }, [h('span', { 'data-i18n': 'wall.floor' }), floorWho]),
  h('div', { class: 'pw-nosignal', 'data-i18n': 'wall.nosignal' })]);
const board = h('section', { class: 'pw-board turnout-board', id: 'turnout' });
const soundHint = h('div', { class: 'pw-sound hidden', 'data-i18n': 'wall.sound' });
const message = h('div', { class: 'pw-message hidden', id: 'pw-message' });

root.append(
  h('header', { class: 'pw-head' }, [h('div', { class: 'pw-sess' }, [sessTitle, sessState]), status, h('div', { class: 'pw-clock' }, [clockTime, clockDate])]),
  h('main', { class: 'pw-main' }, [h('div', { class: 'pw-videos' }, [programBox, floorBox]), board]),
  soundHint, message);
document.body.replaceChildren(root);
apply(root);

// ---- the clock ----------------------------------------------------------------

function tick() {
  const now = new Date(Date.now() + st.offset);
  const loc = lang() === 'vi' ? 'vi-VN' : 'en-GB';
  clockTime.textContent = now.toLocaleTimeString(loc, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  clockDate.textContent = now.toLocaleDateString(loc, { weekday: 'long', day: 'numeric', month: 'numeric', year: 'numeric' });
}
tick();
setInterval(tick, 1000);

// ---- the board and the session --------------------------------------------------

function render() {
  const s = st.state;
  const sess = s ? s.session : null;
  sessTitle.textContent = sess ? sess.title : t('wall.title');
  sessState.dataset.state = sess ? sess.state : 'none';
  sessState.textContent = !sess ? t('wall.session.none')
    : sess.state === 'in_progress' ? t('wall.session.in_progress', { t: fmtTime(sess.actual_start).slice(0, 5) })
      : sess.state === 'ended' ? t('wall.session.ended', { t: fmtTime(sess.actual_end).slice(0, 5) })
        : t('wall.session.planned', { from: fmtTime(sess.planned_start).slice(0, 5), to: fmtTime(sess.planned_end).slice(0, 5) });
  root.dataset.session = sess ? sess.state : 'none';
  floorWho.textContent = sess && sess.floor ? `: ${sess.floor.name}` : '';
  const tu = s ? s.turnout : null;
  const p = tu ? tu.province : null;
  board.dataset.voted = p ? String(p.voted) : '';
  board.dataset.registered = p ? String(p.registered) : '';
  board.dataset.percent = p ? String(p.percent) : '';
  board.dataset.states = String(st.states);
  if (!tu || !p) {
    board.replaceChildren(h('p', { class: 'muted', text: t('common.loading') }));
    return;
  }
  const figure = h('div', { class: 'tb-figure' + (p.below_half ? ' below' : '') + (p.complete ? ' complete' : ''), id: 'turnout-province',
    'data-code': p.code, 'data-voted': p.voted, 'data-registered': p.registered, 'data-percent': p.percent }, [
    h('div', { class: 'row' }, [h('h2', { text: t('turnout.title') }), h('span', { class: 'spacer' }),
      h('span', { class: 'muted tb-at', text: t('turnout.at', { t: fmtTime(tu.at) }) })]),
    h('div', { class: 'tb-big', text: fmtPct(p.percent) }),
    h('div', { class: 'tb-sub' }, [h('b', { text: fmtInt(p.voted) }), ' / ', fmtInt(p.registered), ' ', t('turnout.voters')]),
    h('div', { class: 'tb-sub muted' }, [t('turnout.communesComplete', { n: p.units_complete, total: p.units_total }),
      p.complete ? ' · ' + t('turnout.doneAt', { t: fmtTime(p.completed_at) }) : '']),
  ]);
  const districts = [...tu.districts].sort((a, b) => b.percent - a.percent || (a.code < b.code ? -1 : 1));
  const list = h('div', { class: 'tb-section' }, [h('h3', { text: t('turnout.districts') }),
    h('div', { class: 'tb-list', id: 'turnout-districts' }, districts.map((d) => barRow(d)))]);
  const curve = sess && sess.state !== 'planned'
    ? h('div', { class: 'tb-section pw-curve' }, [h('h3', { text: t('turnout.curve') }), curveSVG(tu.series, t('turnout.curve'), board.clientWidth - 24)])
    : null;
  board.replaceChildren(...[figure, list, curve].filter((x) => x !== null));
}
addEventListener('resize', () => render());

/** @param {string} key @param {boolean} show */
function setStatus(key, show) {
  status.classList.toggle('hidden', !show);
  status.textContent = show ? t(key) : '';
}

/** @param {string} key */
function fatal(key) {
  message.textContent = t(key);
  message.classList.remove('hidden');
}

// ---- the feed -----------------------------------------------------------------

/** @type {EventSource|null} */
let es = null;
let feedFails = 0;
/** @type {ReturnType<typeof setTimeout>|undefined} */
let feedTimer;
/** @type {ReturnType<typeof setTimeout>|undefined} */
let feedWatch;

// The server sends a state at least every 30 s: silence for longer is a dead link
// (a half-open TCP connection after a network change), so start again.
function watchFeed() {
  clearTimeout(feedWatch);
  feedWatch = setTimeout(() => { st.feed = 'retrying'; restartFeed(); }, 75000);
}

function openFeed() {
  clearTimeout(feedTimer);
  st.feed = 'connecting';
  st.feedConnects++;
  const src = new EventSource(asWall('/api/v1/wall/feed'));
  es = src;
  watchFeed();
  src.addEventListener('state', (ev) => {
    /** @type {WallState} */
    const s = JSON.parse(/** @type {MessageEvent} */ (ev).data);
    st.state = s;
    st.offset = Date.parse(s.at) - Date.now();
    st.states++;
    st.feed = 'open';
    feedFails = 0;
    setStatus('', false);
    message.classList.add('hidden');
    watchFeed();
    render();
  });
  src.addEventListener('error', () => {
    if (src.readyState !== EventSource.CLOSED) { // the browser retries by itself
      st.feed = 'retrying';
      setStatus('wall.reconnecting', true);
      return;
    }
    restartFeed();
  });
}

// restartFeed closes the feed and opens it again after a back-off. A refusal (the
// wall revoked) keeps being retried, slowly: a reissued link comes with a new page.
async function restartFeed() {
  if (es) es.close();
  es = null;
  clearTimeout(feedWatch);
  feedFails++;
  let wait = backoff(feedFails);
  try {
    const code = await probe();
    if (code === 401 || code === 403) {
      st.feed = 'revoked';
      fatal('wall.revoked');
      clearTimeout(videoTimer);
      stopVideo();
      st.video = 'stopped';
      wait = 60000;
    } else {
      st.feed = 'retrying';
      setStatus('wall.reconnecting', true);
    }
  } finally {
    clearTimeout(feedTimer);
    feedTimer = setTimeout(() => { openFeed(); if (st.feed !== 'revoked' && !pc) startVideo(); }, wait);
  }
}

// ---- the video (WHEP) -------------------------------------------------------------

/** @type {RTCPeerConnection|null} */
let pc = null;
/** @type {string} the WHEP resource of the current connection */
let resource = '';
let videoFails = 0;
/** @type {ReturnType<typeof setTimeout>|undefined} */
let videoTimer;
/** @type {ReturnType<typeof setTimeout>|undefined} */
let downTimer;

/** @param {RTCPeerConnection} c */
function gathered(c) {
  return new Promise((resolve) => {
    if (c.iceGatheringState === 'complete') { resolve(undefined); return; }
    const done = () => { if (c.iceGatheringState === 'complete') resolve(undefined); };
    c.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 2000); // the server's candidates suffice; ours are a bonus
  });
}

/** @param {HTMLVideoElement} v */
function play(v) {
  v.muted = !st.sound;
  v.play().catch(() => {
    // No sound without a gesture (a kiosk without --autoplay-policy): play muted.
    st.sound = false;
    soundHint.classList.remove('hidden');
    v.muted = true;
    v.play().catch(() => {});
  });
}

async function startVideo() {
  clearTimeout(videoTimer);
  stopVideo();
  st.video = 'connecting';
  st.videoConnects++;
  const c = new RTCPeerConnection();
  pc = c;
  // In this order the server maps them: program video, floor video, program audio, floor audio.
  const [pv, fv, pa, fa] = ['video', 'video', 'audio', 'audio'].map((k) => c.addTransceiver(k, { direction: 'recvonly' }));
  program.srcObject = new MediaStream([pv.receiver.track, pa.receiver.track]);
  floor.srcObject = new MediaStream([fv.receiver.track, fa.receiver.track]);
  c.addEventListener('connectionstatechange', () => {
    if (pc !== c) return;
    st.video = c.connectionState;
    clearTimeout(downTimer);
    if (c.connectionState === 'connected') {
      videoFails = 0;
      play(program);
      play(floor);
    } else if (c.connectionState === 'failed' || c.connectionState === 'closed') {
      retryVideo();
    } else if (c.connectionState === 'disconnected') {
      downTimer = setTimeout(() => { if (pc === c && c.connectionState !== 'connected') retryVideo(); }, 8000);
    }
  });
  try {
    await c.setLocalDescription(await c.createOffer());
    await gathered(c);
    if (pc !== c) return;
    const r = await fetch(asWall('/whep/program?floor=1'), {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/sdp' },
      body: /** @type {RTCSessionDescription} */ (c.localDescription).sdp,
    });
    if (r.status !== 201) throw new Error('WHEP ' + r.status);
    resource = r.headers.get('Location') || '';
    const answer = await r.text();
    if (pc !== c) return;
    await c.setRemoteDescription({ type: 'answer', sdp: answer });
    // The server closing its side (the wall revoked, the resource deleted) closes
    // DTLS at once; ICE alone would notice only after its consent checks fail.
    const dtls = pv.receiver.transport;
    if (dtls) {
      dtls.addEventListener('statechange', () => {
        if (pc === c && (dtls.state === 'closed' || dtls.state === 'failed')) retryVideo();
      });
    }
  } catch (e) {
    console.warn('wall: video', e);
    if (pc === c) retryVideo();
  }
}

function stopVideo() {
  clearTimeout(downTimer);
  if (pc) pc.close();
  pc = null;
  if (resource) {
    // Free the server's side now rather than at its ICE timeout.
    fetch(asWall(resource), { method: 'DELETE', credentials: 'same-origin', keepalive: true }).catch(() => {});
    resource = '';
  }
}

function retryVideo() {
  stopVideo();
  st.video = 'retrying';
  videoFails++;
  if (st.feed === 'revoked') return; // the feed's retry starts the video again
  clearTimeout(videoTimer);
  videoTimer = setTimeout(startVideo, backoff(videoFails));
}

// A video is live while frames arrive; otherwise its box says there is no signal
// (no session, the program not published, nobody on the floor).
/** @type {Map<HTMLVideoElement, {frames: number, at: number}>} */
const seen = new Map();
setInterval(() => {
  for (const [v, box] of [[program, programBox], [floor, floorBox]]) {
    const q = /** @type {HTMLVideoElement} */ (v).getVideoPlaybackQuality();
    const frames = q ? q.totalVideoFrames : 0;
    const prev = seen.get(/** @type {HTMLVideoElement} */ (v)) || { frames: 0, at: 0 };
    const now = Date.now();
    if (frames !== prev.frames) seen.set(/** @type {HTMLVideoElement} */ (v), { frames, at: now });
    const live = frames > 0 && now - (seen.get(/** @type {HTMLVideoElement} */ (v)) || prev).at < 3000;
    /** @type {HTMLElement} */ (box).dataset.live = String(live);
  }
}, 1000);

document.addEventListener('click', () => {
  st.sound = true;
  soundHint.classList.add('hidden');
  play(program);
  play(floor);
});

// ---- the link ---------------------------------------------------------------------

// exchange turns the link's secret into the wall's cookie, retrying while the
// server cannot be reached (a wall switched on before the server).
/** @param {string} token */
async function exchange(token) {
  for (let n = 0; ; n++) {
    try {
      const r = await fetch('/api/v1/auth/wall', {
        method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token }),
      });
      if (r.ok) return true;
      if (r.status === 401 || r.status === 400) return false;
    } catch { /* the server is away: try again */ }
    await new Promise((res) => setTimeout(res, backoff(n)));
  }
}

async function boot() {
  const m = /(?:^#|&)t=([^&]+)/.exec(location.hash);
  if (m) {
    // Out of the address bar and the history at once.
    history.replaceState(null, '', location.pathname + location.search);
    message.textContent = t('wall.linking');
    message.classList.remove('hidden');
    if (!(await exchange(decodeURIComponent(m[1])))) {
      st.phase = 'badlink';
      fatal('wall.badlink');
      return;
    }
    message.classList.add('hidden');
  } else {
    if ((await probe()) === 401) { // no cookie: never opened from a link here
      st.phase = 'nolink';
      fatal('wall.nolink');
      return;
    }
  }
  st.phase = 'live';
  openFeed();
  startVideo();
}

exposeState({
  app: () => 'wall',
  phase: () => st.phase,
  feed: () => st.feed,
  video: () => st.video,
  states: () => st.states,
  feedConnects: () => st.feedConnects,
  videoConnects: () => st.videoConnects,
  voted: () => (st.state && st.state.turnout.province ? st.state.turnout.province.voted : null),
  session: () => (st.state && st.state.session ? st.state.session.state : null),
  floorName: () => floorWho.textContent,
  resource: () => resource,
  /** @returns {() => Promise<Record<string, number>>} frames decoded per slot */
  framesDecoded: () => async () => {
    /** @type {Record<string, number>} */
    const out = {};
    for (const [slot, v] of /** @type {[string, HTMLVideoElement][]} */ ([['program_video', program], ['floor_video', floor]])) {
      const q = v.getVideoPlaybackQuality();
      out[slot] = q ? q.totalVideoFrames : 0;
    }
    return out;
  },
});

render();
boot();
