// The graph and the timeline as one view: one row per step, ordered by the layered layout
// of its block (logic/graph-layout.js), the dependency edges drawn in a gutter on the left,
// and time across: each step a bar from its start over its duration (growing while it
// runs), retries as attempt segments, a skipped step saying why. Big plans render only
// the rows in view (fixed row height), so 10,000 rows cost what 30 do.
import { html, useLayoutEffect, useRef, useState } from '../../vendor/preact-htm.js';
import { duration, elapsedMs, timeOf } from '../logic/format.js';
import { pathOf } from '../logic/routes.js';
import { skipReason } from '../logic/step-tree.js';
import { Link } from '../router.js';
import { memo } from './memo.js';
import { StatusBadge } from './status.js';
import { useViewportHeight } from './viewport.js';

export const ROW_H = 30;
const VIRTUAL_FROM = 250; // rows; fewer are all in the DOM (and findable by tests and Ctrl+F)
const OVERSCAN = 8;
const LANE_W = 12;
const DEPTH_W = 10;
const MAX_LANES = 6;
const MAX_DEPTH_SHOWN = 4;

/**
 * @param {{
 *   rows: import('../logic/step-tree.js').Row[], edges: import('../logic/step-tree.js').Edge[],
 *   lanes: number, depth: number, executionId: string, selectedId: string|null,
 *   span: {start: number, end: number}, now: number, ready: boolean,
 *   onToggle: (id: string) => void,
 * }} props
 */
