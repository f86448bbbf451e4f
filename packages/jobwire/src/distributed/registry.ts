/**
 * The worker registry in Redis: registering, heartbeats, removing dead workers (the reaper),
 * and the report behind `GET /v1/workers`. The atomic steps are Lua scripts
 * (`store/redis/scripts/workers.ts`); this module decides what to do around them.
 * @module
 */
import type { JobProcess } from '../executors/local/process-identity.js';
import { withOutcome, type OrphanOutcome } from '../jobs/orphans.js';
import type { JobRecord } from '../store/types.js';
import type { RedisStore } from '../store/redis/index.js';
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
 * 1 s heartbeats, dead after 5 s of silence, looked for every second: a job of a worker killed
 * with -9 is Lost (or queued for its retry) at most about 7 s later — documented as ≤ 10 s.
 */
export const DEFAULT_LIVENESS: Liveness = { heartbeatMs: 1000, ttlMs: 5000, reapEveryMs: 1000 };

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

/** What a worker registers. */
export interface Registration {
  name: string;
  /** Random id of this worker process, so a restarted worker of the same name is told apart. */
  instance: string;
  pools: string[];
  slots: number;
  labels: Record<string, string>;
  host: string;
  pid: number;
  startedAt: string;
}

/** What happened to the jobs of a removed worker. */
export interface ReapResult {
  lost: JobRecord[];
  retried: JobRecord[];
}

/**
 * Registers a worker. A dead earlier instance of the same name is reaped first (its Running
 * jobs were in a process that no longer exists); `outcomes` says what became of the processes
 * of those jobs, for their Lost reason. Throws a ConflictError when a live worker has the name.
 */
export async function registerWorker(
  store: RedisStore,
  registration: Registration,
  ttlMs: number,
  outcomes: ReadonlyMap<string, OrphanOutcome> = new Map(),
): Promise<ReapResult> {
  const pools = [...new Set([ALL_POOL, ...registration.pools])];
  let reaped: ReapResult = { lost: [], retried: [] };
  for (let attempt = 0; attempt < 3; attempt++) {
    const reply = await store.scripts.run<string[]>(
      'jwRegisterWorker',
      registration.name,
      registration.instance,
      pools.join(','),
      registration.slots,
      JSON.stringify(registration.labels),
      registration.host,
      registration.pid,
      registration.startedAt,
      new Date().toISOString(),
      ttlMs,
    );
    if (reply[0] === 'ok') return reaped;
    const previous = await dropWorker(store, registration.name, reply[1] ?? '', `the worker ${registration.name} was restarted while the job was running`, false, outcomes);
    reaped = { lost: [...reaped.lost, ...previous.lost], retried: [...reaped.retried, ...previous.retried] };
  }
  throw new JobwireError('internal', `could not register worker ${registration.name}: its previous instance would not go`);
}

/**
 * Renews a worker's liveness. False when the registry no longer holds this instance: it was
 * taken for dead and its jobs were handed on, so the worker must stop them and register again.
 */
export async function heartbeat(store: RedisStore, name: string, instance: string, ttlMs: number): Promise<boolean> {
  return (await store.scripts.run<number>('jwHeartbeat', name, instance, ttlMs, new Date().toISOString())) === 1;
}

/**
 * Removes a worker from the registry and settles its Running jobs: each is queued again when
 * its retry policy allows another attempt, else it becomes Lost with `reason`. Jobs placed on
 * it that had not started simply wait again. `instance` '' removes whichever instance; `force`
 * removes a worker that is still alive (its own clean shutdown).
 */
export async function dropWorker(
  store: RedisStore,
  name: string,
  instance: string,
  reason: string,
  force = false,
  outcomes: ReadonlyMap<string, OrphanOutcome> = new Map(),
): Promise<ReapResult> {
  const reply = await store.scripts.run<string[] | null>('jwDropWorker', name, instance, force ? 'force' : '');
  const result: ReapResult = { lost: [], retried: [] };
  if (reply === null) return result;
  for (const id of reply.slice(1)) {
    const [retries, attempt] = await store.redis.hmget(store.keys.job(id), 'retries', 'attempt');
    const allowed = Number(retries ?? 0);
    const done = Number(attempt ?? 1);
    if (done <= allowed) {
      const again = await store.requeueJob(id, `${reason}; starting it again (attempt ${done + 1} of ${allowed + 1})`);
      if (again) {
        result.retried.push(again);
        continue;
      }
    }
    const lost = await store.loseJob(id, withOutcome(reason, outcomes.get(id)));
    if (lost) result.lost.push(lost);
  }
  return result;
}

/**
 * Jobs whose processes an earlier instance of worker `name` may have left running: its Running
 * jobs not settled yet, and those settled since it was removed (kept by `jwDropWorker`). Only
 * the worker of that name, on the machine they ran on, can stop them (see `stopOrphans`).
 */
