/**
 * A jobwire worker (distributed mode): registers in Redis with its name, pools, slots and
 * labels, renews its liveness, takes the jobs placed on it from its BullMQ queue and runs them
 * with the local executor — through the same runner as the embedded server, with the Redis
 * store, so output, stdin and status flow through Redis to every server.
 *
 * It also does its share of the cluster's housekeeping: placement passes (after each job it
 * frees a slot), and looking for dead workers, whose jobs it settles (Lost, or queued again).
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { Queue, Worker, type Job } from 'bullmq';
import { pino, type Logger } from 'pino';
import { resolveHome } from '@jobwire/client/home';
import { LocalExecutor } from '../executors/local/index.js';
import { prepareHome } from '../home.js';
import { serializeError } from '../logging.js';
import { StopSteps, type CloseOptions, type StopReport } from '../stop.js';
import { PLACEMENT_NAME } from '../jobs/placement-names.js';
import { stopOrphans } from '../jobs/orphans.js';
import { accountPolicy } from '../jobs/run-as.js';
import { runJob, type RunnerContext } from '../jobs/runner.js';
import { sharedUser } from '../server/shared-tokens.js';
import { defaultWorkDir } from '../server/work-dir.js';
import { openRedisStore, type RedisStore } from '../store/redis/index.js';
import type { FinishFields, JobRecord, Store, StreamLog } from '../store/types.js';
import { nodeQueueName, Placer, type HandOver } from './placement.js';
import { checkLiveness, DEFAULT_LIVENESS, dropWorker, forgetOrphans, heartbeat, orphansOf, reapDeadWorkers, registerWorker, type Liveness } from './registry.js';
import { liveServerUrls } from './servers.js';

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  /** Redis URL. @defaultValue "redis://127.0.0.1:6379" */
  redis?: string;
  /** Key prefix shared with the servers. @defaultValue "jobwire:" */
  prefix?: string;
  /** Node name, unique among live workers. @defaultValue os.hostname() */
  name?: string;
  /** Pools besides `ALL` (every worker is in `ALL`). @defaultValue [] */
  pools?: string[];
  /** Jobs of the `multi` queue run at once. @defaultValue os.availableParallelism() */
  slots?: number;
  /** Free labels shown by `jobwire workers`. @defaultValue {} */
  labels?: Record<string, string>;
  /** Seconds between SIGTERM and SIGKILL when a job is cancelled. @defaultValue 5 */
  graceSeconds?: number;
  /**
   * The jobwire home: created 0700, or made private when it exists (see {@link prepareHome}).
   * @defaultValue resolveHome()
   */
  home?: string;
  /** Working directory of jobs that name none. @defaultValue `<home>-work`, beside the jobwire home (never in it) */
  workDir?: string;
  /** Server URL handed to jobs as JOBWIRE_URL. @defaultValue a live server from the registry */
  serverUrl?: string;
  /** CA file handed to jobs as JOBWIRE_CA, for servers with a certificate the system does not trust. @defaultValue undefined (jobs inherit the worker's own JOBWIRE_CA, if any) */
  caFile?: string;
  /** Heartbeat and reaping timings. @defaultValue {@link DEFAULT_LIVENESS} */
  liveness?: Partial<Liveness>;
  /** pino log level (logs go to stderr). @defaultValue "info" */
  logLevel?: string;
  /** A logger to use instead of a new one. */
  logger?: Logger;
}

/** A running worker. */
export interface WorkerHandle extends AsyncDisposable {
  readonly name: string;
  /** Random id of this worker process. */
  readonly instance: string;
  readonly pools: readonly string[];
  readonly slots: number;
  /** The worker's store. */
  readonly store: RedisStore;
  /** Ids of the jobs it is running (or about to start). */
  running(): string[];
  /**
   * Stops taking jobs, stops the running ones (they end Lost), leaves the registry. With
   * `signal`, gives up on an unanswering Redis when it aborts; resolves to what was left
   * unsettled, which is also logged.
   */
  close(options?: CloseOptions): Promise<StopReport>;
}

/** How often the worker re-checks its jobs against Redis (cancel flags, lost hand-overs). */
const CHECK_EVERY_MS = 3000;
/** A job placed on this worker but not picked up after this long is handed over again. */
const HAND_OVER_AGAIN_MS = 10_000;
/** How long a server URL found in the registry is handed to jobs before it is looked up again. */
const SERVER_URL_TTL_MS = 5000;
/** Jobs of the `unlimited` queue a worker takes at once (as the embedded dispatcher). */
const UNLIMITED_SLOTS = 256;

