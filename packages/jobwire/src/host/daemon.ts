/**
 * The job host: the process that owns a home's running jobs — their processes, pipes and
 * terminal masters, and the writing of their output — so that they outlive the server (or
 * worker) that started them. It listens on `<home>/host.sock`; see protocol.ts for what is said
 * there and docs/architecture.md ("The job host") for why it is built this way.
 * @module
 */
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { JobwireError, type OutputChannel, type OutputChunk } from '@jobwire/client';
import { LocalExecutor } from '../executors/local/local-executor.js';
import { selfIdentity } from '../executors/local/process-identity.js';
import type { Executor } from '../executors/types.js';
import { parseJobDescription } from '../jobs/schema.js';
import { checkJobId } from '../store/checks.js';
import { applyEnvDiff, type EnvDiff } from '../env-diff.js';
import { MAX_TIMER_MS } from '../timers.js';
import { DEFAULT_GRACE_MS, HostedJob, type JobWatcher } from './job.js';
import { JournalWriter, makeJournalDir } from './journal.js';
import { acquireHostLock, type HostLock } from './lock.js';
import { silentLogger, type HostLogger } from './log.js';
import { WRITE_BEHIND_BYTES, writeJsonAtomically } from './output-files.js';
import { hostPaths, type HostPaths } from './paths.js';
import {
  FrameDecoder,
  FOLLOW_DEADLINE_VERSION,
  FORGET_ON_EXIT_VERSION,
  BASE_ENV_VERSION,
  FrameKind,
  OUTPUT_FRAME_BYTES,
  OUTPUT_PAGE_BYTES,
  PROTOCOL_VERSIONS,
  chooseVersion,
  durableFrame,
  jsonFrame,
  outputHeader,
  type Frame,
  type FromHost,
  type HostInfo,
  type StartJob,
  type WireError,
  TurnCork,
} from './protocol.js';

/** Options of a {@link JobHost}. */
export interface JobHostOptions {
  /** The jobwire home whose jobs the host runs (created by the caller, mode 0700). */
  home: string;
  /**
   * The host exits by itself after this long with no job running and no client connected.
   * @defaultValue 30000 ({@link DEFAULT_IDLE_MS})
   */
  idleMs?: number;
  /** Protocol versions spoken (tests simulate other builds with it). @defaultValue PROTOCOL_VERSIONS */
  versions?: number[];
  /** Write-behind bound per job (see OutputFiles). @defaultValue 4 MiB */
  writeBehindBytes?: number;
  /** First wait before retrying a failed output write. @defaultValue 100 */
  retryMinMs?: number;
  /** Longest wait between retries of a failed output write. @defaultValue 2000 */
  retryMaxMs?: number;
  /**
   * How long a connection holds its writes after starting a function job, waiting for its exit
   * to go with the reply (see {@link FUNCTION_START_HOLD_MS}); 0 holds nothing.
   * @defaultValue 2 ({@link FUNCTION_START_HOLD_MS})
   */
  functionStartHoldMs?: number;
  /** Where jobs run. @defaultValue a LocalExecutor */
  executor?: Executor;
  /** Where the host's messages go. @defaultValue nowhere */
  log?: HostLogger;
}

/** {@link JobHostOptions} with defaults filled in. */
type ParsedOptions = Required<Omit<JobHostOptions, 'executor' | 'log'>> & { executor: Executor; log: HostLogger };

/** How long a host with nothing to do waits before it exits. */
export const DEFAULT_IDLE_MS = 30_000;
/** A connection whose unsent bytes reach this stops getting output until it drains. */
const CONNECTION_HIGH_WATER = 1024 * 1024;
/**
 * Stored-end updates and stdin acks wait at most this long, so they can ride along with the
 * next output frame: on an interactive job each would otherwise cost the client a wake-up of
 * its own per line typed.
 */
const LAZY_MS = 2;
/**
 * How long a connection holds its writes after starting a function job (not an interactive one)
 * that it follows: a no-op function ends within a round trip to its warm runner, and its start's
 * reply and its exit then reach the client in one write, one wake-up of the client (and, for the
 * server, one SQLite commit for its Running and its end). A job still running when this passes
 * has its reply sent then: its Running is at most this late. The bound counts from the first start
 * that began the hold; later starts do not extend it, so steady starts cannot hold a connection's
 * writes (other jobs' output, replies) for longer than this. Nothing on the wire changes (the
 * frames and their order are the same), so clients of every protocol version read it as before.
 */
export const FUNCTION_START_HOLD_MS = 2;
/** How often follow deadlines are checked, while some running job has one. */
const FOLLOW_CHECK_MS = 100;

