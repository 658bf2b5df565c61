// Pages have real URLs under /ui/ (history API): links, reloads, back and forward work.
import { html, useEffect, useState } from '../vendor/preact-htm.js';

/** Where the UI lives, e.g. "/ui/" or "/synthesis/ui/" when mounted under a prefix. */
export const UI_ROOT = `${document.documentElement.dataset.apiRoot || ''}/ui/`;

const listeners = new Set();

/** The current location relative to UI_ROOT: {path, query, hash}. */
export function currentLocation() {
  const full = window.location.pathname;
  const path = full.startsWith(UI_ROOT) ? full.slice(UI_ROOT.length) : '';
  return {
    path,
    query: new URLSearchParams(window.location.search),
    hash: window.location.hash.replace(/^#/, ''),
  };
}

/** The current path with its query and hash, relative to UI_ROOT (for `next=`). */
export function currentTarget() {
  const { path } = currentLocation();
  return path + window.location.search + window.location.hash;
}

/** The URL of a page: `to` is relative to UI_ROOT ("executions/abc?x=1"). */
export function href(to) {
  return UI_ROOT + to.replace(/^\/+/, '');
}

/** Go to a page of the UI; `replace` does not add a history entry. */
export function navigate(to, { replace = false } = {}) {
  const url = href(to);
  if (url === window.location.pathname + window.location.search + window.location.hash) return;
  if (replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  notify();
}

/** Change only the query (filters, paging) without a new history entry per keystroke. */
export function setQuery(values, { replace = true } = {}) {
  const { path, query } = currentLocation();
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined || value === null || value === '') query.delete(key);
    else query.set(key, String(value));
  }
  const search = query.toString();
  navigate(path + (search ? `?${search}` : ''), { replace });
}

function notify() {
  for (const listener of listeners) listener(currentLocation());
}

window.addEventListener('popstate', notify);

/** The current location; re-renders on every navigation. */
export function useLocation() {
  const [location, setLocation] = useState(currentLocation);
  useEffect(() => {
    listeners.add(setLocation);
    return () => listeners.delete(setLocation);
  }, []);
  return location;
}

/** A link to a page of the UI: a real <a href> (open in a new tab works), followed in place. */
export function Link({ to, children, ...rest }) {
  const onClick = (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return html`<a href=${href(to)} onClick=${onClick} ...${rest}>${children}</a>`;
}
