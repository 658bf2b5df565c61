// Boot: prove the stored token (if any), then render the page the URL names.
import { html, render, useEffect, useState } from '../vendor/preact-htm.js';
import { Shell } from './components/shell.js';
import { errorText } from './components/errors.js';
import { matchRoute } from './logic/routes.js';
import { ComparePage } from './pages/compare.js';
import { EventsPage } from './pages/events.js';
import { ExecutionPage } from './pages/execution.js';
import { ExecutionsPage } from './pages/executions.js';
import { NotFoundPage } from './pages/not-found.js';
import { PlanPage } from './pages/plan.js';
import { PlansPage } from './pages/plans.js';
import { SignInPage } from './pages/sign-in.js';
import { SystemPage } from './pages/system.js';
import { useLocation } from './router.js';
import { hasToken, resume, toSignIn, useSession } from './session.js';

const PAGES = {
  executions: [ExecutionsPage, 'executions', 'Executions'],
  execution: [ExecutionPage, 'executions', 'Execution'],
  compare: [ComparePage, 'executions', 'Compare executions'],
  plans: [PlansPage, 'plans', 'Plans'],
  plan: [PlanPage, 'plans', 'Plan'],
  events: [EventsPage, 'events', 'Events'],
  system: [SystemPage, 'system', 'System'],
  'not-found': [NotFoundPage, '', 'Not found'],
};

function App() {
  const location = useLocation();
  const { me } = useSession();
  const route = matchRoute(location.path);
  const signedIn = Boolean(me);

  useEffect(() => {
    if (route.name !== 'sign-in' && !signedIn) toSignIn();
  }, [route.name, signedIn]);

  // Focus the page's main region after navigating, for keyboard and screen reader users.
  useEffect(() => {
    if (route.name === 'sign-in') return;
    const main = document.getElementById('main');
    if (main && document.activeElement === document.body) main.focus({ preventScroll: true });
  }, [location.path]);

  if (route.name === 'sign-in') {
    document.title = 'Sign in · Synthesis';
    return html`<${SignInPage} query=${location.query} />`;
  }
  if (!signedIn) return html`<p class="booting">Signing in…</p>`;
  const [Page, section, title] = PAGES[route.name];
  document.title = `${title} · Synthesis`;
  return html`<${Shell} section=${section}>
    <${Page} params=${route.params} query=${location.query} hash=${location.hash} />
  <//>`;
}

function Boot() {
  const [state, setState] = useState(hasToken() ? 'resuming' : 'ready');
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    if (state !== 'resuming') return;
    resume()
      .then(() => setState('ready'))
      .catch((error) => {
        setProblem(error);
        setState('failed');
      });
  }, [state]);
  if (state === 'resuming') return html`<p class="booting">Signing in…</p>`;
  if (state === 'failed') {
    return html`<div class="centered">
      <p role="alert" class="error">${`Synthesis: ${errorText(problem)}`}</p>
      <button type="button" onClick=${() => setState('resuming')}>Try again</button>
    </div>`;
  }
  return html`<${App} />`;
}

const root = document.getElementById('app');
root.replaceChildren(); // the "Loading…" line goes, whatever the first page renders
render(html`<${Boot} />`, root);