interface Resolved {
  redis: string;
  prefix: string;
  name: string;
  pools: string[];
  slots: number;
  labels: Record<string, string>;
  graceSeconds: number;
  workDir: string;
  /** The home to make private. */
  home: string | undefined;
  serverUrl: string | undefined;
  caFile: string | undefined;
  liveness: Liveness;
  logger: Logger;
}

function parseOptions(options: WorkerOptions): Resolved {
  const name = options.name ?? hostname().split('.')[0]!;
  if (!PLACEMENT_NAME.test(name)) throw new RangeError(`worker name ${JSON.stringify(name)}: letters, digits, ".", "_", "-" (at most 128), starting with a letter or digit`);
  const pools = options.pools ?? [];
  for (const pool of pools) if (!PLACEMENT_NAME.test(pool)) throw new RangeError(`pool ${JSON.stringify(pool)}: letters, digits, ".", "_", "-" (at most 128)`);
  const slots = options.slots ?? availableParallelism();
  if (!Number.isSafeInteger(slots) || slots < 1) throw new RangeError(`slots: a positive integer, not ${slots}`);
  const graceSeconds = options.graceSeconds ?? 5;
  if (!(graceSeconds >= 0)) throw new RangeError(`graceSeconds: a number >= 0, not ${graceSeconds}`);
  const liveness = { ...DEFAULT_LIVENESS, ...options.liveness };
  checkLiveness(liveness);
  return {
    redis: options.redis ?? 'redis://127.0.0.1:6379',
    prefix: options.prefix ?? 'jobwire:',
    name,
    pools,
    slots,
    labels: options.labels ?? {},
    graceSeconds,
    workDir: options.workDir ?? defaultWorkDir(resolveHome(options.home)),
    home: resolveHome(options.home),
    serverUrl: options.serverUrl,
    caFile: options.caFile,
    liveness,
    logger: options.logger ?? pino({ level: options.logLevel ?? 'info', base: { worker: name }, serializers: { err: serializeError } }, pino.destination(2)),
  };
}

/**
 * The store a worker hands the runner: a job that is no longer this worker's (taken for dead and
 * queued again for a retry) is neither finished nor has its output closed by it, and nothing
 * starts while the worker shuts down. Everything else goes to the Redis store as it is.
 */
function ownJobsOnly(store: RedisStore, node: string, stopping: () => boolean): Store {
  const mine = async (id: string): Promise<boolean> => {
    const [runsOn, info] = await store.redis.hmget(store.keys.job(id), 'node', 'info');
    if (info === null) return false;
    const status = (JSON.parse(info) as JobRecord).status;
    return status === 'Running' ? runsOn === node : status !== 'Queued';
  };
  // The process has exited: free its slot before the final status goes out, so a client that
  // sees the job end and submits the next one finds the node free (a preferred node included).
  const finishJob = async (id: string, fields: FinishFields): Promise<JobRecord | undefined> => {
    if (!(await mine(id))) return undefined;
    await store.scripts.run('jwReleaseJob', node, id);
    return store.finishJob(id, fields);
  };
  const closeOutput: StreamLog['closeOutput'] = async (id, final) => {
    if (await mine(id)) await store.streams.closeOutput(id, final);
  };
  // A worker that is shutting down starts nothing more (the job waits for another worker).
  const markRunning: Store['markRunning'] = async (id, fields) => (stopping() ? undefined : store.markRunning(id, fields));
  const streams = delegate(store.streams, { closeOutput });
  return delegate<Store>(store, { finishJob, markRunning, streams });
}

/** `target` with some members replaced; its own methods stay bound to it (they use private fields). */
function delegate<T extends object>(target: T, replaced: Partial<T>): T {
  return new Proxy(target, {
    get(object, property) {
      if (Object.prototype.hasOwnProperty.call(replaced, property)) return (replaced as Record<PropertyKey, unknown>)[property];
      const value: unknown = Reflect.get(object, property, object);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(object) : value;
    },
  });
}

