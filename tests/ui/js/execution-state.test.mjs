import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  allowedActions,
  applyControlAnswer,
  applyEvents,
  initialState,
  mergeSnapshot,
  outputSource,
} from '../../../synthesis/ui/app/logic/execution-state.js';
import { makeMatcher, searchLines } from '../../../synthesis/ui/app/logic/output-search.js';

const ID = 'e1';
let next = 0;
function event(type, payload = {}, timestamp = '2026-01-01T00:00:01.000Z') {
  next += 1;
  return { event_id: `ev${next}`, type, timestamp, execution_id: ID, payload: { execution_id: ID, ...payload } };
}

function snapshot(overrides = {}) {
  return {
    execution_id: ID,
    status: 'running',
    started_at: '2026-01-01T00:00:00.000Z',
    completed_at: null,
    error: null,
    variables: {},
    plan: { name: 'p', steps: [{ id: 'a', type: 'command' }, { id: 'b', type: 'command' }] },
    steps: [
      { id: 'a', type: 'command', status: 'pending', started_at: null, completed_at: null, duration_ms: null, output: null, error: null, exit_code: null },
      { id: 'b', type: 'command', status: 'pending', started_at: null, completed_at: null, duration_ms: null, output: null, error: null, exit_code: null },
    ],
    ...overrides,
  };
}

test('events move steps and the execution forward', () => {
  const events = [
    event('step_started', { step_id: 'a', step_type: 'command' }, '2026-01-01T00:00:01.000Z'),
    event('step_output', { step_id: 'a', output: 'hello\nwor', stream: 'stdout' }),
    event('step_output', { step_id: 'a', output: 'ld\n', stream: 'stdout' }),
    event('step_completed', { step_id: 'a', status: 'completed', duration_ms: 1200 }, '2026-01-01T00:00:02.200Z'),
    event('notification', { step_id: 'a', message: 'hi', data: { x: 1 } }),
    event('execution_completed', { status: 'completed', duration_ms: 2300 }, '2026-01-01T00:00:02.300Z'),
  ];
  const state = applyEvents(initialState(snapshot()), events);
  assert.equal(state.steps.a.status, 'completed');
  assert.equal(state.steps.a.started_at, '2026-01-01T00:00:01.000Z');
  assert.equal(state.steps.a.duration_ms, 1200);
  assert.deepEqual(state.outputs.a.texts, ['hello', 'world']);
  assert.equal(state.notifications[0].message, 'hi');
  assert.equal(state.execution.status, 'completed');
  assert.equal(state.execution.duration_ms, 2300);
  assert.equal(state.lastEventId, events.at(-1).event_id);
});

test('applying the same events again changes nothing (idempotent)', () => {
  const events = [
    event('step_started', { step_id: 'a', step_type: 'command' }),
    event('step_output', { step_id: 'a', output: 'one\ntwo\n', stream: 'stdout' }),
  ];
  const once = applyEvents(initialState(snapshot()), events);
  const twice = applyEvents(once, events);
  assert.equal(twice, once, 'the same state object: nothing new');
  assert.equal(once.outputs.a.length, 2);
  // Half old, half new: only the new half counts.
  const more = event('step_output', { step_id: 'a', output: 'three\n', stream: 'stdout' });
  const after = applyEvents(once, [...events, more]);
  assert.deepEqual(after.outputs.a.texts, ['one', 'two', 'three']);
});

test('an old event never undoes a newer status', () => {
  const started = event('step_started', { step_id: 'a', step_type: 'command' });
  let state = initialState(snapshot({ steps: [{ id: 'a', type: 'command', status: 'completed', duration_ms: 5 }] }));
  state = applyEvents(state, [started]);
  assert.equal(state.steps.a.status, 'completed');
  state = applyEvents(state, [event('execution_completed', { status: 'failed' }), event('execution_resumed')]);
  assert.equal(state.execution.status, 'failed');
});

test('events of another execution are ignored; steps first seen in events are added', () => {
  const foreign = { ...event('step_started', { step_id: 'a' }), execution_id: 'other' };
  let state = applyEvents(initialState(snapshot()), [foreign]);
  assert.equal(state.steps.a.status, 'pending');
  state = applyEvents(state, [event('step_started', { step_id: 'each[0].build', step_type: 'command' })]);
  assert.equal(state.steps['each[0].build'].status, 'running');
  assert.equal(state.order.at(-1), 'each[0].build');
});

test('a snapshot merges in without moving a status back', () => {
  let state = applyEvents(initialState(snapshot()), [
    event('step_started', { step_id: 'a', step_type: 'command' }),
    event('step_completed', { step_id: 'a', status: 'failed', duration_ms: 3 }),
  ]);
  const seq = state.statusSeq;
  state = applyEvents(state, [event('execution_paused')]);
  // A snapshot asked for before the pause event, where step a still ran.
  const older = snapshot({ status: 'running', variables: { v: 1 } });
  older.steps[0] = { ...older.steps[0], status: 'running', attempts: [{ attempt: 1, status: 'failed' }] };
  older.steps.push({ id: 'each[0].x', type: 'command', status: 'pending' });
  const merged = mergeSnapshot(state, older, { statusSeqAtRequest: seq });
  assert.equal(merged.execution.status, 'paused', 'the pause event is newer than the snapshot');
  assert.deepEqual(merged.execution.variables, { v: 1 });
  assert.equal(merged.steps.a.status, 'failed');
  assert.equal(merged.steps.a.attempts.length, 1);
  assert.ok(merged.order.includes('each[0].x'));
  // A snapshot asked for after every event is taken whole.
  const newer = mergeSnapshot(state, snapshot({ status: 'completed', error: null }), { statusSeqAtRequest: state.statusSeq });
  assert.equal(newer.execution.status, 'completed');
});

