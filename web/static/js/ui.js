// @ts-check
// Small DOM helpers shared by the apps. No protocol or API knowledge here.

/**
 * Creates an element. attrs: "class", "text", "data-*", "on:event" handlers, others
 * as attributes (false/null/undefined are skipped).
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {(Node|string|null|undefined|false)[]} [children]
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'text') el.textContent = String(v);
    else if (k === 'class') el.className = v;
    else if (k.startsWith('on:')) el.addEventListener(k.slice(3), v);
    else if (k === 'value' && 'value' in el) /** @type {any} */ (el).value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error('missing #' + id);
  return el;
}

/**
 * Shows a short message at the bottom of the page.
 * @param {string} msg
 * @param {'info'|'error'} [kind]
 */
export function toast(msg, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const el = h('div', { class: 'toast ' + kind, text: msg });
  box.append(el);
  setTimeout(() => el.remove(), 6000);
}

/** A short beep through WebAudio (a new directive). */
export function beep() {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.6);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.6);
    osc.onended = () => ctx.close();
  } catch {
    // no audio device: the inbox still shows the directive
  }
}

/**
 * Publishes read-only state for tests and diagnostics as window.__ops: getters only,
 * nothing that changes the app.
 * @param {Record<string, () => any>} getters
 */
export function exposeState(getters) {
  const o = {};
  for (const [k, fn] of Object.entries(getters)) Object.defineProperty(o, k, { get: fn, enumerable: true });
  Object.defineProperty(window, '__ops', { value: Object.freeze(o), configurable: false, writable: false });
}

/**
 * Parses a roster into districts with their communes, the command room first.
 * @param {{code: string, name: string, kind: string, parent_code?: string}[]} eps
 * @returns {{district: any, members: any[]}[]}
 */
export function groupByDistrict(eps) {
  // The national node: one group, the nation and its provinces.
  const nation = eps.find((e) => e.kind === 'nation');
  if (nation) return [{ district: nation, members: [nation, ...eps.filter((e) => e.kind === 'province')] }];
  /** @type {Map<string, {district: any, members: any[]}>} */
  const groups = new Map();
  const province = eps.filter((e) => e.kind === 'province');
  if (province.length) groups.set(province[0].code, { district: province[0], members: [province[0]] });
  for (const e of eps) if (e.kind === 'district') groups.set(e.code, { district: e, members: [e] });
  for (const e of eps) {
    if (e.kind !== 'commune') continue;
    const g = groups.get(e.parent_code || '');
    if (g) g.members.push(e);
  }
  return [...groups.values()];
}
