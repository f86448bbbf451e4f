/**
 * A jobwire worker (distributed mode): registers in the cluster store (Redis) with its name,
 * pools, slots and labels, renews its liveness, takes the jobs handed over to it and runs them
 * on the job host of its home (`host/`), which spawns them and holds their pipes, as the
 * embedded server does — through the same runner, with the Redis store, so output, stdin and
 * status flow through Redis to every server (the host hands the worker each chunk to append:
 * `storesOutput: false`). It talks to the store
 * through the cluster store's named operations only (`store/cluster.ts`).
 *
 * It also does its share of the cluster's housekeeping: placement passes (after each job it
 * frees a slot), and looking for dead workers, whose jobs it settles (Lost, or queued again).
 * @module
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { pino, type Logger } from 'pino';
import { ConflictError } from '@jobwire/client';
import { resolveHome } from '@jobwire/client/home';
import { SharedUsers } from '../auth/shared-tokens.js';
import { LocalExecutor } from '../executors/local/index.js';
import { executorFromUrl, SshConnections } from '../executors/registry.js';
import type { Executor, ExecutorState } from '../executors/types.js';
import { HostExecutor } from '../host/index.js';
import type { SshConnectionOptions } from '../executors/ssh/connection.js';
import { UNLIMITED_AT_ONCE } from '../executors/types.js';
import { prepareHome } from '../home.js';
import { emitSafely, lostEvent, type JobwireEventMap } from '../jobs/events.js';
import { stopOrphans } from '../jobs/orphans.js';
import { PLACEMENT_NAME } from '../jobs/placement-names.js';
import { accountPolicy } from '../jobs/run-as.js';
import { runJob, type RunnerContext } from '../jobs/runner.js';
import { serializeError } from '../logging.js';
import { StopSteps, type CloseOptions, type StopReport } from '../stop.js';
import type { ClusterStore } from '../store/cluster.js';
import { openRedisStore } from '../store/index.js';
import { type FinishFields, type JobRecord, type StreamSizes } from '../store/types.js';
import { defaultWorkDir } from '../work-dir.js';
import { Housekeeping, reapedEvent, reportReaped } from './housekeeping.js';
import { Placer } from './placement.js';
import { checkLiveness, DEFAULT_LIVENESS, dropWorker, followDeadlineFor, orphansOf, registerWorker, type Liveness } from './registry.js';

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
  /**
   * `multi` jobs the cluster may place on this worker beyond its slots, while no worker they may
   * go to has a free slot: it holds them and starts each the moment one of its slots frees,
   * without the round trips of a placement in between (they dominate the time between two short
   * jobs). A held job
   * waits for this worker even if another frees a slot first; 0 turns it off.
   * @defaultValue `slots`
   */
  prefetch?: number;
  /**
   * Where this worker runs its jobs: an executor URL (`ssh://[user@]host[:port]`, ...; see
   * docs/executors.md), so a worker feeds a remote host or cluster. @defaultValue this machine (`local:`)
   */
  executor?: string;
  /** How an ssh executor authenticates and checks host keys. @defaultValue agent, `~/.ssh/id_*`, `~/.ssh/known_hosts` */
  ssh?: SshConnectionOptions;
  /** Free labels shown by `jobwire workers`. @defaultValue {} */
  labels?: Record<string, string>;
  /** Seconds between SIGTERM and SIGKILL when a job is cancelled. @defaultValue 5 */
  graceSeconds?: number;
  /**
   * The jobwire home: created 0700, or made private when it exists (see {@link prepareHome}); its
   * job host (`<home>/host.sock`) runs the local jobs.
   * @defaultValue resolveHome()
   */
  home?: string;
  /** Working directory of jobs that name none. @defaultValue `<home>-work`, beside the jobwire home (never in it) */
  workDir?: string;
  /** Server URL handed to jobs as JOBWIRE_URL. @defaultValue a live server from the registry */
  serverUrl?: string;
  /** CA file handed to jobs as JOBWIRE_CA, for servers with a certificate the system does not trust. @defaultValue undefined (jobs inherit the worker's own JOBWIRE_CA, if any) */
  caFile?: string;
  /**
   * Heartbeat and reaping timings. `ttlMs` also bounds the grace time of a restart: a worker
   * started again (same name, same home) before its previous instance's liveness ran out follows
   * that instance's running jobs again — those its job host still runs: the host stops the jobs
   * no worker has followed for the follow deadline (`followDeadlineFor`: `ttlMs` less a
   * heartbeat, half a second and the stop's grace), so that none runs on once it is handed on.
   * @defaultValue {@link DEFAULT_LIVENESS}
   */
  liveness?: Partial<Liveness>;
  /**
   * Whether `close()` leaves the jobs running on the job host (their slots stay taken, their jobs
   * Running) for the next instance to follow again within the grace time (the job host's follow
   * deadline, a little under `liveness.ttlMs`: after it the host stops them);
   * false stops them (they end Lost). Only for local jobs: with `executor`, they are stopped.
   * @defaultValue true
   */
  keepJobs?: boolean;
  /** pino log level (logs go to stderr). @defaultValue "info" */
  logLevel?: string;
  /** A logger to use instead of a new one. */
  logger?: Logger;
  /**
   * Where the worker's events go; pass your own to hear those of the start (`job:lost` of jobs a
   * previous instance left, `worker:ready`). @defaultValue a new emitter (see {@link WorkerHandle.events})
   */
  events?: EventEmitter<WorkerEventMap>;
}

