// One execution, live: header and controls, the graph/timeline of its steps, the selected
// step's facts and output, search across every step's output, variables and errors.
// URLs: executions/<id>, executions/<id>/steps/<step_id>, #L<n> = a line of that output.
import { html, useCallback, useEffect, useMemo, useRef, useState } from '../../vendor/preact-htm.js';
import { ErrorMessage } from '../components/errors.js';
import { Errors, Notifications, Variables } from '../components/execution-details.js';
import { useChildExecutions, useExecutionModel } from '../components/execution-model.js';
import { useBlockLayouts, warmLayoutWorker } from '../components/graph-layouts.js';
import { GraphTimeline } from '../components/graph-timeline.js';
import { Loading } from '../components/loading.js';
import { OutputSearch } from '../components/output-search.js';
import { OutputView } from '../components/output-view.js';
import { StatusBadge } from '../components/status.js';
import { StepPanel } from '../components/step-panel.js';
import { Tags } from '../components/tags.js';
import { RelativeTime, useNow } from '../components/time.js';
import { allowedActions, outputSource } from '../logic/execution-state.js';
import { duration, elapsedMs, timeOf } from '../logic/format.js';
import { makeMatcher } from '../logic/output-search.js';
import { pathOf } from '../logic/routes.js';
import { buildRows, definitionsById, expandedByDefault, ownersOf, parseStepId } from '../logic/step-tree.js';
import { isEnded } from '../logic/vocabulary.js';
import { Link } from '../router.js';
import { api, handleAuthError, useSession } from '../session.js';

const ACTION_LABELS = { start: 'Start', pause: 'Pause', resume: 'Resume', cancel: 'Cancel' };
const TICK_MS = 1000; // bars and durations of running steps grow by the second
const NO_SEARCH = makeMatcher('');

export function ExecutionPage({ params, hash }) {
  const executionId = params.id;
  const { state, error, refetchError, applyAnswer } = useExecutionModel(executionId);
  useEffect(() => {
    warmLayoutWorker(); // big plans lay out there: start it while the snapshot loads
  }, []);

  // Only the first load's failure stands in for the page; a later one is a line in it.
  if (error) {
    const missing = error.status === 404;
    return html`<div class="execution-page">
      <p class="crumbs"><${Link} to="executions">Executions<//></p>
      <h1>${missing ? 'Execution not found' : 'Execution'}</h1>
      ${missing ? html`<p>No execution has the id <code>${executionId}</code>.</p>` : html`<${ErrorMessage} error=${error} />`}
    </div>`;
  }
  if (!state) return html`<div class="execution-page"><${Loading} text="Loading the execution…" /></div>`;
  return html`<${ExecutionView}
    key=${executionId}
    state=${state}
    params=${params}
    hash=${hash}
    applyAnswer=${applyAnswer}
    refetchError=${refetchError}
  />`;
}

