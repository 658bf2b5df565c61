import assert from 'node:assert/strict';
import { test } from 'node:test';

import { layoutGraph } from '../../../synthesis/ui/app/logic/graph-layout.js';
import {
  aggregateStatus,
  buildRows,
  countStatuses,
  definitionsById,
  nestingDepth,
  ownersOf,
  parseStepId,
  planBlocks,
  skipReason,
} from '../../../synthesis/ui/app/logic/step-tree.js';

const PLAN = {
  steps: [
    { id: 'lint', type: 'command', depends_on: [] },
    { id: 'unit', type: 'command', depends_on: [] },
    { id: 'package', type: 'command', depends_on: ['lint', 'unit'] },
    { id: 'deploy', type: 'command', condition: "env == 'production'" },
    {
      id: 'check',
      type: 'condition',
      parameters: { if: 'x', then: [{ id: 'fix', type: 'command' }], else: [{ id: 'nofix', type: 'notify' }] },
    },
    { id: 'each', type: 'loop', parameters: { count: 500, steps: [{ id: 'build', type: 'command' }] } },
    { id: 'kid', type: 'plan', parameters: { plan_id: 'p' } },
  ],
};

function layouts(plan) {
  return new Map(planBlocks(plan).map((b) => [b.key, layoutGraph(b.nodes)]));
}

function stepsWith(statuses) {
  const out = {};
  for (const [id, status] of Object.entries(statuses)) out[id] = { id, status };
  return out;
}

test('nested ids say where they come from', () => {
  assert.deepEqual(parseStepId('each[2].build'), { parent: 'each', branch: null, iteration: 2, local: 'build' });
  assert.deepEqual(parseStepId('check.then.fix'), { parent: 'check', branch: 'then', iteration: null, local: 'fix' });
  assert.deepEqual(parseStepId('outer[1].inner[0].step').parent, 'outer[1].inner');
  assert.deepEqual(parseStepId('plain'), { parent: null, branch: null, iteration: null, local: 'plain' });
  assert.equal(nestingDepth('each[0].gate.else.notify'), 2);
  assert.deepEqual(ownersOf('each[0].gate.else.notify'), ['each[0].gate', 'each']);
});

test('every block of the plan is laid out once', () => {
  assert.deepEqual(planBlocks(PLAN).map((b) => b.key), ['', 'check.then', 'check.else', 'each[]']);
  assert.equal(definitionsById(PLAN).get('build').type, 'command');
});

test('a loop collapses into one row with counts per iteration status', () => {
  const statuses = { lint: 'completed', unit: 'completed', package: 'completed', deploy: 'skipped', check: 'completed', 'check.then.fix': 'completed', each: 'running' };
  for (let i = 0; i < 480; i += 1) statuses[`each[${i}].build`] = 'completed';
  for (let i = 480; i < 483; i += 1) statuses[`each[${i}].build`] = 'failed';
  for (let i = 483; i < 500; i += 1) statuses[`each[${i}].build`] = 'running';
  const { rows } = buildRows({ plan: PLAN, steps: stepsWith(statuses), layouts: layouts(PLAN), isExpanded: (id, type) => type === 'condition' });
  const each = rows.find((r) => r.id === 'each');
  assert.deepEqual(each.counts, [['running', 17], ['failed', 3], ['completed', 480]]);
  assert.equal(each.expected, 500);
  assert.equal(each.expandable, true);
  assert.equal(each.expanded, false);
  assert.ok(!rows.some((r) => r.id.startsWith('each[')), 'collapsed: no iteration rows');
  // Rows follow the layout: lint and unit first, package after them.
  assert.deepEqual(rows.slice(0, 3).map((r) => r.id), ['lint', 'unit', 'package']);
  // The condition took `then`: its branch rows, the other branch not taken.
  const then = rows.find((r) => r.id === 'check.then');
  const other = rows.find((r) => r.id === 'check.else');
  assert.equal(then.taken, true);
  assert.equal(other.taken, false);
  assert.ok(rows.some((r) => r.id === 'check.then.fix'));
  assert.ok(!rows.some((r) => r.id === 'check.else.nofix'));
});

test('an expanded loop shows its iterations, in order, each with its layout', () => {
  const statuses = { each: 'completed', 'each[1].build': 'completed', 'each[0].build': 'failed' };
  const { rows, edges } = buildRows({ plan: PLAN, steps: stepsWith(statuses), layouts: layouts(PLAN), isExpanded: (id) => id === 'each' });
  const at = rows.findIndex((r) => r.id === 'each');
  assert.deepEqual(rows.slice(at + 1, at + 3).map((r) => [r.id, r.status, r.depth]), [
    ['each[0].build', 'failed', 1],
    ['each[1].build', 'completed', 1],
  ]);
  // Dependencies become edges between rows: lint -> package and unit -> package.
  const ids = (e) => [rows[e.from].id, rows[e.to].id].join('>');
  assert.ok(edges.map(ids).includes('lint>package'));
  assert.ok(edges.map(ids).includes('unit>package'));
  assert.ok(edges.map(ids).includes('package>deploy'));
});

test('a child plan collapses with the counts of its steps and expands into them', () => {
  const child = { steps: [{ id: 'hello', status: 'completed' }, { id: 'bye', status: 'running' }] };
  const input = { plan: PLAN, steps: stepsWith({ kid: 'running' }), layouts: layouts(PLAN), childIds: { kid: 'c1' }, children: { c1: child } };
  const collapsed = buildRows({ ...input, isExpanded: () => false }).rows.find((r) => r.id === 'kid');
  assert.deepEqual(collapsed.counts, [['running', 1], ['completed', 1]]);
  assert.equal(collapsed.childExecutionId, 'c1');
  const open = buildRows({ ...input, isExpanded: (id) => id === 'kid' }).rows;
  assert.deepEqual(open.filter((r) => r.kind === 'child').map((r) => r.id), ['hello', 'bye']);
});

test('an undecided condition shows both branches as planned steps', () => {
  const { rows } = buildRows({ plan: PLAN, steps: {}, layouts: new Map(), isExpanded: (id, type) => type === 'condition' });
  assert.equal(rows.find((r) => r.id === 'check.then').taken, null);
  assert.equal(rows.find((r) => r.id === 'check.else.nofix').status, 'pending');
});

test('group statuses and counts', () => {
  assert.equal(aggregateStatus(['completed', 'failed']), 'failed');
  assert.equal(aggregateStatus(['completed', 'pending']), 'running');
  assert.equal(aggregateStatus(['pending', 'pending']), 'pending');
  assert.equal(aggregateStatus(['completed', 'skipped']), 'completed');
  assert.equal(aggregateStatus([]), 'pending');
  assert.deepEqual(countStatuses(['completed', 'failed', 'completed']), [['failed', 1], ['completed', 2]]);
});

test('a skipped step says which condition skipped it', () => {
  assert.equal(skipReason({ error: 'condition was false' }, { condition: "env == 'production'" }), "condition was false: env == 'production'");
  assert.equal(skipReason({ error: 'not run: an earlier step failed' }, { condition: 'x' }), 'not run: an earlier step failed');
  assert.equal(skipReason({ error: null }, {}), 'skipped');
});
