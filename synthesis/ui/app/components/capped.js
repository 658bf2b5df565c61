// Long lists cut short until the reader asks for all: 4,000 variables laid out at once cost
// the page seconds, for rows nobody reads at once.
import { html, useState } from '../../vendor/preact-htm.js';

export const LIST_LIMIT = 200;

/**
 * The items to draw, and the button that shows them all (null when all are shown).
 * @template T
 * @param {T[]} items
 * @param {string} noun what the items are, for the button ("variables")
 * @param {{limit?: number, latest?: boolean}} [options] `latest`: keep the last ones
 * @returns {[T[], unknown]}
 */
export function useCapped(items, noun, { limit = LIST_LIMIT, latest = false } = {}) {
  const [all, setAll] = useState(false);
  if (all || items.length <= limit) return [items, null];
  const shown = latest ? items.slice(-limit) : items.slice(0, limit);
  const button = html`<p class="muted capped">
    ${latest ? 'The latest' : 'The first'} ${limit.toLocaleString()} shown.
    <button type="button" class="quiet" onClick=${() => setAll(true)}>Show all ${items.length.toLocaleString()} ${noun}</button>
  </p>`;
  return [shown, button];
}
