// A plan's steps as the rows of the graph/timeline: each block (the top level, a branch, a
// loop iteration) in its layered order, control steps followed by their nested steps when
// expanded, loops and child plans collapsed to one row with counts per status.
// Pure: no browser globals.

import { isEnded, STATUS_ORDER } from './vocabulary.js';

/** @typedef {import('./graph-layout.js').Layout} Layout */
/** @typedef {import('./graph-layout.js').LayoutNode} LayoutNode */

// The server's pattern for nested ids (synthesis/web/executions.py): the block's owner, then
// `.then` / `.else` / `[i]`, then the step's own id.
const NESTED = /^(.*)(?:\.(then|else)|\[(\d+)\])\.([A-Za-z0-9_-]+)$/;

/** 0 pending, 1 running, 2 ended: a step's status only moves up (execution-state.js). */
export function statusRank(status) {
  if (isEnded(status)) return 2;
  return status === 'running' ? 1 : 0;
}

/**
 * Where a step id comes from: `each[2].build` -> {parent: 'each', iteration: 2, local: 'build'}.
 * @param {string} id
 * @returns {{parent: string|null, branch: 'then'|'else'|null, iteration: number|null, local: string}}
 */
export function parseStepId(id) {
  const m = NESTED.exec(id);
  if (!m) return { parent: null, branch: null, iteration: null, local: id };
  return {
    parent: m[1],
    branch: /** @type {'then'|'else'|null} */ (m[2] ?? null),
    iteration: m[3] === undefined ? null : Number(m[3]),
    local: m[4],
  };
}

/** How deep a step id is nested (0 for a top-level step). */
export function nestingDepth(id) {
  let depth = 0;
  for (let p = parseStepId(id).parent; p !== null; p = parseStepId(p).parent) depth += 1;
  return depth;
}

/**
 * A block's steps as layout nodes, with the plan's rule for order: a step without
 * `depends_on` waits for the step listed before it; `depends_on: []` for nothing.
 * @param {Array<{id: string, depends_on?: string[]|null}>} defs
 * @returns {LayoutNode[]}
 */
export function blockNodes(defs) {
  return defs.map((def, i) => ({
    id: def.id,
    deps: Array.isArray(def.depends_on) ? def.depends_on : i > 0 ? [defs[i - 1].id] : [],
  }));
}

/** The blocks a control step's definition opens: branches of a condition, a loop's body. */
export function innerBlocks(def) {
  const p = def?.parameters || {};
  if (def?.type === 'condition') {
    return ['then', 'else']
      .filter((branch) => Array.isArray(p[branch]) && p[branch].length)
      .map((branch) => ({ branch, defs: p[branch], key: `${def.id}.${branch}` }));
  }
  if (def?.type === 'loop' && Array.isArray(p.steps)) {
    return [{ branch: null, defs: p.steps, key: `${def.id}[]` }];
  }
  return [];
}

/**
 * Every block of a plan's definition, each laid out once however many times it runs
 * (a loop body's layout serves all its iterations). Keys: '' (top), `check.then`, `each[]`.
 * @returns {Array<{key: string, nodes: LayoutNode[]}>}
 */
export function planBlocks(plan) {
  const out = [];
  const walk = (defs, key) => {
    out.push({ key, nodes: blockNodes(defs) });
    for (const def of defs) for (const block of innerBlocks(def)) walk(block.defs, block.key);
  };
  walk(Array.isArray(plan?.steps) ? plan.steps : [], '');
  return out;
}

/** A layout that keeps plan order, for a block whose real layout is not back yet. */
export function planOrderLayout(nodes) {
  const places = {};
  nodes.forEach((n, i) => (places[n.id] = { rank: i, order: 0 }));
  return { places, ranks: nodes.map((n) => [n.id]), rows: nodes.map((n) => n.id), crossings: 0, lanes: 1 };
}

/**
 * One status for a group of steps (a loop iteration, a branch): failed if one failed, else
 * running while any runs or some have ended and others wait, else what they all are.
 * @param {string[]} statuses
 */
export function aggregateStatus(statuses) {
  if (!statuses.length) return 'pending';
  const has = (s) => statuses.includes(s);
  if (has('failed')) return 'failed';
  if (has('running')) return 'running';
  if (has('cancelled')) return 'cancelled';
  if (statuses.every((s) => s === 'pending')) return 'pending';
  if (has('pending')) return 'running';
  if (statuses.every((s) => s === 'skipped')) return 'skipped';
  return 'completed';
}

