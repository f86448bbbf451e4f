/**
 * One job's page (`/jobs/ID`): what it runs, its info object, how it ended (exit code, result or
 * error), its live output and — for interactive jobs — its terminal; cancel, delete, download
 * the output, copy the CLI command that reattaches.
 * @module
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { isFinal, type Client, type JobInfo } from '@jobwire/client';
import { StatusBadge, useNow } from './components.js';
import { commandLine, exitText, formatFullTime, jobDuration } from './format.js';
import { useStoreVersion, type JobStore } from './job-store.js';
import { groupHref, navigate } from './router.js';
import { JobTerminal } from './terminal.js';
import type { Theme } from './theme.js';
import { GroupCrumbs } from './tree.js';

/** Props of {@link JobPage}. */
export interface JobPageProps {
  id: string;
  client: Client;
  store: JobStore;
  theme: Theme;
  /** Focus the terminal when it is ready (just submitted from the form). */
  focusTerminal?: boolean;
}

/** Saves bytes as a file through a temporary blob URL (the output route needs the token, so no plain link). */
function saveFile(data: Uint8Array, name: string): void {
  const href = URL.createObjectURL(new Blob([data as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 30_000);
}

/** Copies text; falls back to a selection copy where the Clipboard API is missing (plain http from another host). */
async function copyText(text: string, input: HTMLInputElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!input) return false;
    input.select();
    return document.execCommand('copy');
  }
}

function safeUrl(url: string | null): string | undefined {
  return url && /^https?:\/\//i.test(url) ? url : undefined;
}

