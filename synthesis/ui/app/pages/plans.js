// The stored plans, newest first, paged (?page=), following plan events live.
import { html } from '../../vendor/preact-htm.js';
import { ErrorMessage } from '../components/errors.js';
import { useLiveReload } from '../components/live-reload.js';
import { Loading } from '../components/loading.js';
import { Pager } from '../components/pager.js';
import { useResource } from '../components/resource.js';
import { Tags } from '../components/tags.js';
import { RelativeTime } from '../components/time.js';
import { PAGE_SIZE, pageOffset, parsePage } from '../logic/paging.js';
import { pathOf } from '../logic/routes.js';
import { PLAN_EVENT_TYPES } from '../logic/vocabulary.js';
import { Link } from '../router.js';
import { API_ROOT, api } from '../session.js';

function PlanRow({ plan }) {
  return html`<tr data-plan-id=${plan.plan_id}>
    <td class="name"><${Link} to=${pathOf('plans', plan.plan_id)}>${plan.name}<//></td>
    <td class="description">${plan.description || html`<span class="muted">—</span>`}</td>
    <td><${Tags} tags=${plan.tags} /></td>
    <td><${RelativeTime} at=${plan.updated_at || plan.created_at} /></td>
    <td>${plan.created_by ?? html`<span class="muted">—</span>`}</td>
  </tr>`;
}

function NoPlans() {
  const curl = `TOKEN=<your token>
curl -s -H "Authorization: Bearer $TOKEN" ${API_ROOT}/api/plans -d '{
  "name": "greeter", "variables": {"who": "world"},
  "steps": [{"id": "hello", "type": "command",
             "parameters": {"command": "echo hello, $SYNTHESIS_VAR_WHO"}}]
}'`;
  return html`<div class="empty card">
    <p><strong>No plans stored yet.</strong> Store one with the API; it appears here, ready to run:</p>
    <pre class="snippet">${curl}</pre>
  </div>`;
}

export function PlansPage({ query }) {
  const page = parsePage(query.get('page'));
  const { data, error, loading, reload } = useResource(
    () => api().listPlans({ limit: PAGE_SIZE, offset: pageOffset(page) }),
    [page],
  );
  useLiveReload(PLAN_EVENT_TYPES, reload);
  const plans = data?.plans ?? [];

  let body;
  if (!data) body = error ? '' : html`<${Loading} />`;
  else if (data.total === 0) body = html`<${NoPlans} />`;
  else {
    body = html`<div class="table-scroll">
        <table class="list plans-table" aria-busy=${loading ? 'true' : 'false'}>
          <caption>Plans</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Description</th>
              <th scope="col">Tags</th>
              <th scope="col">Updated</th>
              <th scope="col">Created by</th>
            </tr>
          </thead>
          <tbody>
            ${plans.map((p) => html`<${PlanRow} key=${p.plan_id} plan=${p} />`)}
          </tbody>
        </table>
      </div>
      <${Pager} page=${page} shown=${plans.length} total=${data.total} />`;
  }

  return html`<section class="list-page">
    <h1>Plans</h1>
    <${ErrorMessage} error=${error} />
    ${body}
  </section>`;
}
