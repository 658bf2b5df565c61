// One execution's state: the REST snapshot, with the event records of /ws/events applied
// on top as they arrive. Pure (no browser globals) and idempotent: an event already seen
// (same event_id) changes nothing, and a step's status only moves forward (pending ->
// running -> ended), so a replayed old event never undoes a newer snapshot.
import { LineIndex } from './output-lines.js';
import { statusRank } from './step-tree.js';
import { isEnded } from './vocabulary.js';

/**
 * @typedef {{
 *   id: string, type: string, status: string,
 *   started_at: string|null, completed_at: string|null, duration_ms: number|null,
 *   output?: unknown, error?: string|null, exit_code?: number|null, attempts?: object[],
 * }} StepRecord
 * @typedef {{
 *   execution: object,
 *   steps: Record<string, StepRecord>,
 *   order: string[],
 *   outputs: Record<string, LineIndex>,
 *   notifications: object[],
 *   streamStarted: Record<string, true>,
 *   streamEnded: Record<string, true>,
 *   seen: Set<string>,
 *   statusSeq: number,
 *   version: number,
 *   lastEventId: string|null,
 * }} ExecutionState
 *
 * `outputs` are append-only line indexes shared by successive states (copying a 1 MiB
 * output for every chunk is the freeze this page avoids); `seen` guards them, so an event
 * is appended once whatever happens to the stream. `streamStarted` / `streamEnded`: the
 * steps whose `step_started` / `step_completed` event came through the stream: a step's live
 * output is whole only when both did (the stream may begin after a step started: the
 * execution's first event pruned by retention, or not found).
 */

// What each control request is allowed from: synthesis/engine/transitions.py RULES.
const RULES = {
  start: ['created'],
  pause: ['running'],
  resume: ['paused'],
  cancel: ['created', 'running', 'paused'],
};

/** The control requests the server allows from `status`: ['pause', 'cancel'] while running. */
export function allowedActions(status) {
  return Object.keys(RULES).filter((action) => RULES[action].includes(status));
}

/**
 * The state of a snapshot (GET /api/executions/{id}).
 * @returns {ExecutionState}
 */
export function initialState(snapshot) {
  const { steps = [], ...execution } = snapshot;
  const records = {};
  for (const step of steps) records[step.id] = { ...step };
  return {
    execution,
    steps: records,
    order: steps.map((s) => s.id),
    outputs: {},
    notifications: [],
    streamStarted: {},
    streamEnded: {},
    seen: new Set(),
    statusSeq: 0,
    version: 0,
    lastEventId: null,
  };
}

/**
 * A newer snapshot merged in. `statusSeqAtRequest` is the state's `statusSeq` when the
 * snapshot was asked for: if execution events came since, their status is newer than the
 * snapshot's and stays. Steps keep whichever status is further along.
 * @param {ExecutionState} state
 * @param {object} snapshot
 * @param {{statusSeqAtRequest?: number}} [options]
 * @returns {ExecutionState}
 */
export function mergeSnapshot(state, snapshot, { statusSeqAtRequest = state.statusSeq } = {}) {
  const { steps = [], ...fresh } = snapshot;
  let execution = fresh;
  if (state.statusSeq > statusSeqAtRequest) {
    const { status, started_at, paused_at, completed_at, duration_ms } = state.execution;
    execution = { ...fresh, status, started_at, paused_at, completed_at, duration_ms };
  }
  const records = { ...state.steps };
  for (const row of steps) {
    const known = records[row.id];
    if (!known || statusRank(row.status) >= statusRank(known.status)) {
      records[row.id] = { ...row };
    } else if (row.attempts && (!known.attempts || row.attempts.length > known.attempts.length)) {
      records[row.id] = { ...known, attempts: row.attempts };
    }
  }
  const inSnapshot = new Set(steps.map((s) => s.id));
  const order = [...steps.map((s) => s.id), ...state.order.filter((id) => !inSnapshot.has(id))];
  return { ...state, execution, steps: records, order, version: state.version + 1 };
}

/**
 * Event records applied in order. Events of other executions and events seen before are
 * ignored.
 * @param {ExecutionState} state
 * @param {object[]} events
 * @returns {ExecutionState}
 */
