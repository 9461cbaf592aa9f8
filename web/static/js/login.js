// @ts-check
// Staff login: POST /api/v1/auth/login, then the console (leader, admin) or the desk.
import { api, ApiError } from './api.js';
import { apply, t, wireSwitch } from './i18n.js';
import { byId, exposeState } from './ui.js';

/** @param {string} role */
export function homeFor(role) {
  return role === 'leader' || role === 'admin' ? '/console' : '/desk';
}

const state = { status: 'idle', error: '' };

function init() {
  apply();
  wireSwitch(byId('lang'));
  exposeState({ app: () => 'login', status: () => state.status, error: () => state.error });
  const form = /** @type {HTMLFormElement} */ (byId('login'));
  const err = byId('error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = /** @type {HTMLInputElement} */ (byId('username')).value.trim();
    const password = /** @type {HTMLInputElement} */ (byId('password')).value;
    const btn = /** @type {HTMLButtonElement} */ (byId('submit'));
    btn.disabled = true;
    err.textContent = '';
    state.status = 'sending';
    try {
      const res = await api('POST', '/api/v1/auth/login', { username, password });
      state.status = 'ok';
      const next = new URLSearchParams(location.search).get('next');
      // Only our own pages, with an optional fragment (#player?…): never another origin.
      location.assign(next && /^\/(console|desk)(#[\w?=&:.%+-]*)?$/.test(next) ? next : homeFor(res.principal.role));
    } catch (e) {
      const ae = /** @type {ApiError} */ (e);
      state.status = 'error';
      state.error = ae.code;
      err.textContent = ae.status === 401 ? t('login.bad') : ae.status === 429 ? t('login.limited') : t('common.error', { msg: ae.message });
      btn.disabled = false;
    }
  });
}

init();
