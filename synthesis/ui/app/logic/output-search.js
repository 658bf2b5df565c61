// Search across every step's output, live: a matcher from what the reader typed, and a
// per-step search that only looks at the lines that arrived (or changed) since last time.
// Pure: no browser globals.
import { displayText } from './output-lines.js';

/** Matching lines kept per step (the count covers them all). */
export const FIRST_MATCHES = 5;

/**
 * @typedef {{
 *   query: string, regex: boolean, error: string|null, empty: boolean,
 *   test: (line: string) => boolean,
 *   ranges: (line: string) => Array<[number, number]>,
 * }} Matcher
 */

/**
 * A matcher: plain text, case-insensitive; or a regular expression (case-insensitive too).
 * A bad expression gives a matcher that matches nothing, with `error` saying why.
 * @param {string} query
 * @param {{regex?: boolean}} [options]
 * @returns {Matcher}
 */
export function makeMatcher(query, { regex = false } = {}) {
  const q = String(query ?? '');
  const none = { query: q, regex, error: null, empty: true, test: () => false, ranges: () => [] };
  if (!q) return none;
  if (regex) {
    let re;
    try {
      re = new RegExp(q, 'gi');
    } catch (error) {
      return { ...none, empty: false, error: `Not a valid regular expression: ${error.message}` };
    }
    const probe = new RegExp(q, 'i');
    return {
      query: q,
      regex,
      error: null,
      empty: false,
      test: (line) => probe.test(line),
      ranges: (line) => {
        const out = [];
        re.lastIndex = 0;
        for (let m = re.exec(line); m; m = re.exec(line)) {
          if (m[0] === '') {
            re.lastIndex += 1; // an empty match (`a*`): step on, mark nothing
            continue;
          }
          out.push([m.index, m.index + m[0].length]);
          if (out.length > 200) break;
        }
        return out;
      },
    };
  }
  const lower = q.toLowerCase();
  return {
    query: q,
    regex,
    error: null,
    empty: false,
    test: (line) => line.toLowerCase().includes(lower),
    ranges: (line) => {
      const out = [];
      const hay = line.toLowerCase();
      for (let at = hay.indexOf(lower); at >= 0 && out.length <= 200; at = hay.indexOf(lower, at + lower.length)) {
        out.push([at, at + lower.length]);
      }
      return out;
    },
  };
}

/**
 * A line cut into plain and matching parts, for <mark>: [{text, match}].
 * @param {string} line
 * @param {Matcher|null} matcher
 */
export function splitMatches(line, matcher) {
  if (!matcher || matcher.empty || matcher.error) return [{ text: line, match: false }];
  const parts = [];
  let at = 0;
  for (const [start, end] of matcher.ranges(line)) {
    if (start < at) continue;
    if (start > at) parts.push({ text: line.slice(at, start), match: false });
    parts.push({ text: line.slice(start, end), match: true });
    at = end;
  }
  if (at < line.length || !parts.length) parts.push({ text: line.slice(at), match: false });
  return parts;
}

/**
 * @typedef {{
 *   matcher: Matcher, lines: object, scanned: number, pending: number[],
 *   count: number, first: number[],
 * }} StepSearch
 *   `scanned`: lines looked at; `pending`: those among them still open (they may grow, so
 *   they are looked at again); `count`/`first`: matches among the ended lines.
 */

/**
 * Matches of one step's lines, continuing `previous` when it searched the same lines with
 * the same matcher: only new lines and lines still open are looked at.
 * @param {import('./output-lines.js').LineIndex} lines
 * @param {Matcher} matcher
 * @param {StepSearch|null} previous
 * @returns {{state: StepSearch, count: number, first: number[]}} 0-based line numbers
 */
export function searchLines(lines, matcher, previous = null) {
  let state = previous;
  if (!state || state.matcher !== matcher || state.lines !== lines) {
    state = { matcher, lines, scanned: 0, pending: [], count: 0, first: [] };
  } else {
    state = { ...state, first: state.first.slice() };
  }
  if (matcher.empty || matcher.error) return { state, count: 0, first: [] };

  const stillOpen = [];
  const settle = (i) => {
    if (lines.isOpen(i)) {
      stillOpen.push(i);
      return;
    }
    if (matcher.test(displayText(lines.texts[i]))) {
      state.count += 1;
      insertSorted(state.first, i);
    }
  };
  for (const i of state.pending) settle(i);
  for (let i = state.scanned; i < lines.length; i += 1) settle(i);
  state.scanned = lines.length;
  state.pending = stillOpen;

  // Open lines count as they are now, without being remembered.
  let count = state.count;
  let first = state.first;
  const provisional = stillOpen.filter((i) => matcher.test(displayText(lines.texts[i])));
  if (provisional.length) {
    count += provisional.length;
    first = first.slice();
    for (const i of provisional) insertSorted(first, i);
  }
  return { state, count, first };
}

/** Keeps the FIRST_MATCHES smallest line numbers, sorted. */
function insertSorted(list, value) {
  if (list.length >= FIRST_MATCHES && value > list[list.length - 1]) return;
  let at = list.length;
  while (at > 0 && list[at - 1] > value) at -= 1;
  list.splice(at, 0, value);
  if (list.length > FIRST_MATCHES) list.length = FIRST_MATCHES;
}
