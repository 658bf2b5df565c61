import assert from 'node:assert/strict';
import { test } from 'node:test';

import { label, metricGroups, uptimeText } from '../../../synthesis/ui/app/logic/system-view.js';

test('uptime reads in the largest sensible units', () => {
  assert.equal(uptimeText(0), '0 ms');
  assert.equal(uptimeText(45), '45 s');
  assert.equal(uptimeText(3 * 3600 + 240), '3 h 4 min');
  assert.equal(uptimeText(2 * 86400 + 5 * 3600 + 59), '2 d 5 h');
  assert.equal(uptimeText(86400), '1 d');
  assert.equal(uptimeText(-1), '');
  assert.equal(uptimeText(Number.NaN), '');
});

test('metric names read as words', () => {
  assert.equal(label('execution_engine'), 'execution engine');
});

test('metrics become titled rows: counts, readable durations, resources', () => {
  const groups = metricGroups({
    executions: { total: 1234, active: 2, completed: 1200, failed: 30, cancelled: 2 },
    steps: { total: 5, succeeded: 4, failed: 1 },
    performance: { average_execution_time_ms: 1500, average_step_time_ms: 20, p95_execution_time_ms: 185000, p95_step_time_ms: 0 },
    resource_usage: { memory_mb: 91.94, cpu_percent: 9 },
    cluster: { nodes_alive: 1, nodes_dead: 0, node_executions: 0 },
  });
  const byTitle = Object.fromEntries(groups.map((g) => [g.title, Object.fromEntries(g.rows)]));
  assert.deepEqual(Object.keys(byTitle), ['Executions', 'Steps', 'Durations', 'Resources', 'Cluster']);
  assert.equal(byTitle.Executions.total, '1,234');
  assert.equal(byTitle.Durations['p95 execution'], '3 min 5 s');
  assert.equal(byTitle.Durations['average execution'], '1.5 s');
  assert.equal(byTitle.Durations['p95 step'], '—', 'nothing measured yet');
  assert.equal(byTitle.Resources.memory, '91.9 MB');
  assert.equal(byTitle.Resources.CPU, '9.0 %');
  assert.equal(byTitle.Cluster['nodes alive'], '1');
});

test('missing figures do not break the page', () => {
  const groups = metricGroups({});
  assert.deepEqual(groups.map((g) => g.title), ['Durations', 'Resources']);
  assert.ok(groups.every((g) => g.rows.every(([, text]) => text === '—')));
});