export function applyEvents(state, events) {
  const executionId = state.execution.execution_id;
  let seen = null;
  let steps = null;
  let order = null;
  let execution = null;
  let notifications = null;
  let streamStarted = null;
  let streamEnded = null;
  let statusSeq = state.statusSeq;
  let lastEventId = state.lastEventId;

  for (const event of events) {
    if (!event || typeof event !== 'object' || !event.event_id) continue;
    if (executionId && event.execution_id && event.execution_id !== executionId) continue;
    if ((seen || state.seen).has(event.event_id)) continue;
    seen = seen || new Set(state.seen);
    seen.add(event.event_id);
    lastEventId = event.event_id;
    const payload = event.payload || {};
    const at = event.timestamp ?? null;

    if (event.type.startsWith('step_') && payload.step_id) {
      steps = steps || { ...state.steps };
      const id = payload.step_id;
      if (!steps[id]) {
        order = order || state.order.slice();
        order.push(id);
        steps[id] = { id, type: payload.step_type ?? 'command', status: 'pending', started_at: null, completed_at: null, duration_ms: null };
      }
      const step = steps[id];
      if (event.type === 'step_started') {
        const again = (streamStarted || state.streamStarted)[id] || state.outputs[id]?.length > 0;
        streamStarted = streamStarted || { ...state.streamStarted };
        streamStarted[id] = true;
        if (again) {
          // Run again from the start (a server restart cut the first run short). The server
          // keeps only the new run's output, so the live lines start over too rather than
          // going on after a marker: they then match the stored output this run ends with
          // (same line numbers, so #L links stay right), and search never counts the old
          // run's lines alongside the new ones.
          state.outputs[id] = new LineIndex();
          if ((streamEnded || state.streamEnded)[id]) {
            streamEnded = streamEnded || { ...state.streamEnded };
            delete streamEnded[id];
          }
          if (step.started_at !== at && at) steps[id] = { ...step, started_at: at };
        }
        const current = steps[id];
        if (statusRank(current.status) < 1) {
          steps[id] = { ...current, status: 'running', started_at: current.started_at ?? at, type: payload.step_type ?? current.type };
        }
      } else if (event.type === 'step_completed') {
        streamEnded = streamEnded || { ...state.streamEnded };
        streamEnded[id] = true;
        if (statusRank(step.status) < 2) {
          steps[id] = {
            ...step,
            status: payload.status ?? 'completed',
            completed_at: step.completed_at ?? at,
            duration_ms: payload.duration_ms ?? step.duration_ms ?? null,
          };
        }
      } else if (event.type === 'step_output') {
        const outputs = state.outputs;
        if (!outputs[id]) outputs[id] = new LineIndex();
        outputs[id].append(payload.output, payload.stream ?? 'stdout', { truncated: Boolean(payload.truncated) });
      }
    } else if (event.type.startsWith('execution_')) {
      const before = execution || state.execution;
      const next = executionChange(before, event.type, payload, at);
      if (next !== before) {
        execution = next;
        statusSeq += 1;
      }
    } else if (event.type === 'notification') {
      notifications = notifications || state.notifications.slice();
      notifications.push({ event_id: event.event_id, timestamp: at, step_id: payload.step_id, message: payload.message, data: payload.data });
    }
  }

  if (!seen) return state;
  return {
    ...state,
    seen,
    steps: steps || state.steps,
    order: order || state.order,
    execution: execution || state.execution,
    notifications: notifications || state.notifications,
    streamStarted: streamStarted || state.streamStarted,
    streamEnded: streamEnded || state.streamEnded,
    statusSeq,
    lastEventId,
    version: state.version + 1,
  };
}

function executionChange(execution, type, payload, at) {
  if (isEnded(execution.status)) return execution;
  switch (type) {
    case 'execution_started':
      return { ...execution, status: 'running', started_at: execution.started_at ?? at };
    case 'execution_paused':
      return { ...execution, status: 'paused', paused_at: at };
    case 'execution_resumed':
      return { ...execution, status: 'running', paused_at: null };
    case 'execution_completed':
      return {
        ...execution,
        status: payload.status ?? 'completed',
        completed_at: execution.completed_at ?? at,
        duration_ms: payload.duration_ms ?? execution.duration_ms ?? null,
      };
    default:
      return execution;
  }
}

/** The answer to a control request (pause, resume, cancel, start) applied like an event. */
export function applyControlAnswer(state, answer) {
  if (!answer || !answer.status || isEnded(state.execution.status)) return state;
  const execution = { ...state.execution, status: answer.status };
  if (answer.paused_at) execution.paused_at = answer.paused_at;
  if (answer.started_at) execution.started_at = execution.started_at ?? answer.started_at;
  if (answer.cancelled_at) execution.completed_at = answer.cancelled_at;
  return { ...state, execution, statusSeq: state.statusSeq + 1, version: state.version + 1 };
}

/**
 * The lines to show for a step: its live output (stdout and stderr as they came, every
 * attempt) while it runs and once its end came through the stream too, when its start came
 * through the stream; else the stored output and error of the snapshot: while the stream
 * still replays an ended step (the stored text is whole, the replay not yet), when the
 * stream began after the step started (its live lines are only the tail), or for a step
 * type that streams nothing. That tail is shown only while nothing is stored (`partial`).
 * @returns {{lines: LineIndex, live: boolean, partial?: boolean}}
 */
export function outputSource(state, stepId, storedCache) {
  const live = state.outputs[stepId];
  const step = state.steps[stepId];
  const stored = step && (step.output !== null && step.output !== undefined || Boolean(step.error));
  if (live && state.streamStarted[stepId]) {
    if (!stored || statusRank(step.status) < 2 || state.streamEnded[stepId]) return { lines: live, live: true };
  } else if (live && !stored) {
    return { lines: live, live: true, partial: true };
  }
  if (!step) return { lines: new LineIndex(), live: false };
  const key = `${stepId}\u0000${step.status}`;
  const cached = storedCache?.get(key);
  if (cached && cached.output === step.output && cached.error === step.error) return { lines: cached.lines, live: false };
  // A command's error is its stderr; for other types it is a message, shown in the panel.
  const streams = step.type === 'command' || step.type === 'script';
  const lines = LineIndex.fromStored(step.output, streams ? step.error : null);
  storedCache?.set(key, { output: step.output, error: step.error, lines });
  return { lines, live: false };
}
