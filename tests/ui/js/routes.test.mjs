import assert from 'node:assert/strict';
import { test } from 'node:test';

import { matchRoute, pathOf, safeNext } from '../../../synthesis/ui/app/logic/routes.js';

test('every page has its route', () => {
  assert.deepEqual(matchRoute(''), { name: 'executions', params: {} });
  assert.deepEqual(matchRoute('executions/'), { name: 'executions', params: {} });
  assert.deepEqual(matchRoute('executions/e1'), { name: 'execution', params: { id: 'e1' } });
  assert.deepEqual(matchRoute('plans/p1'), { name: 'plan', params: { id: 'p1' } });
  assert.equal(matchRoute('system').name, 'system');
  assert.equal(matchRoute('nowhere/at/all').name, 'not-found');
});

test('step ids with dots and brackets survive the URL', () => {
  const path = pathOf('executions', 'e1', 'steps', 'each[2].build');
  assert.equal(path, 'executions/e1/steps/each%5B2%5D.build');
  assert.deepEqual(matchRoute(path).params, { id: 'e1', step: 'each[2].build' });
});

test('a malformed escape is not a page', () => {
  assert.equal(matchRoute('executions/%E0%A4%A').name, 'not-found');
});

test('sign-in only ever sends the reader back into this UI', () => {
  assert.equal(safeNext('executions/e1/steps/s?x=1#L3'), 'executions/e1/steps/s?x=1#L3');
  assert.equal(safeNext('https://evil.example/'), '');
  assert.equal(safeNext('//evil.example/'), '');
  assert.equal(safeNext('javascript:alert(1)'), '');
  assert.equal(safeNext('sign-in?next=x'), '');
  assert.equal(safeNext(null), '');
});
