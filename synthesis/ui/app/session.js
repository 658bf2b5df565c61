// The signed-in token: in this tab's sessionStorage only, sent as the Authorization header
// (and as ?token= on socket URLs, by the client). One SynthesisClient serves every page.
import { SynthesisClient, SynthesisError } from '../client.js';
import { useEffect, useState } from '../vendor/preact-htm.js';
import { currentTarget, navigate } from './router.js';

const TOKEN_KEY = 'synthesis.token';

/** The API's root URL: this origin, under the prefix the server mounts Synthesis at. */
export const API_ROOT = window.location.origin + (document.documentElement.dataset.apiRoot || '');

let client = null;
let me = null; // {subject, scopes} of the token, once it is known
const listeners = new Set();

function changed() {
  for (const listener of listeners) listener(me);
}

/** The client of the signed-in token (null when signed out). */
export function api() {
  return client;
}

/** Whether this tab holds a token (not yet proved good). */
export function hasToken() {
  return Boolean(window.sessionStorage.getItem(TOKEN_KEY));
}

/**
 * Tries `token` against the server; keeps it only when it is accepted.
 * @returns {Promise<void>} rejects with a SynthesisError saying why not
 */
export async function signIn(token) {
  const candidate = new SynthesisClient(API_ROOT, { token });
  const who = await candidate.getMe();
  window.sessionStorage.setItem(TOKEN_KEY, token);
  client?.close();
  client = candidate;
  me = who;
  changed();
}

/** Re-proves the stored token after a reload; false when there is none or it is refused. */
export async function resume() {
  const token = window.sessionStorage.getItem(TOKEN_KEY);
  if (!token) return false;
  try {
    await signIn(token);
    return true;
  } catch (error) {
    if (error instanceof SynthesisError && (error.status === 401 || error.status === 403)) {
      signOut();
      return false;
    }
    throw error;
  }
}

/** Forgets the token and closes every socket. */
export function signOut() {
  window.sessionStorage.removeItem(TOKEN_KEY);
  client?.close();
  client = null;
  me = null;
  changed();
}

/** To the sign-in page, coming back here afterwards (the deep link survives). */
export function toSignIn() {
  const next = currentTarget();
  navigate(`sign-in${next && !next.startsWith('sign-in') ? `?next=${encodeURIComponent(next)}` : ''}`, {
    replace: true,
  });
}

/** An error from the API: a refused token sends the reader to sign in again. */
export function handleAuthError(error) {
  if (error instanceof SynthesisError && error.status === 401) {
    signOut();
    toSignIn();
    return true;
  }
  return false;
}

/** {me, canWrite}: the token's principal, re-rendered when it changes. */
export function useSession() {
  const [who, setWho] = useState(me);
  useEffect(() => {
    listeners.add(setWho);
    setWho(me);
    return () => listeners.delete(setWho);
  }, []);
  return { me: who, canWrite: Boolean(who?.scopes?.includes('write')) };
}