/** Events of a worker ({@link WorkerHandle.events}): the shared ones plus its lifecycle. */
export interface WorkerEventMap extends JobwireEventMap {
  /** Registered and taking jobs (emitted before `startWorker` resolves). */
  'worker:ready': [{ name: string; instance: string }];
  /** The registry no longer held this instance (it was taken for dead): its runs are stopped and it registers again. */
  'worker:taken-for-dead': [{ name: string; instance: string }];
  /**
   * `close()` began: no job is taken any more; running ones are left on the job host
   * ({@link WorkerOptions.keepJobs}), or stopped and end Lost with `reason`.
   */
  'worker:stopping': [{ reason: string }];
  /** `close()` ended; `report` lists what was left unsettled. */
  'worker:stopped': [{ report: StopReport }];
}

/** A running worker. */
export interface WorkerHandle extends AsyncDisposable {
  readonly name: string;
  /** Random id of this worker process. */
  readonly instance: string;
  readonly pools: readonly string[];
  readonly slots: number;
  /** The worker's store. */
  readonly store: ClusterStore;
  /** The worker's events: {@link WorkerEventMap}. */
  readonly events: EventEmitter<WorkerEventMap>;
  /** Ids of the jobs it is running (or about to start). */
  running(): string[];
  /**
   * Stops taking jobs and stops the running ones (they end Lost) and leaves the registry — or,
   * with {@link WorkerOptions.keepJobs}, leaves them running on the job host and the registry
   * entry in place, for the next instance to take over within the grace time. With
   * `signal`, gives up on an unanswering Redis when it aborts; resolves to what was left
   * unsettled, which is also logged.
   */
  close(options?: CloseOptions): Promise<StopReport>;
}

/** How often the worker re-checks its jobs against Redis (cancel flags, lost hand-overs). */
const CHECK_EVERY_MS = 3000;
/** A job placed on this worker but not picked up after this long is handed over again. */
const HAND_OVER_AGAIN_MS = 10_000;
/** A job held ahead of a free slot gets a wait reason after this long (as placement's patience). */
const HELD_REASON_AFTER_MS = 1000;
/** How long a server URL found in the registry is handed to jobs before it is looked up again. */
const SERVER_URL_TTL_MS = 5000;

