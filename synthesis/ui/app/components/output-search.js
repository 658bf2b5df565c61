// Search across every step's output, live: results per step (count and first lines), each
// line a link to that line of that step's output. Each step is searched incrementally
// (logic/output-search.js): new output costs only its own lines. What the reader types
// stays here: only the matcher, once the typing pauses, goes up to the page (for the
// output's highlights), so a keystroke redraws this box and nothing else.
import { html, useEffect, useMemo, useRef, useState } from '../../vendor/preact-htm.js';
import { displayText } from '../logic/output-lines.js';
import { makeMatcher, searchLines, splitMatches } from '../logic/output-search.js';
import { pathOf } from '../logic/routes.js';
import { Link } from '../router.js';

const STEPS_SHOWN = 50;
const SNIPPET_CHARS = 240;
const SEARCH_DELAY_MS = 150;

/** The value, once it has stopped changing for `ms`. */
function useSettled(value, ms) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

/**
 * @param {{
 *   executionId: string,
 *   onMatcher: (matcher: import('../logic/output-search.js').Matcher) => void,
 *   stepIds: string[], linesOf: (id: string) => import('../logic/output-lines.js').LineIndex,
 *   version: number,
 * }} props `onMatcher`: the settled matcher, each time it changes
 */
export function OutputSearch({ executionId, onMatcher, stepIds, linesOf, version }) {
  const [query, setQuery] = useState('');
  const [regex, setRegex] = useState(false);
  const settled = useSettled(query, SEARCH_DELAY_MS);
  const matcher = useMemo(() => makeMatcher(settled, { regex }), [settled, regex]);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) first.current = false; // the page starts with the same empty matcher
    else onMatcher(matcher);
  }, [matcher]);
  const cache = useRef(new Map());
  const results = useMemo(() => {
    if (matcher.empty || matcher.error) {
      cache.current = new Map();
      return [];
    }
    const out = [];
    const next = new Map();
    for (const id of stepIds) {
      const lines = linesOf(id);
      if (!lines || !lines.length) continue;
      const found = searchLines(lines, matcher, cache.current.get(id) || null);
      next.set(id, found.state);
      if (found.count) out.push({ id, lines, count: found.count, first: found.first });
    }
    cache.current = next;
    return out;
  }, [matcher, stepIds, version]);

  const total = results.reduce((sum, r) => sum + r.count, 0);
  let summary = '';
  if (!matcher.empty && !matcher.error) {
    summary = total
      ? `${total.toLocaleString()} ${total === 1 ? 'match' : 'matches'} in ${results.length} ${results.length === 1 ? 'step' : 'steps'}`
      : 'No matches.';
  }

  return html`<section class="os" aria-labelledby="search-heading">
    <h2 id="search-heading">Search</h2>
    <form class="os-form" role="search" onSubmit=${(e) => e.preventDefault()}>
      <div class="os-field">
        <label for="output-search">Search output</label>
        <input
          id="output-search"
          type="search"
          value=${query}
          autocomplete="off"
          spellcheck="false"
          onInput=${(e) => setQuery(e.currentTarget.value)}
        />
      </div>
      <label class="os-regex"
        ><input type="checkbox" checked=${regex} onChange=${(e) => setRegex(e.currentTarget.checked)} /> Regular expression</label
      >
    </form>
    ${matcher.error ? html`<p role="alert" class="error">${matcher.error}</p>` : ''}
    <p aria-live="polite" class="muted os-summary">${summary}</p>
    ${results.length
      ? html`<ul class="os-results">
          ${results.slice(0, STEPS_SHOWN).map(
            (r) => html`<li key=${r.id}>
              <div class="os-step">
                <${Link} to=${pathOf('executions', executionId, 'steps', r.id)}>${r.id}<//>
                <span class="muted"> ${r.count.toLocaleString()} ${r.count === 1 ? 'match' : 'matches'}</span>
              </div>
              <ol class="os-lines">
                ${r.first.map((i) => {
                  const text = displayText(r.lines.texts[i] ?? '').slice(0, SNIPPET_CHARS);
                  return html`<li key=${i}>
                    <${Link} to=${`${pathOf('executions', executionId, 'steps', r.id)}#L${i + 1}`}
                      ><span class="os-line-number">L${i + 1}</span>
                      <span class="os-text"
                        >${splitMatches(text, matcher).map((p, k) => (p.match ? html`<mark key=${k}>${p.text}</mark>` : p.text))}</span
                      ><//
                    >
                  </li>`;
                })}
              </ol>
            </li>`,
          )}
        </ul>`
      : ''}
    ${results.length > STEPS_SHOWN ? html`<p class="muted">…and ${results.length - STEPS_SHOWN} more steps with matches.</p>` : ''}
  </section>`;
}
