// A layered layout of one block of steps (the peers' "about 200 lines"): ranks by longest
// path over the dependencies, then the order within each rank by barycentre sweeps, keeping
// the ordering with the fewest crossings. Pure: no browser globals (it also runs in
// layout-worker.js for big plans).

/**
 * @typedef {{id: string, deps: string[]}} LayoutNode a step and the ids it waits for
 * @typedef {{rank: number, order: number}} Place
 * @typedef {{
 *   places: Record<string, Place>,
 *   ranks: string[][],
 *   rows: string[],
 *   crossings: number,
 *   lanes: number,
 * }} Layout
 *   `rows`: every id by (rank, order), the order the timeline shows them in; `lanes`: the
 *   widest rank.
 */

/**
 * Lays out a DAG. Unknown dependency ids and self-dependencies are ignored; a cycle
 * (refused by the server, but the layout must not hang on one) is broken where it is met.
 * @param {LayoutNode[]} nodes in plan order (the initial order within each rank)
 * @param {{sweeps?: number}} [options] down-and-up sweep pairs (default 6)
 * @returns {Layout}
 */
export function layoutGraph(nodes, { sweeps = 6 } = {}) {
  const count = nodes.length;
  const index = new Map();
  nodes.forEach((node, i) => index.set(node.id, i));
  const preds = nodes.map(() => []);
  const succs = nodes.map(() => []);
  nodes.forEach((node, i) => {
    for (const dep of new Set(node.deps || [])) {
      const j = index.get(dep);
      if (j === undefined || j === i) continue;
      preds[i].push(j);
      succs[j].push(i);
    }
  });

  const rank = longestPathRanks(preds, succs);
  const rankCount = count ? Math.max(...rank) + 1 : 0;
  /** @type {number[][]} node indexes per rank, in plan order to begin with */
  let layers = Array.from({ length: rankCount }, () => []);
  for (let i = 0; i < count; i += 1) layers[rank[i]].push(i);

  const pos = new Array(count).fill(0);
  const place = (ls) => ls.forEach((layer) => layer.forEach((n, k) => (pos[n] = k)));
  place(layers);
  let best = layers.map((l) => l.slice());
  let bestCrossings = countCrossings(layers, preds, rank, pos);

  for (let sweep = 0; sweep < sweeps && bestCrossings > 0; sweep += 1) {
    for (let r = 1; r < rankCount; r += 1) layers[r] = reorder(layers[r], preds, pos);
    for (let r = rankCount - 2; r >= 0; r -= 1) layers[r] = reorder(layers[r], succs, pos);
    const crossings = countCrossings(layers, preds, rank, pos);
    if (crossings < bestCrossings) {
      bestCrossings = crossings;
      best = layers.map((l) => l.slice());
    }
  }
  layers = best;
  place(layers);

  /** @type {Record<string, Place>} */
  const places = {};
  const ranks = layers.map((layer, r) =>
    layer.map((n, order) => {
      places[nodes[n].id] = { rank: r, order };
      return nodes[n].id;
    }),
  );
  return {
    places,
    ranks,
    rows: ranks.flat(),
    crossings: bestCrossings,
    lanes: ranks.reduce((widest, layer) => Math.max(widest, layer.length), 0),
  };
}

/** Rank 0 for steps that wait for nothing, else one more than the highest rank waited for. */
function longestPathRanks(preds, succs) {
  const count = preds.length;
  const rank = new Array(count).fill(0);
  const waiting = preds.map((p) => p.length);
  const done = new Array(count).fill(false);
  const queue = [];
  for (let i = 0; i < count; i += 1) if (waiting[i] === 0) queue.push(i);
  let settled = 0;
  for (;;) {
    while (queue.length) {
      const n = queue.shift();
      done[n] = true;
      settled += 1;
      for (const s of succs[n]) {
        rank[s] = Math.max(rank[s], rank[n] + 1);
        waiting[s] -= 1;
        if (waiting[s] === 0) queue.push(s);
      }
    }
    if (settled === count) return rank;
    // A cycle: release its first node in plan order, ranked after what it waits for so far.
    const stuck = done.findIndex((d) => !d);
    rank[stuck] = Math.max(rank[stuck], ...preds[stuck].filter((p) => done[p]).map((p) => rank[p] + 1));
    waiting[stuck] = 0;
    queue.push(stuck);
  }
}

/**
 * One rank sorted by the mean position of its neighbours (`links`: preds going down,
 * succs going up). A node without neighbours keeps its position as its own barycentre,
 * so nothing moves without a reason. Positions are updated in place.
 */
function reorder(layer, links, pos) {
  const keyed = layer.map((n) => {
    const near = links[n];
    const bary = near.length ? near.reduce((sum, m) => sum + pos[m], 0) / near.length : pos[n];
    return { n, bary, was: pos[n] };
  });
  keyed.sort((a, b) => a.bary - b.bary || a.was - b.was);
  const out = keyed.map((k) => k.n);
  out.forEach((n, k) => (pos[n] = k));
  return out;
}

/**
 * Crossings between edges that join the same two ranks, counted pairwise per rank pair
 * (the edges a drawing would have to cross). Positions must be current (`pos`).
 */
function countCrossings(layers, preds, rank, pos) {
  /** @type {Map<string, Array<[number, number]>>} edges by (from rank, to rank) */
  const groups = new Map();
  layers.forEach((layer) => {
    for (const n of layer) {
      for (const p of preds[n]) {
        const key = `${rank[p]}:${rank[n]}`;
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push([pos[p], pos[n]]);
      }
    }
  });
  let crossings = 0;
  for (const edges of groups.values()) {
    edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    // Count inversions of the targets: O(E log E) by merge sort.
    crossings += inversions(edges.map((e) => e[1]));
  }
  return crossings;
}

/** The number of pairs i < j with values[i] > values[j]. */
function inversions(values) {
  if (values.length < 2) return 0;
  let count = 0;
  let items = values.slice();
  let buffer = new Array(items.length);
  for (let width = 1; width < items.length; width *= 2) {
    for (let lo = 0; lo < items.length; lo += 2 * width) {
      const mid = Math.min(lo + width, items.length);
      const hi = Math.min(lo + 2 * width, items.length);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        if (items[i] <= items[j]) buffer[k++] = items[i++];
        else {
          count += mid - i;
          buffer[k++] = items[j++];
        }
      }
      while (i < mid) buffer[k++] = items[i++];
      while (j < hi) buffer[k++] = items[j++];
    }
    [items, buffer] = [buffer, items];
  }
  return count;
}