interface Resolved {
  redis: string;
  prefix: string;
  name: string;
  pools: string[];
  slots: number;
  prefetch: number;
  labels: Record<string, string>;
  graceSeconds: number;
  workDir: string;
  /** The home: made private; its job host runs the local jobs. */
  home: string;
  serverUrl: string | undefined;
  caFile: string | undefined;
  liveness: Liveness;
  logger: Logger;
  events: EventEmitter<WorkerEventMap>;
}

function parseOptions(options: WorkerOptions): Resolved {
  const name = options.name ?? hostname().split('.')[0]!;
  if (!PLACEMENT_NAME.test(name)) throw new RangeError(`worker name ${JSON.stringify(name)}: letters, digits, ".", "_", "-" (at most 128), starting with a letter or digit`);
  const pools = options.pools ?? [];
  for (const pool of pools) if (!PLACEMENT_NAME.test(pool)) throw new RangeError(`pool ${JSON.stringify(pool)}: letters, digits, ".", "_", "-" (at most 128)`);
  const slots = options.slots ?? availableParallelism();
  if (!Number.isSafeInteger(slots) || slots < 1) throw new RangeError(`slots: a positive integer, not ${slots}`);
  const prefetch = options.prefetch ?? slots;
  if (!Number.isSafeInteger(prefetch) || prefetch < 0) throw new RangeError(`prefetch: an integer >= 0, not ${prefetch}`);
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
    prefetch,
    labels: options.labels ?? {},
    graceSeconds,
    workDir: options.workDir ?? defaultWorkDir(resolveHome(options.home)),
    home: resolveHome(options.home),
    serverUrl: options.serverUrl,
    caFile: options.caFile,
    liveness,
    events: options.events ?? new EventEmitter<WorkerEventMap>(),
    logger: options.logger ?? pino({ level: options.logLevel ?? 'info', base: { worker: name }, serializers: { err: serializeError } }, pino.destination(2)),
  };
}


/**
 * The instance of worker `name` this process may take over: the registered one when it is alive
 * (within its grace time) but its process, on this machine, is gone; '' when there is none.
 * Throws a ConflictError when that worker still runs (here or on another machine), before
 * anything of its jobs is touched.
 */
async function instanceToTakeOver(store: ClusterStore, name: string): Promise<string> {
  const entry = (await store.workers()).find((w) => w.name === name);
  if (entry === undefined || !entry.alive) return '';
  if (entry.host !== hostname() || (entry.pid !== process.pid && processExists(entry.pid))) {
    throw new ConflictError(`a worker named ${name} is running already (pid ${entry.pid} on ${entry.host}); pick another --name`);
  }
  return entry.instance;
}

