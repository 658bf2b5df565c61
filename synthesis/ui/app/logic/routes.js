// The UI's pages by URL path (relative to /ui/, no leading slash). Pure: no browser globals.

/** @typedef {{name: string, params: Record<string, string>}} Route */

const PATTERNS = [
  ['', 'executions'],
  ['executions', 'executions'],
  ['executions/:id', 'execution'],
  ['executions/:id/steps/:step', 'execution'],
  ['compare', 'compare'],
  ['plans', 'plans'],
  ['plans/:id', 'plan'],
  ['events', 'events'],
  ['system', 'system'],
  ['sign-in', 'sign-in'],
];

/**
 * The route a path names; `not-found` when none does.
 * @param {string} path e.g. "executions/abc/steps/each%5B2%5D.build"
 * @returns {Route}
 */
export function matchRoute(path) {
  const parts = path.replace(/^\/+|\/+$/g, '').split('/');
  for (const [pattern, name] of PATTERNS) {
    const want = pattern === '' ? [''] : pattern.split('/');
    if (want.length !== parts.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < want.length; i += 1) {
      if (want[i].startsWith(':')) {
        if (!parts[i]) {
          ok = false;
          break;
        }
        try {
          params[want[i].slice(1)] = decodeURIComponent(parts[i]);
        } catch {
          ok = false;
          break;
        }
      } else if (want[i] !== parts[i]) {
        ok = false;
        break;
      }
    }
    if (ok) return { name, params };
  }
  return { name: 'not-found', params: {} };
}

/**
 * A path (relative to /ui/) from pieces, each piece URL-encoded.
 * @param {...string} pieces
 */
export function pathOf(...pieces) {
  return pieces.map((p) => encodeURIComponent(p)).join('/');
}

/**
 * Where to go back to after signing in: only a path of this UI (never another origin).
 * @param {string|null} next the `next` query value
 * @returns {string} a path relative to /ui/ (with its query and hash), '' for the start page
 */
export function safeNext(next) {
  if (!next || typeof next !== 'string') return '';
  if (/^[a-z][a-z0-9+.-]*:/i.test(next) || next.startsWith('//') || next.startsWith('\\')) return '';
  const relative = next.replace(/^\/+/, '');
  return relative.startsWith('sign-in') ? '' : relative;
}
