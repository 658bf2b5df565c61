// Sign in with a token; then back to where the reader was going (the deep link survives).
import { SynthesisError } from '../../client.js';
import { html, useState } from '../../vendor/preact-htm.js';
import { errorText } from '../components/errors.js';
import { safeNext } from '../logic/routes.js';
import { navigate } from '../router.js';
import { signIn } from '../session.js';

function refusal(error) {
  if (error instanceof SynthesisError && (error.status === 401 || error.status === 403)) {
    return error.status === 401
      ? 'That token was not accepted: check it and try again.'
      : 'That token was not accepted for reading: it needs the read scope.';
  }
  return `Synthesis: ${errorText(error)}`;
}

export function SignInPage({ query }) {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    const value = token.trim();
    if (!value) {
      setProblem('Enter a token: `synthesis serve` prints one at start, and keeps it in its data directory.');
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      await signIn(value);
      navigate(safeNext(query.get('next')), { replace: true });
    } catch (error) {
      setProblem(refusal(error));
      setBusy(false);
    }
  };

  return html`<main id="main" class="sign-in">
    <h1>Synthesis</h1>
    <form onSubmit=${submit} class="card" aria-describedby="sign-in-help">
      <label for="token">Token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" autofocus
        value=${token} onInput=${(e) => setToken(e.target.value)} aria-invalid=${problem ? 'true' : undefined} />
      <p id="sign-in-help" class="muted">
        The token <code>synthesis serve</code> printed at start. It stays in this tab only.
      </p>
      ${problem ? html`<p role="alert" class="error">${problem}</p>` : ''}
      <button type="submit" disabled=${busy}>Sign in</button>
    </form>
  </main>`;
}
