import assert from 'node:assert/strict';
import { test } from 'node:test';

import { canonical, diffExecutions, fingerprint, firstDifferenceText } from '../../../synthesis/ui/app/logic/run-diff.js';

const step = (id, status, output, duration_ms = 10) => ({ id, status, output, duration_ms });

test('identical runs do not differ', () => {
  const a = { steps: [step('x', 'completed', 'hi\n')], variables: { v: { a: 1, b: 2 } } };
  const b = { steps: [step('x', 'completed', 'hi\n', 25)], variables: { v: { b: 2, a: 1 } } };
  const diff = diffExecutions(a, b);
  assert.equal(diff.same, true);
  assert.equal(diff.firstDifference, null);
  assert.equal(diff.steps[0].durationDelta, 15);
  assert.match(firstDifferenceText(diff), /No difference/);
});

test('the first difference in plan order is named, with why', () => {
  const a = { steps: [step('a', 'completed', '1'), step('b', 'completed', 'same'), step('c', 'completed', 'x')] };
  const b = { steps: [step('a', 'completed', '1'), step('b', 'completed', 'other'), step('c', 'failed', null)] };
  const diff = diffExecutions(a, b);
  assert.deepEqual(diff.firstDifference, { id: 'b', reason: 'output' });
  assert.equal(diff.steps[1].outputDiffers, true);
  assert.equal(diff.steps[2].statusDiffers, true);
  assert.match(firstDifferenceText(diff), /step b: the output differs/);
  const statusFirst = diffExecutions(a, { steps: [step('a', 'failed', '1')] });
  assert.deepEqual(statusFirst.firstDifference, { id: 'a', reason: 'status' });
  assert.match(firstDifferenceText(statusFirst), /completed in A, failed in B/);
});

test('steps of one run only keep their place', () => {
  const a = { steps: [step('a', 'completed', ''), step('each[0].x', 'completed', ''), step('z', 'completed', '')] };
  const b = {
    steps: [step('a', 'completed', ''), step('each[0].x', 'completed', ''), step('each[1].x', 'completed', ''), step('z', 'completed', '')],
  };
  const diff = diffExecutions(a, b);
  assert.deepEqual(diff.steps.map((s) => s.id), ['a', 'each[0].x', 'each[1].x', 'z']);
  assert.deepEqual(diff.firstDifference, { id: 'each[1].x', reason: 'missing' });
  assert.match(firstDifferenceText(diff), /ran only in B/);
});

test('variables that differ, by name', () => {
  const diff = diffExecutions(
    { steps: [], variables: { same: 1, changed: 'a', onlyA: true } },
    { steps: [], variables: { same: 1, changed: 'b', onlyB: null } },
  );
  assert.deepEqual(diff.variables.map((v) => v.name), ['changed', 'onlyA', 'onlyB']);
  assert.equal(diff.variables[1].inB, false);
  assert.equal(diff.same, false);
});

test('fingerprints and canonical JSON', () => {
  assert.equal(fingerprint('abc'), fingerprint('abc'));
  assert.notEqual(fingerprint('abc'), fingerprint('abd'));
  assert.match(fingerprint(''), /^[0-9a-f]{8}$/);
  assert.equal(canonical({ b: 1, a: [1, { d: 2, c: 3 }] }), '{"a":[1,{"c":3,"d":2}],"b":1}');
});
