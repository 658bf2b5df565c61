// A list that follows the server: live events of `types` make it reload, coalesced to a
// few reloads a second however many events come. It reloads too once the stream is open
// (what changed between the first load and the socket's opening is then shown), after a
// reconnect, and when the stream could not resume (its last event was pruned).
import { useEffect, useMemo } from '../../vendor/preact-htm.js';
import { coalesce } from '../logic/coalesce.js';
import { useLiveEvents } from '../live.js';

const INTERVAL_MS = 350;

/**
 * @param {readonly string[]} types event types that change what the page shows
 * @param {() => Promise<void>|void} reload the page's reload (stable across renders)
 */
export function useLiveReload(types, reload) {
  const coalescer = useMemo(() => coalesce(reload, INTERVAL_MS), [reload]);
  useEffect(() => () => coalescer.cancel(), [coalescer]);
  useLiveEvents({ types: [...types] }, () => coalescer.request(), types.join(','), {
    onResync: () => coalescer.request(),
    onState: (state) => {
      if (state === 'live') coalescer.request();
    },
  });
}
