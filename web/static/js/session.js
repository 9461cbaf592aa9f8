// @ts-check
// Staff page bootstrap shared by the console and the desk: who is logged in, the
// current session, the roster, logout. Redirects to /login when not logged in.
import { api, ApiError } from './api.js';

/**
 * @typedef {Object} Endpoint
 * @property {string} code
 * @property {string} name
 * @property {string} kind province | district | commune
 * @property {string} [parent_code]
 * @property {string} [presence]
 */

/**
 * @returns {Promise<{principal: {username: string, role: string, district?: string}, district?: {code: string, name: string}}>}
 */
export async function requireStaff() {
  try {
    const me = await api('GET', '/api/v1/auth/me');
    if (!me.principal || !me.principal.role) throw new ApiError(403, 'forbidden', 'not staff');
    return me;
  } catch (e) {
    const ae = /** @type {ApiError} */ (e);
    if (ae.status === 401 || ae.status === 403) {
      // The hash too: a report's link opens the desk's player at a moment.
      location.assign('/login?next=' + encodeURIComponent(location.pathname + location.hash));
    }
    throw e;
  }
}

/** @returns {Promise<any|null>} the session in progress, or null */
export async function currentSession() {
  try {
    return await api('GET', '/api/v1/sessions/current');
  } catch (e) {
    if (/** @type {ApiError} */ (e).status === 404) return null;
    throw e;
  }
}

/** @returns {Promise<Endpoint[]>} the roster with presence */
export async function roster() {
  const r = await api('GET', '/api/v1/endpoints');
  return r.endpoints;
}

/** Logs out and returns to the login page. */
export async function logout() {
  try { await api('POST', '/api/v1/auth/logout'); } finally { location.assign('/login'); }
}
