/**
 * The dashboard: sign-in, then a header (pages, connection state, New job, theme, sign out) over
 * the job tree (`/`, `/groups/PATH`), a job's page (`/jobs/ID`), or the networks (`/networks`,
 * `/networks/NAME`). One events subscription feeds
 * every view for the whole session.
 * @module
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Client, type JobInfo, type WhoAmI } from '@jobwire/client';
import { forgetToken, loadToken, saveToken } from './auth.js';
import { Link } from './components.js';
import { JobPage } from './job-page.js';
import { JobStore } from './job-store.js';
import { NetworkList, NetworkPage } from './network-page.js';
import { followEvents, type LiveState } from './follow.js';
import { jobHref, navigate, useRoute } from './router.js';
import { SubmitDialog } from './submit-form.js';
import { useTheme, type ThemePreference } from './theme.js';
import { JobTree } from './tree.js';
import type { TreeFilter } from './tree-model.js';

/** The page's server: the one that served it. */
const ORIGIN = window.location.origin;

/** See the module comment. */
export function App() {
  const [token, setToken] = useState(loadToken);
  const [message, setMessage] = useState<string | undefined>(undefined);
  if (!token) {
    return (
      <SignIn
        message={message}
        onSignedIn={(t) => {
          setMessage(undefined);
          setToken(t);
        }}
      />
    );
  }
  return (
    <Dashboard
      token={token}
      onSignOut={(why) => {
        forgetToken();
        setMessage(why);
        setToken(undefined);
      }}
    />
  );
}

/** Asks the server who a token belongs to: the user, `undefined` when refused; throws when unreachable. */
async function checkToken(token: string): Promise<WhoAmI | undefined> {
  const res = await fetch(`${ORIGIN}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status === 401) return undefined;
  if (!res.ok) throw new Error(`the server answered HTTP ${res.status}`);
  return (await res.json()) as WhoAmI;
}

function SignIn({ message, onSignedIn }: { message: string | undefined; onSignedIn(token: string): void }) {
  const [value, setValue] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | undefined>(message);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    document.title = 'Sign in — jobwire';
  }, []);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const token = value.trim();
    if (!token) return;
    setBusy(true);
    setError(undefined);
    try {
      if (await checkToken(token)) {
        saveToken(token, remember);
        onSignedIn(token);
        return;
      }
      setError('The server refused this token.');
    } catch (err) {
      setError(`Cannot reach the jobwire server: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">
          <span class="brand-mark" aria-hidden="true">
            ›_
          </span>{' '}
          Sign in to jobwire
        </h1>
        <p class="muted">
          <code>jobwire server</code> prints a sign-in link when it starts (<code>sign in: http://…/?token=…</code>): open it, or paste a token here. Tokens are listed
          by <code>jobwire token list --reveal</code> and made by <code>jobwire token create NAME</code>.
        </p>
        {error ? (
          <p class="notice" role="alert">
            {error}
          </p>
        ) : null}
        <div class="field">
          <label for="signin-token">Access token</label>
          <input id="signin-token" name="token" type="password" autoComplete="off" spellcheck={false} required value={value} onInput={(e) => setValue(e.currentTarget.value)} autoFocus />
        </div>
        <label class="check">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.currentTarget.checked)} /> Remember on this browser (otherwise until this tab closes)
        </label>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

const LIVE_TEXT: Record<LiveState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  unauthorized: 'Signed out',
  closed: 'Closed',
};

