/**
 * Messages on the IPC channel between the local executor and the function-job runner
 * (js-runner.ts). Types only: both sides switch over these unions exhaustively.
 *
 * A runner serves either one job and exits (`start`, see js-process.ts), or many jobs one after
 * another for the pool of warm runners (`run`, see js-pool.ts). Messages of a pooled job carry its
 * `job` number, so that a late message of a finished job cannot be taken for the next one's.
 * @module
 */
import type { JsFunction } from '@jobwire/client';
import type { EnvDiff } from '../../env-diff.js';

/** Executor → runner. */
export type ToRunner =
  /** One-shot runner: the function to run; sent once, first. Over IPC rather than argv: code may be large. */
  | { type: 'start'; fn: JsFunction }
  /**
   * Pooled runner: run the function as job `job`, in `cwd`, with exactly the environment `env`
   * (a runner's first job) or the previous job's changed by `envDiff` (every later one).
   * After it settles the runner writes `marker` to its stdout and to its stderr (so that the pool
   * knows where the job's output ends), then reports the outcome.
   */
  | ({ type: 'run'; job: number; fn: JsFunction; cwd: string; marker: string; stdin?: boolean } & ({ env: Record<string, string> } | { envDiff: EnvDiff }))
  /**
   * Pooled runner, a job run with `stdin: true` (an interactive job): bytes (base64) for its
   * `process.stdin`. The runner answers each with `stdin-taken` once its stdin has room again, so
   * the executor sends as fast as the job reads, as through a pipe.
   */
  | { type: 'stdin'; job: number; data: string }
  /** Pooled runner: the end of the job's stdin (EOF for `process.stdin`). */
  | { type: 'stdin-end'; job: number }
  /** Abort the function's AbortSignal (the job is being stopped); `job` for a pooled runner. */
  | { type: 'abort'; job?: number };

/** Runner → executor. */
export type FromRunner =
  /** The function called `progress(message)`. */
  | { type: 'progress'; message: string; job?: number }
  /**
   * The function returned; `json` is its value as JSON text, absent for `undefined`. For a
   * pooled job, `reusable` says whether the runner can take another job (see js-pool.ts).
   */
  | { type: 'result'; json?: string; job?: number; reusable?: boolean }
  /** The function threw (or could not be loaded, or its value is not JSON): message and stack. */
  | { type: 'error'; error: string; job?: number; reusable?: boolean }
  /** Pooled runner: the oldest `stdin` message not yet answered was taken into the job's stdin. */
  | { type: 'stdin-taken'; job: number };

/** True for a well-formed {@link FromRunner} message (the child is not trusted to send one). */
export function isFromRunner(message: unknown): message is FromRunner {
  if (message === null || typeof message !== 'object') return false;
  const m = message as Record<string, unknown>;
  if (m.job !== undefined && typeof m.job !== 'number') return false;
  if (m.reusable !== undefined && typeof m.reusable !== 'boolean') return false;
  switch (m.type) {
    case 'progress':
      return typeof m.message === 'string';
    case 'result':
      return m.json === undefined || typeof m.json === 'string';
    case 'error':
      return typeof m.error === 'string';
    case 'stdin-taken':
      return typeof m.job === 'number';
    default:
      return false;
  }
}
