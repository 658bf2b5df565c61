// Tags as a row of small labels (text), or a dash when there are none.
import { html } from '../../vendor/preact-htm.js';

export function Tags({ tags }) {
  if (!tags?.length) return html`<span class="muted">—</span>`;
  return html`<ul class="tags">${tags.map((t) => html`<li key=${t} class="tag">${t}</li>`)}</ul>`;
}