test('the buttons follow the transitions table', () => {
  assert.deepEqual(allowedActions('running'), ['pause', 'cancel']);
  assert.deepEqual(allowedActions('paused'), ['resume', 'cancel']);
  assert.deepEqual(allowedActions('created'), ['start', 'cancel']);
  assert.deepEqual(allowedActions('completed'), []);
  const state = applyControlAnswer(initialState(snapshot()), { status: 'paused', paused_at: 'x' });
  assert.equal(state.execution.status, 'paused');
});

test('output comes from the events, else from the stored output and error', () => {
  const stored = snapshot();
  stored.steps[1] = { ...stored.steps[1], status: 'failed', output: 'out\n', error: 'bad\n' };
  let state = initialState(stored);
  const cache = new Map();
  const fallback = outputSource(state, 'b', cache);
  assert.equal(fallback.live, false);
  assert.deepEqual(fallback.lines.texts, ['out', 'bad']);
  assert.deepEqual(fallback.lines.kinds, ['stdout', 'stderr']);
  assert.equal(outputSource(state, 'b', cache).lines, fallback.lines, 'cached');
  // An ended step's stream still replaying: the stored text is whole, the replay not yet.
  state = applyEvents(state, [
    event('step_started', { step_id: 'b', step_type: 'command' }),
    event('step_output', { step_id: 'b', output: 'out\n', stream: 'stdout' }),
  ]);
  assert.equal(outputSource(state, 'b', cache).live, false);
  state = applyEvents(state, [
    event('step_output', { step_id: 'b', output: 'bad\n', stream: 'stderr' }),
    event('step_completed', { step_id: 'b', status: 'failed' }),
  ]);
  const live = outputSource(state, 'b', cache);
  assert.equal(live.live, true);
  assert.deepEqual(live.lines.texts, ['out', 'bad']);
  // A running step shows its stream as it comes.
  state = applyEvents(state, [
    event('step_started', { step_id: 'a', step_type: 'command' }),
    event('step_output', { step_id: 'a', output: 'par', stream: 'stdout' }),
  ]);
  assert.deepEqual(outputSource(state, 'a', cache).lines.texts, ['par']);
});

test('a step whose start the stream missed shows its stored output once it has one', () => {
  // The stream began mid-step (the execution's first event pruned, or not found): its live
  // lines are the tail only.
  let state = initialState(snapshot({ steps: [{ id: 'a', type: 'command', status: 'running', started_at: '2026-01-01T00:00:00.000Z', output: null, error: null }] }));
  state = applyEvents(state, [event('step_output', { step_id: 'a', output: 'line 220\nline 221\n', stream: 'stdout' })]);
  const tail = outputSource(state, 'a', new Map());
  assert.deepEqual(tail.lines.texts, ['line 220', 'line 221'], 'nothing stored yet: the tail, said to be partial');
  assert.equal(tail.partial, true);
  state = applyEvents(state, [event('step_completed', { step_id: 'a', status: 'completed', duration_ms: 5 })]);
  const whole = Array.from({ length: 222 }, (_, i) => `line ${i}`).join('\n');
  const stored = snapshot({ steps: [{ id: 'a', type: 'command', status: 'completed', output: `${whole}\n`, error: null }] });
  state = mergeSnapshot(state, stored);
  const shown = outputSource(state, 'a', new Map());
  assert.equal(shown.live, false, 'the stored output is whole; the live one is not');
  assert.equal(shown.lines.length, 222);
  assert.equal(shown.lines.texts[0], 'line 0');
});

test('a step run again from the start shows the new run only, and search counts it once', () => {
  let state = initialState(snapshot());
  state = applyEvents(state, [
    event('step_started', { step_id: 'a', step_type: 'command' }, '2026-01-01T00:00:01.000Z'),
    event('step_output', { step_id: 'a', output: 'step line one\nstep line two\n', stream: 'stdout' }),
  ]);
  const matcher = makeMatcher('step line');
  const before = searchLines(outputSource(state, 'a').lines, matcher);
  assert.equal(before.count, 2);
  // A server restart cut the run short: the step goes back to pending and starts again.
  const restart = [
    event('step_started', { step_id: 'a', step_type: 'command' }, '2026-01-01T00:00:09.000Z'),
    event('step_output', { step_id: 'a', output: 'step line one\n', stream: 'stdout' }),
  ];
  state = applyEvents(state, restart);
  const again = outputSource(state, 'a');
  assert.deepEqual(again.lines.texts, ['step line one']);
  assert.equal(again.live, true);
  assert.equal(state.steps.a.started_at, '2026-01-01T00:00:09.000Z', 'when this run started');
  assert.equal(searchLines(again.lines, matcher, before.state).count, 1, 'the old run is not counted');
  // The same events again (a replay after a reconnect) change nothing.
  assert.equal(applyEvents(state, restart), state);
  assert.equal(outputSource(state, 'a').lines, again.lines);
});
