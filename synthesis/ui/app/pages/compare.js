// Two executions of one plan, step by step (compare?a=<id>&b=<id>): status, duration and
// output of each step, the variables that differ, and where they first part. With only
// `a`, a list of recent executions of the same plan name to choose `b` from.
import { html, useMemo } from '../../vendor/preact-htm.js';
import { ErrorMessage } from '../components/errors.js';
import { Loading } from '../components/loading.js';
import { LongText } from '../components/long-text.js';
import { useResource } from '../components/resource.js';
import { StatusBadge } from '../components/status.js';
import { RelativeTime } from '../components/time.js';
import { duration } from '../logic/format.js';
import { pathOf } from '../logic/routes.js';
import { diffExecutions, firstDifferenceText } from '../logic/run-diff.js';
import { Link } from '../router.js';
import { api } from '../session.js';

const RECENT = 100;

const compareLink = (a, b) => `compare?a=${encodeURIComponent(a)}${b ? `&b=${encodeURIComponent(b)}` : ''}`;

export function ComparePage({ query }) {
  const a = query.get('a');
  const b = query.get('b');
  const { data, error } = useResource(
    () => Promise.all([a ? api().getExecution(a) : null, b ? api().getExecution(b) : null]),
    [a, b],
  );

  const head = html`<p class="crumbs"><${Link} to="executions">Executions<//></p>
    <h1>Compare executions</h1>`;
  if (!a) {
    return html`<div class="compare-page">
      ${head}
      <p>Choose two executions in the <${Link} to="executions">list<//> (tick two rows, then Compare), or open an execution and follow “Compare with…”.</p>
    </div>`;
  }
  if (error) {
    const missing = error.status === 404;
    return html`<div class="compare-page">
      ${head}
      ${missing ? html`<p role="alert" class="error">One of these executions does not exist.</p>` : html`<${ErrorMessage} error=${error} />`}
    </div>`;
  }
  if (!data) return html`<div class="compare-page">${head}<${Loading} /></div>`;
  const [ea, eb] = data;
  if (!eb) return html`<div class="compare-page">${head}<${Picker} a=${ea} /></div>`;
  return html`<div class="compare-page">${head}<${Comparison} a=${ea} b=${eb} /></div>`;
}

/** Recent executions with A's name, to choose B. */
function Picker({ a }) {
  const name = a.plan?.name;
  const { data, error } = useResource(() => api().listExecutions({ limit: RECENT }), [a.execution_id]);
  const others = (data?.executions || []).filter((e) => e.name === name && e.execution_id !== a.execution_id);
  return html`<p>
      A: <${Link} to=${pathOf('executions', a.execution_id)}>${name}<//> <${StatusBadge} status=${a.status} />
      <span class="muted"> created <${RelativeTime} at=${a.created_at} /></span>
    </p>
    <h2>Compare with…</h2>
    <${ErrorMessage} error=${error} />
    ${!data && !error ? html`<${Loading} />` : ''}
    ${data && !others.length ? html`<p class="muted">No other execution of “${name}” among the ${RECENT} most recent.</p>` : ''}
    ${others.length
      ? html`<ul class="cmp-picker">
          ${others.map(
            (e) => html`<li key=${e.execution_id}>
              <${Link} to=${compareLink(a.execution_id, e.execution_id)}>${e.name} · <span class="mono">${e.execution_id.slice(0, 8)}</span><//>
              ${' '}<${StatusBadge} status=${e.status} />
              <span class="muted"> created <${RelativeTime} at=${e.created_at} /></span>
            </li>`,
          )}
        </ul>`
      : ''}`;
}

function Delta({ ms }) {
  if (ms === null) return html`<span class="muted">—</span>`;
  if (ms === 0) return html`<span>±0</span>`;
  const cls = ms > 0 ? 'cmp-delta-slower' : 'cmp-delta-faster';
  return html`<span class=${cls}>${ms > 0 ? '+' : '−'}${duration(Math.abs(ms))}</span>`;
}

function outputText(summary) {
  return summary ? `${summary.length} chars, #${summary.hash}` : 'none';
}

