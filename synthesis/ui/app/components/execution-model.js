// One execution, live: its snapshot (GET), then every event since its creation replayed and
// streamed over /ws/events (reconnects resume from the last event: live.js), applied in
// batches of one animation frame by the pure reducer (logic/execution-state.js). The
// snapshot is fetched again, throttled, when a step ends or the execution changes, for
// what events do not carry (errors, attempts, variables, exit codes, nested step rows).
import { useCallback, useEffect, useRef, useState } from '../../vendor/preact-htm.js';
import { useLiveEvents } from '../live.js';
import { applyControlAnswer, applyEvents, initialState, isFinished, mergeSnapshot } from '../logic/execution-state.js';
import { handleAuthError, api } from '../session.js';

const FLUSH_NOW_AT = 5000; // queued events: apply at once rather than wait for a frame
const REFETCH_MIN_MS = 300;

/** Control steps whose start opens a block: their nested rows exist from then on. */
const OPENS_BLOCK = new Set(['condition', 'loop']);

/**
 * @param {string} executionId
 * @returns {{
 *   state: import('../logic/execution-state.js').ExecutionState|null,
 *   error: unknown,
 *   applyAnswer: (answer: object) => void,
 *   refetch: () => void,
 * }}
 */
export function useExecutionModel(executionId) {
  const store = useRef(null);
  const [state, setState] = useState(null);
  const [error, setError] = useState(null);
  const [since, setSince] = useState(undefined); // undefined: not known yet; null: none kept
  const queue = useRef([]);
  const frame = useRef(0);
  const fetching = useRef({ timer: 0, busy: false, again: false, controller: null });

  const commit = (next) => {
    store.current = next;
    setState(next);
  };

  const fetchSnapshot = useCallback(async () => {
    const f = fetching.current;
    if (f.busy) {
      f.again = true;
      return;
    }
    f.busy = true;
    f.again = false;
    const id = executionId;
    const controller = new AbortController();
    f.controller = controller;
    const seq = store.current?.statusSeq ?? 0;
    try {
      const snapshot = await api().getExecution(id, { signal: controller.signal });
      if (store.current && store.current.execution.execution_id === id) {
        commit(mergeSnapshot(store.current, snapshot, { statusSeqAtRequest: seq }));
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      if (!handleAuthError(err)) setError(err);
    } finally {
      f.busy = false;
      if (f.again && !controller.signal.aborted) scheduleRefetch();
    }
  }, [executionId]);

  const scheduleRefetch = useCallback(() => {
    const f = fetching.current;
    if (f.timer) return; // throttled, not debounced: a long busy run still refreshes
    const size = store.current ? store.current.order.length : 0;
    const wait = Math.min(2000, REFETCH_MIN_MS + size / 10);
    f.timer = setTimeout(() => {
      f.timer = 0;
      fetchSnapshot();
    }, wait);
  }, [fetchSnapshot]);

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
    if (wants) scheduleRefetch();
  }, [scheduleRefetch]);

  // The snapshot and the id of the execution's first event, whose successors are replayed.
  useEffect(() => {
    let alive = true;
    store.current = null;
    queue.current = [];
    setState(null);
    setError(null);
    setSince(undefined);
    const client = api();
    Promise.all([
      client.getExecution(executionId),
      client
        .listEvents({ executionId, type: 'execution_created', limit: 1 })
        .then((page) => page.events[0]?.event_id ?? null)
        .catch(() => null),
    ])
      .then(([snapshot, first]) => {
        if (!alive) return;
        commit(initialState(snapshot));
        setSince(first);
      })
      .catch((err) => {
        if (alive && !handleAuthError(err)) setError(err);
      });
    return () => {
      alive = false;
      const f = fetching.current;
      clearTimeout(f.timer);
      f.timer = 0;
      f.controller?.abort();
      f.busy = false;
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
    { onResync: () => scheduleRefetch() },
  );

  const applyAnswer = useCallback(
    (answer) => {
      if (!store.current) return;
      commit(applyControlAnswer(store.current, answer));
      scheduleRefetch();
    },
    [scheduleRefetch],
  );

  return { state, error, applyAnswer, refetch: scheduleRefetch };
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
  const key = JSON.stringify([childIds, running, state ? isFinished(state.execution.status) : null]);

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
