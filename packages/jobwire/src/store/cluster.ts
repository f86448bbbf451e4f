/**
 * What distributed mode asks of its store beyond {@link Store}: the worker registry, placement
 * and hand-over, the runs of workers, the server registry and the shared token book. Each is one
 * named operation; the Redis store (`redis/cluster-store.ts`) makes each that must be atomic one
 * Lua script. `distributed/` and `auth/shared-tokens.ts` talk to this interface only, never to
 * Redis, so they load neither ioredis nor BullMQ and read as what they decide.
 * @module
 */
import type { JobProcess } from '../job-process.js';
import type { FinishFields, JobRecord, Store } from './types.js';

/** The claim a worker holds on a job it runs: placed on `node`, in attempt `attempt`. */
export interface RunClaim {
  /** The worker's node name. */
  node: string;
  /** The attempt the worker was handed (1 for the first run; each retry adds one). */
  attempt: number;
}

/** What a worker registers. */
export interface WorkerRegistration {
  name: string;
  /** Random id of this worker process, so a restarted worker of the same name is told apart. */
  instance: string;
  /** Its pools, `ALL` included. */
  pools: string[];
  slots: number;
  labels: Record<string, string>;
  host: string;
  pid: number;
  startedAt: string;
  /**
   * `multi` jobs placed on it beyond its slots while no worker they may go to has a free slot
   * (a prefetch: it holds them, and starts each as soon as one of its slots frees, with no
   * placement round trip in between). @defaultValue 0
   */
  ahead?: number;
}

/** Answer of {@link ClusterStore.registerWorker}. */
export type RegisterOutcome =
  /** Registered (or registered again: the same instance). */
  | { registered: true }
  /** A dead earlier instance of the name still holds the entry: drop it (settling its jobs) first. */
  | { registered: false; previous: string };

/** A worker as the registry holds it. */
export interface RegisteredWorker extends Omit<WorkerRegistration, 'instance'> {
  instance: string;
  /** Whether its liveness has not run out. */
  alive: boolean;
  heartbeatAt: string;
  /** Jobs placed on it or running there, by class of queue. */
  load: Record<LoadClass, number>;
}

/** Classes of load on a worker, after the local executor's queues (any other queue is `multi`). */
export type LoadClass = 'multi' | 'single' | 'unlimited';

/** What {@link ClusterStore.dropWorker} removed. */
export interface DroppedWorker {
  /** The instance removed. */
  instance: string;
  /** Ids of the jobs that were Running on it: the caller settles each (retry or Lost). */
  running: string[];
}

/** One placement pass's settings. */
export interface PlacementPass {
  /** Most waiting jobs looked at. */
  scan: number;
  /** A job placed within this many milliseconds gets no wait reason. */
  patienceMs: number;
  /** Jobs of the `unlimited` queue one worker runs at once. */
  unlimitedSlots: number;
  /**
   * Only place: pass over the jobs of a class no worker has room for, give no wait reasons and
   * park nothing (a full pass does that). @defaultValue false
   */
  quick?: boolean;
}

/** A job handed to a worker node, in one attempt. */
export interface HandOver {
  jobId: string;
  attempt: number;
}

/** A job placed by a pass: its slot is reserved on `node`; it still has to be handed over. */
export interface PlacedJob extends HandOver {
  node: string;
  /** The class of slot it holds there: `multi`, `single` or `unlimited`. */
  slotClass: string;
  /** Its pools, comma-separated (`ALL` when it named none). */
  pools: string;
}

/** What a placement pass did. */
export interface Placement {
  /** The jobs it placed (their slots reserved). */
  placed: PlacedJob[];
  /**
   * It looked at as many waiting jobs as it may (`PlacementPass.scan`) and room is left: more
   * jobs wait than it saw, and a next pass may place some.
   */
  more: boolean;
}

/** Delivery of placed jobs to worker nodes (one queue per node). */
export interface HandOvers {
  /** Hands jobs to `node`: idempotent per job and attempt. */
  add(node: string, jobs: readonly HandOver[]): Promise<void>;
  /** Forgets a node's queue and what it held (the node is gone, or starts afresh). */
  drop(node: string): Promise<void>;
  /** Releases what this object holds (connections of its queues). */
  close(): Promise<void>;
}

/** Options of {@link ClusterStore.takeHandOvers}. */
export interface TakeOptions {
  /** Jobs handled at once. */
  concurrency: number;
  /** Name of the consumer (for Redis' client list). */
  name: string;
  /** Receives failures of the consumer itself. */
  onError(err: unknown): void;
}

/** The consumer of a node's hand-overs. */
export interface HandOverConsumer {
  /** Stops taking, waits for the jobs in hand. */
  close(): Promise<void>;
  /** Drops the consumer's connections without waiting (a stop that gives up on the store). */
  disconnect(): void;
}

/** The store of distributed mode. */
export interface ClusterStore extends Store {
  /** Milliseconds since the connection to the store was (re)established. */
  readonly connectedFor: number;

