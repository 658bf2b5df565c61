// Times and durations as people read them. Pure: no browser globals.

const UNITS = [
  ['year', 365 * 86400],
  ['month', 30 * 86400],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

/**
 * "just now", "5 seconds ago", "3 minutes ago", "in 2 hours".
 * @param {string|number|Date|null|undefined} at
 * @param {number} now milliseconds since the epoch
 */
export function relativeTime(at, now) {
  if (at === null || at === undefined || at === '') return '';
  const when = new Date(at).getTime();
  if (Number.isNaN(when)) return '';
  const seconds = Math.round((now - when) / 1000);
  const size = Math.abs(seconds);
  if (size < 5) return 'just now';
  for (const [unit, span] of UNITS) {
    if (size >= span) {
      const count = Math.floor(size / span);
      const words = `${count} ${unit}${count === 1 ? '' : 's'}`;
      return seconds >= 0 ? `${words} ago` : `in ${words}`;
    }
  }
  return 'just now';
}

/**
 * "850 ms", "1.2 s", "42 s", "3 min 5 s", "2 h 4 min", "" for none.
 * @param {number|null|undefined} ms
 */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    const rest = Math.round(seconds - minutes * 60);
    return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  const restMinutes = minutes - hours * 60;
  return restMinutes ? `${hours} h ${restMinutes} min` : `${hours} h`;
}

/**
 * How long something ran, in ms: from `started` to `completed`, or to `now` while it runs
 * (no `completed`); null when it never started, or runs and no `now` is given.
 * @param {string|number|Date|null|undefined} started
 * @param {string|number|Date|null|undefined} completed
 * @param {number} [now] milliseconds since the epoch
 * @returns {number|null}
 */
export function elapsedMs(started, completed, now) {
  const from = timeOf(started);
  if (from === null) return null;
  const to = completed ? timeOf(completed) : now ?? null;
  return to === null ? null : Math.max(0, to - from);
}

/** Milliseconds since the epoch of an ISO time (or a Date, or a number); null for none. */
export function timeOf(at) {
  if (at === null || at === undefined || at === '') return null;
  const ms = new Date(at).getTime();
  return Number.isNaN(ms) ? null : ms;
}

/** An ISO time as the reader's local date and time, for titles and tooltips. */
export function absoluteTime(at) {
  if (!at) return '';
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleString();
}

/** Any value as text for display: strings as they are, the rest as indented JSON. */
export function asText(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}
