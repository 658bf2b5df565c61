import assert from 'node:assert/strict';
import { test } from 'node:test';

import { layoutGraph } from '../../../synthesis/ui/app/logic/graph-layout.js';
import { blockNodes } from '../../../synthesis/ui/app/logic/step-tree.js';

/** Every node has one (rank, order), orders in a rank are 0..n-1, and deps rank lower. */
function assertWellFormed(nodes, layout) {
  const seen = new Set();
  for (const node of nodes) {
    const place = layout.places[node.id];
    assert.ok(place, `${node.id} is placed`);
    const key = `${place.rank}:${place.order}`;
    assert.ok(!seen.has(key), `no two nodes share ${key}`);
    seen.add(key);
    for (const dep of node.deps) {
      if (layout.places[dep]) assert.ok(layout.places[dep].rank < place.rank, `${dep} is ranked before ${node.id}`);
    }
  }
  layout.ranks.forEach((rank, r) => rank.forEach((id, order) => assert.deepEqual(layout.places[id], { rank: r, order })));
  assert.equal(layout.rows.length, nodes.length);
}

test('ranks are longest paths: a diamond with a shortcut', () => {
  const nodes = [
    { id: 'lint', deps: [] },
    { id: 'unit', deps: [] },
    { id: 'package', deps: ['lint', 'unit'] },
    { id: 'ship', deps: ['package', 'lint'] },
  ];
  const layout = layoutGraph(nodes);
  assertWellFormed(nodes, layout);
  assert.deepEqual(layout.ranks, [['lint', 'unit'], ['package'], ['ship']]);
  assert.equal(layout.lanes, 2);
  assert.deepEqual(layout.rows, ['lint', 'unit', 'package', 'ship']);
});

test('a plan without depends_on runs in order: one step per rank', () => {
  const defs = [{ id: 'a' }, { id: 'b' }, { id: 'c', depends_on: [] }, { id: 'd' }];
  const nodes = blockNodes(defs);
  assert.deepEqual(nodes.map((n) => n.deps), [[], ['a'], [], ['c']]);
  const layout = layoutGraph(nodes);
  assertWellFormed(nodes, layout);
  assert.deepEqual(layout.places.a, { rank: 0, order: 0 });
  assert.deepEqual(layout.places.b, { rank: 1, order: 0 });
  assert.equal(layout.places.c.rank, 0);
  assert.equal(layout.places.d.rank, 1);
});

test('barycentre sweeps undo a crossing the plan order makes', () => {
  // Plan order puts x under b's child and y under a's child: the edges cross.
  const nodes = [
    { id: 'a', deps: [] },
    { id: 'b', deps: [] },
    { id: 'x', deps: ['b'] },
    { id: 'y', deps: ['a'] },
  ];
  const layout = layoutGraph(nodes);
  assertWellFormed(nodes, layout);
  assert.equal(layout.crossings, 0);
  assert.ok(layout.places.y.order < layout.places.x.order);
});

test('unknown ids, self-dependencies and cycles do not break it', () => {
  const nodes = [
    { id: 'a', deps: ['ghost', 'a'] },
    { id: 'b', deps: ['c'] },
    { id: 'c', deps: ['b'] },
  ];
  const layout = layoutGraph(nodes);
  assert.equal(Object.keys(layout.places).length, 3);
  assert.equal(layout.places.a.rank, 0);
  assert.notEqual(layout.places.b.rank, layout.places.c.rank);
});

test('an empty block lays out to nothing', () => {
  const layout = layoutGraph([]);
  assert.deepEqual(layout.rows, []);
  assert.equal(layout.lanes, 0);
});

test('500 nodes with random dependencies lay out fast and well-formed', () => {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const nodes = [];
  for (let i = 0; i < 500; i += 1) {
    const deps = [];
    const k = i === 0 ? 0 : Math.floor(random() * 3);
    for (let j = 0; j < k; j += 1) deps.push(`s${Math.floor(random() * i)}`);
    nodes.push({ id: `s${i}`, deps });
  }
  const started = performance.now();
  const layout = layoutGraph(nodes);
  const took = performance.now() - started;
  assertWellFormed(nodes, layout);
  assert.ok(took < 1000, `500 nodes took ${took.toFixed(1)} ms`);
  // The sweeps keep the best ordering: never worse than plan order.
  assert.ok(layout.crossings <= layoutGraph(nodes, { sweeps: 0 }).crossings);
});

test('a 500-step chain is 500 ranks of one', () => {
  const nodes = blockNodes(Array.from({ length: 500 }, (_, i) => ({ id: `s${i}` })));
  const layout = layoutGraph(nodes);
  assert.equal(layout.ranks.length, 500);
  assert.equal(layout.lanes, 1);
  assert.equal(layout.places.s499.rank, 499);
});
