// Data from the API for a page: loaded when its inputs change, refreshed on demand (live
// updates, timers), answers that come back out of order dropped, a refused token sent to
// sign in, other errors kept for ErrorMessage.
import { useCallback, useEffect, useRef, useState } from '../../vendor/preact-htm.js';
import { handleAuthError } from '../session.js';

/**
 * `load` is called on mount and whenever `deps` change; `reload()` calls it again (and
 * resolves when its answer is in). The last answer stays in `data` while the next one
 * loads, so a refresh never blanks the page. `loading` says the shown data is not yet for
 * the current inputs (the first load, a new page or filter): a list dims for that, never
 * for a `reload()` of what it already shows, which live events ask for several times a
 * second on a busy server.
 * @template T
 * @param {() => Promise<T>} load
 * @param {unknown[]} deps
 * @returns {{data: T|undefined, error: unknown, loading: boolean, reload: () => Promise<void>}}
 */
export function useResource(load, deps) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const latest = useRef(load);
  latest.current = load;
  const sequence = useRef(0);
  const alive = useRef(true);

  const request = useCallback(async (inputsChanged) => {
    sequence.current += 1;
    const mine = sequence.current;
    if (inputsChanged) setState((s) => (s.loading ? s : { ...s, loading: true }));
    try {
      const data = await latest.current();
      if (alive.current && mine === sequence.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (!alive.current || mine !== sequence.current || handleAuthError(error)) return;
      setState((s) => ({ data: s.data, error, loading: false }));
    }
  }, []);
  const reload = useCallback(() => request(false), [request]);

  useEffect(() => {
    request(true);
  }, deps);
  useEffect(
    () => () => {
      alive.current = false;
    },
    [],
  );
  return { ...state, reload };
}
