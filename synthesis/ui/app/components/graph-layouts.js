// The layouts of a plan's blocks: small ones computed at once on the main thread, big ones
// (more than WORKER_FROM steps) in layout-worker.js, with plan order shown meanwhile. One
// worker serves the whole session, started when an execution page opens (warmLayoutWorker),
// so its start overlaps the page's first requests.
import { useEffect, useMemo, useState } from '../../vendor/preact-htm.js';
import { layoutGraph } from '../logic/graph-layout.js';
import { planBlocks } from '../logic/step-tree.js';

export const WORKER_FROM = 200;

let worker = null; // the shared worker; false once it cannot be had
let nextRequest = 1;
const waiting = new Map(); // request id -> callback(layout | null)

/** Starts the layout worker if it is not running yet. */
export function warmLayoutWorker() {
  if (worker !== null) return worker;
  try {
    worker = new Worker(new URL('../layout-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (message) => {
      const { key, layout } = message.data || {};
      const done = waiting.get(key);
      waiting.delete(key);
      done?.(layout ?? null);
    };
    worker.onerror = () => {
      worker.terminate();
      worker = false;
      for (const done of waiting.values()) done(null);
      waiting.clear();
    };
  } catch {
    worker = false;
  }
  return worker;
}

/** A block's layout from the worker (or this thread, when there is no worker). */
function layoutOffThread(nodes, done) {
  const w = warmLayoutWorker();
  if (!w) {
    done(layoutGraph(nodes));
    return;
  }
  const id = nextRequest;
  nextRequest += 1;
  waiting.set(id, (layout) => done(layout || layoutGraph(nodes)));
  w.postMessage({ key: id, nodes });
}

/**
 * @param {object|null} plan the execution's plan (it never changes for one execution)
 * @param {string} key what identifies the plan (the execution id)
 * @returns {{layouts: Map<string, import('../logic/graph-layout.js').Layout>, ready: boolean}}
 */
export function useBlockLayouts(plan, key) {
  const hasPlan = Boolean(plan);
  const { small, big } = useMemo(() => {
    const small = new Map();
    const big = [];
    if (plan) {
      for (const block of planBlocks(plan)) {
        if (block.nodes.length > WORKER_FROM) big.push(block);
        else small.set(block.key, layoutGraph(block.nodes));
      }
    }
    return { small, big };
  }, [key, hasPlan]);
  const [fromWorker, setFromWorker] = useState({ key: null, layouts: new Map() });

  useEffect(() => {
    let alive = true;
    for (const block of big) {
      layoutOffThread(block.nodes, (layout) => {
        if (!alive) return;
        setFromWorker((r) => ({ key, layouts: new Map(r.key === key ? r.layouts : []).set(block.key, layout) }));
      });
    }
    return () => {
      alive = false;
    };
  }, [big]);

  return useMemo(() => {
    const layouts = new Map(small);
    const extra = fromWorker.key === key ? fromWorker.layouts : new Map();
    for (const [k, v] of extra) layouts.set(k, v);
    return { layouts, ready: big.every((b) => layouts.has(b.key)) };
  }, [small, big, fromWorker, key]);
}
