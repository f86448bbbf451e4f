/**
 * The worker registry: registering, removing dead workers (the reaper), and the report behind
 * `GET /v1/workers`. The atomic steps are operations of the cluster store (`store/cluster.ts`;
 * Lua scripts in Redis); this module decides what to do around them.
 * @module
 */
import type { JobProcess } from '../job-process.js';
import { withOutcome, type OrphanOutcome } from '../jobs/orphans.js';
import type { ClusterStore, WorkerRegistration } from '../store/cluster.js';
import type { JobRecord } from '../store/types.js';
import { MAX_TIMER_MS } from '../timers.js';
import { JobwireError, type PoolStatus, type WorkerInfo, type WorkersReport } from '@jobwire/client';

/** The pool every worker belongs to, and the default pool of every job. */
export const ALL_POOL = 'ALL';

/** Timings of liveness; defaults in {@link DEFAULT_LIVENESS}. */
export interface Liveness {
  /** Milliseconds between a worker's heartbeats. */
  heartbeatMs: number;
  /** Milliseconds after the last heartbeat at which a worker counts as dead. */
  ttlMs: number;
  /** Milliseconds between two looks for dead workers (by every server and worker). */
  reapEveryMs: number;
}

/**
 * 1 s heartbeats, dead after 30 s of silence, looked for every second: a job of a worker killed
 * with -9 is Lost (or queued for its retry) at most about 32 s later. 30 s, not less: it is also
 * the time a restarted worker has to follow its jobs again (an upgrade, a systemd restart with
 * its back-off, a slow Node start on a loaded machine all fit), and a dead machine's batch jobs
 * waiting half a minute more costs little; the job host stops the jobs of a worker that does
 * not come back (see {@link followDeadlineFor}), so a longer wait never makes a job run twice.
 */
export const DEFAULT_LIVENESS: Liveness = { heartbeatMs: 1000, ttlMs: 30_000, reapEveryMs: 1000 };

/** Time kept between the job host's stop of a lost worker's job and the earliest hand-on: checks, the kill itself. */
const STOP_MARGIN_MS = 500;
/** The shortest follow deadline: several keep-alives of the worker (`KEEPALIVE_MS`), so a busy moment is not taken for death. */
const MIN_FOLLOW_DEADLINE_MS = 1000;

/**
 * The follow deadline a worker gives its job host for each job (host protocol version 2): the
 * host stops a job nobody has followed for `afterMs` (SIGTERM, SIGKILL after `graceMs`), so
 * that the job of a worker that is gone is over before the registry hands it on.
 *
 * The worker is heard by its host (a keep-alive every 250 ms) until it dies, at most one
 * heartbeat after its last heartbeat reached Redis; the registry hands its jobs on no sooner
 * than `ttlMs` after that heartbeat. So the stop must be done within `ttlMs - heartbeatMs` of the
 * last frame the host heard, less a margin: `afterMs + graceMs` fits in that budget, the grace
 * cut down to half of it when the job's own grace would not fit. `safe` is false when even that
 * cannot fit (a `ttlMs` of a second or two): then the stop may come after the hand-on.
 */
export function followDeadlineFor(liveness: Liveness, graceMs: number): { afterMs: number; graceMs: number; safe: boolean } {
  const budget = liveness.ttlMs - liveness.heartbeatMs - STOP_MARGIN_MS;
  const grace = Math.max(0, Math.min(graceMs, Math.floor(budget / 2)));
  const afterMs = Math.max(MIN_FOLLOW_DEADLINE_MS, budget - grace);
  return { afterMs, graceMs: grace, safe: afterMs + grace <= budget };
}

/**
 * Refuses timings that cannot work: the intervals run on `setInterval`, which turns anything
 * above {@link MAX_TIMER_MS} into 1 ms (a busy loop), and a ttl shorter than two heartbeats
 * would take live workers for dead.
 */
export function checkLiveness(liveness: Liveness): void {
  for (const key of ['heartbeatMs', 'ttlMs', 'reapEveryMs'] as const) {
    const value = liveness[key];
    if (!Number.isSafeInteger(value) || value < 1 || (key !== 'ttlMs' && value > MAX_TIMER_MS)) {
      throw new RangeError(`liveness.${key}: an integer number of ms from 1${key !== 'ttlMs' ? ` to ${MAX_TIMER_MS}` : ''}, not ${value}`);
    }
  }
  if (liveness.ttlMs < 2 * liveness.heartbeatMs) throw new RangeError('liveness: ttlMs must be at least twice heartbeatMs');
}

/** How long after a reconnect to Redis (plus a heartbeat) no worker is taken for dead. */
const RECONNECT_GRACE_MS = 5000;

/** What happened to the jobs of a removed worker. */
export interface ReapResult {
  lost: JobRecord[];
  retried: JobRecord[];
}

/** A dead worker removed by {@link reapDeadWorkers}, with what became of its jobs. */
export interface ReapedWorker extends ReapResult {
  /** Its node name. */
  name: string;
}

/**
 * Registers a worker (pools: besides `ALL`, which is added). A dead earlier instance of the same
 * name is reaped first (its Running jobs were in a process that no longer exists); `outcomes`
 * says what became of the processes of those jobs, for their Lost reason. Throws a
 * ConflictError when a live worker has the name — unless it is instance `takeOver`, an earlier
 * instance whose process is gone but whose liveness has not run out (a restart within the grace
 * time): its entry and Running jobs are taken as they are, for the new instance to follow.
 */
