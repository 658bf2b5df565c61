// One stored plan: what it is, a form to run it (write scope only), and its document.
import { html } from '../../vendor/preact-htm.js';
import { ErrorMessage } from '../components/errors.js';
import { useLiveReload } from '../components/live-reload.js';
import { Loading } from '../components/loading.js';
import { useResource } from '../components/resource.js';
import { RunForm } from '../components/run-form.js';
import { Tags } from '../components/tags.js';
import { RelativeTime } from '../components/time.js';
import { planDocument } from '../logic/plan-form.js';
import { PLAN_EVENT_TYPES } from '../logic/vocabulary.js';
import { Link } from '../router.js';
import { api, useSession } from '../session.js';

function Facts({ plan }) {
  return html`<dl class="facts">
    <div><dt>Plan id</dt><dd class="mono">${plan.plan_id}</dd></div>
    <div><dt>Steps</dt><dd>${plan.steps.length}</dd></div>
    <div><dt>Created</dt><dd><${RelativeTime} at=${plan.created_at} /></dd></div>
    ${plan.updated_at ? html`<div><dt>Updated</dt><dd><${RelativeTime} at=${plan.updated_at} /></dd></div>` : ''}
    ${plan.metadata?.created_by ? html`<div><dt>Created by</dt><dd>${plan.metadata.created_by}</dd></div>` : ''}
    <div><dt>Tags</dt><dd><${Tags} tags=${plan.metadata?.tags} /></dd></div>
  </dl>`;
}

/** The executions list filters by status and tag, not by plan; a stored plan's
    executions carry its tags, which narrow the list down to them and their kin. */
function PlanExecutions({ plan }) {
  const tags = plan.metadata?.tags ?? [];
  const all = html`<${Link} to="executions">all executions<//>`;
  if (!tags.length) return html`<p>Its executions are in the list of ${all}.</p>`;
  return html`<p>
    Its executions carry its tags: see the executions tagged
    ${tags.map(
      (tag, i) => html`${i ? ', ' : ' '}<${Link} key=${tag} to=${`executions?tag=${encodeURIComponent(tag)}`}>${tag}<//>`,
    )},
    or ${all}.
  </p>`;
}

export function PlanPage({ params }) {
  const { canWrite } = useSession();
  const { data, error, reload } = useResource(() => api().getPlan(params.id), [params.id]);
  useLiveReload(PLAN_EVENT_TYPES, reload);
  const plan = data?.plan_id === params.id ? data : undefined;

  if (!plan) {
    return html`<section class="plan-page">
      <h1>Plan</h1>
      ${error
        ? html`<${ErrorMessage} error=${error} /><p><${Link} to="plans">All plans<//></p>`
        : html`<${Loading} />`}
    </section>`;
  }

  return html`<section class="plan-page">
    <p class="crumbs"><${Link} to="plans">Plans<//></p>
    <h1>${plan.name}</h1>
    ${plan.description ? html`<p class="description">${plan.description}</p>` : ''}
    <${ErrorMessage} error=${error} />
    <${Facts} plan=${plan} />

    <h2 id="run-heading">Run</h2>
    ${canWrite
      ? html`<${RunForm} key=${plan.plan_id} plan=${plan} />`
      : html`<p class="muted">Running a plan needs a token with the write scope; this one may only read.</p>`}

    <h2>Executions</h2>
    <${PlanExecutions} plan=${plan} />

    <h2 id="document-heading">Document</h2>
    <pre class="document" tabindex="0" aria-labelledby="document-heading">${JSON.stringify(planDocument(plan), null, 2)}</pre>
  </section>`;
}
