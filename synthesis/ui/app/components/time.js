// Relative times that stay current ("3 minutes ago"), with the exact time on hover.
import { html, useEffect, useState } from '../../vendor/preact-htm.js';
import { absoluteTime, duration, relativeTime } from '../logic/format.js';

const TICK_MS = 15000;
const tickers = new Set();
setInterval(() => {
  for (const tick of tickers) tick(Date.now());
}, TICK_MS);

/** The current time, re-rendered every TICK_MS (one timer for the whole page). */
export function useNow() {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    tickers.add(setNow);
    return () => tickers.delete(setNow);
  }, []);
  return now;
}

/** <time> saying how long ago `at` was. */
export function RelativeTime({ at }) {
  const now = useNow();
  if (!at) return html`<span class="muted">—</span>`;
  return html`<time datetime=${at} title=${absoluteTime(at)}>${relativeTime(at, now)}</time>`;
}

/** A readable duration; while `since` runs (no `ms` yet), how long it has been running. */
export function Duration({ ms, since }) {
  const now = useNow();
  if (ms !== null && ms !== undefined) return html`<span class="duration">${duration(ms)}</span>`;
  if (since) return html`<span class="duration running">${duration(now - new Date(since).getTime())}</span>`;
  return html`<span class="muted">—</span>`;
}
