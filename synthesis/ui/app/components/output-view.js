// One step's output, virtualized: fixed-height rows, only the lines in view in the DOM, so
// a 1 MiB output or 100,000 lines never freezes the tab. It follows the tail until the
// reader scrolls up ("Follow" brings it back), marks stderr lines (a word and a colour),
// shows the truncation marker as text, and links every line number (#L<n>).
//
// Long lines scroll sideways instead of wrapping: a wrapped line would be taller than the
// others, and the arithmetic that places row i at i × LINE_H (what makes virtualization
// cheap and scrolling steady) needs every row the same height.
import { html, useEffect, useLayoutEffect, useRef, useState } from '../../vendor/preact-htm.js';
import { displayText, MARKER } from '../logic/output-lines.js';
import { splitMatches } from '../logic/output-search.js';
import { pathOf } from '../logic/routes.js';
import { Link } from '../router.js';
import { useViewportHeight } from './viewport.js';

export const LINE_H = 18;
const OVERSCAN = 20;
const MAX_SHOWN_CHARS = 10000; // per line in the DOM; the rest is counted, and searchable

/**
 * @param {{
 *   executionId: string, stepId: string,
 *   lines: import('../logic/output-lines.js').LineIndex, version: number,
 *   line: number|null, matcher: import('../logic/output-search.js').Matcher|null,
 *   running: boolean, live: boolean, partial?: boolean,
 * }} props `line`: the 1-based line of the URL's #L<n>; `partial`: live lines that began
 *   after the step did (the whole output shows once it ends)
 */
export function OutputView({ executionId, stepId, lines, version, line, matcher, running, live, partial = false }) {
  const scroller = useRef(null);
  const [view, setView] = useState({ top: 0, height: 400 });
  const [following, setFollowing] = useState(running && !line);
  const count = lines.length;
  const lastCount = useRef(count);

  // A new step, or a line asked for: start over.
  useEffect(() => {
    setFollowing(running && !line);
  }, [stepId]);

  useViewportHeight(scroller, setView);

  // The linked line: into the middle of the view (once it exists: output may still stream in).
  const shownLine = useRef(null);
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el || !line || line > count) return;
    const key = `${stepId}#${line}`;
    if (shownLine.current === key) return;
    shownLine.current = key;
    setFollowing(false);
    el.scrollTop = Math.max(0, (line - 1) * LINE_H - el.clientHeight / 2 + LINE_H);
    setView((v) => ({ ...v, top: el.scrollTop }));
  }, [stepId, line, count]);

  // Following: new lines scroll into view.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (following && (count !== lastCount.current || el.scrollTop + el.clientHeight < el.scrollHeight - 1)) {
      el.scrollTop = el.scrollHeight;
      setView((v) => ({ ...v, top: el.scrollTop }));
    }
    lastCount.current = count;
  }, [following, count, version]);

  const onScroll = (event) => {
    const el = event.currentTarget;
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - LINE_H;
    if (atEnd !== following) setFollowing(atEnd);
    const top = el.scrollTop;
    setView((v) => (Math.floor(v.top / LINE_H) === Math.floor(top / LINE_H) ? v : { ...v, top }));
  };

  const follow = () => {
    if (following) {
      setFollowing(false);
      return;
    }
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
    setFollowing(true);
  };

  const first = Math.max(0, Math.floor(view.top / LINE_H) - OVERSCAN);
  const last = Math.min(count - 1, Math.ceil((view.top + view.height) / LINE_H) + OVERSCAN);
  const widest = Math.min(lines.maxLength, MAX_SHOWN_CHARS + 40);
  const digits = String(Math.max(count, 1)).length;
  const rows = [];
  for (let i = first; i <= last; i += 1) {
    rows.push(html`<${Line}
      key=${i}
      index=${i}
      text=${lines.texts[i]}
      kind=${lines.kinds[i]}
      highlighted=${line === i + 1}
      matcher=${matcher}
      to=${`${pathOf('executions', executionId, 'steps', stepId)}#L${i + 1}`}
    />`);
  }

  const height = Math.min(Math.max(count, 3), 30) * LINE_H + 2;
  return html`<div class="ov">
    <div class="ov-bar">
      <span class="muted">${count.toLocaleString()} ${count === 1 ? 'line' : 'lines'}${partial ? ' since this page connected' : live ? '' : count ? ' (stored output)' : ''}</span>
      <button type="button" class="quiet ov-follow" aria-pressed=${following ? 'true' : 'false'} onClick=${follow}>Follow</button>
    </div>
    <div
      class="ov-scroll"
      ref=${scroller}
      role="log"
      aria-label=${`Output of ${stepId}`}
      aria-live=${following ? 'polite' : 'off'}
      tabindex="0"
      onScroll=${onScroll}
      style=${{ height: `min(${height}px, 60vh)`, '--digits': `${digits}ch` }}
    >
      <div class="ov-inner" style=${{ height: `${count * LINE_H}px`, minWidth: `calc(${widest}ch + ${digits + 8}ch)` }}>
        ${rows}
      </div>
    </div>
    ${count === 0 ? html`<p class="muted ov-empty">${running ? 'No output yet.' : 'No output.'}</p>` : ''}
  </div>`;
}

function Line({ index, text, kind, highlighted, matcher, to }) {
  let shown = displayText(text ?? '');
  let more = 0;
  if (shown.length > MAX_SHOWN_CHARS) {
    more = shown.length - MAX_SHOWN_CHARS;
    shown = shown.slice(0, MAX_SHOWN_CHARS);
  }
  const parts = splitMatches(shown, matcher);
  const cls = `ov-line ov-${kind}${highlighted ? ' ov-highlighted' : ''}`;
  return html`<div class=${cls} style=${{ top: `${index * LINE_H}px` }} data-line=${index + 1} aria-current=${highlighted ? 'true' : undefined}>
    <${Link} class="ov-number" to=${to} tabindex="-1" aria-label=${`Line ${index + 1}`}>${index + 1}<//>
    <span class="ov-stream">${kind === 'stderr' ? 'err' : kind === MARKER ? '…' : ''}</span>
    <span class="ov-text">${parts.map((p, i) => (p.match ? html`<mark key=${i}>${p.text}</mark>` : p.text))}${more
      ? html`<span class="ov-more"> … ${more.toLocaleString()} more characters</span>`
      : ''}</span>
  </div>`;
}
