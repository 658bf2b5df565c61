// Status as an icon AND its word, never colour alone: executions' and steps' statuses, and
// the system page's states of the server's parts and nodes.
import { html } from '../../vendor/preact-htm.js';

const ICONS = {
  created: '○',
  pending: '◌',
  running: '▶',
  paused: '‖',
  completed: '✓',
  failed: '✗',
  cancelled: '⊘',
  skipped: '↷',
  healthy: '✓',
  unhealthy: '✗',
  alive: '●',
  dead: '✗',
};

/** <span class="status status-running" data-status="running">▶ running</span> */
export function StatusBadge({ status, count }) {
  const word = String(status ?? 'unknown');
  return html`<span class=${`status status-${word}`} data-status=${word}
    ><span class="status-icon" aria-hidden="true">${ICONS[word] ?? '•'}</span> ${word}${count === undefined
      ? ''
      : html` <span class="status-count">${count}</span>`}</span
  >`;
}