/** The jobwire version of this code, for host.json and welcome. */
function jobwireVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** A second host for a home that already has a live one. */
export class HostRunningError extends Error {
  override name = 'HostRunningError';
  constructor(
    message: string,
    /** Pid of the running host. */
    readonly pid: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The job host of one home. Start it with {@link JobHost.start}. */
export class JobHost {
  /** What the host says about itself (also in host.json). */
  readonly info: HostInfo;
  /** Resolves once the host has closed (idle, or {@link close}). */
  readonly closed: Promise<void>;
  readonly #paths: HostPaths;
  readonly #options: ParsedOptions;
  readonly #server: net.Server;
  readonly #lock: HostLock;
  readonly #journal: JournalWriter;
  readonly #jobs = new Map<string, HostedJob>();
  readonly #connections = new Set<Connection>();
  #idleTimer: NodeJS.Timeout | undefined;
  /** Checks follow deadlines while a running job has one. */
  #followTimer: NodeJS.Timeout | undefined;
  #closing = false;
  #resolveClosed!: () => void;

  private constructor(paths: HostPaths, options: ParsedOptions, server: net.Server, lock: HostLock, info: HostInfo, journal: JournalWriter) {
    this.#paths = paths;
    this.#journal = journal;
    this.#options = options;
    this.#server = server;
    this.#lock = lock;
    this.info = info;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    server.on('connection', (socket) => this.#accept(socket));
    this.#checkIdle();
  }

  /**
   * Takes the home's host lock, listens on its socket and writes host.json. Throws a
   * {@link HostRunningError} when another live host has the home.
   */
  static async start(options: JobHostOptions): Promise<JobHost> {
    const paths = hostPaths(options.home);
    const parsed: ParsedOptions = {
      home: paths.home,
      idleMs: options.idleMs ?? DEFAULT_IDLE_MS,
      versions: options.versions ?? [...PROTOCOL_VERSIONS],
      writeBehindBytes: options.writeBehindBytes ?? WRITE_BEHIND_BYTES,
      retryMinMs: options.retryMinMs ?? 100,
      retryMaxMs: options.retryMaxMs ?? 2000,
      functionStartHoldMs: options.functionStartHoldMs ?? FUNCTION_START_HOLD_MS,
      executor: options.executor ?? new LocalExecutor(),
      log: options.log ?? silentLogger,
    };
    if (!(parsed.idleMs >= 0)) throw new RangeError(`idleMs must be a number >= 0, got ${parsed.idleMs}`);
    if (!(parsed.functionStartHoldMs >= 0 && parsed.functionStartHoldMs <= MAX_TIMER_MS)) throw new RangeError(`functionStartHoldMs must be a number from 0 to ${MAX_TIMER_MS}, got ${parsed.functionStartHoldMs}`);
    if (parsed.versions.length === 0 || !parsed.versions.every((v) => Number.isSafeInteger(v) && v > 0)) throw new RangeError('versions must be positive integers');
    const identity = selfIdentity();
    if (identity === undefined) throw new Error('a job host needs /proc to identify itself and its jobs');
    const outcome = acquireHostLock(paths.home);
    if (!outcome.held) throw new HostRunningError(`the job host of ${paths.home} is already running (pid ${outcome.holder.pid})`, outcome.holder.pid);
    const lock = outcome.lock;
    let server: net.Server;
    let journal: JournalWriter | undefined;
    try {
      makeJournalDir(paths.journal);
      journal = new JournalWriter(paths.journal, identity);
      // Holding the lock, any socket file left here is a dead host's.
      rmSync(paths.socket, { force: true });
      server = net.createServer({ allowHalfOpen: false, pauseOnConnect: false });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(paths.socket, () => {
          server.off('error', reject);
          resolve();
        });
      });
      // The home is 0700 already; the socket is the host's door, so it is closed to others too.
      chmodSync(paths.socket, 0o600);
      const info: HostInfo = {
        pid: process.pid,
        identity,
        versions: parsed.versions,
        jobwireVersion: jobwireVersion(),
        startedAt: new Date().toISOString(),
        socket: paths.socket,
      };
      await writeJsonAtomically(paths.info, info);
      parsed.log.info('job host started', { home: paths.home, versions: parsed.versions });
      return new JobHost(paths, parsed, server, lock, info, journal);
    } catch (error) {
      rmSync(paths.socket, { force: true });
      try {
        journal?.close();
      } catch {
        // Nothing was recorded in it.
      }
      lock.release();
      throw error;
    }
  }

  /** Jobs held, running or ended and not yet forgotten. */
  get jobs(): ReadonlyMap<string, HostedJob> {
    return this.#jobs;
  }

  /**
   * Stops listening, ends client connections and removes the socket, host.json and the lock.
   * Running jobs are not stopped: use {@link shutdown} for that.
   */
  async close(): Promise<void> {
    if (this.#closing) return this.closed;
    this.#closing = true;
    clearTimeout(this.#idleTimer);
    clearInterval(this.#followTimer);
    this.#server.close();
    for (const connection of this.#connections) connection.end();
    // Removed before the lock is released: a new host (which may remove a stale socket) can
    // only start once nothing of this one is left.
    rmSync(this.#paths.socket, { force: true });
    rmSync(this.#paths.info, { force: true });
    await Promise.allSettled([...this.#jobs.values()].map((job) => job.release()));
    try {
      this.#journal.close();
    } catch (error) {
      this.#options.log.error('could not close the journal', { err: error });
    }
    this.#lock.release();
    this.#options.log.info('job host stopped');
    this.#resolveClosed();
    return this.closed;
  }

  /**
   * Stops every running job (SIGTERM, SIGKILL after `graceMs`), waits until their ends are stored
   * (at most `graceMs` plus `waitMs`), then closes. For SIGTERM to the host itself.
   */
  async shutdown(graceMs: number, waitMs = 10_000): Promise<void> {
    const running = [...this.#jobs.values()].filter((job) => job.exit === null);
    for (const job of running) job.terminate(graceMs, 'the job host shut down');
    const ended = Promise.all(running.map((job) => new Promise<void>((resolve) => job.watchers.add(endWatcher(resolve)))));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise((resolve) => (timer = setTimeout(resolve, graceMs + waitMs)))]);
    clearTimeout(timer);
    await this.close();
  }

  #accept(socket: net.Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const connection = new Connection(socket, this, this.#options.log);
    this.#connections.add(connection);
    this.#checkIdle();
    socket.on('close', () => {
      connection.dispose();
      this.#connections.delete(connection);
      this.#checkIdle();
    });
  }

  /** Speaks `version` with a client that offers `theirs`, or undefined (refused). */
  negotiate(theirs: number[]): number | undefined {
    return chooseVersion(this.#options.versions, theirs);
  }

  /** See {@link JobHostOptions.functionStartHoldMs}. */
  get functionStartHoldMs(): number {
    return this.#options.functionStartHoldMs;
  }

  /** Starts a job (idempotent per id). */
  startJob(spec: StartJob): { job: HostedJob; existing: boolean } {
    const existing = this.#jobs.get(spec.jobId);
    if (existing !== undefined) return { job: existing, existing: true };
    if (this.#closing) throw new JobwireError('conflict', 'the job host is shutting down');
    this.#options.executor.check(spec.description);
    const identity = this.info.identity;
    const startedAt = new Date().toISOString();
    // Recorded before it runs: a job the host cannot record is not started (recovery could not
    // find its processes if the host died).
    try {
      this.#journal.record({ jobId: spec.jobId, host: identity, leader: null, startedAt });
    } catch (error) {
      throw new JobwireError('internal', `cannot record job ${spec.jobId} in ${this.#paths.journal}: ${(error as Error).message}`, { cause: error });
    }
    let job: HostedJob;
    try {
      job = new HostedJob(spec, {
        executor: this.#options.executor,
        dir: join(this.#paths.output, spec.jobId),
        writeBehindBytes: this.#options.writeBehindBytes,
        retryMinMs: this.#options.retryMinMs,
        retryMaxMs: this.#options.retryMaxMs,
        log: this.#options.log,
        onExit: () => this.#checkIdle(),
      });
    } catch (error) {
      this.#forgetInJournal(spec.jobId);
      throw error;
    }
    this.#jobs.set(spec.jobId, job);
    const leader = job.handle.process?.leader ?? null;
    if (leader !== null) {
      try {
        this.#journal.record({ jobId: spec.jobId, host: identity, leader, startedAt });
      } catch (error) {
        // The job runs and this host knows it; only recovery after a crash of the host would
        // miss its leader (the pipes it loses then end most jobs anyway).
        this.#options.log.error('could not record the leader of a job', { jobId: spec.jobId, err: error });
      }
    }
    this.#checkIdle();
    if (job.followDeadline !== null) this.#followTimer ??= setInterval(() => this.#checkFollowed(), FOLLOW_CHECK_MS);
    return { job, existing: false };
  }

  /**
   * Stops each running job with a follow deadline that no live connection has followed for that
   * long. A connection follows a job while it is subscribed to it; it counts as live up to the
   * last frame heard from it (a closed one, up to its last frame before it closed), so a client
   * that was killed, stopped or hangs stops counting at once, however its socket fares.
   */
  #checkFollowed(): void {
    const now = Date.now();
    let waiting = false;
    for (const job of this.#jobs.values()) {
      const deadline = job.followDeadline;
      if (deadline === null || job.exit !== null || job.stoppedBy !== null) continue;
      for (const connection of this.#connections) {
        if (connection.follows(job.jobId)) job.followedAt = Math.max(job.followedAt, connection.lastHeard);
      }
      if (now - job.followedAt > deadline.afterMs) {
        const seconds = Math.round(deadline.afterMs / 100) / 10;
        const reason = `no client followed it for ${seconds} s (the follow deadline its worker set): its worker is gone, and the job is stopped before the cluster can hand it on`;
        this.#options.log.warn('stopping a job nobody follows', { jobId: job.jobId, afterMs: deadline.afterMs });
        job.terminate(deadline.graceMs, reason);
        continue;
      }
      waiting = true;
    }
    if (!waiting) {
      clearInterval(this.#followTimer);
      this.#followTimer = undefined;
    }
  }

  /** A connection began to follow `job` (its subscription counts from now). */
  followed(job: HostedJob): void {
    job.followedAt = Date.now();
  }

  /** The job `jobId`, or a not_found error. */
  job(jobId: string): HostedJob {
    const job = this.#jobs.get(jobId);
    if (job === undefined) throw new JobwireError('not_found', `the job host holds no job ${jobId}`);
    return job;
  }

  /** Forgets an ended job (its client stored the exit). */
  async forget(jobId: string): Promise<void> {
    const job = this.job(jobId);
    if (job.exit === null) throw new JobwireError('conflict', `job ${jobId} is still running; it can be forgotten once it has ended`);
    this.#jobs.delete(jobId);
    for (const connection of this.#connections) connection.dropSubscription(jobId);
    this.#forgetInJournal(jobId);
    await job.release();
    this.#checkIdle();
  }

  /** Ends a job's journal entry; a failure only leaves a stale entry (recovery finds its exit.json). */
  #forgetInJournal(jobId: string): void {
    try {
      this.#journal.forget(jobId);
    } catch (error) {
      this.#options.log.error('could not remove a job from the journal', { jobId, err: error });
    }
  }

  /** Arms the idle timer when nothing runs and nobody is connected; disarms it otherwise. */
  #checkIdle(): void {
    const idle = !this.#closing && this.#connections.size === 0 && ![...this.#jobs.values()].some((job) => job.exit === null);
    if (!idle) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
      return;
    }
    if (this.#idleTimer !== undefined) return;
    // Ended jobs nobody forgot yet do not keep the host: their exit.json is on disk, where
    // recovery finds it.
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#connections.size === 0 && ![...this.#jobs.values()].some((job) => job.exit === null)) {
        this.#options.log.info('job host idle: exiting');
        void this.close();
      }
    }, this.#options.idleMs);
  }
}

/** A watcher that only waits for the end. */
function endWatcher(onEnd: () => void): JobWatcher {
  return { onChunk() {}, onDurable() {}, onEvent() {}, onExit: onEnd };
}

// What clients may send (protocol version 1). A bad field is answered with an error naming it.
const id = z.string().refine(
  (value) => {
    try {
      checkJobId(value);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not a valid job id' },
);
const position = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const rid = z.number().int().nonnegative();
// A start carries the server's whole environment: checked with a plain loop, as a zod record
// costs a parse per entry (about a tenth of a millisecond per start on a loaded VM).
const stringMap = z.custom<Record<string, string>>(isStringMap, { message: 'expected an object of string values' });
const account = z.object({ name: z.string(), uid: z.number().int().nonnegative(), gid: z.number().int().nonnegative(), home: z.string(), shell: z.string() });
const requestSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    rid,
    subscribe: z.object({ output: z.boolean(), forget: z.boolean().optional() }).optional(),
    job: z.object({
      jobId: id,
      description: z.unknown(),
      defaultCwd: z.string().min(1),
      env: stringMap,
      baseEnv: stringMap.optional(),
      // Version 4.
      baseEnvDiff: z.object({ set: stringMap.optional(), unset: z.array(z.string()).optional() }).optional(),
      account: account.optional(),
      graceMs: z.number().nonnegative().optional(),
      notice: z.string().max(4096).optional(),
      // Version 2.
      followDeadline: z.object({ afterMs: z.number().int().positive().max(MAX_TIMER_MS), graceMs: z.number().int().nonnegative().max(MAX_TIMER_MS) }).optional(),
    }),
  }),
  z.object({ type: z.literal('list'), rid }),
  z.object({ type: z.literal('subscribe'), rid, jobId: id, from: position, output: z.boolean() }),
  z.object({ type: z.literal('unsubscribe'), rid, jobId: id }),
  z.object({ type: z.literal('close-stdin'), rid, jobId: id, offset: position }),
  z.object({ type: z.literal('resize'), rid, jobId: id, cols: z.number().int().min(1).max(65535), rows: z.number().int().min(1).max(65535) }),
  z.object({ type: z.literal('terminate'), rid, jobId: id, graceMs: z.number().nonnegative(), reason: z.string().min(1).max(500) }),
  z.object({ type: z.literal('forget'), rid, jobId: id }),
  z.object({ type: z.literal('ping'), rid }),
  z.object({ type: z.literal('base-env'), rid, env: stringMap }),
  z.object({ type: z.literal('output-ack'), rid, jobId: id, end: position }),
]);
type Request = z.infer<typeof requestSchema>;

/** One client connection. */
class Connection {
  version: number | undefined;
  /** When the client last sent anything (ms since the epoch). */
  lastHeard = Date.now();
  readonly #socket: net.Socket;
  /** Every write of a turn leaves at its end, in one system call. */
  readonly #cork: TurnCork;
  readonly #host: JobHost;
  readonly #log: HostLogger;
  readonly #decoder = new FrameDecoder();
  readonly #subscriptions = new Map<string, Subscription>();
  #ended = false;
  /** The environment of this connection's starts (`base-env`, protocol version 4), once one came. */
  #baseEnv: Record<string, string> | undefined;
  /** Latest stored end and stdin ack per job, not sent yet (see {@link LAZY_MS}). */
  readonly #lazyDurable = new Map<string, number>();
  readonly #lazyAcks = new Map<string, number>();
  #lazyTimer: NodeJS.Timeout | undefined;
  /**
   * Output taken in this turn of the event loop and not written yet: chunks of one job and
   * channel that follow each other go out as one OUTPUT frame (up to {@link OUTPUT_FRAME_BYTES})
   * in one system call at the end of the turn, where each 64 KiB pipe read was a frame and a
   * `writev` of its own.
   */
  #out: { jobId: string; channel: OutputChannel; pos: number; offset: number; data: Buffer[]; bytes: number } | undefined;
  #outFlush: NodeJS.Immediate | undefined;

  constructor(socket: net.Socket, host: JobHost, log: HostLogger) {
    this.#socket = socket;
    this.#cork = new TurnCork(socket);
    this.#host = host;
    this.#log = log;
    socket.on('data', (data: Buffer) => this.#onData(data));
    socket.on('drain', () => {
      for (const subscription of this.#subscriptions.values()) subscription.kick();
    });
    // A client that vanishes (ECONNRESET, EPIPE) just ends its connection; 'close' follows.
    socket.on('error', () => {});
  }

  /** Whether output should wait until the socket drains. */
  get congested(): boolean {
    return this.#socket.writableLength + (this.#out?.bytes ?? 0) >= CONNECTION_HIGH_WATER;
  }

  send(message: FromHost): void {
    if (this.#ended) return;
    if (message.type === 'stdin-ack') {
      this.#lazyAcks.set(message.jobId, message.consumed);
      this.#armLazy();
      return;
    }
    const socket = this.#socket;
    this.#cork.hold();
    socket.cork();
    this.#flushLazy();
    // Output taken before the message goes first (the exit follows the last output).
    this.#writeOutput();
    socket.write(jsonFrame(message));
    socket.uncork();
  }

  /** Queues a chunk of output; it goes out at the end of this turn (see {@link #out}). */
  sendOutput(jobId: string, chunk: OutputChunk): void {
    if (this.#ended) return;
    const data = chunk.data as Buffer;
    const out = this.#out;
    if (out !== undefined && out.jobId === jobId && out.channel === chunk.channel && out.pos + out.bytes === chunk.pos && out.bytes + data.length <= OUTPUT_FRAME_BYTES) {
      out.data.push(data);
      out.bytes += data.length;
    } else {
      if (out !== undefined) {
        this.#socket.cork();
        this.#writeOutput();
        this.#socket.uncork();
      }
      this.#out = { jobId, channel: chunk.channel, pos: chunk.pos, offset: chunk.offset, data: [data], bytes: data.length };
    }
    this.#outFlush ??= setImmediate(() => {
      this.#outFlush = undefined;
      if (this.#ended || this.#out === undefined) return;
      const socket = this.#socket;
      socket.cork();
      this.#flushLazy();
      this.#writeOutput();
      socket.uncork();
    });
  }

  /** Writes the output queued in this turn as one frame (the caller corks the socket). */
  #writeOutput(): void {
    const out = this.#out;
    if (out === undefined) return;
    this.#out = undefined;
    this.#socket.write(outputHeader(out.jobId, out.channel, out.pos, out.offset, out.bytes));
    for (const data of out.data) this.#socket.write(data);
  }

  /** Queues a stored-end update; it goes with the next frame, or after {@link LAZY_MS}. */
  sendDurable(jobId: string, durable: number): void {
    if (this.#ended) return;
    this.#lazyDurable.set(jobId, durable);
    this.#armLazy();
  }

  #armLazy(): void {
    this.#lazyTimer ??= setTimeout(() => {
      this.#lazyTimer = undefined;
      const socket = this.#socket;
      socket.cork();
      this.#flushLazy();
      socket.uncork();
    }, LAZY_MS);
  }

  /** Writes the queued updates (the caller corks the socket, so they share one system call). */
  #flushLazy(): void {
    if (this.#lazyTimer !== undefined) {
      clearTimeout(this.#lazyTimer);
      this.#lazyTimer = undefined;
    }
    if (this.#ended) return;
    for (const [jobId, durable] of this.#lazyDurable) this.#socket.write(durableFrame(jobId, durable));
    for (const [jobId, consumed] of this.#lazyAcks) this.#socket.write(jsonFrame({ type: 'stdin-ack', jobId, consumed }));
    this.#lazyDurable.clear();
    this.#lazyAcks.clear();
  }

  /** Ends the connection after what is queued has been sent. */
  end(): void {
    if (this.#ended) return;
    this.#socket.cork();
    this.#flushLazy();
    this.#writeOutput();
    this.#socket.uncork();
    this.#ended = true;
    this.dispose();
    this.#socket.end();
  }

  /** Stops every subscription (the connection closed). */
  dispose(): void {
    clearTimeout(this.#lazyTimer);
    this.#lazyTimer = undefined;
    clearImmediate(this.#outFlush);
    this.#outFlush = undefined;
    for (const subscription of this.#subscriptions.values()) {
      // Followed up to the last frame heard: a follow deadline counts from there.
      subscription.job.followedAt = Math.max(subscription.job.followedAt, this.lastHeard);
      subscription.stop();
    }
    this.#subscriptions.clear();
  }

  /** Whether this connection follows job `jobId` (is subscribed to it). */
  follows(jobId: string): boolean {
    return !this.#ended && this.#subscriptions.has(jobId);
  }

  dropSubscription(jobId: string): void {
    this.#subscriptions.get(jobId)?.stop();
    this.#subscriptions.delete(jobId);
  }

  /**
   * Follows `job` from `from`, replacing this connection's earlier subscription to it;
   * `onExitSent` is called once its exit has been sent.
   */
  #subscribe(job: HostedJob, from: number, output: boolean, onExitSent?: () => void): void {
    this.#subscriptions.get(job.jobId)?.stop();
    const subscription = new Subscription(this, job, from, output, onExitSent);
    this.#subscriptions.set(job.jobId, subscription);
    this.#host.followed(job);
    // The reply goes first; output, events and the exit follow it.
    setImmediate(() => subscription.kick());
  }

  /** Forgets a job whose start asked for it (`subscribe.forget`): its exit is sent and in `exit.json`. */
  #forgetAfterExit(jobId: string): void {
    this.#host.forget(jobId).catch((error: unknown) => this.#log.error('could not forget a job after its exit', { jobId, err: error }));
  }

  #fatal(error: WireError): void {
    this.send({ type: 'fatal', error });
    this.end();
  }

  #onData(data: Buffer): void {
    if (this.#ended) return;
    this.lastHeard = Date.now();
    let frames: Frame[];
    try {
      frames = this.#decoder.push(data);
    } catch (error) {
      this.#fatal({ code: 'protocol', message: (error as Error).message });
      return;
    }
    for (const frame of frames) {
      if (this.#ended) return;
      try {
        this.#onFrame(frame);
      } catch (error) {
        this.#log.error('a client frame could not be handled', { err: error });
        this.#fatal({ code: 'internal', message: `the job host failed: ${(error as Error).message}` });
      }
    }
  }

  #onFrame(frame: Frame): void {
    if (this.version === undefined) {
      this.#hello(frame);
      return;
    }
    switch (frame.kind) {
      case FrameKind.json:
        void this.#request(frame.message);
        break;
      case FrameKind.stdin: {
        let refusal: WireError | undefined;
        try {
          refusal = this.#host.job(frame.jobId).writeStdin(frame.offset, frame.data);
        } catch (error) {
          refusal = wireError(error);
        }
        if (refusal !== undefined) this.send({ type: 'stdin-refused', jobId: frame.jobId, error: refusal });
        break;
      }
      case FrameKind.output:
      case FrameKind.durable:
        this.#fatal({ code: 'protocol', message: 'OUTPUT and DURABLE frames go from the host to clients, not back' });
        break;
      default: {
        const never: never = frame;
        void never;
      }
    }
  }

  #hello(frame: Frame): void {
    const message = frame.kind === FrameKind.json ? (frame.message as { type?: unknown; versions?: unknown }) : undefined;
    const versions = message?.type === 'hello' && Array.isArray(message.versions) ? message.versions.filter((v): v is number => Number.isSafeInteger(v)) : undefined;
    if (versions === undefined) {
      this.#fatal({ code: 'protocol', message: 'the first frame must be {"type":"hello","versions":[...]}' });
      return;
    }
    const version = this.#host.negotiate(versions);
    if (version === undefined) {
      const ours = this.#host.info.versions;
      this.send({
        type: 'refused',
        versions: ours,
        message: `this job host (pid ${process.pid}, jobwire ${this.#host.info.jobwireVersion}) speaks protocol versions ${ours.join(', ')}; the client offered ${versions.join(', ') || 'none'}`,
      });
      this.end();
      return;
    }
    this.version = version;
    this.send({ type: 'welcome', version, host: this.#host.info });
  }

  async #request(raw: unknown): Promise<void> {
    const ridOf = (raw as { rid?: unknown }).rid;
    const parsed = requestSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join('.') ?? '';
      const error: WireError = { code: 'bad_request', message: `bad request: ${field ? `${field}: ` : ''}${issue?.message ?? 'invalid'}`, ...(field ? { field } : {}) };
      // A refused base-env leaves none: the starts sent behind it must fail, not run with the previous one.
      if ((raw as { type?: unknown }).type === 'base-env') this.#baseEnv = undefined;
      if (typeof ridOf === 'number') this.send({ type: 'reply', rid: ridOf, error });
      else this.#fatal(error);
      return;
    }
    const request = parsed.data;
    try {
      const result = await this.#handle(request);
      this.send({ type: 'reply', rid: request.rid, result: result ?? {} });
    } catch (error) {
      this.send({ type: 'reply', rid: request.rid, error: wireError(error) });
    }
  }

  /** A start's environment from its `baseEnvDiff` (protocol version 4): the connection's `base-env` changed by it. */
  #envOf(diff: EnvDiff, whole: Record<string, string> | undefined): Record<string, string> {
    if ((this.version ?? 1) < BASE_ENV_VERSION) throw new JobwireError('bad_request', `baseEnvDiff needs protocol version ${BASE_ENV_VERSION}`, { field: 'job.baseEnvDiff' });
    if (whole !== undefined) throw new JobwireError('bad_request', 'a start carries baseEnv or baseEnvDiff, not both', { field: 'job.baseEnvDiff' });
    if (this.#baseEnv === undefined) throw new JobwireError('bad_request', 'baseEnvDiff before any base-env on this connection', { field: 'job.baseEnvDiff' });
    return applyEnvDiff(this.#baseEnv, diff);
  }

  async #handle(request: Request): Promise<unknown> {
    const host = this.#host;
    switch (request.type) {
      case 'start': {
        const description = parseJobDescription(request.job.description);
        // Version-2 fields: a version-1 client cannot have meant them (a host of that version ignores them).
        // The window needs acks, which only a version 2 client sends.
        if ((this.version ?? 1) < 2) delete description.outputWindow;
        const { followDeadline, baseEnvDiff, ...job1 } = request.job;
        const spec: StartJob = { ...job1, description, graceMs: request.job.graceMs ?? DEFAULT_GRACE_MS };
        if (baseEnvDiff !== undefined) spec.baseEnv = this.#envOf(baseEnvDiff, request.job.baseEnv);
        if (followDeadline !== undefined && (this.version ?? 0) >= FOLLOW_DEADLINE_VERSION) spec.followDeadline = followDeadline;
        const { job, existing } = host.startJob(spec);
        // Version 3: the job is forgotten once this connection has its exit (no `forget` request follows).
        const forget = request.subscribe?.forget === true && (this.version ?? 1) >= FORGET_ON_EXIT_VERSION;
        // A function job usually ends before a write would have left: its reply waits for its exit (see FUNCTION_START_HOLD_MS).
        const holdMs = host.functionStartHoldMs;
        const release = holdMs > 0 && request.subscribe !== undefined && !existing && description.js !== undefined && description.interactive !== true ? this.#cork.keep(holdMs) : undefined;
        if (request.subscribe !== undefined) {
          const onExitSent = release === undefined && !forget ? undefined : (): void => {
            release?.();
            if (forget) this.#forgetAfterExit(job.jobId);
          };
          this.#subscribe(job, 0, request.subscribe.output, onExitSent);
        }
        return { job: job.state(), existing };
      }
      case 'list':
        return { jobs: [...host.jobs.values()].map((job) => job.state()) };
      case 'subscribe': {
        const job = host.job(request.jobId);
        if (request.from > job.files.end) {
          throw new JobwireError('bad_request', `from ${request.from} is past the end of job ${request.jobId}'s output (${job.files.end})`, { field: 'from' });
        }
        this.#subscribe(job, request.from, request.output);
        return { job: job.state() };
      }
      case 'unsubscribe':
        this.dropSubscription(request.jobId);
        return {};
      case 'close-stdin': {
        const refusal = host.job(request.jobId).closeStdin(request.offset);
        if (refusal !== undefined) throw new JobwireError(refusal.code as 'conflict', refusal.message);
        return {};
      }
      case 'resize':
        host.job(request.jobId).resize(request.cols, request.rows);
        return {};
      case 'terminate':
        host.job(request.jobId).terminate(request.graceMs, request.reason);
        return {};
      case 'forget':
        await host.forget(request.jobId);
        return {};
      case 'ping':
        return { version: this.version };
      case 'base-env':
        if ((this.version ?? 1) < BASE_ENV_VERSION) throw new JobwireError('bad_request', `base-env needs protocol version ${BASE_ENV_VERSION}`, { field: 'type' });
        this.#baseEnv = request.env;
        return {};
      case 'output-ack':
        if ((this.version ?? 1) < 2) throw new JobwireError('bad_request', 'output-ack needs protocol version 2', { field: 'type' });
        host.job(request.jobId).ackOutput(request.end);
        return {};
      default: {
        const never: never = request;
        return never;
      }
    }
  }
}

/**
 * One connection following one job: output from a merged position (stored bytes from the
 * files, newer ones from the write-behind queue, then live as they arrive), DURABLE updates,
 * events, and the exit after the last output. Never buffers more than the socket's high-water
 * mark: while the connection is congested it sends nothing and catches up from the files later.
 */
class Subscription implements JobWatcher {
  #cursor: number;
  #pumping = false;
  #again = false;
  #stopped = false;
  #exitSent = false;
  #durableSent = 0;

  constructor(
    private readonly connection: Connection,
    readonly job: HostedJob,
    from: number,
    private readonly output: boolean,
    private readonly onExitSent?: () => void,
  ) {
    this.#cursor = from;
    job.watchers.add(this);
  }

  stop(): void {
    this.#stopped = true;
    this.job.watchers.delete(this);
  }

  onChunk(chunk: OutputChunk): void {
    if (!this.output || this.#stopped) return;
    // The live path: the chunk is next and the socket has room.
    if (!this.#pumping && this.#cursor === chunk.pos && !this.connection.congested) {
      this.connection.sendOutput(this.job.jobId, chunk);
      this.#cursor += chunk.data.length;
      return;
    }
    this.kick();
  }

  onDurable(): void {
    if (!this.#pumping && !this.connection.congested) this.#sendDurable();
    else this.kick();
  }

  onEvent(message: FromHost): void {
    if (!this.#stopped) this.connection.send(message);
  }

  onExit(): void {
    this.kick();
  }

  /** Runs the catch-up loop, or has it run once more if it is running. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    this.#again = false;
    void this.#pump()
      .catch((error: unknown) => {
        this.connection.send({ type: 'fatal', error: { code: 'internal', message: `cannot read the output of job ${this.job.jobId}: ${(error as Error).message}` } });
        this.connection.end();
      })
      .finally(() => {
        this.#pumping = false;
        if (this.#again) this.kick();
      });
  }

  async #pump(): Promise<void> {
    const files = this.job.files;
    for (;;) {
      if (this.#stopped || this.connection.congested) return;
      if (this.output && this.#cursor < files.end) {
        if (this.#cursor >= files.durable) {
          // Not stored yet: from the write-behind queue, all at once (no await in between).
          const pending = files.pendingFrom(this.#cursor);
          if (pending.length === 0) throw new Error(`no queued output at ${this.#cursor} (stored end ${files.durable}, end ${files.end})`);
          for (const chunk of pending) {
            this.connection.sendOutput(this.job.jobId, chunk);
            this.#cursor = chunk.pos + chunk.data.length;
            if (this.connection.congested) break;
          }
          continue;
        }
        const chunks = await files.read(this.#cursor, OUTPUT_PAGE_BYTES);
        if (this.#stopped) return;
        if (chunks.length === 0) throw new Error(`no stored output at ${this.#cursor} (stored end ${files.durable})`);
        for (const chunk of chunks) {
          // The cursor cannot have moved (only this loop moves it while it runs), so this is
          // only a guard.
          const end = chunk.pos + chunk.data.length;
          if (end <= this.#cursor) continue;
          const cut = this.#cursor - chunk.pos;
          this.connection.sendOutput(this.job.jobId, cut > 0 ? { channel: chunk.channel, pos: this.#cursor, offset: chunk.offset + cut, data: chunk.data.subarray(cut) } : chunk);
          this.#cursor = end;
        }
        continue;
      }
      this.#sendDurable();
      const exit = this.job.exit;
      if (exit !== null && !this.#exitSent && (!this.output || this.#cursor >= files.end)) {
        this.#exitSent = true;
        this.connection.send({ type: 'exit', jobId: this.job.jobId, exit });
        this.onExitSent?.();
      }
      return;
    }
  }

  #sendDurable(): void {
    const durable = this.job.files.durable;
    if (this.#stopped || durable <= this.#durableSent) return;
    this.#durableSent = durable;
    this.connection.sendDurable(this.job.jobId, durable);
  }
}

/** Whether `value` is a plain object whose own values are all strings. */
function isStringMap(value: unknown): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  for (const key in value) if (typeof (value as Record<string, unknown>)[key] !== 'string') return false;
  return true;
}

/** The wire form of any error. */
function wireError(error: unknown): WireError {
  if (error instanceof JobwireError) return error.toJSON();
  return { code: 'internal', message: error instanceof Error ? error.message : String(error) };
}
