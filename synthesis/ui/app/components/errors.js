// Errors as text, in a role=alert region.
import { html } from '../../vendor/preact-htm.js';

/** What went wrong, readable: the API's message and code, or a network failure. */
export function errorText(error) {
  if (!error) return '';
  const noAnswer = error.status === null || error.status === undefined || error.status === 0;
  if (error instanceof TypeError || (noAnswer && error.code === 'unavailable')) {
    return `cannot reach the server (${error.message || 'network error'})`;
  }
  const code = error.code && error.code !== 'error' ? ` (${error.code})` : '';
  const details = Array.isArray(error.details) && error.details.length
    ? `: ${error.details.map((d) => `${d.field}: ${d.message}`).join('; ')}`
    : '';
  return `${error.message || String(error)}${code}${details}`;
}

export function ErrorMessage({ error }) {
  if (!error) return null;
  return html`<p role="alert" class="error">${errorText(error)}</p>`;
}
