// An execution's variables, errors and notifications, as text. Secret values come masked
// from the API (`***`) and are shown as they come.
import { html } from '../../vendor/preact-htm.js';
import { pathOf } from '../logic/routes.js';
import { Link } from '../router.js';
import { LongText } from './long-text.js';
import { RelativeTime } from './time.js';

export function Variables({ variables }) {
  const names = Object.keys(variables || {}).sort();
  return html`<section class="ed-variables" aria-labelledby="variables-heading">
    <h2 id="variables-heading">Variables</h2>
    ${names.length
      ? html`<dl class="ed-list">
          ${names.map(
            (name) => html`<div key=${name} class="ed-item">
              <dt>${name}</dt>
              <dd><${LongText} value=${variables[name]} /></dd>
            </div>`,
          )}
        </dl>`
      : html`<p class="muted">No variables.</p>`}
  </section>`;
}

/**
 * The execution's error and each failed step's error.
 * @param {{executionId: string, error: string|null, failed: Array<{id: string, error: string|null}>}} props
 */
export function Errors({ executionId, error, failed }) {
  if (!error && !failed.length) return null;
  return html`<section class="ed-errors" aria-labelledby="errors-heading">
    <h2 id="errors-heading">Errors</h2>
    ${error ? html`<${LongText} className="error ed-execution-error" value=${error} />` : ''}
    ${failed.length
      ? html`<dl class="ed-list">
          ${failed.map(
            (step) => html`<div key=${step.id} class="ed-item">
              <dt><${Link} to=${pathOf('executions', executionId, 'steps', step.id)}>${step.id}<//></dt>
              <dd><${LongText} className="error" value=${step.error || 'failed (no message)'} /></dd>
            </div>`,
          )}
        </dl>`
      : ''}
  </section>`;
}

export function Notifications({ notifications }) {
  if (!notifications.length) return null;
  return html`<section class="ed-notifications" aria-labelledby="notifications-heading">
    <h2 id="notifications-heading">Notifications</h2>
    <ol class="ed-list">
      ${notifications.map(
        (n) => html`<li key=${n.event_id} class="ed-item">
          <div><strong>${n.message ?? ''}</strong> <span class="muted">from ${n.step_id} · <${RelativeTime} at=${n.timestamp} /></span></div>
          ${n.data !== undefined && n.data !== null ? html`<${LongText} value=${n.data} />` : ''}
        </li>`,
      )}
    </ol>
  </section>`;
}
