// The events page's tail: newest first, capped, with a pause that holds new events back
// (and counts them) until resume. A reducer, so the page stays a thin view. Pure: no
// browser globals.

/** Rows kept in memory and in the page at most. */
export const TAIL_LIMIT = 1000;

/**
 * @typedef {{event_id: string, type: string, timestamp: string, execution_id: string|null, payload: object}} EventRecord
 * @typedef {{events: EventRecord[], held: EventRecord[], heldCount: number, paused: boolean, ids: Set<string>}} Tail
 *   `ids`: the ids of `events` and `held`, so an arriving event is checked at once, not
 *   against every row.
 */

/** @returns {Tail} */
export function emptyTail() {
  return { events: [], held: [], heldCount: 0, paused: false, ids: new Set() };
}

/** The tail with `events` and `held`, and their ids (built once per change, not per event). */
function withRows(state, events, held) {
  const ids = new Set();
  for (const e of events) ids.add(e.event_id);
  for (const e of held) ids.add(e.event_id);
  return { ...state, events, held, ids };
}

/**
 * Actions: {type: 'load', events} (a page, newest first: replaces what is shown);
 * {type: 'arrived', events} (live, oldest first); {type: 'pause'}; {type: 'resume'}.
 * @param {Tail} state
 * @returns {Tail}
 */
export function tailReducer(state, action, limit = TAIL_LIMIT) {
  switch (action.type) {
    case 'load':
      return { ...withRows(state, action.events.slice(0, limit), []), heldCount: 0 };
    case 'arrived': {
      const fresh = [];
      const taken = new Set();
      for (const event of action.events) {
        const id = event?.event_id;
        if (!id || state.ids.has(id) || taken.has(id)) continue;
        taken.add(id);
        fresh.unshift(event); // newest first
      }
      if (!fresh.length) return state;
      if (state.paused) {
        return {
          ...withRows(state, state.events, [...fresh, ...state.held].slice(0, limit)),
          heldCount: state.heldCount + fresh.length,
        };
      }
      return withRows(state, [...fresh, ...state.events].slice(0, limit), state.held);
    }
    case 'pause':
      return state.paused ? state : { ...state, paused: true };
    case 'resume':
      return { ...withRows(state, [...state.held, ...state.events].slice(0, limit), []), paused: false, heldCount: 0 };
    default:
      return state;
  }
}

/**
 * A payload on one line, cut at `max` characters ("…" then), without the keys in `omit`
 * (what the row shows already): for a row's summary.
 * @param {unknown} payload
 * @param {{max?: number, omit?: string[]}} [options]
 */
export function payloadPreview(payload, { max = 160, omit = [] } = {}) {
  let shown = payload ?? {};
  if (omit.length && typeof shown === 'object' && !Array.isArray(shown)) {
    shown = Object.fromEntries(Object.entries(shown).filter(([key]) => !omit.includes(key)));
  }
  let text;
  try {
    text = JSON.stringify(shown);
  } catch {
    text = String(payload);
  }
  text = text.replace(/\s+/g, ' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
