// @ts-check
// The live audit-event stream (Server-Sent Events). EventSource resumes with
// Last-Event-ID by itself after a drop, so no event is missed. No UI here.

/**
 * @typedef {Object} OpsEvent
 * @property {number} id
 * @property {string} at
 * @property {string} actor
 * @property {string} action e.g. "incident.create"
 * @property {string} entity e.g. "incident"
 * @property {string} entity_id
 * @property {string} [session_id]
 * @property {any} [before]
 * @property {any} [after]
 */

/**
 * Follows /api/v1/events. onEvent gets each event; onState gets 'live' or 'lost'.
 * @param {(e: OpsEvent) => void} onEvent
 * @param {(s: 'live'|'lost') => void} onState
 * @param {number} [after] start after this event id (0: the whole log)
 * @returns {{close: () => void, lastId: () => number}}
 */
export function followEvents(onEvent, onState, after = 0) {
  let last = after;
  const src = new EventSource('/api/v1/events' + (after ? '?after=' + after : ''));
  src.onopen = () => onState('live');
  src.onerror = () => onState('lost');
  src.onmessage = handle;
  // Events are sent with "event: <action>"; listen to every name we care about
  // through a generic hook: EventSource only calls onmessage for unnamed events.
  const seen = new Set();
  const orig = src.addEventListener.bind(src);
  /** @param {MessageEvent} m */
  function handle(m) {
    let e;
    try { e = JSON.parse(m.data); } catch { return; }
    if (typeof e.id === 'number') {
      if (e.id <= last) return;
      last = e.id;
    }
    onEvent(e);
  }
  /** @param {string} name */
  function listen(name) {
    if (seen.has(name)) return;
    seen.add(name);
    orig(name, /** @type {any} */ (handle));
  }
  for (const n of KNOWN_ACTIONS) listen(n);
  return { close: () => src.close(), lastId: () => last };
}

/** Actions the apps react to (named SSE events must be listened for by name). */
export const KNOWN_ACTIONS = [
  'incident.created', 'incident.updated', 'incident.commented',
  'directive.issued', 'directive.delivered', 'directive.acknowledged', 'directive.replied', 'directive.done',
  'session.created', 'session.started', 'session.ended',
  'turnout.reported', 'turnout.registered_loaded', 'turnout.registered_changed',
];
