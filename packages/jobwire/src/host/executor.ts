/**
 * The host executor: runs jobs through the home's job host (this folder) instead of in this process,
 * so a server never spawns a job itself and its jobs outlive it. The host starts each job with
 * the local executor, holds its pipes or terminal and writes its output to the stream log's files
 * itself ({@link HostExecutor.storesOutput}); this side follows it over the host's socket: output
 * as it arrives, how far it is stored, stdin with a window, resize, terminate, and the end.
 *
 * A distributed worker uses it with `storesOutput: false`: the host still writes the files (it
 * replays from them when the worker follows a job again), but the worker appends every chunk the
 * host hands over to its own stream log (Redis), as it did with output from its own pipes.
 *
 * One connection serves every job. When it ends, each job still followed is looked up again by
 * identity (`recoverJobs`): followed on from where it was if its host lives, settled from its
 * `exit.json` if it ended, Lost with a reason naming the host if the host died.
 * @module
 */
import { JobwireError, type JobDescription, type OutputChunk } from '@jobwire/client';
import type { LocalExecutor } from '../executors/local/index.js';
import type { Executor, ExecutorState, ProcessHandle, ProcessResult, QueueDef, ResumeFrom, StartSpec } from '../executors/types.js';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobProcess } from '../job-process.js';
import type { HostClient, HostJobEvent } from './client.js';
import { ensureHost, type EnsureHostOptions } from './ensure.js';
import { HostConnectionClosedError } from './errors.js';
import { hostPaths } from './paths.js';
import { FOLLOW_DEADLINE_VERSION, KEEPALIVE_MS, type ExitRecord, type FollowDeadline, type HostJobState, type StartJob, type StorageState } from './protocol.js';
import { recoverJobs, type JobRecovery } from './recovery.js';

/**
 * Stdin bytes sent to the host but not yet handed to the job, beyond which writes wait (the host
 * refuses past 8 MiB): about what a pipe buffers, so a fast writer is held back as it was when
 * the server wrote to the job's pipe itself.
 */
export const STDIN_WINDOW_BYTES = 64 * 1024;

/** Options of a {@link HostExecutor}. */
export interface HostExecutorOptions {
  /** The jobwire home whose host runs the jobs (`<home>/host.sock`). */
  home: string;
  /** The executor the host runs jobs with: its queues and checks are this executor's. */
  local: LocalExecutor;
  /** Milliseconds between SIGTERM and SIGKILL, for jobs the host stops and leftovers of a dead host. */
  graceMs: number;
  /** How to reach or start the host. @defaultValue ensureHost's defaults */
  ensure?: EnsureHostOptions;
  /**
   * Whether the runner's stream log reads the host's files (the embedded one: see
   * {@link HostExecutor.storesOutput}); false hands every chunk to `StartSpec.onOutput` for the
   * runner to append (a worker's Redis stream log). @defaultValue true
   */
  storesOutput?: boolean;
  /**
   * Stop each job once this side has not followed it for a while (a distributed worker: its
   * jobs must not run on after the cluster hands them on; see `FollowDeadline`). Hosts of
   * protocol version 1 cannot: their jobs run on until they end, and the first such job logs a
   * warning through `onError`. @defaultValue none (the embedded server: its jobs wait for it)
   */
  followDeadline?: FollowDeadline;
  /** Hears what goes wrong on the side (a failed forget, a lost connection). @defaultValue ignored */
  onError?(err: unknown, jobId?: string): void;
}

/** What a job started through the host records for a restart ({@link ExecutorState}). */
export interface HostJobRecord extends ExecutorState {
  kind: 'job-host';
  /** The job's leader and its host (pid, start time, boot id each). */
  process: JobProcess;
}

/** Runs jobs on the home's job host. */
export class HostExecutor implements Executor {
  /** Adaptor name: the jobs run on this machine, as with the local executor. */
  readonly name = 'local';
  readonly storesOutput: boolean;
  /** The host writes the start notice as the job's first stderr bytes, and hands it over as output. */
  readonly writesNotice = true;
  readonly #options: HostExecutorOptions;
  #client: Promise<HostClient> | undefined;
  /** Jobs followed now. */
  readonly #followed = new Map<string, HostJobHandle>();
  /** The client each connection attempt made, to tell a dead one from the current one. */
  readonly #connected = new WeakMap<Promise<HostClient>, HostClient>();
  /** What the journal of a dead host said of its jobs (see {@link recover}). */
  readonly #recovered = new Map<string, JobRecovery>();
  #closed = false;
  /** A warning that the host cannot enforce follow deadlines was given. */
  #warnedOldHost = false;
  /**
   * The server's environment as it was when this executor was made: copied once, as reading
   * `process.env` costs a call into C++ per variable (about 0.4 ms per job on a loaded VM).
   */
  readonly #baseEnv = stringEnv(process.env);

