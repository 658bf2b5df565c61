// An execution's variables, errors and notifications, as text. Secret values come masked
// from the API (`***`) and are shown as they come. Each is drawn again only when its own
// data changes (the page redraws with every batch of events), and long lists are capped.
import { html } from '../../vendor/preact-htm.js';
import { pathOf } from '../logic/routes.js';
import { Link } from '../router.js';
import { useCapped } from './capped.js';
import { LongText } from './long-text.js';
import { memo } from './memo.js';
import { RelativeTime } from './time.js';

const NO_VARIABLES = {};

export const Variables = memo(function Variables({ variables }) {
  const all = variables || NO_VARIABLES;
  const [names, more] = useCapped(Object.keys(all).sort(), 'variables');
  return html`<section class="ed-variables" aria-labelledby="variables-heading">
    <h2 id="variables-heading">Variables</h2>
    ${names.length
      ? html`<dl class="ed-list">
            ${names.map(
              (name) => html`<div key=${name} class="ed-item">
                <dt>${name}</dt>
                <dd><${LongText} value=${all[name]} /></dd>
              </div>`,
            )}
          </dl>
          ${more}`
      : html`<p class="muted">No variables.</p>`}
  </section>`;
});

/**
 * The execution's error and each failed step's error.
 * @param {{executionId: string, error: string|null, failed: Array<{id: string, error: string|null}>}} props
 */
export const Errors = memo(function Errors({ executionId, error, failed }) {
  const [shown, more] = useCapped(failed, 'failed steps');
  if (!error && !failed.length) return null;
  return html`<section class="ed-errors" aria-labelledby="errors-heading">
    <h2 id="errors-heading">Errors</h2>
    ${error ? html`<${LongText} className="error ed-execution-error" value=${error} />` : ''}
    ${shown.length
      ? html`<dl class="ed-list">
            ${shown.map(
              (step) => html`<div key=${step.id} class="ed-item">
                <dt><${Link} to=${pathOf('executions', executionId, 'steps', step.id)}>${step.id}<//></dt>
                <dd><${LongText} className="error" value=${step.error || 'failed (no message)'} /></dd>
              </div>`,
            )}
          </dl>
          ${more}`
      : ''}
  </section>`;
});

export const Notifications = memo(function Notifications({ notifications }) {
  const [shown, more] = useCapped(notifications, 'notifications', { latest: true });
  if (!notifications.length) return null;
  return html`<section class="ed-notifications" aria-labelledby="notifications-heading">
    <h2 id="notifications-heading">Notifications</h2>
    ${more}
    <ol class="ed-list">
      ${shown.map(
        (n) => html`<li key=${n.event_id} class="ed-item">
          <div><strong>${n.message ?? ''}</strong> <span class="muted">from ${n.step_id} · <${RelativeTime} at=${n.timestamp} /></span></div>
          ${n.data !== undefined && n.data !== null ? html`<${LongText} value=${n.data} />` : ''}
        </li>`,
      )}
    </ol>
  </section>`;
});
