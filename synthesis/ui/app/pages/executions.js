// The executions list: live (new executions and status changes show without reload),
// filtered by status and tag, paged, with counts by status; the filters and the page live
// in the URL, so links, reloads, back and forward keep them.
import { html, useEffect, useState } from '../../vendor/preact-htm.js';
import { ErrorMessage } from '../components/errors.js';
import { useLiveReload } from '../components/live-reload.js';
import { Loading } from '../components/loading.js';
import { Pager } from '../components/pager.js';
import { useResource } from '../components/resource.js';
import { StatusBadge } from '../components/status.js';
import { Tags } from '../components/tags.js';
import { Duration, RelativeTime } from '../components/time.js';
import { PAGE_SIZE, pageOffset, parsePage, totalText } from '../logic/paging.js';
import { pathOf } from '../logic/routes.js';
import { EXECUTION_EVENT_TYPES, EXECUTION_STATUSES, oneOf } from '../logic/vocabulary.js';
import { Link, navigate, setQuery } from '../router.js';
import { API_ROOT, api } from '../session.js';

const TAG_DEBOUNCE_MS = 400;

/** The page of executions, and how many there are of each status (under the same tag). */
async function loadExecutions({ status, tag, page }) {
  const client = api();
  const byTag = tag ? { tag } : {};
  const [list, ...totals] = await Promise.all([
    client.listExecutions({ ...byTag, status: status || undefined, limit: PAGE_SIZE, offset: pageOffset(page) }),
    ...EXECUTION_STATUSES.map((s) => client.listExecutions({ ...byTag, status: s, limit: 1 }).then(totalText)),
  ]);
  return { list, counts: Object.fromEntries(EXECUTION_STATUSES.map((s, i) => [s, totals[i]])) };
}

/** A link to this list with other filters (the page starts again at 1). */
function listLink({ status, tag }) {
  const query = new URLSearchParams();
  if (status) query.set('status', status);
  if (tag) query.set('tag', tag);
  const search = query.toString();
  return `executions${search ? `?${search}` : ''}`;
}

function StatusCounts({ counts, status, tag }) {
  return html`<ul class="status-counts" aria-label="Execution counts">
    ${EXECUTION_STATUSES.map(
      (s) => html`<li key=${s}>
        <${Link} to=${listLink({ status: s === status ? '' : s, tag })} aria-current=${s === status ? 'true' : undefined}
          title=${s === status ? 'Show every status' : `Show only ${s} executions`}>
          <${StatusBadge} status=${s} count=${counts?.[s] ?? '…'} />
        <//>
      </li>`,
    )}
  </ul>`;
}

