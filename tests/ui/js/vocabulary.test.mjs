import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  ENDED_STATUSES,
  EVENT_TYPES,
  EXECUTION_EVENT_TYPES,
  EXECUTION_STATUSES,
  isEnded,
  oneOf,
  PLAN_EVENT_TYPES,
  STATUS_ORDER,
  STEP_STATUSES,
} from '../../../synthesis/ui/app/logic/vocabulary.js';

const TYPES = readFileSync(new URL('../../../clients/js/index.d.ts', import.meta.url), 'utf8');

function union(name) {
  const match = new RegExp(`export type ${name} = ([^;]+);`).exec(TYPES);
  assert.ok(match, `${name} is declared in clients/js/index.d.ts`);
  return [...match[1].matchAll(/"([a-z_]+)"/g)].map((m) => m[1]);
}

test('the lists are the API\'s own (the generated client types)', () => {
  assert.deepEqual([...EXECUTION_STATUSES].sort(), union('ExecutionStatus').sort());
  assert.deepEqual([...EVENT_TYPES].sort(), union('EventType').sort());
  assert.deepEqual([...STEP_STATUSES].sort(), union('StepStatus').sort());
});

test('one list of final statuses, for executions and steps', () => {
  assert.deepEqual(EXECUTION_STATUSES, ['created', 'running', 'paused', 'completed', 'failed', 'cancelled']);
  for (const status of ENDED_STATUSES) assert.ok(STEP_STATUSES.includes(status), status);
  assert.deepEqual(EXECUTION_STATUSES.filter(isEnded), ['completed', 'failed', 'cancelled']);
  assert.deepEqual(STEP_STATUSES.filter(isEnded), ['completed', 'failed', 'cancelled', 'skipped']);
  assert.equal(isEnded('running'), false);
  assert.equal(isEnded('paused'), false);
  // Counts show every status a step, a loop or a child execution can be in.
  const shown = new Set([...STEP_STATUSES, 'paused']);
  assert.deepEqual([...STATUS_ORDER].sort(), [...shown].sort());
});

test('the execution list listens to execution events, the plan list to plan events', () => {
  assert.deepEqual(EXECUTION_EVENT_TYPES, [
    'execution_created',
    'execution_started',
    'execution_paused',
    'execution_resumed',
    'execution_completed',
  ]);
  assert.deepEqual(PLAN_EVENT_TYPES, ['plan_created', 'plan_updated', 'plan_deleted']);
});

test('a value from the URL is kept only when the API knows it', () => {
  assert.equal(oneOf('running', EXECUTION_STATUSES), 'running');
  assert.equal(oneOf('Running', EXECUTION_STATUSES), '');
  assert.equal(oneOf('<script>', EXECUTION_STATUSES), '');
  assert.equal(oneOf(null, EXECUTION_STATUSES), '');
});
