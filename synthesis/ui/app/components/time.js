// The page's clock, relative times that stay current ("3 minutes ago", exact time on
// hover) and durations that grow while something runs.
import { html, useEffect, useState } from '../../vendor/preact-htm.js';
import { absoluteTime, duration, elapsedMs, relativeTime } from '../logic/format.js';

const RELATIVE_MS = 15000; // "3 minutes ago" needs no finer clock
const RUNNING_MS = 1000; // a duration that grows, by the second

/** One timer per interval for the whole page: what ticks together shows the same time. */
const clocks = new Map(); // interval -> {timer, listeners: Set}

function subscribe(intervalMs, listener) {
  let clock = clocks.get(intervalMs);
  if (!clock) {
    const listeners = new Set();
    const timer = setInterval(() => {
      const now = Date.now();
      for (const tick of listeners) tick(now);
    }, intervalMs);
    clock = { timer, listeners };
    clocks.set(intervalMs, clock);
  }
  clock.listeners.add(listener);
  return () => {
    clock.listeners.delete(listener);
    if (!clock.listeners.size) {
      clearInterval(clock.timer);
      clocks.delete(intervalMs);
    }
  };
}

/**
 * The current time, re-rendered every `intervalMs` while `active` (not at all otherwise:
 * a finished execution's page holds still, on the time it last ticked).
 * @param {number} [intervalMs]
 * @param {boolean} [active]
 * @returns {number} milliseconds since the epoch
 */
export function useNow(intervalMs = RELATIVE_MS, active = true) {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (!active) return undefined;
    setNow((old) => (Date.now() - old >= intervalMs ? Date.now() : old)); // stale after a pause
    return subscribe(intervalMs, setNow);
  }, [intervalMs, active]);
  return now; // stable while inactive, so memoised parts are not redrawn for nothing
}

/** <time> saying how long ago `at` was. */
export function RelativeTime({ at }) {
  const now = useNow(RELATIVE_MS);
  if (!at) return html`<span class="muted">—</span>`;
  return html`<time datetime=${at} title=${absoluteTime(at)}>${relativeTime(at, now)}</time>`;
}

/**
 * A readable duration: `ms` when known, else from `started` to `completed`, else (still
 * running) how long since `started`, by the second.
 */
export function Duration({ ms, started, completed }) {
  const known = ms ?? elapsedMs(started, completed);
  const running = (known === null || known === undefined) && Boolean(started);
  const now = useNow(RUNNING_MS, running);
  if (known !== null && known !== undefined) return html`<span class="duration">${duration(known)}</span>`;
  if (running) return html`<span class="duration running">${duration(elapsedMs(started, null, now))}</span>`;
  return html`<span class="muted">—</span>`;
}