function ExecutionView({ state, params, hash, applyAnswer, refetchError }) {
  const { canWrite } = useSession();
  const execution = state.execution;
  const executionId = execution.execution_id;
  const status = execution.status;
  const active = !isEnded(status) && status !== 'created';
  const now = useNow(TICK_MS, active);
  const plan = execution.plan || { steps: [] };
  const name = plan.name || executionId;

  useEffect(() => {
    document.title = `${name} · Synthesis`;
  });

  // Graph rows ---------------------------------------------------------------------------
  const definitions = useMemo(() => definitionsById(plan), [executionId]);
  const { layouts, ready } = useBlockLayouts(plan, executionId);
  const planSteps = useMemo(() => (plan.steps || []).filter((d) => d.type === 'plan'), [executionId]);
  const { childIds, children } = useChildExecutions(state, planSteps);
  const [toggled, setToggled] = useState(() => new Set());
  const isExpanded = useCallback((id, type) => expandedByDefault(type) !== toggled.has(id), [toggled]);
  const onToggle = useCallback(
    (id) =>
      setToggled((t) => {
        const next = new Set(t);
        if (next.has(id)) next.delete(id);
        else next.add(id);
        return next;
      }),
    [],
  );
  const tree = useMemo(
    () => buildRows({ plan, steps: state.steps, layouts, isExpanded, childIds, children }),
    [state.steps, layouts, isExpanded, JSON.stringify(childIds), children],
  );

  // The selected step: the URL's, else the one running now (latest started), else the first failed.
  const chosen = params.step ?? null;
  const auto = chosen ? null : autoSelect(state);
  const selectedId = chosen ?? auto?.id ?? null;

  // A nested step chosen by URL: open the control steps around it.
  useEffect(() => {
    if (!chosen) return;
    const closed = ownersOf(chosen).filter((owner) => {
      const type = state.steps[owner]?.type ?? definitions.get(parseStepId(owner).local)?.type;
      return !isExpanded(owner, type);
    });
    if (closed.length) setToggled((t) => new Set([...t, ...closed]));
  }, [chosen]);

  // Output and search ---------------------------------------------------------------------
  const storedCache = useRef(new Map());
  const linesOf = useCallback((id) => outputSource(state, id, storedCache.current).lines, [state]);
  const [matcher, setMatcher] = useState(NO_SEARCH);

  const lineMatch = /^L(\d+)$/.exec(hash || '');
  const line = lineMatch && chosen ? Number(lineMatch[1]) : null;

  const selected = selectedId ? state.steps[selectedId] : undefined;
  const selectedDef = selectedId ? definitions.get(parseStepId(selectedId).local) : undefined;
  const selectedRow = tree.rows.find((r) => r.kind === 'step' && r.id === selectedId);
  const detail = useStepDetail(executionId, selectedId, selected?.status);
  const source = selectedId ? outputSource(state, selectedId, storedCache.current) : null;
  // A URL's step that is not there: the API says so (a nested step not run yet may still come).
  const stepMissing =
    chosen && !selected && detail.missing && (isEnded(status) || !definitions.has(parseStepId(chosen).local));
  const stepUnknown = chosen && !selected && !detail.answered && !definitions.has(parseStepId(chosen).local);

  const start = timeOf(execution.started_at || execution.created_at) ?? now;
  const end = timeOf(execution.completed_at) ?? now;
  const span = useMemo(() => ({ start, end: Math.max(end, start + 1) }), [start, end]);
  const failed = useMemo(
    () => state.order.map((id) => state.steps[id]).filter((s) => s && s.status === 'failed'),
    [state.order, state.steps],
  );
  const parentId = execution.metadata?.parent_execution_id;
  const ran = execution.duration_ms ?? elapsedMs(execution.started_at, execution.completed_at, now);

  return html`<article class="execution-page">
    <p class="crumbs">
      <${Link} to="executions">Executions<//>
      ${parentId ? html` · child of <${Link} to=${pathOf('executions', parentId)}>execution ${parentId.slice(0, 8)}<//>` : ''}
    </p>
    <header class="ex-head">
      <h1>${name}</h1>
      <dl class="ex-facts">
        <div><dt>Status</dt><dd><${StatusBadge} status=${status} /></dd></div>
        <div><dt>Created</dt><dd><${RelativeTime} at=${execution.created_at} /></dd></div>
        <div><dt>Started</dt><dd><${RelativeTime} at=${execution.started_at} /></dd></div>
        <div>
          <dt>Duration</dt>
          <dd>${ran === null ? '—' : duration(ran)}</dd>
        </div>
        ${execution.node_id ? html`<div><dt>Node</dt><dd class="mono">${execution.node_id}</dd></div>` : ''}
        <div><dt>Tags</dt><dd><${Tags} tags=${execution.metadata?.tags} /></dd></div>
        ${execution.plan_id
          ? html`<div><dt>Plan</dt><dd><${Link} to=${pathOf('plans', execution.plan_id)}>the stored plan<//></dd></div>`
          : ''}
        <div><dt>Compare</dt><dd><${Link} to=${`compare?a=${encodeURIComponent(executionId)}`}>Compare with…<//></dd></div>
      </dl>
      ${canWrite ? html`<${Controls} executionId=${executionId} status=${status} onAnswer=${applyAnswer} />` : ''}
      ${execution.error ? html`<p class="error ex-error">${execution.error}</p>` : ''}
      ${refetchError
        ? html`<div class="ex-stale"><${ErrorMessage} error=${refetchError} /><p class="muted">Showing what was last read; trying again.</p></div>`
        : ''}
    </header>

    <section class="ex-steps" aria-labelledby="steps-heading">
      <h2 id="steps-heading">Steps <span class="muted ex-count">${state.order.length.toLocaleString()}</span></h2>
      <${GraphTimeline}
        rows=${tree.rows}
        edges=${tree.edges}
        lanes=${tree.lanes}
        depth=${tree.depth}
        executionId=${executionId}
        selectedId=${selectedId}
        span=${span}
        now=${now}
        ready=${ready}
        onToggle=${onToggle}
      />
    </section>

    <div class="ex-split">
      <div class="ex-step">
        ${stepMissing
          ? html`<section class="sp"><h2>Step <span class="sp-id">${chosen}</span></h2><p>No step ${chosen} in this execution.</p></section>`
          : stepUnknown
          ? html`<section class="sp"><${Loading} text=${`Looking for step ${chosen}…`} /></section>`
          : selectedId
          ? html`<${StepPanel}
                executionId=${executionId}
                stepId=${selectedId}
                record=${selected}
                def=${selectedDef}
                deps=${selectedRow?.deps}
                detail=${detail.value}
                childId=${selected?.child_execution_id ?? childIds[selectedId] ?? null}
                now=${now}
                chosenBy=${auto?.why ?? null}
              />
              <${OutputView}
                executionId=${executionId}
                stepId=${selectedId}
                lines=${source.lines}
                version=${source.lines.version + state.version}
                line=${line}
                matcher=${matcher}
                running=${selected?.status === 'running'}
                live=${source.live}
                partial=${Boolean(source.partial)}
              />`
          : html`<section class="sp"><h2>Output</h2><p class="muted">Choose a step above to see its output.</p></section>`}
      </div>
      <div class="ex-side">
        <${OutputSearch}
          executionId=${executionId}
          onMatcher=${setMatcher}
          stepIds=${state.order}
          linesOf=${linesOf}
          version=${state.version}
        />
      </div>
    </div>

    <div class="ex-more">
      <${Variables} variables=${execution.variables} />
      <${Errors} executionId=${executionId} error=${execution.error} failed=${failed} />
      <${Notifications} notifications=${state.notifications} />
    </div>
  </article>`;
}

/**
 * The step shown when the URL names none: the latest started of those running, else the
 * first that failed, else the last that ran (control steps aside: their output is their
 * nested steps').
 */
function autoSelect(state) {
  const leaf = (step) => step && step.type !== 'loop' && step.type !== 'condition';
  const latest = (status) => {
    let best = null;
    let bestAt = '';
    for (const id of state.order) {
      const step = state.steps[id];
      if (leaf(step) && step.started_at && (!status || step.status === status) && step.started_at >= bestAt) {
        best = id;
        bestAt = step.started_at;
      }
    }
    return best;
  };
  const running = latest('running');
  if (running) return { id: running, why: 'running' };
  const failed = state.order.find((id) => state.steps[id]?.status === 'failed' && leaf(state.steps[id]));
  if (failed) return { id: failed, why: 'failed' };
  const last = latest(null);
  return last ? { id: last, why: 'last' } : null;
}

/**
 * The step as GET /api/executions/{id}/steps/{step} gives it (with parameters), again when
 * its status changes. `missing`: the API answered 404 (no such step, or not yet);
 * `answered`: an answer for this step and status came.
 * @returns {{value: object|null, missing: boolean, answered: boolean}}
 */
function useStepDetail(executionId, stepId, status) {
  const [detail, setDetail] = useState({ key: null, value: null, missing: false });
  const key = `${stepId}\u0000${status}`;
  useEffect(() => {
    if (!stepId) return undefined;
    let alive = true;
    api()
      .getExecutionStep(executionId, stepId)
      .then((value) => alive && setDetail({ key, value, missing: false }))
      .catch((err) => {
        if (alive && !handleAuthError(err)) setDetail({ key, value: null, missing: err?.status === 404 });
      });
    return () => {
      alive = false;
    };
  }, [executionId, key]);
  const answered = detail.key === key;
  return {
    value: detail.value && detail.value.id === stepId ? detail.value : null,
    missing: answered && detail.missing,
    answered,
  };
}

/** Start, Pause, Resume, Cancel: those the execution's status allows (engine/transitions.py). */
function Controls({ executionId, status, onAnswer }) {
  const [busy, setBusy] = useState(null);
  const [problem, setProblem] = useState(null);
  const actions = allowedActions(status);
  const run = async (action) => {
    setBusy(action);
    setProblem(null);
    try {
      const answer = await api()[`${action}Execution`](executionId);
      onAnswer(answer);
    } catch (err) {
      if (!handleAuthError(err)) setProblem(err);
    } finally {
      setBusy(null);
    }
  };
  return html`<div class="toolbar ex-controls">
    ${actions.map(
      (action) => html`<button
        key=${action}
        type="button"
        class=${action === 'cancel' ? 'danger' : ''}
        disabled=${busy !== null}
        onClick=${() => run(action)}
      >
        ${ACTION_LABELS[action]}
      </button>`,
    )}
    ${busy ? html`<span class="muted">${ACTION_LABELS[busy]}…</span>` : ''}
    <${ErrorMessage} error=${problem} />
  </div>`;
}
