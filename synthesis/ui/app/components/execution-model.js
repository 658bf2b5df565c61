// One execution, live: its snapshot (GET), then every event since its creation replayed and
// streamed over /ws/events (reconnects resume from the last event: live.js), applied in
// batches of one animation frame by the pure reducer (logic/execution-state.js). The
// snapshot is fetched again, coalesced (logic/coalesce.js), when a step ends or the
// execution changes, for what events do not carry (errors, attempts, variables, exit
// codes, nested step rows). A failed refetch keeps the last snapshot on screen.
import { useCallback, useEffect, useRef, useState } from '../../vendor/preact-htm.js';
import { useLiveEvents } from '../live.js';
import { coalesce } from '../logic/coalesce.js';
import { applyControlAnswer, applyEvents, initialState, mergeSnapshot } from '../logic/execution-state.js';
import { isEnded } from '../logic/vocabulary.js';
import { handleAuthError, api } from '../session.js';

const FLUSH_NOW_AT = 5000; // queued events: apply at once rather than wait for a frame
const REFETCH_MIN_MS = 300;
const REFETCH_MAX_MS = 2000;
const RETRY_MS = [2000, 5000, 10000, 30000]; // after failed refetches, when nothing else asks

/** Control steps whose start opens a block: their nested rows exist from then on. */
const OPENS_BLOCK = new Set(['condition', 'loop']);

/**
 * @param {string} executionId
 * @returns {{
 *   state: import('../logic/execution-state.js').ExecutionState|null,
 *   error: unknown,
 *   refetchError: unknown,
 *   applyAnswer: (answer: object) => void,
 * }} `error`: the first load failed (nothing to show); `refetchError`: a later snapshot
 *   failed (the last one stays; it is asked for again).
 */
