// Two executions of one plan, step by step: status, duration, output (length and hash),
// the variables that differ, and the first step where they part. Pure: no browser globals.

/**
 * @typedef {{
 *   id: string,
 *   a: object|null, b: object|null,
 *   statusDiffers: boolean, outputDiffers: boolean,
 *   durationDelta: number|null,
 *   outputA: {length: number, hash: string}|null, outputB: {length: number, hash: string}|null,
 * }} StepDiff
 * @typedef {{name: string, a: unknown, b: unknown, inA: boolean, inB: boolean}} VariableDiff
 */

/**
 * A short, stable fingerprint of a text (FNV-1a, 32 bits, as 8 hex digits): enough to tell
 * two outputs apart at a glance, not a security hash.
 * @param {string} text
 */
export function fingerprint(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

/** JSON with object keys sorted, so equal values give equal text. */
export function canonical(value) {
  if (value === undefined) return 'undefined';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
}

function outputSummary(step) {
  if (!step || step.output === null || step.output === undefined) return null;
  const text = typeof step.output === 'string' ? step.output : canonical(step.output);
  return { length: text.length, hash: fingerprint(text) };
}

/**
 * The step ids of both, in plan order: a's order, with b's own steps placed after the
 * step b lists before them.
 */
function unionOrder(aSteps, bSteps) {
  const inA = new Set(aSteps.map((s) => s.id));
  /** @type {Map<string|null, string[]>} b's own steps by the step of a they follow */
  const following = new Map();
  let anchor = null;
  for (const s of bSteps) {
    if (inA.has(s.id)) {
      anchor = s.id;
      continue;
    }
    if (!following.has(anchor)) following.set(anchor, []);
    following.get(anchor).push(s.id);
  }
  const order = [...(following.get(null) || [])];
  for (const s of aSteps) order.push(s.id, ...(following.get(s.id) || []));
  return order;
}

/**
 * @param {{steps: object[], variables?: object}} a
 * @param {{steps: object[], variables?: object}} b
 * @returns {{
 *   steps: StepDiff[], variables: VariableDiff[],
 *   firstDifference: {id: string, reason: 'status'|'output'|'missing'}|null,
 *   same: boolean,
 * }}
 */
export function diffExecutions(a, b) {
  const aSteps = a?.steps || [];
  const bSteps = b?.steps || [];
  const byA = new Map(aSteps.map((s) => [s.id, s]));
  const byB = new Map(bSteps.map((s) => [s.id, s]));
  let firstDifference = null;

  const steps = unionOrder(aSteps, bSteps).map((id) => {
    const sa = byA.get(id) ?? null;
    const sb = byB.get(id) ?? null;
    const outputA = outputSummary(sa);
    const outputB = outputSummary(sb);
    const statusDiffers = (sa?.status ?? null) !== (sb?.status ?? null);
    const outputDiffers = canonical(outputA) !== canonical(outputB);
    const da = sa?.duration_ms;
    const db = sb?.duration_ms;
    const durationDelta = Number.isFinite(da) && Number.isFinite(db) ? db - da : null;
    if (!firstDifference && (statusDiffers || outputDiffers)) {
      const reason = !sa || !sb ? 'missing' : statusDiffers ? 'status' : 'output';
      firstDifference = { id, reason };
    }
    return { id, a: sa, b: sb, statusDiffers, outputDiffers, durationDelta, outputA, outputB };
  });

  const va = a?.variables || {};
  const vb = b?.variables || {};
  const names = [...new Set([...Object.keys(va), ...Object.keys(vb)])].sort();
  const variables = names
    .filter((name) => !(name in va) || !(name in vb) || canonical(va[name]) !== canonical(vb[name]))
    .map((name) => ({ name, a: va[name], b: vb[name], inA: name in va, inB: name in vb }));

  return { steps, variables, firstDifference, same: !firstDifference && !variables.length };
}

/**
 * The sentence that says where two runs first part.
 * @param {ReturnType<typeof diffExecutions>} diff
 */
export function firstDifferenceText(diff) {
  const first = diff.firstDifference;
  if (!first) {
    return diff.variables.length
      ? 'Every step has the same status and output; some variables differ.'
      : 'No difference: every step has the same status and output, and the variables are equal.';
  }
  const step = diff.steps.find((s) => s.id === first.id);
  if (first.reason === 'missing') {
    return `They first differ at step ${first.id}: it ran only in ${step.a ? 'A' : 'B'}.`;
  }
  if (first.reason === 'status') {
    return `They first differ at step ${first.id}: ${step.a.status} in A, ${step.b.status} in B.`;
  }
  return `They first differ at step ${first.id}: the output differs (${step.outputA?.length ?? 0} and ${step.outputB?.length ?? 0} characters).`;
}
