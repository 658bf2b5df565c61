// Previous / Next under a list, with "1–50 of 1,234"; the page lives in the URL (?page=).
import { html } from '../../vendor/preact-htm.js';
import { lastPage, PAGE_SIZE, pageOffset, rangeText } from '../logic/paging.js';
import { setQuery } from '../router.js';

/** `page` from 1; `shown` rows on it; `total` rows in all. */
export function Pager({ page, shown, total, exact, size = PAGE_SIZE }) {
  const go = (to) => setQuery({ page: to > 1 ? to : null }, { replace: false });
  const offset = pageOffset(page, size);
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" class="quiet" disabled=${page <= 1} onClick=${() => go(page - 1)}>Previous</button>
    <span class="pager-range">${rangeText(offset, shown, total, exact)}</span>
    <button type="button" class="quiet" disabled=${offset + shown >= total} onClick=${() => go(page + 1)}>Next</button>
    ${!shown && total > 0
      ? html`<button type="button" class="quiet" onClick=${() => go(lastPage(total, size))}>Last page</button>`
      : ''}
  </nav>`;
}