/**
 * Counts per status, in display order: [['completed', 480], ['failed', 3], ...].
 * @param {string[]} statuses
 * @returns {Array<[string, number]>}
 */
export function countStatuses(statuses) {
  const counts = new Map();
  for (const s of statuses) counts.set(s, (counts.get(s) || 0) + 1);
  const known = STATUS_ORDER.filter((s) => counts.has(s)).map((s) => [s, counts.get(s)]);
  const others = [...counts].filter(([s]) => !STATUS_ORDER.includes(s));
  return [...known, ...others];
}

/**
 * What ran, by owner: each loop's iteration indexes and each condition's branches.
 * @param {Iterable<string>} stepIds
 */
export function indexRuntime(stepIds) {
  /** @type {Map<string, Set<number>>} */
  const iterations = new Map();
  /** @type {Map<string, Set<string>>} */
  const branches = new Map();
  for (const id of stepIds) {
    const { parent, branch, iteration } = parseStepId(id);
    if (parent === null) continue;
    if (iteration !== null) {
      if (!iterations.has(parent)) iterations.set(parent, new Set());
      iterations.get(parent).add(iteration);
    } else if (branch) {
      if (!branches.has(parent)) branches.set(parent, new Set());
      branches.get(parent).add(branch);
    }
  }
  return { iterations, branches };
}

/** How many iterations a loop will run, when its definition says so literally. */
export function expectedIterations(def) {
  const p = def?.parameters || {};
  if (Number.isInteger(p.count)) return p.count;
  if (Array.isArray(p.for)) return p.for.length;
  return null;
}

/** Whether a control step shows its nested steps unless toggled: branches yes, loops and child plans no. */
export function expandedByDefault(type) {
  return type === 'condition';
}

/**
 * @typedef {{
 *   kind: 'step'|'branch'|'iteration'|'child',
 *   key: string, id: string, depth: number, lane: number,
 *   type?: string, status: string, def?: object, record?: object,
 *   deps?: string[], expandable?: boolean, expanded?: boolean,
 *   counts?: Array<[string, number]>, countsOf?: string, expected?: number|null,
 *   label?: string, taken?: boolean|null, childExecutionId?: string|null,
 * }} Row
 * @typedef {{from: number, to: number}} Edge row indexes
 */

/**
 * The rows of the graph/timeline.
 * @param {{
 *   plan: {steps: object[]},
 *   steps: Record<string, {status: string}>,
 *   layouts: Map<string, Layout>,
 *   isExpanded: (id: string, type: string) => boolean,
 *   childIds?: Record<string, string>,
 *   children?: Record<string, {steps: Array<{id: string, status: string}>}>,
 * }} input
 * @returns {{rows: Row[], edges: Edge[], lanes: number, depth: number}}
 */