export const GraphTimeline = memo(function GraphTimeline({ rows, edges, lanes, depth, executionId, selectedId, span, now, ready, onToggle }) {
  const scroller = useRef(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const pendingFocus = useRef(null);
  const virtual = rows.length > VIRTUAL_FROM;
  const gutter = 8 + Math.min(depth, MAX_DEPTH_SHOWN) * DEPTH_W + Math.min(Math.max(lanes, 1), MAX_LANES) * LANE_W;

  const first = virtual ? Math.max(0, Math.floor(view.top / ROW_H) - OVERSCAN) : 0;
  const last = virtual ? Math.min(rows.length - 1, Math.ceil((view.top + view.height) / ROW_H) + OVERSCAN) : rows.length - 1;

  useViewportHeight(scroller, setView);

  // The selected step in view when it changes (a deep link, a search result), not when
  // rows open or close above it.
  const hasRows = rows.length > 0;
  useLayoutEffect(() => {
    const el = scroller.current;
    const index = rows.findIndex((r) => r.kind === 'step' && r.id === selectedId);
    if (!el || index < 0) return;
    const top = index * ROW_H;
    if (top < el.scrollTop || top + ROW_H > el.scrollTop + el.clientHeight) {
      el.scrollTop = Math.max(0, top - el.clientHeight / 3);
      setView((v) => ({ ...v, top: el.scrollTop }));
    }
  }, [selectedId, hasRows]);

  // Arrow keys move between steps; the target row is rendered first when out of view.
  useLayoutEffect(() => {
    const index = pendingFocus.current;
    if (index === null) return;
    const link = scroller.current?.querySelector(`[data-row="${index}"] a.gt-name`);
    if (link) {
      pendingFocus.current = null;
      link.focus({ preventScroll: false });
    }
  });

  const onScroll = (event) => {
    const top = event.currentTarget.scrollTop;
    if (!virtual) return;
    setView((v) => (Math.floor(v.top / ROW_H) === Math.floor(top / ROW_H) ? v : { ...v, top }));
  };

  const onKeyDown = (event) => {
    // [where to start, which way to look for a row with a link]
    const from = Number(event.target.closest?.('[data-row]')?.dataset.row);
    const moves = { ArrowDown: [from + 1, 1], ArrowUp: [from - 1, -1], Home: [0, 1], End: [rows.length - 1, -1] };
    if (!(event.key in moves) || !event.target.closest?.('a.gt-name')) return;
    let [to, by] = moves[event.key];
    const linked = (i) => rows[i].kind === 'step' || rows[i].kind === 'child';
    while (to >= 0 && to < rows.length && !linked(to)) to += by;
    if (to < 0 || to >= rows.length || to === from) return;
    event.preventDefault();
    const el = scroller.current;
    const top = to * ROW_H;
    if (top < el.scrollTop || top + ROW_H > el.scrollTop + el.clientHeight) {
      el.scrollTop = Math.max(0, top - el.clientHeight / 2);
      setView((v) => ({ ...v, top: el.scrollTop }));
    }
    pendingFocus.current = to;
    const link = el.querySelector(`[data-row="${to}"] a.gt-name`);
    if (link) {
      pendingFocus.current = null;
      link.focus();
    }
  };

  const length = Math.max(1, span.end - span.start);
  const x = (ms) => Math.min(100, Math.max(0, ((ms - span.start) / length) * 100));
  const shown = [];
  for (let i = first; i <= last; i += 1) shown.push(i);
  const gutterStyle = { '--gutter': `${gutter}px` };

  return html`<div class="gt" style=${gutterStyle} data-layout=${ready ? 'ready' : 'pending'}>
    <div class="gt-axis" aria-hidden="true">
      <span class="gt-axis-gutter"></span>
      <span class="gt-axis-name">Step</span>
      <span class="gt-axis-status">Status</span>
      <span class="gt-axis-duration">Duration</span>
      <span class="gt-axis-track">
        ${[0, 0.25, 0.5, 0.75, 1].map(
          (f) => html`<span key=${f} class="gt-tick" style=${{ left: `${f * 100}%` }}>${f === 0 ? '0' : duration(length * f)}</span>`,
        )}
      </span>
    </div>
    <div class="gt-scroll" ref=${scroller} onScroll=${onScroll} onKeyDown=${onKeyDown}>
      <div class="gt-inner" style=${{ height: `${rows.length * ROW_H}px` }}>
        <${Gutter} rows=${rows} edges=${edges} first=${first} last=${last} selectedId=${selectedId} />
        <div role="list" aria-label="Steps, in dependency order, with their timeline" class="gt-rows">
          ${shown.map(
            (i) => html`<${Row}
              key=${rows[i].key}
              row=${rows[i]}
              index=${i}
              executionId=${executionId}
              selected=${rows[i].kind === 'step' && rows[i].id === selectedId}
              x=${x}
              now=${now}
              onToggle=${onToggle}
            />`,
          )}
        </div>
      </div>
    </div>
  </div>`;
});

function nodeX(row) {
  return 8 + Math.min(row.depth, MAX_DEPTH_SHOWN) * DEPTH_W + Math.min(row.lane, MAX_LANES - 1) * LANE_W;
}

/** The dependency edges and a dot per row, for the rows in view (and edges passing by). */
function Gutter({ rows, edges, first, last, selectedId }) {
  const paths = [];
  for (const edge of edges) {
    const from = Math.min(edge.from, edge.to);
    const to = Math.max(edge.from, edge.to);
    if (from > last || to < first) continue;
    const x1 = nodeX(rows[edge.from]);
    const x2 = nodeX(rows[edge.to]);
    const y1 = edge.from * ROW_H + ROW_H / 2;
    const y2 = edge.to * ROW_H + ROW_H / 2;
    const bend = y2 > y1 ? y2 - ROW_H * 0.9 : y2 + ROW_H * 0.9;
    const d = x1 === x2 ? `M${x1} ${y1}V${y2}` : `M${x1} ${y1}V${bend}C${x1} ${(bend + y2) / 2} ${x2} ${(bend + y2) / 2} ${x2} ${y2}`;
    paths.push(html`<path key=${`${edge.from}-${edge.to}`} d=${d} />`);
  }
  const dots = [];
  for (let i = first; i <= last; i += 1) {
    const row = rows[i];
    const r = row.kind === 'step' && row.id === selectedId ? 5.5 : 4;
    dots.push(
      html`<circle key=${row.key} class=${`gt-dot gt-dot-${row.status}${row.kind === 'step' ? '' : ' gt-dot-group'}`} cx=${nodeX(row)} cy=${i * ROW_H + ROW_H / 2} r=${r} />`,
    );
  }
  return html`<svg class="gt-gutter" aria-hidden="true" focusable="false" width="100%" height=${rows.length * ROW_H}>
    <g class="gt-edges">${paths}</g>
    <g>${dots}</g>
  </svg>`;
}

function stepPath(executionId, id) {
  return pathOf('executions', executionId, 'steps', id);
}

/** Counts per status, compact: the icon and the number; the word is there for screen readers. */
function Counts({ counts, of, expected }) {
  if (!counts?.length && !expected) return null;
  const total = counts.reduce((sum, [, n]) => sum + n, 0);
  return html`<span class="gt-counts" title=${counts.map(([s, n]) => `${s} ${n}`).join(', ')}
    >${html`<span class="gt-counts-of">${of}:</span>`}${counts.map(([status, n]) => html` <${StatusBadge} key=${status} status=${status} count=${n} />`)}${expected !== null &&
    expected !== undefined
      ? html` <span class="muted gt-counts-expected">(${total} of ${expected})</span>`
      : ''}</span
  >`;
}

function Row({ row, index, executionId, selected, x, now, onToggle }) {
  const style = { top: `${index * ROW_H}px` };
  const rec = row.record;
  const started = timeOf(rec?.started_at);
  const ended = timeOf(rec?.completed_at);
  const label = row.kind === 'branch' || row.kind === 'iteration' ? row.label : row.id;

  let name;
  if (row.kind === 'step') {
    name = html`<${Link} class="gt-name" to=${stepPath(executionId, row.id)} title=${row.id} aria-current=${selected ? 'true' : undefined}
      >${row.id}<//
    >`;
  } else if (row.kind === 'child') {
    name = html`<${Link} class="gt-name" to=${stepPath(row.childExecutionId, row.id)} title=${`${row.id} (child execution)`}>${row.id}<//>`;
  } else {
    name = html`<span class="gt-group-name">${label}</span>`;
  }

  const toggle = row.expandable
    ? html`<button
        type="button"
        class="gt-toggle quiet"
        aria-expanded=${row.expanded ? 'true' : 'false'}
        aria-label=${`${row.expanded ? 'Collapse' : 'Expand'} ${row.id}`}
        onClick=${() => onToggle(row.id)}
      >
        <span aria-hidden="true">${row.expanded ? '▾' : '▸'}</span>
      </button>`
    : html`<span class="gt-toggle-space"></span>`;

  const ms = rec?.duration_ms ?? (row.status === 'running' ? elapsedMs(rec?.started_at, null, now) : null);
  const dur = ms === null ? '' : duration(ms);

  const rowClass = `gt-row gt-kind-${row.kind}${selected ? ' selected' : ''}`;
  const attrs = row.kind === 'step' ? { 'data-step-id': row.id } : row.kind === 'child' ? { 'data-child-step-id': row.id } : {};
  return html`<div role="listitem" class=${rowClass} style=${style} data-row=${index} ...${attrs}>
    <span class="gt-cell-gutter"></span>
    <span class="gt-cell-name" style=${{ paddingLeft: `${row.depth * 0.9}rem` }}>${toggle}${name}</span>
    <span class="gt-cell-status"><${StatusBadge} status=${row.status} /></span>
    <span class="gt-cell-duration">${dur}</span>
    <span class="gt-cell-track"><${Track} row=${row} x=${x} now=${now} started=${started} ended=${ended} executionId=${executionId} /></span>
  </div>`;
}

function Track({ row, x, now, started, ended, executionId }) {
  const rec = row.record;
  const segments = [];
  if (rec?.attempts?.length) {
    for (const attempt of rec.attempts) {
      const a = timeOf(attempt.started_at);
      const b = timeOf(attempt.completed_at);
      if (a === null) continue;
      const exit = attempt.exit_code !== null && attempt.exit_code !== undefined ? `, exit ${attempt.exit_code}` : '';
      segments.push({ from: a, to: b ?? now, status: attempt.status, title: `attempt ${attempt.attempt}: ${attempt.status}${exit}` });
    }
    const lastEnd = timeOf(rec.attempts.at(-1)?.completed_at);
    if (row.status === 'running' && lastEnd) {
      segments.push({ from: lastEnd, to: now, status: 'running', title: `attempt ${rec.attempts.length + 1}: running` });
    }
  } else if (started !== null) {
    const end = ended ?? (row.status === 'running' ? now : started);
    segments.push({ from: started, to: end, status: row.status, title: `${row.status}, ${duration(end - started)}` });
  }

  const notes = [];
  if (row.status === 'skipped' && row.kind === 'step') notes.push(html`<span>↷ ${skipReason(rec, row.def)}</span>`);
  if (row.kind === 'branch' && row.taken === false) notes.push(html`<span>not taken</span>`);
  if (row.kind === 'step' && row.status === 'pending' && !started) {
    notes.push(html`<span class="muted">${row.deps?.length ? `waits for ${row.deps.join(', ')}` : 'not started'}</span>`);
  }
  if (rec?.attempts?.length > 1) notes.push(html`<span>${rec.attempts.length} attempts</span>`);
  if (row.countsOf) notes.push(html`<${Counts} counts=${row.counts} of=${row.countsOf} expected=${row.expected} />`);
  if (row.kind === 'step' && row.type === 'plan' && row.childExecutionId) {
    notes.push(html`<${Link} to=${pathOf('executions', row.childExecutionId)}>child execution<//>`);
  }

  // The note goes in the widest gap between the bars (before, between or after them).
  const spans = segments.map((seg) => [x(seg.from), Math.max(x(seg.to), x(seg.from) + 0.5)]).sort((p, q) => p[0] - q[0]);
  let gap = [0, 100];
  if (spans.length) {
    gap = [0, spans[0][0]];
    let reach = spans[0][1];
    for (const [from, to] of spans.slice(1)) {
      if (from - reach > gap[1] - gap[0]) gap = [reach, from];
      reach = Math.max(reach, to);
    }
    if (100 - reach > gap[1] - gap[0]) gap = [reach, 100];
  }
  const roomy = gap[1] - gap[0] >= 18;
  const noteStyle = roomy
    ? { left: gap[0] ? `calc(${gap[0]}% + 6px)` : '0', maxWidth: `calc(${gap[1] - gap[0]}% - 8px)` }
    : { left: '0' };
  const noteClass = `gt-note${roomy ? '' : ' gt-note-over'}`;
  return html`${segments.map(
      (s, i) => html`<span
        key=${i}
        class=${`gt-bar gt-bar-${s.status}`}
        title=${s.title}
        style=${{ left: `${x(s.from)}%`, width: `max(3px, ${x(s.to) - x(s.from)}%)` }}
      ></span>`,
    )}${notes.length ? html`<span class=${noteClass} style=${noteStyle}>${notes}</span>` : ''}`;
}
