/**
 * Orphaned jobs: jobs whose runner died under them — a crash, kill -9 — while their processes
 * ran on, and which nothing can follow again: the jobs a distributed-mode worker was removed
 * with (taken for dead: they were handed on or Lost, while its job host may still run them; a
 * worker restarted in time follows its jobs again instead), and, at the start of an embedded
 * server, Running jobs without an executor state (started by a jobwire before the job host; the
 * others are followed again through the host, see `backends/embedded.ts`). Nothing may run that
 * jobwire does not know about: at start-up their process groups are stopped before the jobs are
 * marked Lost and before anything else starts, so a `single` queue never runs two jobs at once.
 * @module
 */
import { stopLostGroup } from '../executors/local/process-group.js';
import { stillSame, type JobProcess } from '../executors/local/process-identity.js';
import { finalStatusOf, type JobRecord, type Store } from '../store/types.js';

/** What became of one orphaned job's processes. */
export type OrphanOutcome =
  /** Its group was still running and is gone now. */
  | { kind: 'stopped'; pids: number[] }
  /** Its group was still running and some of it outlived SIGKILL (stuck in the kernel). */
  | { kind: 'stuck'; pids: number[] }
  /** The process that ran it is still alive (another server on the same home): left alone. */
  | { kind: 'runner-alive'; runnerPid: number };

/**
 * Stops the processes of jobs whose runner is gone, all at once (SIGTERM, SIGKILL after
 * `graceMs`, then waits until each group is empty). Jobs without a recorded identity, from
 * another boot, or whose pid now names another process are never signalled and get no entry.
 * A job whose runner lives is left alone — unless `onJobHost` says it ran on a job host: its
 * runner is the host, which lives on after the worker that followed the job was removed.
 */
export async function stopOrphans(
  jobs: ReadonlyArray<{ id: string; process: JobProcess | null }>,
  graceMs: number,
  onJobHost: (jobId: string) => boolean | Promise<boolean> = () => false,
): Promise<Map<string, OrphanOutcome>> {
  const outcomes = new Map<string, OrphanOutcome>();
  await Promise.all(
    jobs.map(async ({ id, process }) => {
      if (process === null) return;
      if (stillSame(process.runner) && !(await onJobHost(id))) {
        outcomes.set(id, { kind: 'runner-alive', runnerPid: process.runner.pid });
        return;
      }
      const stop = await stopLostGroup(process.leader, graceMs);
      if (stop.remaining.length > 0) outcomes.set(id, { kind: 'stuck', pids: stop.remaining });
      else if (stop.found.length > 0) outcomes.set(id, { kind: 'stopped', pids: stop.found });
    }),
  );
  return outcomes;
}

/** What {@link loseOrphanedJobs} did. */
export interface LostJobs {
  /** The jobs now Lost. */
  lost: JobRecord[];
  /** What became of the processes of those that still had some. */
  outcomes: Map<string, OrphanOutcome>;
}

/**
 * At start-up of a server that runs jobs itself: stops the processes of every Running job (see
 * {@link stopOrphans}), then marks the jobs Lost with `reason`, extended by what became of
 * their processes.
 */
export async function loseOrphanedJobs(store: Store, reason: string, graceMs: number): Promise<LostJobs> {
  const outcomes = await stopOrphans(await store.runningJobs(), graceMs);
  const lost = await store.loseRunningJobs((job) => withOutcome(reason, outcomes.get(job.id)));
  return { lost, outcomes };
}

/**
 * Like {@link loseOrphanedJobs}, for some of the Running jobs only (those no executor can find
 * again, at the start of a server whose other jobs live on in a job host): stops their
 * processes, then marks each Lost and closes its output.
 */
export async function loseOrphans(store: Store, jobs: JobRecord[], reason: string, graceMs: number): Promise<LostJobs> {
  const outcomes = await stopOrphans(jobs, graceMs);
  const lost: JobRecord[] = [];
  for (const job of jobs) {
    const finished = await store.finishJob(job.id, { status: 'Lost', error: withOutcome(reason, outcomes.get(job.id)), endedAt: new Date().toISOString() });
    if (finished === undefined) continue;
    await store.streams.closeOutput(job.id, finalStatusOf(finished));
    lost.push(finished);
  }
  return { lost, outcomes };
}

/** `reason`, plus what happened to the job's processes when something did. */
export function withOutcome(reason: string, outcome: OrphanOutcome | undefined): string {
  switch (outcome?.kind) {
    case undefined:
      return reason;
    case 'stopped':
      return `${reason}; its processes were still running and have been stopped`;
    case 'stuck':
      return `${reason}; its processes were still running and some could not be stopped (pids ${outcome.pids.join(', ')})`;
    case 'runner-alive':
      return `${reason}; the process that ran it (pid ${outcome.runnerPid}) is still alive, so its processes were left alone`;
    default: {
      const never: never = outcome;
      return never;
    }
  }
}
