/**
 * Signals for whole process groups. Every local job leads its own process group (pipe and
 * function jobs are spawned `detached`, tty jobs are session leaders), so signalling `-pgid`
 * reaches the job and everything it started that did not move itself elsewhere.
 * @module
 */
import { setLongTimeout, type LongTimeout } from '../../timers.js';

/**
 * Sends `signal` to every process in the group `pgid`. Returns false when the group no longer
 * exists (ESRCH) or could not be signalled; never throws, because stopping a job that has
 * already gone is not an error.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  // kill(0) and kill(-1) would hit our own group or every process we may signal: refuse.
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * The two-step stop every local process handle shares: SIGTERM to the group now, SIGKILL to the
 * group when the grace period runs out and the job has not finished.
 */
export class GroupTerminator {
  #timer: LongTimeout | undefined;
  #deadline = Number.POSITIVE_INFINITY;
  #finished = false;

  /** @param pgid - reads the group id; undefined while (or because) nothing was started. */
  constructor(private readonly pgid: () => number | undefined) {}

  /**
   * SIGTERM to the group, then SIGKILL after `graceMs` unless {@link finish} was called first.
   * A second call can only bring the SIGKILL forward, never push it back.
   */
  terminate(graceMs: number): void {
    const pgid = this.pgid();
    if (this.#finished || pgid === undefined) return;
    signalGroup(pgid, 'SIGTERM');
    const grace = Number.isFinite(graceMs) ? Math.max(0, graceMs) : 0;
    const deadline = Date.now() + grace;
    if (deadline >= this.#deadline) return;
    this.#deadline = deadline;
    this.#timer?.clear();
    // The job's own handles keep the event loop alive while it runs; this timer need not. A
    // grace period may be longer than one setTimeout can wait (--grace takes any seconds).
    this.#timer = setLongTimeout(
      () => {
        if (!this.#finished) signalGroup(pgid, 'SIGKILL');
      },
      grace,
      { unref: true },
    );
  }

  /** The job is over (exited and drained): no SIGKILL is sent after this. */
  finish(): void {
    this.#finished = true;
    this.#timer?.clear();
  }
}