  /**
   * Registers a worker instance; a live worker of the same name is a ConflictError, unless it is
   * instance `takeOver` (one whose process the caller knows is gone): its entry, load and Running
   * jobs become the new instance's as they are. @param takeOver @defaultValue '' (none)
   */
  registerWorker(registration: WorkerRegistration, ttlMs: number, takeOver?: string): Promise<RegisterOutcome>;
  /** Renews a worker's liveness; false when the registry no longer holds this instance. */
  heartbeat(name: string, instance: string, ttlMs: number): Promise<boolean>;
  /**
   * Removes a worker in one step (only a dead one unless `force`; `instance` '' = whichever): its
   * placed but unstarted jobs wait again, and the processes of its Running jobs are remembered as
   * its orphans. Undefined when there was nothing to remove.
   */
  dropWorker(name: string, instance: string, force: boolean): Promise<DroppedWorker | undefined>;
  /** Names of registered workers whose liveness ran out. */
  deadWorkers(): Promise<string[]>;
  /** Takes the short lock that keeps two reapers from settling one worker; false when taken. */
  lockReaping(name: string): Promise<boolean>;
  /** Releases {@link ClusterStore.lockReaping}. */
  unlockReaping(name: string): Promise<void>;
  /** Every registered worker, by name. */
  workers(): Promise<RegisteredWorker[]>;
  /** Live workers and their slots together (the cluster's `single` and `multi` limits). */
  liveCapacity(): Promise<{ workers: number; slots: number }>;
  /** The first pool of each waiting job, at most `limit` jobs per kind of wait (pending, parked). */
  waitingFirstPools(limit: number): Promise<string[]>;
  /** Process identities of jobs worker `name` left running when it was removed (null: unreadable). */
  orphans(name: string): Promise<Map<string, JobProcess | null>>;
  /** Forgets orphans of worker `name` that were dealt with. */
  forgetOrphans(name: string, ids: readonly string[]): Promise<void>;

  /**
   * Running (or handed to a worker's executor's own queue, see {@link handedToExecutor}) →
   * Queued again for another attempt, when the job's retries allow one; `reason` gets
   * `; starting it again (attempt N of M)`. The attempt starts afresh: its executor state is
   * dropped. Undefined otherwise.
   */
  retryJob(id: string, reason: string): Promise<JobRecord | undefined>;
  /** One Running job (or one handed to a worker's executor's own queue) becomes Lost with `reason`, its output closed first. */
  loseJob(id: string, reason: string): Promise<JobRecord | undefined>;
  /** The attempt a job Running on `node` is in; undefined when it is not Running there. */
  runningAttempt(id: string, node: string): Promise<number | undefined>;
  /**
   * Queued jobs placed on `node` that it handed to its executor's own queue (they have an
   * executor state: a Slurm job PENDING), oldest first: a worker that takes over from its
   * previous instance follows them there again.
   */
  handedToExecutor(node: string): Promise<JobRecord[]>;
  /** A Queued job placed on `node`, with the attempt it is in; undefined otherwise. */
  placedJob(id: string, node: string): Promise<{ job: JobRecord; attempt: number } | undefined>;
  /**
   * A worker's end of a run, in one step: only while the job is Running on `run.node` in
   * `run.attempt` (or Queued and placed there: it ended in the executor's own queue without
   * running), frees its slot, moves it to a final status and closes its output with that status
   * (as `streams.closeOutput`: call it once the run's output is stored). Undefined when the job is not
   * the run's any more (a reaper queued it again, or lost it, meanwhile).
   */
  finishRun(id: string, fields: FinishFields, run: RunClaim): Promise<JobRecord | undefined>;
  /**
   * {@link finishRun}, then, in the same step, a quick placement pass (`pass`, as
   * {@link placeJobs}) that can give the freed slot to a waiting job: the job as finished and
   * what the pass placed (the caller hands those over). Undefined (and no pass) as finishRun.
   */
  finishRunAndPlace(id: string, fields: FinishFields, run: RunClaim, pass: PlacementPass): Promise<{ job: JobRecord; placement: Placement } | undefined>;
  /** Frees the slot job `id` held on `node` (harmless when it held none). */
  releaseJob(node: string, id: string): Promise<void>;
  /**
   * Jobs placed on `node` longer than `olderThanMs` ago (the store's clock) and not in `skip`:
   * hand-overs that never arrived. Frees the slots `node` holds for jobs placed elsewhere now.
   */
  staleHandOvers(node: string, olderThanMs: number, skip: ReadonlySet<string>): Promise<HandOver[]>;
  /** Delivers again what a job's live subscribers may have missed (a recorded cancel, stdin). */
  resyncJob(id: string): Promise<void>;

  /** One placement pass: reserves slots for waiting jobs and answers them; sets wait reasons. */
  placeJobs(pass: PlacementPass): Promise<Placement>;
  /** A sender of hand-overs (each sender holds its own queues; close it). */
  handOvers(onError: (err: unknown) => void): HandOvers;
  /** Starts taking the hand-overs of `node`; resolves once it takes them. */
  takeHandOvers(node: string, options: TakeOptions, handle: (jobId: string) => Promise<void>): Promise<HandOverConsumer>;

  /** Announces server `id` at `url` for `ttlMs`. */
  announceServer(id: string, url: string, ttlMs: number): Promise<void>;
  /** Withdraws a server's announcement. */
  withdrawServer(id: string): Promise<void>;
  /** URLs of the announced servers, sorted (forgets announcements that ran out). */
  serverUrls(): Promise<string[]>;

  /** Puts entries (token digest → value) into the shared token book, takes `revoked` digests out, and tells every server. */
  shareTokens(entries: ReadonlyMap<string, string>, revoked: readonly string[]): Promise<void>;
  /** The shared token book: digest → value. */
  readTokens(): Promise<Map<string, string>>;
  /** Calls `listener` whenever any server changed the shared token book; resolves to an unsubscribe function once listening. */
  onTokensChanged(listener: () => void): Promise<() => void>;

  /** Drops every connection at once, without waiting for the store (see `stop.ts`). */
  abandon(): void;
}