/** See the module comment. */
export function JobPage({ id, client, store, theme, focusTerminal }: JobPageProps) {
  useStoreVersion(store);
  const live = store.jobs.get(id);
  const [fetched, setFetched] = useState<JobInfo | undefined>(undefined);
  const [loadError, setLoadError] = useState<string | undefined>(undefined);
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const [copied, setCopied] = useState(false);
  const seenLive = useRef(false);
  const cliRef = useRef<HTMLInputElement>(null);
  if (live) seenLive.current = true;

  useEffect(() => {
    setFetched(undefined);
    setLoadError(undefined);
    setActionError(undefined);
    let stale = false;
    client.getJobStatus(id).then(
      (info) => !stale && setFetched(info),
      (err: unknown) => !stale && setLoadError((err as { code?: string }).code === 'not_found' ? `There is no job ${id} (or it is not yours).` : `Cannot load the job: ${(err as Error).message}`),
    );
    return () => {
      stale = true;
    };
  }, [client, id]);

  // The info object: live from the events socket, the description from the one fetch.
  const job: JobInfo | undefined = live ? { ...live, description: fetched?.description } : fetched;
  const deleted = seenLive.current && !live && store.loaded;
  const now = useNow(1000, job?.status === 'Running');

  useEffect(() => {
    document.title = job ? `${job.name} (${job.status}) — jobwire` : 'Job — jobwire';
  }, [job?.name, job?.status]);

  if (loadError && !live) {
    return (
      <section class="job-page">
        <GroupCrumbs path="" current={false} />
        <h1>Job not found</h1>
        <p>{loadError}</p>
      </section>
    );
  }
  if (!job) return <p class="empty">Loading job…</p>;

  const final = isFinal(job.status);
  const cli = `jobwire attach --url ${window.location.origin} ${job.id}`;
  const act = async (what: () => Promise<unknown>): Promise<void> => {
    setActionError(undefined);
    try {
      await what();
    } catch (err) {
      setActionError((err as Error).message);
    }
  };
  const cancel = (): Promise<void> =>
    act(async () => {
      if (window.confirm(`Cancel job "${job.name}"? A running job gets SIGTERM, then SIGKILL.`)) await client.cancelJob(job.id);
    });
  const remove = (): Promise<void> =>
    act(async () => {
      if (!window.confirm(`Delete job "${job.name}" and its stored output? This cannot be undone.`)) return;
      await client.deleteJob(job.id);
      navigate(groupHref(job.group));
    });
  const download = (stream: 'stdout' | 'stderr'): Promise<void> =>
    act(async () => {
      const { data } = await client.readOutput(job.id, stream);
      saveFile(data, `${job.name.replace(/[^\w.-]+/g, '_')}-${job.id.slice(0, 8)}.${stream}.txt`);
    });
  const url = safeUrl(job.url);
  const how = exitText(job);
  const hasResult = job.result !== null && job.result !== undefined;

  return (
    <article class="job-page" aria-labelledby="job-title" data-job-id={job.id} data-status={job.status}>
      <GroupCrumbs path={job.group} current={false} />
      <header class="job-head">
        <h1 id="job-title">{job.name}</h1>
        <StatusBadge status={job.status} />
        {job.progress ? <span class="job-progress">{job.progress}</span> : null}
        <span class="spacer" />
        <div class="actions" role="group" aria-label="Job actions">
          {!final ? (
            <button type="button" class="danger" onClick={cancel}>
              Cancel job
            </button>
          ) : null}
          <button type="button" onClick={() => download('stdout')}>
            Download stdout
          </button>
          {!job.tty ? (
            <button type="button" onClick={() => download('stderr')}>
              Download stderr
            </button>
          ) : null}
          {final ? (
            <button type="button" class="danger" onClick={remove}>
              Delete
            </button>
          ) : null}
        </div>
      </header>
      {deleted ? (
        <p class="notice" role="alert">
          This job was deleted.
        </p>
      ) : null}
      {actionError ? (
        <p class="notice" role="alert">
          {actionError}
        </p>
      ) : null}

      <dl class="facts">
        <div>
          <dt>Command</dt>
          <dd>
            <code class="command">{commandLine(job.description) || '…'}</code>
          </dd>
        </div>
        <div class="wide">
          <dt>Id</dt>
          <dd>
            <code>{job.id}</code>
          </dd>
        </div>
        <div>
          <dt>Owner</dt>
          <dd>{job.owner}</dd>
        </div>
        <div>
          <dt>Queue</dt>
          <dd>
            {job.queue}
            {job.interactive ? (job.tty ? ' · interactive, terminal' : ' · interactive') : ''}
          </dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>{formatFullTime(job.createdAt)}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{formatFullTime(job.startedAt)}</dd>
        </div>
        <div>
          <dt>Ended</dt>
          <dd>{formatFullTime(job.endedAt)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{jobDuration(job, now) || '—'}</dd>
        </div>
        <div>
          <dt>Exit</dt>
          <dd class="exit" data-exit-code={job.exitCode ?? ''}>
            {how || (final ? '—' : 'not yet')}
          </dd>
        </div>
        {job.node ? (
          <div>
            <dt>Node</dt>
            <dd>{job.node}</dd>
          </div>
        ) : null}
        {job.description?.workingDirectory ? (
          <div>
            <dt>Directory</dt>
            <dd>
              <code>{job.description.workingDirectory}</code>
            </dd>
          </div>
        ) : null}
        {job.status === 'Queued' && job.reason ? (
          <div>
            <dt>Waiting</dt>
            <dd>{job.reason}</dd>
          </div>
        ) : null}
        {url ? (
          <div>
            <dt>Result page</dt>
            <dd>
              <a href={url} rel="noreferrer noopener" target="_blank">
                {url}
              </a>
            </dd>
          </div>
        ) : null}
      </dl>

      {job.error ? (
        <section class="outcome" aria-labelledby="error-title">
          <h2 id="error-title">Error</h2>
          <pre class="error-text">{job.error}</pre>
        </section>
      ) : null}
      {hasResult ? (
        <section class="outcome" aria-labelledby="result-title">
          <h2 id="result-title">Result</h2>
          <pre class="result-text">{JSON.stringify(job.result, null, 2)}</pre>
        </section>
      ) : null}

      <JobTerminal client={client} job={{ id: job.id, interactive: job.interactive, tty: job.tty }} theme={theme} autoFocus={focusTerminal || (job.interactive && !final)} />

      <div class="reattach">
        <label for="cli-command">Reattach from a terminal</label>
        <input id="cli-command" ref={cliRef} readOnly value={cli} onFocus={(e) => e.currentTarget.select()} />
        <button
          type="button"
          onClick={async () => {
            setCopied(await copyText(cli, cliRef.current));
            setTimeout(() => setCopied(false), 2000);
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>

      <details class="info-object">
        <summary>Info object (JSON)</summary>
        <pre>{JSON.stringify(job, null, 2)}</pre>
      </details>
    </article>
  );
}