/** Starts a worker; resolves once it is registered and taking jobs. */
export async function startWorker(options: WorkerOptions = {}): Promise<WorkerHandle> {
  const opts = parseOptions(options);
  const log = opts.logger;
  const instance = randomBytes(8).toString('hex');
  if (opts.home !== undefined) {
    const prepared = prepareHome(opts.home);
    if (prepared.tightenedFrom !== undefined) {
      log.warn({ home: opts.home, was: prepared.tightenedFrom.toString(8), now: '700' }, 'the jobwire home was open to other users; made it private (mode 0700)');
    }
  }
  mkdirSync(opts.workDir, { recursive: true });
  const store = await openRedisStore({ url: opts.redis, prefix: opts.prefix, connectionName: `jobwire:worker:${opts.name}` });
  /** Jobs whose bookkeeping failed while the worker stopped (reported by close()). */
  const unsettledJobs = new Set<string>();
  const onError = (err: unknown, jobId?: string): void => {
    if (closing && jobId !== undefined) unsettledJobs.add(jobId);
    log.error({ err, jobId }, 'worker bookkeeping failed');
  };
  const placer = new Placer(store, (err) => onError(err));
  const active = new Set<string>();
  let closing = false;

  const executor = new LocalExecutor({ multiSlots: opts.slots });
  const ctx: RunnerContext = {
    store: ownJobsOnly(store, opts.name, () => closing),
    executor,
    node: opts.name,
    graceMs: opts.graceSeconds * 1000,
    defaultCwd: opts.workDir,
    serverUrl: opts.serverUrl ?? '',
    ...(opts.caFile !== undefined ? { caFile: opts.caFile } : {}),
    // A root worker runs each user's jobs as their OS account, read from the token book the
    // servers share in Redis when the job starts (run-as.ts).
    accountFor: accountPolicy((user) => sharedUser(store, user)),
    onError: (err, jobId) => onError(err, jobId),
  };
  let serverUrlAt = 0;
  const refreshServerUrl = async (): Promise<void> => {
    if (opts.serverUrl !== undefined || (ctx.serverUrl !== '' && Date.now() - serverUrlAt < SERVER_URL_TTL_MS)) return;
    serverUrlAt = Date.now();
    const urls = await liveServerUrls(store);
    if (!urls.includes(ctx.serverUrl)) ctx.serverUrl = urls[0] ?? '';
  };

  const registration = {
    name: opts.name,
    instance,
    pools: opts.pools,
    slots: opts.slots,
    labels: opts.labels,
    host: hostname(),
    pid: process.pid,
    startedAt: new Date().toISOString(),
  };
  try {
    // Processes an earlier instance of this worker left running are stopped before this one
    // takes anything, as the embedded server does at restart (jobs/orphans.ts).
    const orphans = await orphansOf(store, opts.name);
    const outcomes = await stopOrphans(orphans, ctx.graceMs);
    for (const [jobId, outcome] of outcomes) log.warn({ jobId, processes: outcome }, 'processes an earlier instance of this worker left running');
    const previous = await registerWorker(store, registration, opts.liveness.ttlMs, outcomes);
    await forgetOrphans(store, opts.name, orphans.filter((o) => outcomes.get(o.id)?.kind !== 'runner-alive').map((o) => o.id));
    if (previous.lost.length + previous.retried.length > 0) {
      log.warn({ lost: previous.lost.map((j) => j.id), retried: previous.retried.map((j) => j.id) }, 'settled the jobs of the previous instance of this worker');
    }
    // Hand-overs to an earlier instance of this node are void (its placements were undone).
    const old = new Queue(nodeQueueName(opts.name), { connection: store.redis, prefix: store.keys.bull });
    await old.obliterate({ force: true }).finally(() => old.close());
    await refreshServerUrl();
  } catch (err) {
    await store.close();
    throw err;
  }

  /** Runs one handed-over job, if it is still this worker's to run, then frees its slot. */
  const handle = async (jobId: string): Promise<void> => {
    if (active.has(jobId)) return;
    active.add(jobId);
    try {
      const [placed] = await store.redis.hmget(store.keys.job(jobId), 'placed');
      const record = await store.getJob(jobId);
      if (record && record.status === 'Queued' && placed === opts.name && !closing) {
        await refreshServerUrl().catch(onError);
        await runJob(ctx, record);
      }
    } catch (err) {
      onError(err, jobId);
    } finally {
      active.delete(jobId);
      await store.scripts.run('jwReleaseJob', opts.name, jobId).catch((err: unknown) => onError(err, jobId));
      placer.poke();
    }
  };

  const bullWorker = new Worker<HandOver>(nodeQueueName(opts.name), (job: Job<HandOver>) => handle(job.data.jobId), {
    connection: store.redis,
    prefix: store.keys.bull,
    concurrency: opts.slots + 1 + UNLIMITED_SLOTS,
    // Liveness is jobwire's own (heartbeats and the reaper); BullMQ's stalled-job check would
    // only move a job back to this same node's queue.
    maxStalledCount: 0,
    name: `${opts.name}:${instance}`,
  });
  bullWorker.on('error', (err) => onError(err));
  await bullWorker.waitUntilReady();

  /** Stops every run of this process (their jobs are settled elsewhere, or end Lost on shutdown). */
  const stopRuns = (): void => {
    for (const id of active) store.streams.deliverLocally(id, { type: 'control', control: { type: 'cancel' } });
  };

  // Liveness: renew; when taken for dead, stop what runs (it was settled) and register again.
  let beating = false;
  const beat = async (): Promise<void> => {
    if (beating || closing) return;
    beating = true;
    try {
      if (await heartbeat(store, opts.name, instance, opts.liveness.ttlMs)) return;
      log.error('this worker was taken for dead (no heartbeat reached Redis in time); stopping its jobs and registering again');
      stopRuns();
      await registerWorker(store, registration, opts.liveness.ttlMs);
      placer.poke();
    } catch (err) {
      onError(err);
    } finally {
      beating = false;
    }
  };
  const heartbeatTimer = setInterval(() => void beat(), opts.liveness.heartbeatMs);

  // Housekeeping: dead workers, placement, and a check of this worker's own jobs.
  let lastCheck = 0;
  const housekeeping = async (): Promise<void> => {
    for (const reaped of await reapDeadWorkers(store, opts.liveness)) {
      log.warn({ node: reaped.name, lost: reaped.lost.map((j) => j.id), retried: reaped.retried.map((j) => j.id) }, 'worker stopped answering; its jobs were settled');
      await placer.dropNodeQueue(reaped.name);
    }
    placer.poke();
    if (Date.now() - lastCheck < CHECK_EVERY_MS) return;
    lastCheck = Date.now();
    for (const id of active) await store.streams.resync(id, { output: false });
    await handOverAgain();
  };
  /** Jobs placed here that no hand-over reached (a placer died in between) are handed over again. */
  const handOverAgain = async (): Promise<void> => {
    const ids = (await Promise.all(['multi', 'single', 'unlimited'].map((cls) => store.redis.smembers(store.keys.load(opts.name, cls))))).flat();
    if (ids.length === 0) return;
    // Redis's clock, which stamped placedAt: the placer may run on another machine.
    const [secondsNow, microsNow] = await store.redis.time();
    const now = Number(secondsNow) * 1000 + Math.floor(Number(microsNow) / 1000);
    const stale: Array<{ jobId: string; attempt: string }> = [];
    for (const id of ids) {
      if (active.has(id)) continue;
      const [placed, placedAt, attempt] = await store.redis.hmget(store.keys.job(id), 'placed', 'placedAt', 'attempt');
      if (placed === opts.name && now - Number(placedAt ?? 0) > HAND_OVER_AGAIN_MS) stale.push({ jobId: id, attempt: attempt ?? '1' });
      else if (placed !== opts.name) await store.scripts.run('jwReleaseJob', opts.name, id);
    }
    await placer.handOver(opts.name, stale);
  };
  let housekeepingRun: Promise<void> | undefined;
  const housekeepingTimer = setInterval(() => {
    if (housekeepingRun || closing) return;
    housekeepingRun = housekeeping()
      .catch((err: unknown) => onError(err))
      .finally(() => {
        housekeepingRun = undefined;
      });
  }, opts.liveness.reapEveryMs);
  placer.poke();
  log.info({ pools: opts.pools, slots: opts.slots }, 'worker ready');

  let closed: Promise<StopReport> | undefined;
  const close = (options: CloseOptions = {}): Promise<StopReport> =>
    (closed ??= (async () => {
      // Every step below waits for Redis; giving up drops the connections (BullMQ's own too).
      const steps = new StopSteps(options.signal, () => {
        void bullWorker.disconnect().catch(() => undefined);
        store.abandon();
      });
      closing = true;
      clearInterval(heartbeatTimer);
      clearInterval(housekeepingTimer);
      ctx.shutdownReason = `the worker ${opts.name} shut down while the job was running`;
      stopRuns();
      await steps.run('stopping the running jobs and closing the job queue', () => bullWorker.close());
      // Runs still going are stuck on Redis: their jobs' final status was not stored.
      for (const id of active) unsettledJobs.add(id);
      if (unsettledJobs.size > 0) steps.note(`the final status of job(s) ${[...unsettledJobs].join(', ')} was not stored (other workers and servers mark them Lost once this worker misses its heartbeats)`);
      await steps.run('finishing the housekeeping pass in progress', () => housekeepingRun);
      await steps.run('leaving the worker registry (other workers and servers drop it once it misses its heartbeats)', async () => {
        await dropWorker(store, opts.name, instance, ctx.shutdownReason!, true);
        await placer.dropNodeQueue(opts.name);
        placer.poke();
        await placer.idle();
      });
      await steps.run('closing the placement queues', () => placer.close());
      await steps.run('closing the store', () => store.close());
      const report = steps.report();
      if (report.unsettled.length > 0) log.warn({ unsettled: report.unsettled }, 'stopped without settling everything');
      return report;
    })());

  return {
    name: opts.name,
    instance,
    pools: opts.pools,
    slots: opts.slots,
    store,
    running: () => [...active],
    close,
    [Symbol.asyncDispose]: async () => {
      await close();
    },
  };
}
