// @ts-check
// The REST client: a fetch wrapper with typed errors, and a retrying outbox that keeps
// writes in localStorage until the server confirms them (nothing typed is lost when
// the network drops). No UI here.

/** An error answered by the API ({error, message, field}) or a network failure. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 for a network failure
   * @param {string} code stable error code, e.g. "stale_version"
   * @param {string} message
   * @param {any} [body] the decoded error body
   */
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
  /** Whether retrying the same request later may succeed. */
  get retryable() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500 ||
      (this.status === 409 && this.code === 'no_session');
  }
}

/** @type {''|'endpoint'|'staff'} who this page acts as; see setActor */
let actor = '';

/**
 * Says who this page acts as: every request then carries ?as=endpoint (the join
 * page) or ?as=staff, and the server takes the matching cookie when the browser holds
 * both a staff login and an endpoint's join cookie.
 * @param {''|'endpoint'|'staff'} as
 */
export function setActor(as) {
  actor = as;
}

/**
 * @param {string} path
 * @returns {string} path with the page's actor
 */
function withActor(path) {
  if (!actor) return path;
  return path + (path.includes('?') ? '&' : '?') + 'as=' + actor;
}

/**
 * Calls the API with the page's cookies. fetch() sends the same-origin Origin header
 * that the server requires on state-changing requests.
 * @param {string} method
 * @param {string} path e.g. "/api/v1/incidents"
 * @param {any} [body] sent as JSON
 * @param {{signal?: AbortSignal, timeoutMs?: number}} [opts]
 * @returns {Promise<any>} the decoded JSON body (null for 204)
 */
export async function api(method, path, body, opts = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), opts.timeoutMs ?? 15000);
  if (opts.signal) opts.signal.addEventListener('abort', () => ctl.abort());
  /** @type {Response} */
  let resp;
  try {
    resp = await fetch(withActor(path), {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal,
    });
  } catch (e) {
    throw new ApiError(0, 'network', String(e));
  } finally {
    clearTimeout(timer);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    const code = (data && data.error) || 'http_' + resp.status;
    throw new ApiError(resp.status, code, (data && data.message) || resp.statusText, data);
  }
  return data;
}

/** @returns {string} a random RFC 4122 v4 UUID */
export function uuid() {
  if (globalThis.crypto && 'randomUUID' in crypto) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * @typedef {Object} OutboxItem
 * @property {string} id client-generated UUID, also the body's id (idempotent retry)
 * @property {string} method
 * @property {string} path
 * @property {any} body
 * @property {string} kind what it is, for the UI (e.g. "incident")
 * @property {number} createdAt ms since epoch
 * @property {number} tries
 * @property {'pending'|'failed'} state failed = the server refused it for good
 * @property {string} [error] last error message
 */

/**
 * Outbox keeps writes in localStorage and sends them until the server answers 2xx.
 * A create carries its client UUID, so a retry after a lost response is answered 200
 * and creates nothing twice. Refused items (4xx) stay, marked failed, for the user.
 */
export class Outbox extends EventTarget {
  /** @param {string} key localStorage key */
  constructor(key) {
    super();
    this.key = key;
    /** @type {OutboxItem[]} */
    this.items = this.#load();
    this.busy = false;
    this.delay = 1000;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.timer = undefined;
    addEventListener('online', () => this.flush());
  }

  /** @returns {OutboxItem[]} */
  #load() {
    try {
      const v = JSON.parse(localStorage.getItem(this.key) || '[]');
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  }

  #save() {
    localStorage.setItem(this.key, JSON.stringify(this.items));
    this.dispatchEvent(new Event('change'));
  }

  /**
   * Queues a write and starts sending it.
   * @param {string} kind
   * @param {string} method
   * @param {string} path
   * @param {any} body a create carries body.id, the client UUID
   * @param {string} [key] the item's key when body has no id
   */
  add(kind, method, path, body, key = body.id) {
    if (this.items.some((x) => x.id === key)) return;
    this.items.push({ id: key, kind, method, path, body, createdAt: Date.now(), tries: 0, state: 'pending' });
    this.#save();
    this.delay = 1000;
    this.flush();
  }

  /** @param {string} id */
  discard(id) {
    this.items = this.items.filter((x) => x.id !== id);
    this.#save();
  }

  /** Sends every pending item in order; reschedules itself with back-off on failure. */
  async flush() {
    if (this.busy) return;
    this.busy = true;
    clearTimeout(this.timer);
    let retry = false;
    try {
      for (const it of [...this.items]) {
        if (it.state !== 'pending') continue;
        it.tries++;
        try {
          const res = await api(it.method, it.path, it.body);
          this.items = this.items.filter((x) => x.id !== it.id);
          this.#save();
          this.dispatchEvent(new CustomEvent('sent', { detail: { item: it, result: res } }));
        } catch (e) {
          const err = /** @type {ApiError} */ (e);
          it.error = err.message;
          if (err instanceof ApiError && !err.retryable) it.state = 'failed';
          else retry = true;
          this.#save();
          if (retry) break; // keep order: later items wait for this one
        }
      }
    } finally {
      this.busy = false;
    }
    if (retry) {
      this.timer = setTimeout(() => this.flush(), this.delay);
      this.delay = Math.min(this.delay * 2, 30000);
    } else {
      this.delay = 1000;
    }
  }

  /** @returns {number} items not yet confirmed */
  get pending() {
    return this.items.filter((x) => x.state === 'pending').length;
  }
}