/** Whether a process of that pid exists (one of another user's counts). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Starts a worker; resolves once it is registered and taking jobs. */
export async function startWorker(options: WorkerOptions = {}): Promise<WorkerHandle> {
  const opts = parseOptions(options);
  const log = opts.logger;
  const events = opts.events;
  const instance = randomBytes(8).toString('hex');
  const prepared = prepareHome(opts.home);
  if (prepared.tightenedFrom !== undefined) {
    log.warn({ home: opts.home, was: prepared.tightenedFrom.toString(8), now: '700' }, 'the jobwire home was open to other users; made it private (mode 0700)');
  }
  mkdirSync(opts.workDir, { recursive: true });
  const store = await openRedisStore({ url: opts.redis, prefix: opts.prefix, connectionName: `jobwire:worker:${opts.name}` });
  /** Jobs whose bookkeeping failed while the worker stopped (reported by close()). */
  const unsettledJobs = new Set<string>();
  const onError = (err: unknown, jobId?: string): void => {
    if (closing && jobId !== undefined) unsettledJobs.add(jobId);
    log.error({ err, jobId }, 'worker bookkeeping failed');
    if (jobId !== undefined) emitSafely(events, 'runner:error', { error: err, jobId });
    else emitSafely(events, 'housekeeping:error', { error: err });
  };
  const lost = (jobs: readonly JobRecord[]): void => {
    for (const job of jobs) emitSafely(events, 'job:lost', lostEvent(job));
  };
  const placer = new Placer(store, (err) => onError(err));
  /** This worker's `multi` slots: held by the runs of multi jobs, waited for by jobs placed ahead. */
  const multiSlots = new SlotGate(opts.slots);
  /** Runs in hand: job id → what stops that run alone (the worker was taken for dead). */
  const active = new Map<string, AbortController>();
  /** Runs whose end was stored by finishRun, which also freed their slot. */
  const settled = new Set<string>();
  let closing = false;
  /** Aborts when the worker shuts down; its reason is the error of the jobs it stops. */
  const shutdown = new AbortController();

  const connections = new SshConnections(options.ssh);
  const sharedUsers = new SharedUsers(store);
  // A job of this worker must not run on once the cluster takes the worker for dead and hands
  // the job on: the host stops the jobs nobody follows for a deadline that ends before that.
  const deadline = followDeadlineFor(opts.liveness, opts.graceSeconds * 1000);
  // Local jobs run on the home's job host (the worker never spawns them); the host hands each
  // chunk of output over for the Redis stream log.
  const host =
    options.executor === undefined || options.executor === 'local:'
      ? new HostExecutor({
          home: opts.home,
          local: new LocalExecutor({ multiSlots: opts.slots }),
          graceMs: opts.graceSeconds * 1000,
          storesOutput: false,
          followDeadline: { afterMs: deadline.afterMs, graceMs: deadline.graceMs },
          onError: (err, jobId) => log.warn({ err, jobId }, 'job host'),
        })
      : undefined;
  if (host !== undefined && !deadline.safe) {
    log.warn(
      { deadAfterMs: opts.liveness.ttlMs, followDeadlineMs: deadline.afterMs, stopGraceMs: deadline.graceMs },
      'the liveness ttl (--dead-after) is too short for the job host to stop the jobs of a lost worker before they are handed on: a retried job may briefly run twice',
    );
  }
  /** A stop leaves the local jobs running on the host (see WorkerOptions.keepJobs). */
  const keepJobs = host !== undefined && (options.keepJobs ?? true);
  /** Runs this stop left running on the host: their jobs stay Running, their slots taken. */
  const detached = new Set<string>();
  const executor: Executor = host ?? executorFromUrl(options.executor!, { ssh: options.ssh ?? {}, sshConnection: (target) => connections.get(target) });
  const ctx: RunnerContext = {
    store,
    executor,
    node: opts.name,
    graceMs: opts.graceSeconds * 1000,
    defaultCwd: opts.workDir,
    serverUrl: opts.serverUrl ?? '',
    ...(opts.caFile !== undefined ? { caFile: opts.caFile } : {}),
    // A root worker runs each user's jobs as their OS account, read from the token book the
    // servers share in Redis when the job starts (run-as.ts), kept while no change is announced.
    accountFor: accountPolicy((user) => sharedUsers.user(user)),
    onError: (err, jobId) => onError(err, jobId),
    // A job a Slurm executor submitted stays Queued (placed here) while Slurm keeps it PENDING:
    // no other worker takes a placed job, and a placed job with an executor state is followed
    // there (a takeover), or settled as a Running one (a dead worker), never placed again.
    queuedInExecutor: executor.queuesJobs === true,
  };
  let serverUrlAt = 0;
  const refreshServerUrl = async (): Promise<void> => {
    if (opts.serverUrl !== undefined || (ctx.serverUrl !== '' && Date.now() - serverUrlAt < SERVER_URL_TTL_MS)) return;
    serverUrlAt = Date.now();
    const urls = await store.serverUrls();
    if (!urls.includes(ctx.serverUrl)) ctx.serverUrl = urls[0] ?? '';
  };

  const registration = {
    name: opts.name,
    instance,
    pools: opts.pools,
    slots: opts.slots,
    ahead: opts.prefetch,
    labels: opts.labels,
    host: hostname(),
    pid: process.pid,
    startedAt: new Date().toISOString(),
  };
  /** Whether a job ran on a job host (its recorded runner is the host, not a worker). */
  const onJobHost = async (jobId: string): Promise<boolean> => (await store.executorState(jobId))?.kind === 'job-host';
  /** Running jobs of an instance taken over, to follow again. */
  let resumable: JobRecord[] = [];
  try {
    await sharedUsers.listen();
    await host?.connect();
    // An earlier instance of this node whose process is gone but whose liveness has not run out
    // (a restart within the grace time): its entry and Running jobs are taken over as they are.
    // Only where they can be followed again: on the job host, or in an executor's own queue
    // (Slurm: the jobs are found again by their stored Slurm ids, Queued ones too).
    const takeOver = host === undefined && executor.queuesJobs !== true ? '' : await instanceToTakeOver(store, opts.name);
    if (takeOver !== '') await registerWorker(store, registration, opts.liveness.ttlMs, new Map(), takeOver);
    // Processes an earlier instance of this worker left running are stopped before this one
    // takes anything, as the embedded server does at restart (jobs/orphans.ts) — those on this
    // home's job host too, which outlives a worker. A taken-over instance's Running jobs are not
    // orphans: they are followed again below.
    const orphans = await orphansOf(store, opts.name, takeOver === '');
    const outcomes = await stopOrphans(orphans, ctx.graceMs, onJobHost);
    for (const [jobId, outcome] of outcomes) log.warn({ jobId, processes: outcome }, 'processes an earlier instance of this worker left running');
    if (takeOver === '') {
      const previous = await registerWorker(store, registration, opts.liveness.ttlMs, outcomes);
      if (previous.lost.length + previous.retried.length > 0) {
        log.warn({ lost: previous.lost.map((j) => j.id), retried: previous.retried.map((j) => j.id) }, 'settled the jobs of the previous instance of this worker');
      }
      lost(previous.lost);
    }
    await store.forgetOrphans(opts.name, orphans.filter((o) => outcomes.get(o.id)?.kind !== 'runner-alive').map((o) => o.id));
    if (takeOver !== '') {
      // ...and those it handed to its executor's own queue (Slurm jobs still PENDING).
      resumable = [...(await store.runningJobs(opts.name)), ...(await store.handedToExecutor(opts.name))];
      log.warn({ previous: takeOver, jobs: resumable.map((j) => j.id) }, 'took over from the previous instance of this worker within its grace time; following its running jobs again');
    }
    // Hand-overs to an earlier instance of this node are void (its placements were undone, or
    // are handed over again as stale).
    await placer.dropNodeQueue(opts.name);
    await refreshServerUrl();
  } catch (err) {
    sharedUsers.close();
    await host?.close();
    await placer.close();
    await store.close();
    throw err;
  }

  /** Runs (or, with `resume`, follows again) one job of this node in the given attempt. */
  const run = async (job: JobRecord, attempt: number, own: AbortController, resume?: ExecutorState, sizes?: Promise<StreamSizes>, freeSlot?: () => void): Promise<JobRecord | undefined> => {
    const jobId = job.id;
    await refreshServerUrl().catch(onError);
    const claim = { node: opts.name, attempt };
    const finished = await runJob(
      {
        ...ctx,
        // A stop (not a loss of the registry's trust) leaves the job running on the host.
        keepRunning: () => {
          if (!closing || !keepJobs) return false;
          detached.add(jobId);
          return true;
        },
      },
      job,
      {
        signal: AbortSignal.any([shutdown.signal, own.signal]),
        // One step frees the slot, stores the final status and closes the output (the run
        // stored all of it first), so a client that sees the job end and submits the next one
        // finds the node free (a preferred node included) — and only while the job is still
        // this run's: one the reaper handed on meanwhile (taken for dead, queued again) is
        // neither finished nor has its output closed here.
        // The same step runs a quick placement pass, which can give the freed slot to a
        // waiting job (no pass of its own after each job).
        settle: async (fields: FinishFields) => {
          const done = await store.finishRunAndPlace(jobId, fields, claim, placer.quickPass());
          if (done) {
            settled.add(jobId);
            // ...and this worker's own slot: a job held ahead starts now.
            freeSlot?.();
            placer.placed(done.placement);
          }
          return done?.job;
        },
        ...(resume !== undefined ? { resume } : {}),
        ...(sizes !== undefined ? { sizes } : {}),
      },
    );
    if (finished?.status === 'Lost') lost([finished]);
    return finished;
  };

  /**
   * After a run: frees its slot — unless the run was left running on the host for the next
   * instance, or its end (finishRun) freed it already.
   */
  const ended = async (jobId: string): Promise<void> => {
    active.delete(jobId);
    if (detached.has(jobId)) return;
    const freed = settled.delete(jobId);
    // The run has ended: the host's copy of its output served only to follow it.
    await host?.discardOutput(jobId).catch((err: unknown) => onError(err, jobId));
    // While the worker stops, a job it did not start stays in its load: leaving the registry
    // (or the next instance) puts it back to waiting, which a released job would miss.
    if (freed || closing) return;
    await store.releaseJob(opts.name, jobId).catch((err: unknown) => onError(err, jobId));
    placer.poke();
  };

  /**
   * Runs one handed-over job, if it is still this worker's to run, then frees its slot. A `multi`
   * job waits for one of this worker's slots first (it may have been placed ahead of one: see
   * WorkerOptions.prefetch), and is checked again if it had to wait. `placedAs` is what this
   * worker's own placement pass said of the job: a `multi` job that must wait is read only once
   * its slot comes.
   */
  const handle = async (jobId: string, placedAs?: { slotClass: string; pools: string }): Promise<void> => {
    if (active.has(jobId)) return;
    const own = new AbortController();
    active.set(jobId, own);
    let slot: (() => void) | undefined;
    try {
      const heldAhead = placedAs?.slotClass === 'multi' && multiSlots.mustWait();
      // The stream sizes the run starts from, read beside the check (both go out at once).
      let sizes: Promise<StreamSizes> | undefined;
      let placed: Awaited<ReturnType<ClusterStore['placedJob']>>;
      if (!heldAhead) {
        sizes = store.streams.sizes(jobId);
        sizes.catch(() => undefined);
        placed = await store.placedJob(jobId, opts.name);
      }
      if (heldAhead || (placed && placed.job.queue !== 'single' && placed.job.queue !== 'unlimited')) {
        const waited = multiSlots.mustWait();
        // A job held ahead of a slot says why it waits, as one waiting in the cluster does.
        const pools = placedAs?.pools ?? placed?.job.description.pools?.join(',') ?? 'ALL';
        const why = waited
          ? setTimeout(() => {
              store.setReason(jobId, `waiting for a free multi slot (pools: ${pools}; held ahead by worker ${opts.name})`).catch((err: unknown) => onError(err, jobId));
            }, HELD_REASON_AFTER_MS)
          : undefined;
        slot = await multiSlots.take(AbortSignal.any([shutdown.signal, own.signal]));
        clearTimeout(why);
        // Cancelled, or handed elsewhere, while it waited?
        if (slot !== undefined && waited) {
          sizes = store.streams.sizes(jobId);
          sizes.catch(() => undefined);
          placed = await store.placedJob(jobId, opts.name);
        }
        if (slot === undefined) placed = undefined;
      }
      if (placed && !closing) await run(placed.job, placed.attempt, own, undefined, sizes, slot);
    } catch (err) {
      onError(err, jobId);
    } finally {
      slot?.();
      await ended(jobId);
    }
  };

  /**
   * Follows a job of the instance taken over again from its stored executor state. One without
   * (its start was not recorded), or that the host does not hold, has its processes stopped and
   * ends Lost.
   */
  const follow = async (job: JobRecord): Promise<void> => {
    const own = new AbortController();
    active.set(job.id, own);
    // It holds one of the slots already (it ran before this instance started).
    const slot = job.queue !== 'single' && job.queue !== 'unlimited' ? multiSlots.hold() : undefined;
    try {
      // A job still in its executor's queue is Queued, placed here; the runner marks it Running once it starts.
      const attempt = job.status === 'Queued' ? (await store.placedJob(job.id, opts.name))?.attempt : await store.runningAttempt(job.id, opts.name);
      if (attempt === undefined) return;
      const state = await store.executorState(job.id);
      if (state === undefined) await stopOrphans([{ id: job.id, process: job.process }], ctx.graceMs, onJobHost);
      const finished = await run(job, attempt, own, state ?? { kind: 'unrecorded' });
      // Not found again (its host is another home's, say): nothing of it may run on.
      if (finished?.status === 'Lost') await stopOrphans([{ id: job.id, process: job.process }], ctx.graceMs, onJobHost);
    } catch (err) {
      onError(err, job.id);
    } finally {
      slot?.();
      await ended(job.id);
    }
  };
  const following = resumable.map((job) => follow(job));

  const consumer = await store.takeHandOvers(opts.name, { concurrency: opts.slots + 1 + UNLIMITED_AT_ONCE, name: `${opts.name}:${instance}`, onError: (err) => onError(err) }, handle);
  // What this worker's own passes place on it, it runs without its hand-over queue in between
  // (a job it cannot start at once waits in `handle` as a delivered one would).
  placer.takeOwn({
    node: opts.name,
    take: (jobs) => {
      for (const { jobId, slotClass, pools } of jobs) void handle(jobId, { slotClass, pools });
    },
  });

  // Liveness: renew; when taken for dead, stop what runs (it was settled) and register again.
  let beating = false;
  const beat = async (): Promise<void> => {
    if (beating || closing) return;
    beating = true;
    try {
      if (await store.heartbeat(opts.name, instance, opts.liveness.ttlMs)) return;
      log.error('this worker was taken for dead (no heartbeat reached Redis in time); stopping its jobs and registering again');
      emitSafely(events, 'worker:taken-for-dead', { name: opts.name, instance });
      const reason = `the worker ${opts.name} was taken for dead (no heartbeat reached Redis in time) while the job was running`;
      for (const run of active.values()) run.abort(reason);
      await registerWorker(store, registration, opts.liveness.ttlMs);
      placer.poke(true);
    } catch (err) {
      onError(err);
    } finally {
      beating = false;
    }
  };
  const heartbeatTimer = setInterval(() => void beat(), opts.liveness.heartbeatMs);

  // Housekeeping: dead workers, placement, and a check of this worker's own jobs.
  let lastCheck = 0;
  const housekeeping = new Housekeeping({
    store,
    placer,
    liveness: opts.liveness,
    onReaped: (reaped) => {
      reportReaped(log, reaped);
      emitSafely(events, 'worker:reaped', reapedEvent(reaped));
      lost(reaped.lost);
    },
    onError: (err) => onError(err),
    more: async () => {
      if (Date.now() - lastCheck < CHECK_EVERY_MS) return;
      lastCheck = Date.now();
      for (const id of active.keys()) await store.resyncJob(id);
      // Jobs placed here that no hand-over reached (a placer died in between) are handed over again.
      await placer.handOver(opts.name, await store.staleHandOvers(opts.name, HAND_OVER_AGAIN_MS, new Set(active.keys())));
    },
  });
  placer.poke(true);
  log.info({ pools: opts.pools, slots: opts.slots }, 'worker ready');
  emitSafely(events, 'worker:ready', { name: opts.name, instance });

  let closed: Promise<StopReport> | undefined;
  const close = (options: CloseOptions = {}): Promise<StopReport> =>
    (closed ??= (async () => {
      // Every step below waits for Redis; giving up drops the connections (BullMQ's own too).
      const steps = new StopSteps(options.signal, () => {
        consumer.disconnect();
        store.abandon();
      });
      const reason = `the worker ${opts.name} shut down while the job was running`;
      closing = true;
      placer.takeOwn(undefined);
      emitSafely(events, 'worker:stopping', { reason });
      clearInterval(heartbeatTimer);
      const housekeepingPass = housekeeping.stop();
      shutdown.abort(reason);
      await steps.run(keepJobs ? 'leaving the running jobs on the job host and closing the job queue' : 'stopping the running jobs and closing the job queue', async () => {
        await consumer.close();
        await Promise.all(following);
      });
      // Runs still going are stuck on Redis: their jobs' final status was not stored.
      for (const id of active.keys()) unsettledJobs.add(id);
      if (unsettledJobs.size > 0) steps.note(`the final status of job(s) ${[...unsettledJobs].join(', ')} was not stored (other workers and servers mark them Lost once this worker misses its heartbeats)`);
      await steps.run('finishing the housekeeping pass in progress', () => housekeepingPass);
      if (detached.size > 0) {
        // Its entry stays: a new instance started within the grace time takes it over with the jobs.
        log.warn({ jobs: [...detached], followDeadlineMs: deadline.afterMs }, 'left running jobs on the job host: a worker started again with this name and home within the follow deadline follows them again; after it the host stops them, and the cluster hands them on or marks them Lost');
      } else {
        await steps.run('leaving the worker registry (other workers and servers drop it once it misses its heartbeats)', async () => {
          lost((await dropWorker(store, opts.name, instance, reason, true)).lost);
          await placer.dropNodeQueue(opts.name);
          placer.poke(true);
          await placer.idle();
        });
      }
      sharedUsers.close();
      await steps.run('closing the placement queues', () => placer.close());
      await steps.run('closing the store', () => store.close());
      await host?.close();
      connections.close();
      const report = steps.report();
      if (report.unsettled.length > 0) log.warn({ unsettled: report.unsettled }, 'stopped without settling everything');
      emitSafely(events, 'worker:stopped', { report });
      return report;
    })());

  return {
    name: opts.name,
    instance,
    pools: opts.pools,
    slots: opts.slots,
    store,
    events,
    running: () => [...active.keys()],
    close,
    [Symbol.asyncDispose]: async () => {
      await close();
    },
  };
}

/** A counting gate: `size` holders at a time, waiters served in order. */
class SlotGate {
  #free: number;
  readonly #waiters: Array<() => void> = [];

  constructor(size: number) {
    this.#free = size;
  }

  /** Whether a {@link take} now would have to wait. */
  mustWait(): boolean {
    return this.#free <= 0;
  }

  /** Takes a place without waiting (may go below zero: a run that holds one already). Resolves to its release. */
  hold(): () => void {
    this.#free -= 1;
    return this.#releaser();
  }

  /** Waits for a place; resolves to its release, or undefined once `signal` aborts. */
  take(signal: AbortSignal): Promise<(() => void) | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    if (this.#free > 0 && this.#waiters.length === 0) return Promise.resolve(this.hold());
    return new Promise((resolve) => {
      const wake = (): void => {
        signal.removeEventListener('abort', abort);
        resolve(this.hold());
      };
      const abort = (): void => {
        const at = this.#waiters.indexOf(wake);
        if (at >= 0) this.#waiters.splice(at, 1);
        resolve(undefined);
      };
      this.#waiters.push(wake);
      signal.addEventListener('abort', abort, { once: true });
    });
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#free += 1;
      if (this.#free > 0) this.#waiters.shift()?.();
    };
  }
}
