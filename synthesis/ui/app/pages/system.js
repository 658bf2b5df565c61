// The server and its cluster: health, metrics and nodes, refreshed every 5 s while the
// page is open (and the tab visible).
import { html, useEffect } from '../../vendor/preact-htm.js';
import { ErrorMessage } from '../components/errors.js';
import { Loading } from '../components/loading.js';
import { useResource } from '../components/resource.js';
import { StatusBadge } from '../components/status.js';
import { RelativeTime } from '../components/time.js';
import { count } from '../logic/paging.js';
import { label, metricGroups, uptimeText } from '../logic/system-view.js';
import { api } from '../session.js';

const REFRESH_MS = 5000;

function Health({ health }) {
  return html`<div class="card">
    <p class="health-summary">
      <${StatusBadge} status=${health.status} />
      <span>version <strong>${health.version}</strong></span>
      <span>up <strong>${uptimeText(health.uptime)}</strong></span>
    </p>
    <ul class="health-components" aria-label="Components">
      ${Object.entries(health.components ?? {}).map(
        ([name, state]) => html`<li key=${name}><span class="component">${label(name)}</span> <${StatusBadge} status=${state} /></li>`,
      )}
    </ul>
  </div>`;
}

function Metrics({ metrics }) {
  return html`<div class="metric-groups">
    ${metricGroups(metrics).map(
      (group) => html`<div class="card" key=${group.title}>
        <h3>${group.title}</h3>
        <dl class="figures">
          ${group.rows.map(([name, text]) => html`<div key=${name}><dt>${name}</dt><dd>${text}</dd></div>`)}
        </dl>
      </div>`,
    )}
  </div>`;
}

function Nodes({ nodes }) {
  if (!nodes.length) return html`<p class="muted">No nodes reported.</p>`;
  return html`<div class="table-scroll">
    <table class="list nodes-table">
      <caption>Servers of this cluster</caption>
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Address</th>
          <th scope="col">PID</th>
          <th scope="col">Status</th>
          <th scope="col">Executions</th>
          <th scope="col">Started</th>
          <th scope="col">Heartbeat</th>
        </tr>
      </thead>
      <tbody>
        ${nodes.map(
          (node) => html`<tr key=${node.node_id} data-node-id=${node.node_id}>
            <td class="mono" title=${node.node_id}>${node.node_id.slice(0, 8)}</td>
            <td class="mono">${`${node.host}:${node.port}`}</td>
            <td class="mono">${node.pid}</td>
            <td><${StatusBadge} status=${node.status} /></td>
            <td>${count(node.executions)}</td>
            <td><${RelativeTime} at=${node.started_at} /></td>
            <td><${RelativeTime} at=${node.heartbeat_at} /></td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

/** A section's body: its data (kept while a refresh fails), its error, or a wait. */
function Part({ resource, children }) {
  return html`<${ErrorMessage} error=${resource.error} />
    ${resource.data ? children(resource.data) : resource.error ? '' : html`<${Loading} />`}`;
}

export function SystemPage() {
  const health = useResource(() => api().health(), []);
  const metrics = useResource(() => api().metrics(), []);
  const nodes = useResource(() => api().listNodes(), []);

  useEffect(() => {
    const timer = setInterval(() => {
      if (document.hidden) return;
      health.reload();
      metrics.reload();
      nodes.reload();
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, []);

  return html`<section class="system-page">
    <h1>System</h1>
    <p class="muted">Refreshed every 5 seconds.</p>
    <h2>Health</h2>
    <${Part} resource=${health}>${(h) => html`<${Health} health=${h} />`}<//>
    <h2>Metrics</h2>
    <${Part} resource=${metrics}>${(m) => html`<${Metrics} metrics=${m} />`}<//>
    <h2>Nodes</h2>
    <${Part} resource=${nodes}>${(n) => html`<${Nodes} nodes=${n.nodes ?? []} />`}<//>
  </section>`;
}