function Comparison({ a, b }) {
  const diff = useMemo(() => diffExecutions(a, b), [a, b]);
  const samePlan = a.plan?.name === b.plan?.name;
  const side = (label, e) => html`<div>
    <dt>${label}</dt>
    <dd>
      <${Link} to=${pathOf('executions', e.execution_id)}>${e.plan?.name ?? e.execution_id}<//> <${StatusBadge} status=${e.status} />
      <span class="muted"> · <span class="mono">${e.execution_id.slice(0, 8)}</span> · created <${RelativeTime} at=${e.created_at} /> · ${e.duration_ms === null || e.duration_ms === undefined ? 'no duration' : duration(e.duration_ms)}</span>
    </dd>
  </div>`;
  return html`<dl class="ex-facts">${side('A', a)}${side('B', b)}</dl>
    <p><${Link} to=${compareLink(b.execution_id, a.execution_id)}>Swap A and B<//> · <${Link} to=${compareLink(a.execution_id)}>Choose another B<//></p>
    ${samePlan ? '' : html`<p class="muted">These executions have different plan names; steps are matched by id.</p>`}
    <p class=${`cmp-summary${diff.same ? '' : ' cmp-differs'}`}>${firstDifferenceText(diff)}</p>

    <div class="table-scroll" tabindex="0" role="region" aria-label="Steps compared">
      <table class="cmp-table">
        <caption>Steps</caption>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">Status A</th>
            <th scope="col">Status B</th>
            <th scope="col">Duration A</th>
            <th scope="col">Duration B</th>
            <th scope="col">Difference</th>
            <th scope="col">Output</th>
          </tr>
        </thead>
        <tbody>
          ${diff.steps.map((s) => {
            const differs = s.statusDiffers || s.outputDiffers;
            const first = diff.firstDifference?.id === s.id;
            return html`<tr key=${s.id} data-step-id=${s.id} class=${`${differs ? 'cmp-row-differs' : ''}${first ? ' cmp-first' : ''}`}>
              <td class="cmp-id">
                <${Link} to=${pathOf('executions', (s.a ? a : b).execution_id, 'steps', s.id)}>${s.id}<//>${first ? html` <span class="cmp-flag">first difference</span>` : ''}</td>
              <td>${s.a ? html`<${StatusBadge} status=${s.a.status} />` : html`<span class="muted">not run</span>`}</td>
              <td>${s.b ? html`<${StatusBadge} status=${s.b.status} />` : html`<span class="muted">not run</span>`}</td>
              <td>${s.a?.duration_ms === null || s.a?.duration_ms === undefined ? '—' : duration(s.a.duration_ms)}</td>
              <td>${s.b?.duration_ms === null || s.b?.duration_ms === undefined ? '—' : duration(s.b.duration_ms)}</td>
              <td><${Delta} ms=${s.durationDelta} /></td>
              <td>
                ${s.outputDiffers
                  ? html`<span class="cmp-flag">differs</span> <span class="muted">(A ${outputText(s.outputA)}; B ${outputText(s.outputB)})</span>`
                  : html`<span>equal</span> <span class="muted">${s.outputA ? `(${outputText(s.outputA)})` : ''}</span>`}
              </td>
            </tr>`;
          })}
        </tbody>
      </table>
    </div>

    <h2>Variables that differ</h2>
    ${diff.variables.length
      ? html`<div class="table-scroll cmp-vars" tabindex="0" role="region" aria-label="Variables that differ">
          <table>
            <caption class="visually-hidden">Variables that differ</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">A</th><th scope="col">B</th></tr></thead>
            <tbody>
              ${diff.variables.map(
                (v) => html`<tr key=${v.name}>
                  <td class="mono">${v.name}</td>
                  <td>${v.inA ? html`<${LongText} value=${v.a} limit=${2000} />` : html`<span class="muted">not set</span>`}</td>
                  <td>${v.inB ? html`<${LongText} value=${v.b} limit=${2000} />` : html`<span class="muted">not set</span>`}</td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>`
      : html`<p class="muted">The variables are equal.</p>`}`;
}