export async function orphansOf(store: RedisStore, name: string): Promise<Array<{ id: string; process: JobProcess | null }>> {
  const orphans = new Map<string, JobProcess | null>();
  for (const [id, text] of Object.entries(await store.redis.hgetall(store.keys.orphans(name)))) {
    try {
      orphans.set(id, JSON.parse(text) as JobProcess);
    } catch {
      orphans.set(id, null);
    }
  }
  for (const job of await store.runningJobs(name)) orphans.set(job.id, job.process);
  return [...orphans].map(([id, process]) => ({ id, process }));
}

/** Forgets orphans of worker `name` that were dealt with. */
export async function forgetOrphans(store: RedisStore, name: string, ids: string[]): Promise<void> {
  if (ids.length > 0) await store.redis.hdel(store.keys.orphans(name), ...ids);
}

/** Names of registered workers whose liveness key expired. */
export async function deadWorkers(store: RedisStore): Promise<string[]> {
  const names = await store.redis.smembers(store.keys.workers);
  if (names.length === 0) return [];
  const pipeline = store.redis.pipeline();
  for (const name of names) pipeline.exists(store.keys.alive(name));
  const alive = (await pipeline.exec()) ?? [];
  return names.filter((_, i) => alive[i]?.[1] === 0);
}

/**
 * One look for dead workers: each found is removed and its jobs settled (see
 * {@link dropWorker}). A short lock per worker keeps several reapers from doing it twice.
 */
export async function reapDeadWorkers(store: RedisStore, liveness: Liveness): Promise<Array<{ name: string } & ReapResult>> {
  const reaped: Array<{ name: string } & ReapResult> = [];
  // Just after a reconnect (Redis restarted, or the network was cut) liveness keys may have run
  // out while nobody could renew them: give every worker the time to beat again first.
  if (store.connectedFor < liveness.ttlMs + liveness.heartbeatMs) return reaped;
  for (const name of await deadWorkers(store)) {
    const lock = `${store.keys.worker(name)}:reaping`;
    if ((await store.redis.set(lock, '1', 'PX', 30_000, 'NX')) !== 'OK') continue;
    try {
      const seconds = Math.round(liveness.ttlMs / 1000);
      const result = await dropWorker(store, name, '', `the worker ${name} stopped answering (no heartbeat for ${seconds} s) while the job was running`);
      reaped.push({ name, ...result });
    } finally {
      await store.redis.del(lock);
    }
  }
  return reaped;
}

/** The workers, their load and the pools' queues (`GET /v1/workers`). */
export async function workersReport(store: RedisStore): Promise<WorkersReport> {
  const keys = store.keys;
  const names = (await store.redis.smembers(keys.workers)).sort();
  const pipeline = store.redis.pipeline();
  for (const name of names) {
    pipeline
      .hgetall(keys.worker(name))
      .exists(keys.alive(name))
      .scard(keys.load(name, 'multi'))
      .scard(keys.load(name, 'single'))
      .scard(keys.load(name, 'unlimited'));
  }
  const replies = (await pipeline.exec()) ?? [];
  const items: WorkerInfo[] = [];
  names.forEach((name, i) => {
    const at = (k: number): unknown => replies[5 * i + k]?.[1];
    const fields = (at(0) ?? {}) as Record<string, string>;
    if (fields.instance === undefined) return;
    const slots = Number(fields.slots ?? 0);
    const used = Number(at(2) ?? 0);
    let labels: Record<string, string> = {};
    try {
      labels = JSON.parse(fields.labels ?? '{}') as Record<string, string>;
    } catch {
      // A worker from a future version; show it without labels.
    }
    items.push({
      name,
      alive: at(1) === 1,
      pools: (fields.pools ?? ALL_POOL).split(','),
      slots,
      used,
      free: Math.max(0, slots - used),
      single: Number(at(3) ?? 0),
      unlimited: Number(at(4) ?? 0),
      labels,
      host: fields.host ?? '',
      pid: Number(fields.pid ?? 0),
      startedAt: fields.startedAt ?? '',
      heartbeatAt: fields.heartbeatAt ?? '',
    });
  });

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
  // Waiting jobs by their first pool (a bounded look: the 10000 oldest of each set).
  for (const key of [keys.pending, keys.parked]) {
    const ids = await store.redis.zrange(key, 0, 9999);
    if (ids.length === 0) continue;
    const lookup = store.redis.pipeline();
    for (const id of ids) lookup.hget(keys.job(id), 'ppools');
    for (const [, value] of (await lookup.exec()) ?? []) {
      if (typeof value === 'string') pool(value.split(',')[0] || ALL_POOL).queued += 1;
    }
  }
  return { mode: 'distributed', items, pools: [...pools.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}