  constructor(options: HostExecutorOptions) {
    this.#options = options;
    this.storesOutput = options.storesOutput ?? true;
  }

  queues(): QueueDef[] {
    return this.#options.local.queues();
  }

  check(description: JobDescription): void {
    this.#options.local.check(description);
  }

  /**
   * The connection to the host, made (and the host started) on first use; after a connection
   * ended, the next call makes a new one.
   */
  connect(): Promise<HostClient> {
    if (this.#client === undefined) {
      const { home, graceMs, ensure, followDeadline } = this.#options;
      const connecting = ensureHost(home, { graceMs, ...(followDeadline !== undefined ? { keepAliveMs: KEEPALIVE_MS } : {}), ...ensure }).then(({ client, recovered }) => {
        // Jobs of a host that died, settled from its journal (their processes stopped): the
        // outcome, with what was stopped, is the one to report.
        for (const { jobId, recovery } of recovered) this.#recovered.set(jobId, recovery);
        this.#connected.set(connecting, client);
        void client.closed.then((error) => {
          if (this.#client === connecting) this.#client = undefined;
          if (error !== undefined) this.#lostConnection(error);
        });
        return client;
      });
      connecting.catch(() => {
        if (this.#client === connecting) this.#client = undefined;
      });
      this.#client = connecting;
    }
    return this.#client;
  }

  /** Forgets `client` when it is the current connection (it failed), so the next {@link connect} makes a new one. */
  drop(client: HostClient): void {
    if (this.#client !== undefined && this.#connected.get(this.#client) === client) this.#client = undefined;
  }

  /**
   * Removes the host's files of a job that ended and was settled elsewhere (with
   * `storesOutput: false` its output lives in the runner's stream log; the files only served
   * to follow it again).
   */
  async discardOutput(jobId: string): Promise<void> {
    await rm(join(hostPaths(this.#options.home).output, jobId), { recursive: true, force: true });
  }

  /** Ends the connection; the host and its jobs go on. */
  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) (await client.catch(() => undefined))?.close();
  }

  start(spec: StartSpec): ProcessHandle {
    const handle = new HostJobHandle(this, spec, 0);
    handle.begin(async (client, listener) => {
      // Only where the host's files are the stream log: a worker (storesOutput false) that dies
      // before it has stored the output the host sent must find the job still held, to replay it.
      // Known before the request: the exit may come in the same read as the reply.
      const forget = this.storesOutput && client.forgetsOnExit;
      handle.hostForgets = forget;
      const { job } = await client.start(this.#startJob(spec, client), { listener, forget });
      return job;
    });
    return handle;
  }

  async resume(spec: StartSpec, state: ExecutorState, from: ResumeFrom): Promise<ProcessHandle | undefined> {
    if (state.kind !== 'job-host' || typeof state.process !== 'object' || state.process === null) return undefined;
    const handle = new HostJobHandle(this, spec, from.stdin ?? 0);
    handle.position = from.stdout + from.stderr;
    handle.process = state.process as JobProcess;
    handle.pid = handle.process.leader.pid;
    // Whatever the store says of it, the host's state is reported afresh.
    handle.storageUnknown();
    await handle.find();
    return handle;
  }

  /**
   * What became of a job whose host may be gone, by identity (see `recoverJobs`): running on a
   * live host, ended with its end stored, or Lost with a reason naming the host.
   */
  async recover(jobId: string, process: JobProcess | null): Promise<JobRecovery> {
    const journal = this.#recovered.get(jobId);
    if (journal !== undefined) {
      this.#recovered.delete(jobId);
      return journal;
    }
    const outcomes = await recoverJobs(this.#options.home, [{ id: jobId, process }], this.#options.graceMs);
    return outcomes.get(jobId)!;
  }

  follow(handle: HostJobHandle): void {
    this.#followed.set(handle.jobId, handle);
  }

  unfollow(handle: HostJobHandle): void {
    if (this.#followed.get(handle.jobId) === handle) this.#followed.delete(handle.jobId);
  }

  report(err: unknown, jobId?: string): void {
    // Requests cut short by our own close (a detach's unsubscribe, say) are no news.
    if (this.#closed && err instanceof HostConnectionClosedError) return;
    this.#options.onError?.(err, jobId);
  }

  #lostConnection(error: Error): void {
    this.report(error);
    for (const handle of [...this.#followed.values()]) void handle.find();
  }

  #startJob(spec: StartSpec, client: HostClient): StartJob {
    const job: StartJob = {
      jobId: spec.jobId,
      description: spec.description,
      defaultCwd: spec.defaultCwd,
      env: spec.env,
      // The host may outlive this server: jobs get the environment of the server that submitted them.
      baseEnv: spec.baseEnv ?? this.#baseEnv,
      graceMs: this.#options.graceMs,
    };
    if (spec.account !== undefined) job.account = spec.account;
    if (spec.notice !== undefined) job.notice = spec.notice;
    const deadline = this.#options.followDeadline;
    if (deadline !== undefined) {
      if (client.version >= FOLLOW_DEADLINE_VERSION) job.followDeadline = deadline;
      else if (!this.#warnedOldHost) {
        this.#warnedOldHost = true;
        this.report(
          new Error(`the job host (pid ${client.host.pid}, jobwire ${client.host.jobwireVersion}) speaks protocol version ${client.version}, older than follow deadlines: jobs it runs for this worker run on if the worker is gone, until the worker's next start stops them`),
          spec.jobId,
        );
      }
    }
    return job;
  }
}

/** One job followed on the host. */
class HostJobHandle implements ProcessHandle {
  pid: number | undefined = undefined;
  process: JobProcess | undefined = undefined;
  ready: Promise<void> = Promise.resolve();
  readonly done: Promise<ProcessResult>;
  readonly jobId: string;
  /** The next merged output position expected. */
  position = 0;
  /** The host forgets the job once it has sent its exit (it was started so, by a host of protocol version 3). */
  hostForgets = false;
  #client: HostClient | undefined;
  #resolve!: (result: ProcessResult) => void;
  #ended = false;
  #detached = false;
  /** Stdin offset of the next byte sent. */
  #sent: number;
  /** Stdin bytes the job has read. */
  #consumed = 0;
  #stdinError: Error | undefined;
  #windowWaiters: Array<() => void> = [];
  /** The start request has not been answered yet. */
  #starting = false;
  /** Why the job is held back now (see StartSpec.onHeldBack), null when it is not. */
  #heldBack: string | null | undefined = null;
  /** The last {@link find} (a reattach under way while the client is unset). */
  #finding: Promise<void> = Promise.resolve();
  /** A terminate asked for before the host had the job. */
  #pendingTerminate: number | undefined;
  readonly #listener = (event: HostJobEvent): void => this.#onEvent(event);

  constructor(
    private readonly executor: HostExecutor,
    private readonly spec: StartSpec,
    stdinFrom: number,
  ) {
    this.jobId = spec.jobId;
    this.#sent = stdinFrom;
    this.#consumed = stdinFrom;
    this.done = new Promise((resolve) => (this.#resolve = resolve));
  }

  /** Starts the job on the host (`request` sends the start with the listener). */
  begin(request: (client: HostClient, listener: (event: HostJobEvent) => void) => Promise<HostJobState>): void {
    this.executor.follow(this);
    this.#starting = true;
    this.ready = (async () => {
      try {
        let client = await this.executor.connect();
        let job: HostJobState;
        try {
          job = await request(client, this.#listener);
        } catch (err) {
          if (!(err instanceof HostConnectionClosedError)) throw err;
          // The connection ended before the reply: the start is idempotent per job id, so ask
          // again (a host that had started the job answers with it; a new host starts it).
          this.executor.drop(client);
          client = await this.executor.connect();
          job = await request(client, this.#listener);
        }
        this.#client = client;
        this.#adopt(job);
        if (this.#pendingTerminate !== undefined) this.terminate(this.#pendingTerminate);
      } catch (err) {
        this.#finish({ exitCode: null, signal: null, error: `could not start the job on the job host: ${message(err)}` });
      } finally {
        this.#starting = false;
      }
    })();
  }

  /**
   * Finds the job again (after a restart or a lost connection): followed on from `position` when
   * its host holds it, settled from its stored end, or Lost when its host died.
   */
  find(): Promise<void> {
    // A start under way asks again by itself (see begin).
    if (this.#ended || this.#detached || this.#starting) return Promise.resolve();
    this.#finding = this.#find();
    return this.#finding;
  }

  /** {@link find}'s work. */
  async #find(): Promise<void> {
    this.executor.follow(this);
    this.#client = undefined;
    // Followed again by a subscribe, which asks no forget of the host.
    this.hostForgets = false;
    try {
      const recovery = await this.executor.recover(this.jobId, this.process ?? null);
      if (recovery.kind === 'lost') {
        this.#finish({ exitCode: null, signal: null, lost: recovery.reason });
        return;
      }
      if (recovery.kind === 'ended') {
        this.#finish(resultOf(recovery.exit));
        return;
      }
      const client = await this.executor.connect();
      let job: HostJobState;
      try {
        job = await client.subscribe(this.jobId, this.#listener, { from: this.position });
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'not_found') throw err;
        // The host lives but does not hold the job: it ended and was forgotten, or never ran here.
        // (Or it had just died when it was looked at: a new host settled its journal.)
        const again = await this.executor.recover(this.jobId, this.process ?? null);
        if (again.kind === 'ended') this.#finish(resultOf(again.exit));
        else if (again.kind === 'lost') this.#finish({ exitCode: null, signal: null, lost: again.reason });
        else this.#finish({ exitCode: null, signal: null, lost: `its job host (pid ${recovery.hostPid}) no longer holds it` });
        return;
      }
      this.#client = client;
      this.#adopt(job);
    } catch (err) {
      this.#finish({ exitCode: null, signal: null, lost: `its job host could not be reached again: ${message(err)}` });
    }
  }

  /**
   * The client that holds the job, once a start or reattach under way has got it (stdin written
   * right after a submit comes before the host's answer); undefined when there is none.
   */
  async #holder(): Promise<HostClient | undefined> {
    if (this.#client === undefined && this.#starting) await this.ready;
    if (this.#client === undefined) await this.#finding;
    return this.#client;
  }

  async writeStdin(data: Uint8Array): Promise<void> {
    if (this.#ended || this.#detached) return;
    if (this.#stdinError !== undefined) throw this.#stdinError;
    const client = await this.#holder();
    if (this.#ended || this.#detached) return;
    if (client === undefined) throw new Error('the job host does not hold the job (yet)');
    const at = this.#sent;
    this.#sent += data.byteLength;
    if (!client.writeStdin(this.jobId, at, data)) await client.drained();
    while (!this.#ended && !this.#detached && this.#stdinError === undefined && this.#sent - this.#consumed > STDIN_WINDOW_BYTES) {
      await new Promise<void>((resolve) => this.#windowWaiters.push(resolve));
    }
    if (this.#stdinError !== undefined) throw this.#stdinError;
  }

  closeStdin(): void {
    void this.#holder().then((client) => {
      if (client === undefined || this.#ended || this.#detached) return;
      return client.closeStdin(this.jobId, this.#sent);
    }).catch((err: unknown) => this.#requestFailed(err));
  }

  /** Moves the job's output window on (protocol version 2; an older host reads output as it comes). */
  ackOutput(end: number): void {
    void this.#holder()
      .then((client) => (client === undefined || this.#ended || this.#detached ? undefined : client.ackOutput(this.jobId, end)))
      .catch((err: unknown) => this.#requestFailed(err));
  }

  resize(cols: number, rows: number): void {
    void this.#holder().then((client) => client?.resize(this.jobId, cols, rows)).catch((err: unknown) => this.#requestFailed(err));
  }

  terminate(graceMs: number): void {
    if (this.#ended) return;
    const client = this.#client;
    if (client === undefined) {
      this.#pendingTerminate = graceMs;
      return;
    }
    client.terminate(this.jobId, { graceMs, reason: STOPPED_BY_JOBWIRE }).catch((err: unknown) => this.#requestFailed(err));
  }

  /**
   * A stdin close, output ack, resize or terminate the host refused. `not_found` is no news: the
   * job ended and the host forgot it (protocol version 3 forgets on exit) while the request was on
   * its way; the exit follows on the subscription. Anything else is reported.
   */
  #requestFailed(err: unknown): void {
    if (err instanceof JobwireError && err.code === 'not_found') return;
    this.executor.report(err, this.jobId);
  }

  detach(): void {
    if (this.#ended || this.#detached) return;
    this.#detached = true;
    this.executor.unfollow(this);
    this.#releaseWaiters();
    this.#client?.unsubscribe(this.jobId).catch(() => {});
  }

  #adopt(job: HostJobState): void {
    this.pid = job.pid ?? undefined;
    this.process = job.process ?? undefined;
    this.#consumed = Math.max(this.#consumed, job.stdin.consumed);
    this.#storage(job.storage);
    if (job.process !== null) this.spec.onState?.({ kind: 'job-host', process: job.process } satisfies HostJobRecord);
  }

  #onEvent(event: HostJobEvent): void {
    if (this.#detached || this.#ended) return;
    switch (event.type) {
      case 'output':
        this.#output(event.chunk);
        break;
      case 'durable':
        this.spec.onStored?.(event.durable);
        break;
      case 'exit':
        this.spec.onStored?.(event.exit.output.end);
        this.#finish(resultOf(event.exit));
        // The end is in exit.json as well: a restart that finds the job forgotten still settles it.
        if (!this.hostForgets) this.#client?.forget(this.jobId).catch((err: unknown) => this.executor.report(err, this.jobId));
        break;
      case 'progress':
        this.spec.onProgress(event.message);
        break;
      case 'stdin-ack':
        this.#consumed = Math.max(this.#consumed, event.consumed);
        this.#releaseWaiters();
        break;
      case 'stdin-refused':
        this.#stdinError = event.error;
        this.#releaseWaiters();
        break;
      case 'storage':
        this.#storage(event.storage);
        break;
      default: {
        const never: never = event;
        void never;
      }
    }
  }

  /** The next storage state is reported even if it is "ok" (a resumed job's reason may be stale). */
  storageUnknown(): void {
    this.#heldBack = undefined;
  }

  #storage(storage: StorageState): void {
    const reason = storage.state === 'ok' ? null : `held back since ${storage.since}: its output cannot be stored (${storage.state === 'full' ? 'disk full' : 'write failing'}: ${storage.message})`;
    if (reason === this.#heldBack) return;
    this.#heldBack = reason;
    this.spec.onHeldBack?.(reason);
  }

  #output(chunk: OutputChunk): void {
    this.position = chunk.pos + chunk.data.byteLength;
    if (this.executor.storesOutput && this.spec.onStoredOutput !== undefined) this.spec.onStoredOutput(chunk);
    else this.spec.onOutput(chunk.channel, chunk.data as Buffer);
  }

  #releaseWaiters(): void {
    for (const waiter of this.#windowWaiters.splice(0)) waiter();
  }

  #finish(result: ProcessResult): void {
    if (this.#ended || this.#detached) return;
    this.#ended = true;
    this.executor.unfollow(this);
    this.#releaseWaiters();
    this.#resolve(result);
  }
}

/** The `reason` this executor gives the host for a stop it asks for (cancel, maxRuntime, shutdown). */
const STOPPED_BY_JOBWIRE = 'stopped by jobwire';

/** How a job ended, from the host's record. */
function resultOf(exit: ExitRecord): ProcessResult {
  const result: ProcessResult = { exitCode: exit.exitCode, signal: exit.signal };
  if (exit.error !== undefined) result.error = exit.error;
  if (exit.result !== undefined) result.result = exit.result;
  // Hosts of earlier builds leave the record count out: the stream log reads the files then.
  if (exit.output.records !== undefined) result.stored = { stdout: exit.output.stdout, stderr: exit.output.stderr, records: exit.output.records };
  if (exit.stoppedBy === 'maxRuntime') result.error = 'stopped after its maxRuntime';
  else if (exit.stoppedBy !== undefined && exit.stoppedBy !== STOPPED_BY_JOBWIRE) result.lost = `stopped by its job host: ${exit.stoppedBy}`;
  return result;
}

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  return out;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
