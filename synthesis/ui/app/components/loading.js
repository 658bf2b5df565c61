// "Loading…" that does not flash: shown only when the wait lasts beyond a moment.
import { html, useEffect, useState } from '../../vendor/preact-htm.js';

const DELAY_MS = 300;

export function Loading({ text = 'Loading…' }) {
  const [shown, setShown] = useState(false);
  useEffect(() => {
    const timer = setTimeout(() => setShown(true), DELAY_MS);
    return () => clearTimeout(timer);
  }, []);
  return shown ? html`<p class="muted loading">${text}</p>` : null;
}
