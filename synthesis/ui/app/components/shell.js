// The frame of every signed-in page: skip link, main navigation, the live indicator.
import { html } from '../../vendor/preact-htm.js';
import { useConnectionState } from '../live.js';
import { Link, navigate } from '../router.js';
import { signOut, useSession } from '../session.js';

const LINKS = [
  ['executions', 'Executions'],
  ['plans', 'Plans'],
  ['events', 'Events'],
  ['system', 'System'],
];
const INDICATOR = { live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };

function ConnectionIndicator() {
  const state = useConnectionState();
  return html`<span role="status" class=${`connection connection-${state}`} data-connection=${state}
    ><span aria-hidden="true">${state === 'live' ? '●' : '◌'}</span> ${INDICATOR[state]}</span
  >`;
}

/** `section` is the first part of the current route ("executions", "plans", ...). */
export function Shell({ section, children }) {
  const { me, canWrite } = useSession();
  const out = () => {
    signOut();
    navigate('sign-in');
  };
  return html`
    <a class="skip-link" href="#main">Skip to content</a>
    <header class="top">
      <span class="brand">Synthesis</span>
      <nav aria-label="Main">
        <ul>
          ${LINKS.map(
            ([to, label]) =>
              html`<li><${Link} to=${to} aria-current=${section === to ? 'page' : undefined}>${label}<//></li>`,
          )}
        </ul>
      </nav>
      <span class="spacer"></span>
      <${ConnectionIndicator} />
      ${me && !canWrite ? html`<span class="badge" title="This token may read, not change">read-only</span>` : ''}
      <button type="button" class="quiet" onClick=${out}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">${children}</main>
  `;
}
