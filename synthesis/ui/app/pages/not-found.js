// A URL under /ui/ that names no page.
import { html } from '../../vendor/preact-htm.js';
import { Link } from '../router.js';

export function NotFoundPage() {
  return html`<h1>Not found</h1>
    <p>No page of Synthesis has this address. <${Link} to="executions">See the executions<//>.</p>`;
}
