// A value as preformatted text, cut at `limit` characters with a button for the rest: a
// 1 MiB variable laid out whole costs the page a second, for text nobody reads at once.
import { html, useState } from '../../vendor/preact-htm.js';
import { asText } from '../logic/format.js';

const LONG_TEXT_LIMIT = 4000;

/** `value`: any value (strings as they are, the rest as indented JSON); `className` for the <pre>. */
export function LongText({ value, limit = LONG_TEXT_LIMIT, className = '' }) {
  const [whole, setWhole] = useState(false);
  const text = asText(value);
  if (whole || text.length <= limit) return html`<pre class=${className}>${text}</pre>`;
  return html`<pre class=${className}>${text.slice(0, limit)}</pre>
    <button type="button" class="quiet long-text-more" onClick=${() => setWhole(true)}>
      Show all ${text.length.toLocaleString()} characters
    </button>`;
}