export function useExecutionModel(executionId) {
  const store = useRef(null);
  const [state, setState] = useState(null);
  const [error, setError] = useState(null);
  const [refetchError, setRefetchError] = useState(null);
  const [since, setSince] = useState(undefined); // undefined: not known yet; null: none kept
  const queue = useRef([]);
  const frame = useRef(0);
  const snapshots = useRef(null); // the coalesced refetch of this execution: {request, cancel}
  const refetchFailed = useRef(false);
  const streamState = useRef(null);

  const commit = (next) => {
    store.current = next;
    setState(next);
  };
  const requestSnapshot = useCallback(() => snapshots.current?.request(), []);

  const flush = useCallback(() => {
    frame.current = 0;
    const batch = queue.current;
    queue.current = [];
    if (!batch.length || !store.current) return;
    const before = store.current;
    const next = applyEvents(before, batch);
    if (next === before) return;
    commit(next);
    const wants = batch.some(
      (e) =>
        e.type === 'step_completed' ||
        e.type.startsWith('execution_') ||
        (e.type === 'step_started' && OPENS_BLOCK.has(e.payload?.step_type)),
    );
    if (wants) requestSnapshot();
  }, [requestSnapshot]);

  // The snapshot and the id of the execution's first event, whose successors are replayed;
  // then the refetches, until the page leaves this execution.
  useEffect(() => {
    let alive = true;
    let failures = 0;
    let retry = 0;
    const controller = new AbortController();
    store.current = null;
    queue.current = [];
    refetchFailed.current = false;
    setState(null);
    setError(null);
    setRefetchError(null);
    setSince(undefined);
    const client = api();

    const refetch = async () => {
      clearTimeout(retry);
      retry = 0;
      if (!store.current) return;
      const seq = store.current.statusSeq;
      try {
        const snapshot = await api().getExecution(executionId, { signal: controller.signal });
        if (!alive) return;
        commit(mergeSnapshot(store.current, snapshot, { statusSeqAtRequest: seq }));
        failures = 0;
        refetchFailed.current = false;
        setRefetchError(null);
      } catch (err) {
        if (!alive || controller.signal.aborted || handleAuthError(err)) return;
        refetchFailed.current = true;
        setRefetchError(err);
        // Asked again with the next event or reconnect; and, in case none comes (the run
        // may have ended), after a while.
        retry = setTimeout(() => coalescer.request(), RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]);
        failures += 1;
      }
    };
    // A big execution's snapshot is big: the bigger, the further apart.
    const spacing = () => Math.min(REFETCH_MAX_MS, REFETCH_MIN_MS + (store.current ? store.current.order.length : 0) / 10);
    const coalescer = coalesce(refetch, spacing);
    snapshots.current = coalescer;

    // Without the first event (pruned by retention, or the lookup failed) the stream starts
    // from now: steps that started before show their stored output (outputSource).
    const firstEvent = client.listEvents({ executionId, type: 'execution_created', limit: 1 }).then(
      (page) => ({ first: page.events[0]?.event_id ?? null }),
      (failure) => ({ first: null, failure }),
    );
    Promise.all([client.getExecution(executionId, { signal: controller.signal }), firstEvent])
      .then(([snapshot, { first, failure }]) => {
        if (!alive || (failure && handleAuthError(failure))) return;
        commit(initialState(snapshot));
        setSince(first);
      })
      .catch((err) => {
        if (alive && !controller.signal.aborted && !handleAuthError(err)) setError(err);
      });
    return () => {
      alive = false;
      coalescer.cancel();
      clearTimeout(retry);
      controller.abort();
      if (snapshots.current === coalescer) snapshots.current = null;
      if (frame.current) cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [executionId]);

  const onEvent = (event) => {
    if (!event || !event.type) return;
    queue.current.push(event);
    if (queue.current.length >= FLUSH_NOW_AT) flush();
    else if (!frame.current) frame.current = requestAnimationFrame(flush);
  };
  useLiveEvents(
    since === undefined ? null : { executionId, since: since ?? undefined },
    onEvent,
    `${executionId}:${since === undefined ? 'waiting' : since}`,
    {
      onResync: requestSnapshot,
      // Live again after a drop (a server restart): what changed meanwhile, and a refetch
      // that failed, are asked for now.
      onState: (next) => {
        const before = streamState.current;
        streamState.current = next;
        if (next === 'live' && (before === 'reconnecting' || refetchFailed.current)) requestSnapshot();
      },
    },
  );

  const applyAnswer = useCallback(
    (answer) => {
      if (!store.current) return;
      commit(applyControlAnswer(store.current, answer));
      requestSnapshot();
    },
    [requestSnapshot],
  );

  return { state, error, refetchError, applyAnswer };
}

/**
 * The child executions of `plan` steps, by step id, with their snapshots: the step's own
 * `child_execution_id` when the API gives one, else the parent's `<step>_execution_id`
 * variable (top-level steps, once ended), else, for a running top-level step, the one
 * execution of that plan created since the step started whose parent is this execution.
 * Children of running steps are read again every few seconds (their events are their own).
 */
export function useChildExecutions(state, planSteps) {
  const [found, setFound] = useState({}); // step id -> child execution id (looked up)
  const [children, setChildren] = useState({}); // child id -> snapshot
  const looking = useRef(new Set());
  const executionId = state?.execution.execution_id;
  const variables = state?.execution.variables || {};

  const childIds = {};
  for (const def of planSteps) {
    const record = state?.steps[def.id];
    const known = record?.child_execution_id ?? variables[`${def.id}_execution_id`] ?? found[def.id];
    if (typeof known === 'string' && known) childIds[def.id] = known;
  }
  const running = planSteps.filter((d) => state?.steps[d.id]?.status === 'running').map((d) => d.id);
  const key = JSON.stringify([childIds, running, state ? isEnded(state.execution.status) : null]);

  // A running top-level plan step: find its child once.
  useEffect(() => {
    if (!state) return;
    for (const def of planSteps) {
      const record = state.steps[def.id];
      if (childIds[def.id] || record?.status !== 'running' || !record.started_at || looking.current.has(def.id)) continue;
      looking.current.add(def.id);
      findChild(executionId, def, record.started_at, new Set(Object.values(childIds)))
        .then((id) => {
          if (id) setFound((f) => ({ ...f, [def.id]: id }));
          else looking.current.delete(def.id);
        })
        .catch(() => looking.current.delete(def.id));
    }
  }, [key]);

  useEffect(() => {
    const ids = Object.entries(childIds);
    if (!ids.length) return undefined;
    let alive = true;
    const load = () =>
      Promise.all(
        ids.map(([, id]) =>
          api()
            .getExecution(id)
            .then((snapshot) => [id, snapshot])
            .catch(() => [id, null]),
        ),
      ).then((pairs) => {
        if (!alive) return;
        setChildren((old) => {
          const next = { ...old };
          for (const [id, snapshot] of pairs) if (snapshot) next[id] = snapshot;
          return next;
        });
      });
    load();
    const timer = running.length ? setInterval(load, 2000) : 0;
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [key]);

  return { childIds, children };
}

async function findChild(parentId, def, startedAt, taken) {
  const planId = def.parameters?.plan_id;
  if (typeof planId !== 'string' || planId.includes('${')) return null;
  const page = await api().listExecutions({ fromDate: startedAt, limit: 20 });
  const matches = [];
  for (const summary of page.executions) {
    if (summary.execution_id === parentId || taken.has(summary.execution_id)) continue;
    const candidate = await api().getExecution(summary.execution_id);
    if (candidate.metadata?.parent_execution_id === parentId && candidate.plan_id === planId) {
      matches.push(candidate.execution_id);
    }
  }
  return matches.length === 1 ? matches[0] : null; // two alike: cannot tell which step owns which
}