export function buildRows({ plan, steps, layouts, isExpanded, childIds = {}, children = {} }) {
  const runtime = indexRuntime(Object.keys(steps));
  /** @type {Row[]} */
  const rows = [];
  /** @type {Edge[]} */
  const edges = [];
  let lanes = 1;
  let maxDepth = 0;
  const statusOf = (id) => steps[id]?.status ?? 'pending';

  const addBlock = (defs, key, prefix, depth) => {
    const nodes = blockNodes(defs);
    const layout = layouts.get(key) || planOrderLayout(nodes);
    const byId = new Map(defs.map((d) => [d.id, d]));
    const deps = new Map(nodes.map((n) => [n.id, n.deps]));
    const rowOf = new Map();
    lanes = Math.max(lanes, layout.lanes);
    maxDepth = Math.max(maxDepth, depth);
    for (const local of layout.rows) {
      const def = byId.get(local);
      if (!def) continue;
      const id = prefix + local;
      const record = steps[id];
      const waitsFor = deps.get(local) || [];
      rowOf.set(local, rows.length);
      for (const dep of waitsFor) {
        if (rowOf.has(dep)) edges.push({ from: rowOf.get(dep), to: rows.length });
      }
      const row = {
        kind: 'step',
        key: id,
        id,
        depth,
        lane: layout.places[local]?.order ?? 0,
        type: record?.type ?? def.type,
        status: statusOf(id),
        def,
        record,
        deps: waitsFor.map((d) => prefix + d),
      };
      rows.push(row);
      addInner(row, def, id, depth);
    }
    // A dependency laid out after its dependant (only in a cycle) still gets its edge.
    for (const [local, waitsFor] of deps) {
      for (const dep of waitsFor) {
        const from = rowOf.get(dep);
        const to = rowOf.get(local);
        if (from !== undefined && to !== undefined && from > to) edges.push({ from, to });
      }
    }
  };

  const addInner = (row, def, id, depth) => {
    if (def.type === 'loop') {
      const seen = [...(runtime.iterations.get(id) || [])].sort((a, b) => a - b);
      const body = innerBlocks(def)[0];
      const bodyDefs = body?.defs || [];
      const iterationStatus = (i) => aggregateStatus(bodyDefs.map((d) => statusOf(`${id}[${i}].${d.id}`)));
      row.counts = countStatuses(seen.map(iterationStatus));
      row.countsOf = 'iterations';
      row.expected = expectedIterations(def);
      row.expandable = true;
      row.expanded = isExpanded(id, 'loop');
      if (!row.expanded || !body) return;
      for (const i of seen) {
        if (bodyDefs.length > 1) {
          rows.push({ kind: 'iteration', key: `${id}[${i}]`, id: `${id}[${i}]`, depth: depth + 1, lane: 0, status: iterationStatus(i), label: `iteration ${i}` });
        }
        addBlock(bodyDefs, body.key, `${id}[${i}].`, depth + 1);
      }
    } else if (def.type === 'condition') {
      const blocks = innerBlocks(def);
      const ran = runtime.branches.get(id);
      const decided = Boolean(ran?.size) || statusRank(statusOf(id)) === 2;
      const takenStatuses = blocks
        .filter((b) => ran?.has(b.branch))
        .flatMap((b) => b.defs.map((d) => statusOf(`${id}.${b.branch}.${d.id}`)));
      row.counts = countStatuses(takenStatuses);
      row.countsOf = 'steps';
      row.expandable = blocks.length > 0;
      row.expanded = row.expandable && isExpanded(id, 'condition');
      if (!row.expanded) return;
      for (const block of blocks) {
        const taken = decided ? Boolean(ran?.has(block.branch)) : null;
        rows.push({
          kind: 'branch',
          key: `${id}.${block.branch}`,
          id: `${id}.${block.branch}`,
          depth: depth + 1,
          lane: 0,
          status: taken === false ? 'skipped' : aggregateStatus(block.defs.map((d) => statusOf(`${id}.${block.branch}.${d.id}`))),
          label: block.branch,
          taken,
        });
        if (taken !== false) addBlock(block.defs, block.key, `${id}.${block.branch}.`, depth + 1);
      }
    } else if (def.type === 'plan') {
      const childId = childIds[id] ?? null;
      row.childExecutionId = childId;
      const child = childId ? children[childId] : null;
      const childSteps = (child?.steps || []).filter((s) => parseStepId(s.id).parent === null);
      row.counts = child ? countStatuses(childSteps.map((s) => s.status)) : [];
      row.countsOf = 'child steps';
      row.expandable = Boolean(childId);
      row.expanded = row.expandable && isExpanded(id, 'plan');
      if (!row.expanded || !child) return;
      for (const s of child.steps || []) {
        const childDepth = depth + 1 + nestingDepth(s.id);
        maxDepth = Math.max(maxDepth, childDepth);
        rows.push({ kind: 'child', key: `${id}>${s.id}`, id: s.id, depth: childDepth, lane: 0, type: s.type, status: s.status, record: s, childExecutionId: childId });
      }
    }
  };

  addBlock(Array.isArray(plan?.steps) ? plan.steps : [], '', '', 0);
  for (const r of rows) maxDepth = Math.max(maxDepth, r.depth);
  return { rows, edges, lanes, depth: maxDepth };
}

/**
 * The ids of the control steps to expand so that `stepId` has a row: its owners.
 * @param {string} stepId
 * @returns {string[]}
 */
export function ownersOf(stepId) {
  const out = [];
  for (let p = parseStepId(stepId).parent; p !== null; p = parseStepId(p).parent) out.push(p);
  return out;
}

/**
 * The definition of a step by its id, nested ones included (local ids are unique across
 * a plan at every depth).
 * @returns {Map<string, object>}
 */
export function definitionsById(plan) {
  const out = new Map();
  const walk = (defs) => {
    for (const def of defs || []) {
      out.set(def.id, def);
      for (const block of innerBlocks(def)) walk(block.defs);
    }
  };
  walk(plan?.steps);
  return out;
}

/** Why a skipped step was skipped, as text: its error and the condition it was given. */
export function skipReason(record, def) {
  const error = record?.error || '';
  if (def && def.condition !== undefined && /condition/.test(error || 'condition')) {
    const expression = typeof def.condition === 'string' ? def.condition : JSON.stringify(def.condition);
    return `${error || 'condition was false'}: ${expression}`;
  }
  return error || 'skipped';
}