function Filters({ status, tag }) {
  const [tagText, setTagText] = useState(tag);
  // Back and forward change the URL's tag: the field follows it.
  useEffect(() => setTagText(tag), [tag]);
  // Typing filters after a pause; Enter at once.
  useEffect(() => {
    if (tagText.trim() === tag) return undefined;
    const timer = setTimeout(() => setQuery({ tag: tagText.trim(), page: null }), TAG_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [tagText]);
  const submit = (event) => {
    event.preventDefault();
    setQuery({ tag: tagText.trim(), page: null }, { replace: false });
  };
  return html`<form class="toolbar filters" role="search" aria-label="Filter executions" onSubmit=${submit}>
    <div>
      <label for="filter-status">Status</label>
      <select id="filter-status" value=${status}
        onChange=${(e) => setQuery({ status: e.target.value, page: null }, { replace: false })}>
        <option value="">any</option>
        ${EXECUTION_STATUSES.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
      </select>
    </div>
    <div>
      <label for="filter-tag">Tag</label>
      <input id="filter-tag" type="text" autocomplete="off" spellcheck="false" value=${tagText}
        onInput=${(e) => setTagText(e.target.value)} />
    </div>
    <button type="submit" class="quiet">Filter</button>
    ${status || tag
      ? html`<button type="button" class="quiet" onClick=${() => navigate('executions')}>Clear filters</button>`
      : ''}
  </form>`;
}

function ExecutionRow({ execution, selected, onSelect }) {
  const { execution_id: id, name } = execution;
  return html`<tr data-execution-id=${id} class=${selected ? 'selected' : undefined}>
    <td class="pick">
      <input type="checkbox" aria-label=${`Compare ${name}`} checked=${selected}
        onChange=${(e) => onSelect(id, name, e.target.checked)} />
    </td>
    <td class="name"><${Link} to=${pathOf('executions', id)}>${name}<//></td>
    <td><${StatusBadge} status=${execution.status} /></td>
    <td><${Tags} tags=${execution.tags} /></td>
    <td><${RelativeTime} at=${execution.created_at} /></td>
    <td><${Duration} started=${execution.started_at} completed=${execution.completed_at} /></td>
    <td>${execution.created_by ?? html`<span class="muted">—</span>`}</td>
  </tr>`;
}

/** Two executions picked with the rows' checkboxes, compared side by side. */
function CompareBar({ picked, onClear }) {
  const ids = [...picked.keys()];
  const ready = ids.length === 2;
  const hint = ready
    ? `${[...picked.values()].join(' and ')}`
    : `Tick two executions to compare them (${ids.length} ticked)`;
  return html`<div class="compare-bar">
    <button type="button" disabled=${!ready}
      onClick=${() => navigate(`compare?a=${encodeURIComponent(ids[0])}&b=${encodeURIComponent(ids[1])}`)}>Compare</button>
    <span class="muted" aria-live="polite">${hint}</span>
    ${ids.length ? html`<button type="button" class="quiet" onClick=${onClear}>Untick all</button>` : ''}
  </div>`;
}

function FirstRun() {
  const curl = `TOKEN=<your token>
curl -s -H "Authorization: Bearer $TOKEN" ${API_ROOT}/api/executions -d '{
  "plan": {"name": "hello", "steps": [
    {"id": "greet", "type": "command", "parameters": {"command": "echo Hello, $SYNTHESIS_VAR_WHO"}}
  ]},
  "variables": {"who": "World"},
  "start": true
}'`;
  return html`<div class="empty card">
    <p><strong>No executions yet.</strong> Run a stored plan from the <${Link} to="plans">Plans<//> page,
      or start one from a terminal with the API:</p>
    <pre class="snippet">${curl}</pre>
    <p class="muted">It shows up here as it runs, without reloading.</p>
  </div>`;
}

export function ExecutionsPage({ query }) {
  const status = oneOf(query.get('status'), EXECUTION_STATUSES);
  const tag = (query.get('tag') ?? '').trim();
  const page = parsePage(query.get('page'));
  const { data, error, loading, reload } = useResource(() => loadExecutions({ status, tag, page }), [status, tag, page]);
  useLiveReload(EXECUTION_EVENT_TYPES, reload);
  const [picked, setPicked] = useState(() => new Map());

  const select = (id, name, on) =>
    setPicked((old) => {
      const next = new Map(old);
      if (on) next.set(id, name);
      else next.delete(id);
      return next;
    });

  const list = data?.list;
  const rows = list?.executions ?? [];
  const filtered = Boolean(status || tag);

  let body;
  if (!list) body = error ? '' : html`<${Loading} />`;
  else if (list.total === 0 && !filtered) body = html`<${FirstRun} />`;
  else {
    body = html`
      <${CompareBar} picked=${picked} onClear=${() => setPicked(new Map())} />
      <div class="table-scroll">
        <table class="list executions-table" aria-busy=${loading ? 'true' : 'false'}>
          <caption>
            Executions${status ? ` · ${status}` : ''}${tag ? ` · tag ${tag}` : ''}
          </caption>
          <thead>
            <tr>
              <th scope="col"><span class="visually-hidden">Pick to compare</span></th>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Tags</th>
              <th scope="col">Created</th>
              <th scope="col">Duration</th>
              <th scope="col">Created by</th>
            </tr>
          </thead>
          <tbody>
            ${rows.map(
              (e) => html`<${ExecutionRow} key=${e.execution_id} execution=${e} selected=${picked.has(e.execution_id)}
                onSelect=${select} />`,
            )}
          </tbody>
        </table>
      </div>
      ${list.total === 0
        ? html`<p class="empty">No execution matches these filters.
            <${Link} to="executions">Show every execution<//>.</p>`
        : ''}
      <${Pager} page=${page} shown=${rows.length} total=${list.total} exact=${list.total_exact} />`;
  }

  return html`<section class="list-page">
    <h1>Executions</h1>
    <${StatusCounts} counts=${data?.counts} status=${status} tag=${tag} />
    <${Filters} status=${status} tag=${tag} />
    <${ErrorMessage} error=${error} />
    ${body}
  </section>`;
}
