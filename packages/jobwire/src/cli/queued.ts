/**
 * What `run` and `attach` say while their job waits in its queue: "queued (why)" on stderr, as a
 * spinner line with the time waited when stderr is a terminal, as one line otherwise. Nothing
 * for a job that starts within a moment, so a quick `run` prints exactly what its job prints.
 * @module
 */
import type { Attachment, JobStatusUpdate, JobwireApi } from '@jobwire/client';
import { formatDuration, printable } from './format.js';
import { startSpinner, type Spinner } from './spinner.js';

/** How long a job may be Queued before the CLI says so (a job that starts at once says nothing). */
export const QUEUED_NOTICE_DELAY_MS = 1_000;

/** Options of {@link noticeWhileQueued}. */
export interface QueuedNoticeOptions {
  jobId: string;
  /** The job's queue, named when the server gives no reason. */
  queue: string;
  /** Asked for the queue's load when the server gives no reason. */
  api: Pick<JobwireApi, 'getQueueStatus'>;
  /** @defaultValue process.stderr */
  stderr?: NodeJS.WriteStream;
}

/** A running notice; `stop` clears a drawn line and ends it (safe to call more than once). */
export interface QueuedNotice {
  /** True while the job is known to wait in its queue. */
  readonly queued: boolean;
  stop(): void;
}

/**
 * Follows `att.statusUpdates` and tells the user while the job stays Queued. Stops by itself once
 * the job runs or the attachment ends; call `stop` before anything else is written to stderr.
 */
export function noticeWhileQueued(att: Attachment, options: QueuedNoticeOptions): QueuedNotice {
  const stderr = options.stderr ?? process.stderr;
  let stopped = false;
  let latest: JobStatusUpdate | undefined;
  let since = 0;
  let spinner: Spinner | undefined;
  let printed = false;
  let timer: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let fallback: string | undefined;

  const text = (): string => `job ${options.jobId} queued (${latest?.reason ?? fallback ?? `queue ${options.queue}`})`;
  const show = async (): Promise<void> => {
    if (latest?.reason == null) fallback = await queueLoad(options);
    if (stopped || latest?.status !== 'Queued') return;
    if (stderr.isTTY) {
      spinner = startSpinner(`${text()} ${formatDuration(Date.now() - since)}`, stderr);
      ticker = setInterval(() => spinner?.update(`${text()} ${formatDuration(Date.now() - since)}`), 1_000);
      ticker.unref();
    } else if (!printed) {
      printed = true;
      stderr.write(`jobwire: ${printable(text())}\n`);
    }
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    clearInterval(ticker);
    spinner?.stop();
  };

  void (async () => {
    try {
      for await (const update of att.statusUpdates) {
        if (stopped) break;
        latest = update;
        if (update.status !== 'Queued') break;
        if (since === 0) {
          since = Date.now();
          timer = setTimeout(() => void show(), QUEUED_NOTICE_DELAY_MS);
          timer.unref();
        }
      }
    } catch {
      // The attachment failed; the session reports that.
    }
    stop();
  })();
  return {
    get queued() {
      return latest?.status === 'Queued';
    },
    stop,
  };
}

/** "a slot in queue single: 1 of 1 running, 2 queued" — what a full local queue waits for. */
async function queueLoad(options: QueuedNoticeOptions): Promise<string | undefined> {
  try {
    const [q] = await options.api.getQueueStatus(options.queue);
    if (!q) return undefined;
    if (q.limit === null) return `queue ${q.name}: ${q.running} running, ${q.queued} queued`;
    return `waiting for a slot in queue ${q.name}: ${q.running} of ${q.limit} running, ${q.queued} queued`;
  } catch {
    return undefined;
  }
}
