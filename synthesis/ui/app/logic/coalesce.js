// Many "something changed" signals (live events) into few reloads. Pure: the clock is
// passed in (globalThis by default), so tests can drive it.

/**
 * Runs `task` (which may be async) at most once per `interval` ms however often
 * `request()` is called, never two at once, and always once more after the last request
 * that came while one ran, so the last change is never missed.
 * @param {() => unknown} task
 * @param {number|(() => number)} interval milliseconds, or a function giving them at each
 *   request (a bigger execution waits longer between snapshots)
 * @param {{setTimeout: Function, clearTimeout: Function, now: () => number}} [clock]
 * @returns {{request: () => void, cancel: () => void}}
 */
export function coalesce(task, interval, clock = defaultClock()) {
  let timer = null;
  let running = false;
  let again = false;
  let cancelled = false;
  let lastRun = -Infinity;

  const run = async () => {
    timer = null;
    running = true;
    lastRun = clock.now();
    try {
      await task();
    } catch {
      // the task reports its own errors; a failure must not stop later runs
    } finally {
      running = false;
    }
    if (again && !cancelled) {
      again = false;
      request();
    }
  };

  function request() {
    if (cancelled) return;
    if (running) {
      again = true;
      return;
    }
    if (timer !== null) return;
    const spacing = typeof interval === 'function' ? interval() : interval;
    const wait = Math.max(0, lastRun + spacing - clock.now());
    timer = clock.setTimeout(run, wait);
  }

  return {
    request,
    cancel() {
      cancelled = true;
      if (timer !== null) clock.clearTimeout(timer);
      timer = null;
    },
  };
}

function defaultClock() {
  return {
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (id) => globalThis.clearTimeout(id),
    now: () => Date.now(),
  };
}
