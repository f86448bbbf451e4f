/**
 * Where the page keeps its token.
 *
 * sessionStorage by default: the token of a jobwire server can run any command as the user who
 * started it, so it should live no longer than the tab that signed in. "Remember on this
 * browser" (an explicit choice on the sign-in form) also puts it in localStorage, so new tabs
 * and restarts are signed in. Both are readable by script on this origin, which serves only
 * the dashboard itself (its CSP allows no other script), so neither is weaker there; a cookie
 * would add CSRF to think about and nothing else.
 * @module
 */

const KEY = 'jobwire.token';

function storage(kind: 'session' | 'local'): Storage | undefined {
  try {
    return kind === 'session' ? window.sessionStorage : window.localStorage;
  } catch {
    // Storage disabled (privacy settings): the token then lives in memory only.
    return undefined;
  }
}

let memory: string | undefined;

/**
 * Takes the token of a sign-in link (`/?token=…`, printed by `jobwire server`) into session
 * storage and removes it from the address bar and the history entry at once, before anything
 * else runs, so it is neither bookmarked nor shared by accident.
 */
export function takeTokenFromAddress(): void {
  const url = new URL(window.location.href);
  const token = url.searchParams.get('token');
  if (token === null) return;
  url.searchParams.delete('token');
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
  if (token) saveToken(token, false);
}

/** The token of this tab (session first, then a remembered one), if any. */
export function loadToken(): string | undefined {
  return storage('session')?.getItem(KEY) ?? storage('local')?.getItem(KEY) ?? memory;
}

/** Keeps `token` for this tab, and with `remember` for this browser too. */
export function saveToken(token: string, remember: boolean): void {
  memory = token;
  storage('session')?.setItem(KEY, token);
  // A sign-in without "remember" also drops an older remembered token, so no stale one lingers.
  if (remember) storage('local')?.setItem(KEY, token);
  else storage('local')?.removeItem(KEY);
}

/** Signs out: forgets the token everywhere. */
export function forgetToken(): void {
  memory = undefined;
  storage('session')?.removeItem(KEY);
  storage('local')?.removeItem(KEY);
}
