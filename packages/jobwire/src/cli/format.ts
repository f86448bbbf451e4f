/**
 * Text the CLI prints: moi's `key : value` info block, the one-line summary, tables, timestamps
 * and durations. Pure functions of their input (the clock and time zone are parameters), so the
 * tests can pin the exact text.
 * @module
 */
import type { ExecutorInfo, GroupInfo, JobInfo, QueueStatus } from '@jobwire/client';

/** How timestamps are shown. */
export interface TimeOptions {
  /** `local` (the user's zone) or `utc`. @defaultValue "local" */
  timeZone?: 'local' | 'utc';
  /** "Now", for the runtime of a job that is still running. @defaultValue new Date() */
  now?: Date;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** `2015-06-01 15:46:49.977` from an ISO timestamp; `-` for null; the input itself when it is not a date. */
export function formatTimestamp(iso: string | null | undefined, options: TimeOptions = {}): string {
  if (iso === null || iso === undefined || iso === '') return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return printable(iso);
  const utc = options.timeZone === 'utc';
  const [y, mo, day, h, mi, s, ms] = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
  return `${y}-${pad2(mo)}-${pad2(day)} ${pad2(h)}:${pad2(mi)}:${pad2(s)}.${String(ms).padStart(3, '0')}`;
}

/**
 * A duration for humans: `850ms`, `12.3s`, `4m 05s`, `2h 03m`, `3d 04h`. Negative or non-finite
 * input (clock skew between machines) shows as `0ms`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  if (ms < 1000) return `${Math.floor(ms)}ms`;
  if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad2(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad2(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d ${pad2(Math.floor((s % 86_400) / 3600))}h`;
}

/** Run time of a job that started: until it ended, or until `now` while it runs. */
export function jobRuntime(info: Pick<JobInfo, 'startedAt' | 'endedAt'>, now: Date = new Date()): number | undefined {
  if (!info.startedAt) return undefined;
  const start = Date.parse(info.startedAt);
  const end = info.endedAt ? Date.parse(info.endedAt) : now.getTime();
  if (Number.isNaN(start) || Number.isNaN(end)) return undefined;
  return end - start;
}

/**
 * Makes text from a job safe to print on a terminal: control characters other than newline and
 * tab (escape sequences a job could use to rewrite the screen) are shown as `\u001b`.
 */
export function printable(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The header line of an info block, as moi prints it. */
export function blockHeader(id: string): string {
  return `********** ${id} **********`;
}

/** A job's result as one line of JSON; `-` when there is none. */
export function formatResult(result: unknown): string {
  if (result === null || result === undefined) return '-';
  try {
    return JSON.stringify(result) ?? String(result);
  } catch {
    return String(result);
  }
}

/** One `key : value` line; lines after the first of a multi-line value are indented by two spaces. */
export function keyValue(key: string, value: string | number | null | undefined): string {
  const text = value === null || value === undefined || value === '' ? '-' : printable(String(value));
  return `${key} : ${text.split('\n').join('\n  ')}`;
}

/**
 * moi's info block: the header line, then `key : value` lines (id, name, group, owner, status,
 * queue, node, progress, created, started, ended, runtime, exit code, signal, error, result,
 * url; `reason` while a job waits for a known reason). `-` stands for "none". No trailing newline.
 */
export function formatInfoBlock(info: JobInfo, options: TimeOptions = {}): string {
  const runtime = jobRuntime(info, options.now);
  const lines = [
    blockHeader(info.id),
    keyValue('id', info.id),
    keyValue('name', info.name),
    keyValue('group', info.group),
    keyValue('owner', info.owner),
    keyValue('status', info.status),
    keyValue('queue', info.queue),
    keyValue('node', info.node),
    keyValue('progress', info.progress),
    keyValue('created', formatTimestamp(info.createdAt, options)),
    keyValue('started', formatTimestamp(info.startedAt, options)),
    keyValue('ended', formatTimestamp(info.endedAt, options)),
  ];
  if (runtime !== undefined) lines.push(keyValue('runtime', formatDuration(runtime)));
  lines.push(
    keyValue('exit code', info.exitCode),
    keyValue('signal', info.signal),
    keyValue('error', info.error),
    keyValue('result', formatResult(info.result)),
    keyValue('url', info.url),
  );
  if (info.status === 'Queued' && info.reason) lines.push(keyValue('reason', info.reason));
  return lines.join('\n');
}

/** Info blocks separated by blank lines (moi's `userjobs`). No trailing newline. */
export function formatInfoBlocks(infos: readonly JobInfo[], options: TimeOptions = {}): string {
  return infos.map((info) => formatInfoBlock(info, options)).join('\n\n');
}

/** moi's `--summary` line: `date: ...    id: ...    status: ...    name: ...`. */
export function formatSummaryLine(info: JobInfo, options: TimeOptions = {}): string {
  return [
    `date: ${formatTimestamp(info.createdAt, options)}`,
    `id: ${info.id}`,
    `status: ${info.status}`,
    `name: ${printable(info.name).replace(/\n/g, ' ')}`,
  ].join('    ');
}

/** Jobs oldest first: by creation time, then id (the server's order, kept when pages are joined). */
export function sortJobsByDate<T extends Pick<JobInfo, 'createdAt' | 'id'>>(jobs: readonly T[]): T[] {
  return [...jobs].sort((a, b) => {
    const d = Date.parse(a.createdAt) - Date.parse(b.createdAt);
    if (d !== 0 && !Number.isNaN(d)) return d;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
}

/**
 * A plain text table: a header row, columns left-aligned and separated by two spaces, no
 * trailing spaces. No trailing newline.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [headers, ...rows].map((row) => headers.map((_, i) => printable(row[i] ?? '').replace(/\n/g, ' ')));
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `jobwire queues` table. */
export function formatQueues(queues: readonly QueueStatus[]): string {
  return formatTable(
    ['QUEUE', 'LIMIT', 'RUNNING', 'QUEUED'],
    queues.map((q) => [q.name, q.limit === null ? 'unlimited' : String(q.limit), String(q.running), String(q.queued)]),
  );
}

/** `jobwire executors` table: one row per executor, the reason it is not connected last. */
export function formatExecutors(executors: readonly ExecutorInfo[]): string {
  return formatTable(
    ['NAME', 'URL', 'STATE', 'QUEUES', 'REASON'],
    executors.map((e) => [e.name, e.url, e.state, e.queues.map((q) => q.name).join(','), e.reason ?? '']),
  );
}

/** `jobwire queues --executor NAME` table: one executor's queues and their limits. */
export function formatExecutorQueues(executor: ExecutorInfo): string {
  return formatTable(
    ['QUEUE', 'LIMIT'],
    executor.queues.map((q) => [q.name, q.limit === null ? 'unlimited' : String(q.limit)]),
  );
}

/** `jobwire groups` table, sorted by path so a subtree reads as a tree. */
export function formatGroups(groups: readonly GroupInfo[], options: TimeOptions = {}): string {
  const sorted = [...groups].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return formatTable(
    ['GROUP', 'CREATED'],
    sorted.map((g) => [g.path, formatTimestamp(g.createdAt, options)]),
  );
}

/** JSON for `--json`: two-space indented. */
export function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
