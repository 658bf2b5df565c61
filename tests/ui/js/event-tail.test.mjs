import assert from 'node:assert/strict';
import { test } from 'node:test';

import { emptyTail, payloadPreview, TAIL_LIMIT, tailReducer } from '../../../synthesis/ui/app/logic/event-tail.js';

const event = (n) => ({ event_id: `e${n}`, type: 'step_output', timestamp: '2026-01-01T00:00:00.000Z', execution_id: 'x', payload: { n } });
const ids = (events) => events.map((e) => e.event_id);

test('a loaded page shows newest first; live events go on top, oldest of a batch lowest', () => {
  let state = tailReducer(emptyTail(), { type: 'load', events: [event(3), event(2), event(1)] });
  state = tailReducer(state, { type: 'arrived', events: [event(4), event(5)] });
  assert.deepEqual(ids(state.events), ['e5', 'e4', 'e3', 'e2', 'e1']);
});

test('an event seen twice (the page and the socket overlap) shows once', () => {
  let state = tailReducer(emptyTail(), { type: 'load', events: [event(2), event(1)] });
  const same = tailReducer(state, { type: 'arrived', events: [event(2), event(1)] });
  assert.equal(same, state, 'nothing new: the same state');
  state = tailReducer(state, { type: 'arrived', events: [event(3), event(3)] });
  assert.deepEqual(ids(state.events), ['e3', 'e2', 'e1']);
});

test('the tail keeps at most the limit, dropping the oldest', () => {
  assert.equal(TAIL_LIMIT, 1000);
  let state = emptyTail();
  const batch = Array.from({ length: 25 }, (_, i) => event(i));
  state = tailReducer(state, { type: 'arrived', events: batch }, 10);
  assert.deepEqual(ids(state.events), ['e24', 'e23', 'e22', 'e21', 'e20', 'e19', 'e18', 'e17', 'e16', 'e15']);
  state = tailReducer(state, { type: 'load', events: batch.slice().reverse() }, 10);
  assert.equal(state.events.length, 10);
});

test('paused, new events are counted and held; resume shows them on top', () => {
  let state = tailReducer(emptyTail(), { type: 'load', events: [event(1)] });
  state = tailReducer(state, { type: 'pause' });
  state = tailReducer(state, { type: 'arrived', events: [event(2), event(3)] });
  state = tailReducer(state, { type: 'arrived', events: [event(4), event(3)] });
  assert.deepEqual(ids(state.events), ['e1'], 'nothing moves while paused');
  assert.equal(state.heldCount, 3);
  state = tailReducer(state, { type: 'resume' });
  assert.equal(state.paused, false);
  assert.equal(state.heldCount, 0);
  assert.deepEqual(ids(state.events), ['e4', 'e3', 'e2', 'e1']);
});

test('paused past the limit: the count stays true, memory stays bounded', () => {
  let state = tailReducer(emptyTail(), { type: 'pause' });
  state = tailReducer(state, { type: 'arrived', events: Array.from({ length: 30 }, (_, i) => event(i)) }, 10);
  assert.equal(state.heldCount, 30);
  assert.equal(state.held.length, 10);
  state = tailReducer(state, { type: 'resume' }, 10);
  assert.deepEqual(ids(state.events).slice(0, 2), ['e29', 'e28']);
});

test('a payload previews on one line, cut with an ellipsis; markup stays characters', () => {
  assert.equal(payloadPreview({ output: 'a\nb', n: 1 }), '{"output":"a\\nb","n":1}');
  assert.equal(payloadPreview({ name: '<img src=x>' }), '{"name":"<img src=x>"}');
  assert.equal(payloadPreview({ execution_id: 'e1', step_id: 'a' }, { omit: ['execution_id'] }), '{"step_id":"a"}');
  assert.equal(payloadPreview([1, 2], { omit: ['execution_id'] }), '[1,2]');
  const long = payloadPreview({ text: 'x'.repeat(500) }, { max: 40 });
  assert.equal(long.length, 40);
  assert.ok(long.endsWith('…'));
  assert.equal(payloadPreview(null), '{}');
});

test('an arriving event is looked up among the ids, kept in step with the rows, not in the rows', () => {
  let state = tailReducer(emptyTail(), { type: 'load', events: [event(2), event(1)] }, 3);
  state = tailReducer(state, { type: 'pause' }, 3);
  state = tailReducer(state, { type: 'arrived', events: [event(3), event(4), event(5), event(6)] }, 3);
  assert.deepEqual([...state.ids].sort(), [...ids(state.events), ...ids(state.held)].sort());
  state = tailReducer(state, { type: 'resume' }, 3);
  assert.deepEqual([...state.ids].sort(), ids(state.events).sort());
  // A batch already shown is turned away without going through the 1,000 rows.
  const rows = Object.defineProperties({ ...state }, {
    events: { get: () => assert.fail('the rows were scanned') },
    held: { get: () => assert.fail('the held rows were scanned') },
  });
  assert.equal(tailReducer(rows, { type: 'arrived', events: [event(6), event(5)] }, 3), rows);
});
