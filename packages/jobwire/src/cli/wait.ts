/**
 * Waiting for a job to end, with a spinner that shows its status, progress message and the time
 * waited. Used by `submit --block` and `cancel --wait`.
 * @module
 */
import { isFinal, type JobInfo, type JobwireApi } from '@jobwire/client';
import { jobwireErrorCode } from './errors.js';
import { formatDuration } from './format.js';
import { startSpinner } from './spinner.js';

/** Options of {@link waitForJob}. */
export interface WaitOptions {
  /** Give up after this many seconds; 0 or absent waits for ever. */
  timeoutSeconds?: number;
  /** What the spinner says before the status, e.g. "waiting for". @defaultValue "waiting for" */
  verb?: string;
}

/** How long one long-poll lasts while a spinner shows status (short, so the line stays fresh). */
const POLL_WITH_SPINNER_MS = 2_000;
/** How long one long-poll lasts when nobody watches (the server caps a poll at 60 s). */
const POLL_QUIET_MS = 30_000;

/**
 * Waits until the job is final or the timeout ran out, and returns its latest info (not final
 * when the timeout ran out: the caller decides what that means).
 */
export async function waitForJob(api: JobwireApi, id: string, options: WaitOptions = {}): Promise<JobInfo> {
  const started = Date.now();
  const deadline = options.timeoutSeconds ? started + options.timeoutSeconds * 1000 : Infinity;
  const verb = options.verb ?? 'waiting for';
  const spinner = startSpinner(`${verb} job ${id}`);
  const slice = spinner.active ? POLL_WITH_SPINNER_MS : POLL_QUIET_MS;
  try {
    for (;;) {
      const left = deadline - Date.now();
      let info: JobInfo;
      try {
        info = await api.waitUntilDone(id, Math.max(1, Math.min(slice, left)));
      } catch (err) {
        // An SDK may report a poll that ran out as an error instead of returning the info.
        if (jobwireErrorCode(err) !== 'timeout') throw err;
        info = await api.getJobStatus(id);
      }
      if (isFinal(info.status) || Date.now() >= deadline) return info;
      const progress = info.progress ? ` — ${info.progress}` : '';
      spinner.update(`${verb} job ${id}: ${info.status} ${formatDuration(Date.now() - started)}${progress}`);
    }
  } finally {
    spinner.stop();
  }
}