export async function registerWorker(
  store: ClusterStore,
  registration: WorkerRegistration,
  ttlMs: number,
  outcomes: ReadonlyMap<string, OrphanOutcome> = new Map(),
  takeOver = '',
): Promise<ReapResult> {
  const entry = { ...registration, pools: [...new Set([ALL_POOL, ...registration.pools])] };
  let reaped: ReapResult = { lost: [], retried: [] };
  for (let attempt = 0; attempt < 3; attempt++) {
    const outcome = await store.registerWorker(entry, ttlMs, takeOver);
    if (outcome.registered) return reaped;
    const previous = await dropWorker(store, registration.name, outcome.previous, `the worker ${registration.name} was restarted while the job was running`, false, outcomes);
    reaped = { lost: [...reaped.lost, ...previous.lost], retried: [...reaped.retried, ...previous.retried] };
  }
  throw new JobwireError('internal', `could not register worker ${registration.name}: its previous instance would not go`);
}

/**
 * Removes a worker from the registry and settles its Running jobs: each is queued again when
 * its retry policy allows another attempt, else it becomes Lost with `reason`. Jobs placed on
 * it that had not started simply wait again — but a job it handed to its executor's own queue
 * (Queued with an executor state: a Slurm job PENDING) is settled as a Running one: it was
 * submitted there, so placing it again as if never started could run it twice. `instance` ''
 * removes whichever instance; `force` removes a worker that is still alive (its own clean
 * shutdown).
 */
export async function dropWorker(
  store: ClusterStore,
  name: string,
  instance: string,
  reason: string,
  force = false,
  outcomes: ReadonlyMap<string, OrphanOutcome> = new Map(),
): Promise<ReapResult> {
  const dropped = await store.dropWorker(name, instance, force);
  const result: ReapResult = { lost: [], retried: [] };
  for (const id of dropped?.running ?? []) {
    const again = await store.retryJob(id, reason);
    if (again) {
      result.retried.push(again);
      continue;
    }
    const lost = await store.loseJob(id, withOutcome(reason, outcomes.get(id)));
    if (lost) result.lost.push(lost);
  }
  return result;
}

/**
 * Jobs whose processes an earlier instance of worker `name` may have left running: its Running
 * jobs not settled yet, and those settled since it was removed (kept by `dropWorker`). Only
 * the worker of that name, on the machine they ran on, can stop them (see `stopOrphans`).
 * `running` false leaves out the Running jobs (an instance taken over: they are followed again).
 */
export async function orphansOf(store: ClusterStore, name: string, running = true): Promise<Array<{ id: string; process: JobProcess | null }>> {
  const orphans = await store.orphans(name);
  if (running) for (const job of await store.runningJobs(name)) orphans.set(job.id, job.process);
  return [...orphans].map(([id, process]) => ({ id, process }));
}

/**
 * One look for dead workers: each found is removed and its jobs settled (see
 * {@link dropWorker}). A short lock per worker keeps several reapers from doing it twice.
 */
export async function reapDeadWorkers(store: ClusterStore, liveness: Liveness): Promise<ReapedWorker[]> {
  const reaped: ReapedWorker[] = [];
  // Just after a reconnect (Redis restarted, or the network was cut) liveness keys may have run
  // out while nobody could renew them: give every worker the time to beat again first (their
  // reconnect backoff is at most 2 s, then a heartbeat) — not a whole ttl, which may be long.
  if (store.connectedFor < RECONNECT_GRACE_MS + liveness.heartbeatMs) return reaped;
  for (const name of await store.deadWorkers()) {
    if (!(await store.lockReaping(name))) continue;
    try {
      // Each worker has its own ttl (--dead-after); this reaper does not know that worker's.
      const result = await dropWorker(store, name, '', `the worker ${name} stopped answering (no heartbeat within its --dead-after) while it held the job (running, or waiting in its executor's queue)`);
      reaped.push({ name, ...result });
    } finally {
      await store.unlockReaping(name);
    }
  }
  return reaped;
}

/** Waiting jobs counted per pool in `GET /v1/workers` (the oldest of each kind of wait). */
const REPORT_WAITING = 10_000;

/** The workers, their load and the pools' queues (`GET /v1/workers`). */
export async function workersReport(store: ClusterStore): Promise<WorkersReport> {
  const items: WorkerInfo[] = (await store.workers()).map((w) => ({
    name: w.name,
    alive: w.alive,
    pools: w.pools,
    slots: w.slots,
    // Jobs it holds ahead of a free slot (prefetch) are in its load too, but use no slot.
    used: Math.min(w.slots, w.load.multi),
    free: Math.max(0, w.slots - w.load.multi),
    single: w.load.single,
    unlimited: w.load.unlimited,
    labels: w.labels,
    host: w.host,
    pid: w.pid,
    startedAt: w.startedAt,
    heartbeatAt: w.heartbeatAt,
  }));
  const pools = new Map<string, PoolStatus>();
  const pool = (name: string): PoolStatus => {
    let entry = pools.get(name);
    if (!entry) pools.set(name, (entry = { name, workers: 0, slots: 0, used: 0, queued: 0 }));
    return entry;
  };
  for (const worker of items.filter((w) => w.alive)) {
    for (const name of worker.pools) {
      const entry = pool(name);
      entry.workers += 1;
      entry.slots += worker.slots;
      entry.used += worker.used;
    }
  }
  // Waiting jobs by their first pool (a bounded look).
  for (const first of await store.waitingFirstPools(REPORT_WAITING)) pool(first || ALL_POOL).queued += 1;
  return { mode: 'distributed', items, pools: [...pools.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}
