/**
 * The embeddable job list — moi's `moi_list.init(group, div)` for any web page:
 *
 * ```html
 * <div id="jobs"></div>
 * <script src="http://127.0.0.1:7700/widget.js"></script>
 * <script>jobwire.list(document.getElementById('jobs'), { url: 'http://127.0.0.1:7700', token: TOKEN, group: 'analysis-7' });</script>
 * ```
 *
 * It draws inside a shadow root (the host page's CSS cannot touch it, nor it the page) and
 * follows the group live over the events WebSocket, which browsers open across origins, so the
 * jobwire server needs no CORS set-up. Built by vite as one classic script (`widget.js`).
 * @module
 */
import { render } from 'preact';
import { useMemo } from 'preact/hooks';
import { Client, inSubtree, type JobInfo } from '@jobwire/client';
import { StatusBadge, useNow } from './components.js';
import { formatFullTime, formatTime, jobDuration } from './format.js';
import { JobStore, useStoreVersion } from './job-store.js';
import { followEvents, type LiveState } from './follow.js';
import css from './widget.css?inline';

/** Options of {@link list}. */
export interface ListOptions {
  /** The jobwire server, e.g. `http://127.0.0.1:7700`. */
  url: string;
  /** A token of the user whose jobs to show (anyone who can read the page can read it). */
  token: string;
  /** Group whose subtree to show. @defaultValue "" (all of the user's jobs) */
  group?: string;
  /** Most jobs shown, newest first. @defaultValue 50 */
  max?: number;
  /** Link job names to their dashboard page. @defaultValue true */
  links?: boolean;
  /** Heading. @defaultValue the group path, or "Jobs" */
  title?: string;
  /** Colours. @defaultValue "auto" (the visitor's system setting) */
  theme?: 'auto' | 'light' | 'dark';
}

/** A running widget. */
export interface ListHandle {
  /** Stops following and empties the element. */
  close(): void;
}

const STATE_TEXT: Record<LiveState, string> = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', unauthorized: 'token refused', closed: 'stopped' };

function WidgetList({ store, options, state }: { store: JobStore; options: Required<ListOptions>; state: LiveState }) {
  const version = useStoreVersion(store);
  const jobs = useMemo(() => {
    const mine: JobInfo[] = [];
    for (const job of store.jobs.values()) if (inSubtree(job.group, options.group)) mine.push(job);
    mine.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    return mine;
  }, [version]);
  const now = useNow(1000, jobs.some((j) => j.status === 'Running'));
  const base = options.url.replace(/\/+$/, '');
  const shown = jobs.slice(0, options.max);
  const relative = (group: string): string => (options.group && group.startsWith(options.group) ? group.slice(options.group.length).replace(/^:/, '') : group);
  return (
    <section class={`jw jw-${options.theme}`} aria-label={options.title}>
      <header>
        <strong>{options.title}</strong>
        <span class={`jw-state jw-state-${state}`}>{STATE_TEXT[state]}</span>
      </header>
      {!store.loaded ? (
        <p class="jw-empty">Loading…</p>
      ) : shown.length === 0 ? (
        <p class="jw-empty">No jobs yet.</p>
      ) : (
        <table>
          <caption class="jw-hidden">{options.title}: jobs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Status</th>
              <th scope="col">Job</th>
              <th scope="col">Progress</th>
              <th scope="col">Started</th>
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((job) => (
              <tr key={job.id} data-job-id={job.id} data-status={job.status}>
                <td>
                  <StatusBadge status={job.status} />
                </td>
                <td class="jw-name">
                  {options.links ? (
                    <a href={`${base}/jobs/${encodeURIComponent(job.id)}`} target="_blank" rel="noopener noreferrer">
                      {job.name}
                    </a>
                  ) : (
                    job.name
                  )}
                  {relative(job.group) ? <span class="jw-group"> {relative(job.group)}</span> : null}
                </td>
                <td class="jw-progress">{job.progress ?? (job.status === 'Failed' ? job.error?.split('\n')[0] : '') ?? ''}</td>
                <td title={formatFullTime(job.startedAt ?? job.createdAt)}>{formatTime(job.startedAt ?? job.createdAt)}</td>
                <td>{jobDuration(job, now)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {jobs.length > shown.length ? <p class="jw-more">and {jobs.length - shown.length} older</p> : null}
    </section>
  );
}

/** Shows `options.group`'s jobs in `element`, live. See the module comment. */
export function list(element: HTMLElement, options: ListOptions): ListHandle {
  if (!(element instanceof HTMLElement)) throw new TypeError('jobwire.list: the first argument must be an element');
  if (!options || typeof options.url !== 'string' || typeof options.token !== 'string') throw new TypeError('jobwire.list: options need url and token (strings)');
  const group = options.group ?? '';
  const resolved: Required<ListOptions> = {
    url: new URL(options.url).origin,
    token: options.token,
    group,
    max: options.max ?? 50,
    links: options.links ?? true,
    title: options.title ?? (group || 'Jobs'),
    theme: options.theme ?? 'auto',
  };
  const root = element.shadowRoot ?? element.attachShadow({ mode: 'open' });
  root.replaceChildren();
  const style = document.createElement('style');
  style.textContent = css;
  const mount = document.createElement('div');
  root.append(style, mount);
  const store = new JobStore();
  const draw = (state: LiveState): void => render(<WidgetList store={store} options={resolved} state={state} />, mount);
  draw('connecting');
  const stop = followEvents(new Client({ url: resolved.url, token: resolved.token }), store, { group, onState: draw });
  return {
    close() {
      stop();
      render(null, mount);
      root.replaceChildren();
    },
  };
}