function Dashboard({ token, onSignOut }: { token: string; onSignOut(why?: string): void }) {
  const client = useMemo(() => new Client({ url: ORIGIN, token }), [token]);
  const store = useMemo(() => new JobStore(), [token]);
  const [live, setLive] = useState<LiveState>('connecting');
  const [who, setWho] = useState<WhoAmI | undefined>(undefined);
  const [filter, setFilter] = useState<TreeFilter>(() => ({ text: '', statuses: new Set() }));
  const [collapsed, setCollapsed] = useState<ReadonlySet<string>>(() => new Set());
  const [submitOpen, setSubmitOpen] = useState(false);
  const [notice, setNotice] = useState<{ text: string; job: JobInfo } | undefined>(undefined);
  const [justSubmitted, setJustSubmitted] = useState<string | undefined>(undefined);
  const [pref, setPref, theme] = useTheme();
  const route = useRoute();

  useEffect(
    () =>
      followEvents(client, store, {
        onState: (state) => {
          setLive(state);
          if (state === 'unauthorized') onSignOut('The server refused the token: sign in again.');
        },
      }),
    [client, store],
  );

  useEffect(() => {
    client.whoami().then(setWho, (err: unknown) => {
      if ((err as { code?: string }).code === 'unauthorized') onSignOut('The server refused the token: sign in again.');
    });
  }, [client]);

  useEffect(() => {
    if (route.page === 'tree') document.title = route.group ? `${route.group} — jobwire` : 'Jobs — jobwire';
  }, [route]);

  const groupPaths = useMemo(() => [...store.groups.keys()].sort(), [store.version, submitOpen]);

  let page;
  if (route.page === 'tree') {
    page = <JobTree store={store} root={route.group} filter={filter} onFilter={setFilter} collapsed={collapsed} onCollapsed={setCollapsed} />;
  } else if (route.page === 'job') {
    page = <JobPage key={route.id} id={route.id} client={client} store={store} theme={theme} focusTerminal={justSubmitted === route.id} />;
  } else if (route.page === 'networks') {
    page = <NetworkList client={client} />;
  } else if (route.page === 'network') {
    page = <NetworkPage key={route.name} name={route.name} client={client} store={store} />;
  } else {
    page = (
      <section>
        <h1>Not found</h1>
        <p>
          Nothing lives at <code>{route.path}</code>. <Link href="/">All jobs</Link>
        </p>
      </section>
    );
  }

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <Link href="/" class="brand" aria-label="jobwire: all jobs">
          <span class="brand-mark" aria-hidden="true">
            ›_
          </span>{' '}
          jobwire
        </Link>
        <nav class="topnav" aria-label="Pages">
          {/* The section is highlighted; aria-current only on the very page the link opens. */}
          <Link href="/" {...(route.page === 'tree' || route.page === 'job' ? { class: 'topnav-current' } : {})} {...(route.page === 'tree' && route.group === '' ? { 'aria-current': 'page' as const } : {})}>
            Jobs
          </Link>
          <Link href="/networks" {...(route.page === 'networks' || route.page === 'network' ? { class: 'topnav-current' } : {})} {...(route.page === 'networks' ? { 'aria-current': 'page' as const } : {})}>
            Networks
          </Link>
        </nav>
        <span class={`live live-${live}`} role="status" title="Updates from the server">
          <span class="live-dot" aria-hidden="true" />
          {LIVE_TEXT[live]}
        </span>
        <span class="spacer" />
        <button type="button" class="primary" onClick={() => setSubmitOpen(true)}>
          New job
        </button>
        <label class="theme-select">
          <span class="visually-hidden">Colour theme</span>
          <select value={pref} onChange={(e) => setPref(e.currentTarget.value as ThemePreference)}>
            <option value="system">System theme</option>
            <option value="light">Light</option>
            <option value="dark">Dark</option>
          </select>
        </label>
        {who ? (
          <span class="user" title={who.admin ? 'administrator' : undefined}>
            {who.user}
          </span>
        ) : null}
        <button type="button" onClick={() => onSignOut()}>
          Sign out
        </button>
      </header>
      {notice ? (
        <div class="toast" role="status">
          Submitted <Link href={jobHref(notice.job.id)}>{notice.text}</Link>
          <button type="button" class="link-button" aria-label="Dismiss" onClick={() => setNotice(undefined)}>
            ✕
          </button>
        </div>
      ) : null}
      <main id="main" tabIndex={-1}>
        {page}
      </main>
      <SubmitDialog
        client={client}
        open={submitOpen}
        onClose={() => setSubmitOpen(false)}
        defaultGroup={route.page === 'tree' ? route.group : ''}
        groups={groupPaths}
        onSubmitted={(job) => {
          if (job.interactive) {
            setJustSubmitted(job.id);
            navigate(jobHref(job.id));
          } else {
            setNotice({ text: `${job.name} (${job.id.slice(0, 8)})`, job });
          }
        }}
      />
    </>
  );
}

