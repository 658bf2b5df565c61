// The selected step's facts: type, status, times, duration, exit code, why it was skipped,
// what it waits for, its error, its attempts and its parameters, all as text.
import { html } from '../../vendor/preact-htm.js';
import { absoluteTime, asText, duration, elapsedMs } from '../logic/format.js';
import { pathOf } from '../logic/routes.js';
import { skipReason } from '../logic/step-tree.js';
import { Link } from '../router.js';
import { LongText } from './long-text.js';
import { StatusBadge } from './status.js';
import { RelativeTime } from './time.js';

/**
 * @param {{
 *   executionId: string, stepId: string, record: object|undefined, def: object|undefined,
 *   deps: string[], detail: object|null, childId: string|null, now: number,
 *   chosenBy: 'running'|'failed'|'last'|null,
 * }} props `chosenBy`: why the page chose this step when the URL names none
 */
export function StepPanel({ stepId, record, def, deps, detail, childId, now, chosenBy }) {
  const status = record?.status ?? 'pending';
  const started = record?.started_at;
  const ms = record?.duration_ms ?? (status === 'running' ? elapsedMs(started, null, now) : null);
  const exit = record?.exit_code;
  const attempts = record?.attempts || detail?.attempts || [];
  const parameters = detail?.parameters ?? def?.parameters;
  const error = record?.error;
  return html`<section class="sp" aria-labelledby="step-heading">
    <h2 id="step-heading">
      Step <span class="sp-id">${stepId}</span> <${StatusBadge} status=${status} />
    </h2>
    ${chosenBy
      ? html`<p class="muted sp-following">
          ${{ running: 'Showing the step that runs now', failed: 'Showing the first step that failed', last: 'Showing the last step that ran' }[chosenBy]}; choose
          a step to stay on it.
        </p>`
      : ''}
    <dl class="sp-facts">
      <div><dt>Type</dt><dd>${record?.type ?? def?.type ?? '—'}</dd></div>
      <div><dt>Started</dt><dd><${RelativeTime} at=${started} /></dd></div>
      <div><dt>Ended</dt><dd><${RelativeTime} at=${record?.completed_at} /></dd></div>
      <div><dt>Duration</dt><dd>${ms === null || ms === undefined ? '—' : duration(ms)}</dd></div>
      ${exit !== null && exit !== undefined ? html`<div><dt>Exit code</dt><dd>${exit}</dd></div>` : ''}
      ${deps?.length ? html`<div><dt>Waits for</dt><dd>${deps.join(', ')}</dd></div>` : ''}
      ${def?.condition !== undefined ? html`<div><dt>Runs if</dt><dd><code>${asText(def.condition)}</code></dd></div>` : ''}
      ${childId
        ? html`<div><dt>Child execution</dt><dd><${Link} to=${pathOf('executions', childId)}>${childId}<//></dd></div>`
        : ''}
    </dl>
    ${status === 'skipped' ? html`<p class="sp-skip">Skipped: ${skipReason(record, def)}</p>` : ''}
    ${error && status !== 'skipped'
      ? html`<div class="sp-error">
          <h3>${status === 'failed' ? 'Error' : 'Standard error'}</h3>
          <${LongText} className="error" value=${error} />
        </div>`
      : ''}
    ${attempts.length ? html`<${Attempts} attempts=${attempts} />` : ''}
    ${parameters && Object.keys(parameters).length
      ? html`<details class="sp-parameters">
          <summary>Parameters${detail ? '' : ' (as planned)'}</summary>
          <${LongText} value=${parameters} />
        </details>`
      : ''}
  </section>`;
}

function Attempts({ attempts }) {
  return html`<div class="table-scroll sp-attempts" tabindex="0" role="region" aria-label="Attempts">
    <table>
      <caption>Attempts</caption>
      <thead>
        <tr><th scope="col">Attempt</th><th scope="col">Status</th><th scope="col">Exit code</th><th scope="col">Started</th><th scope="col">Duration</th><th scope="col">Error</th></tr>
      </thead>
      <tbody>
        ${attempts.map((a) => {
          const ms = elapsedMs(a.started_at, a.completed_at);
          return html`<tr key=${a.attempt}>
            <td>${a.attempt}</td>
            <td><${StatusBadge} status=${a.status} /></td>
            <td>${a.exit_code ?? '—'}</td>
            <td title=${absoluteTime(a.started_at)}>${a.started_at ? absoluteTime(a.started_at) : '—'}</td>
            <td>${ms === null ? '—' : duration(ms)}</td>
            <td><${LongText} className="error" value=${a.error ?? ''} limit=${1000} /></td>
          </tr>`;
        })}
      </tbody>
    </table>
  </div>`;
}
