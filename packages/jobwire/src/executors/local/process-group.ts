/**
 * Signals for whole process groups. Every local job leads its own process group (pipe and
 * function jobs are spawned `detached`, tty jobs are session leaders), so signalling `-pgid`
 * reaches the job and everything it started that did not move itself elsewhere.
 * @module
 */
import { groupMembers, type ProcessIdentity } from './process-identity.js';
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

/** How often {@link stopLostGroup} looks whether the group is gone. */
const GONE_POLL_MS = 50;
/**
 * How long {@link stopLostGroup} waits after SIGKILL. Only a process stuck in the kernel
 * (uninterruptible sleep) outlives SIGKILL for long; waiting for ever would keep the server
 * from starting.
 */
const AFTER_KILL_MS = 10_000;

/** What {@link stopLostGroup} did. */
export interface LostGroupStop {
  /** Pids of the group found running (none: nothing was signalled). */
  found: number[];
  /** Pids still there when it gave up waiting (normally none). */
  remaining: number[];
}

/**
 * Stops the process group of a job that nobody watches any more (its server or worker died):
 * SIGTERM to the group, SIGKILL after `graceMs`, then waits until no member is left. Only a
 * group that still is the one `leader` led is signalled (see {@link groupMembers}): a pid since
 * reused by another process is never touched.
 */
export async function stopLostGroup(leader: ProcessIdentity, graceMs: number): Promise<LostGroupStop> {
  const found = groupMembers(leader);
  if (found.length === 0) return { found, remaining: [] };
  signalGroup(leader.pid, 'SIGTERM');
  let remaining = await waitForEmpty(leader, Math.max(0, graceMs));
  if (remaining.length > 0) {
    signalGroup(leader.pid, 'SIGKILL');
    remaining = await waitForEmpty(leader, AFTER_KILL_MS);
  }
  return { found, remaining };
}

/** Polls until the group has no member or `ms` ran out; answers the members left. */
async function waitForEmpty(leader: ProcessIdentity, ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const members = groupMembers(leader);
    if (members.length === 0 || Date.now() >= deadline) return members;
    await new Promise((resolve) => setTimeout(resolve, GONE_POLL_MS));
  }
}
