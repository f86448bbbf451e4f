/**
 * The client side of the job host protocol: what a server (or worker) uses to start jobs in its
 * host, follow their output and state, write their stdin and learn their end. One connection
 * carries every job; there is no automatic reconnect — when the connection ends (see
 * {@link HostClient.closed}), call `ensureHost` again, `list()` the jobs and subscribe again
 * from the positions you have (the host replays what you missed, and dedupes stdin you resend).
 * @module
 */
import * as net from 'node:net';
import { errorFromWire, type JobwireError, type OutputChunk } from '@jobwire/client';
import { envDiff, type EnvDiff } from '../env-diff.js';
import { HostConnectionClosedError, HostProtocolError, HostUnavailableError, HostVersionError } from './errors.js';
import {
  FrameDecoder,
  FrameKind,
  PROTOCOL_VERSIONS,
  jsonFrame,
  stdinHeader,
  type ExitRecord,
  type Frame,
  FORGET_ON_EXIT_VERSION,
  BASE_ENV_VERSION,
  type FromHost,
  type HostInfo,
  type HostJobState,
  type StartJob,
  type StorageState,
  type ToHost,
  type WireError,
  TurnCork,
} from './protocol.js';

/** Options of {@link HostClient.connect}. */
export interface HostClientOptions {
  /** Protocol versions offered in the hello (tests simulate other builds). @defaultValue PROTOCOL_VERSIONS */
  versions?: readonly number[];
  /** Who is connecting, for the host's log. @defaultValue `jobwire pid <pid>` */
  agent?: string;
  /** Gives up when the host has not welcomed the client within this time. @defaultValue 10000 */
  timeoutMs?: number;
  /**
   * Sends a `ping` this often, so that the host hears from this client while it lives (the
   * follow deadlines of its jobs count from the last frame heard: see `FollowDeadline`).
   * The timer does not keep the process alive. @defaultValue none
   */
  keepAliveMs?: number;
}

/** What a subscription delivers for its job; switch over `type`. */
export type HostJobEvent =
  /** A chunk of output, in merged order, none missing or repeated from the subscription's `from`. */
  | { type: 'output'; chunk: OutputChunk }
  /** The merged end of what is stored in the job's files. */
  | { type: 'durable'; durable: number }
  /** The job ended and all its output is stored; after its last `output`. */
  | { type: 'exit'; exit: ExitRecord }
  /** Output storage started or stopped failing. */
  | { type: 'storage'; storage: StorageState }
  /** A function job's progress message. */
  | { type: 'progress'; message: string }
  /** The job has read this many stdin bytes. */
  | { type: 'stdin-ack'; consumed: number }
  /** A stdin write was refused (gap, closed stdin, too much unread): resend from `stdin.received` of the state. */
  | { type: 'stdin-refused'; error: JobwireError };

/** Options of {@link HostClient.subscribe}. */
export interface SubscribeOptions {
  /** Merged output position to start from. @defaultValue 0 */
  from?: number;
  /** Whether to receive output chunks, or only the job's state events. @defaultValue true */
  output?: boolean;
}

/** Options of {@link HostClient.terminate}. */
export interface TerminateOptions {
  /** Milliseconds between SIGTERM and SIGKILL. */
  graceMs: number;
  /** Why, recorded as the exit's `stoppedBy` (e.g. "cancel", "server stop --jobs"). */
  reason: string;
}

interface Pending {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

/** A connection to a job host. */
export class HostClient {
  /** The protocol version agreed on. */
  readonly version: number;
  /** What the host said about itself. */
  readonly host: HostInfo;
  /** Resolves when the connection has ended, with why when it was not {@link close}. */
  readonly closed: Promise<Error | undefined>;
  readonly #socket: net.Socket;
  /** Every write of a turn leaves at its end, in one system call (several starts, stdin and its close). */
  readonly #cork: TurnCork;
  readonly #decoder: FrameDecoder;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Map<string, (event: HostJobEvent) => void>();
  /** Jobs started with `forget`: their listener goes with their exit. */
  readonly #forgetting = new Set<string>();
  #nextRid = 1;
  #closedError: Error | undefined;
  #ended = false;
  #resolveClosed!: (error: Error | undefined) => void;
  #keepAlive: NodeJS.Timeout | undefined;
  /** The `base-env` sent on this connection (protocol version 4), once one was. */
  #baseEnv: Record<string, string> | undefined;

  private constructor(socket: net.Socket, decoder: FrameDecoder, version: number, host: HostInfo, early: Frame[], keepAliveMs?: number) {
    this.#socket = socket;
    this.#cork = new TurnCork(socket);
    this.#decoder = decoder;
    this.version = version;
    this.host = host;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    socket.on('data', (data: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.#decoder.push(data);
      } catch (error) {
        this.#fail(new HostProtocolError(`the job host sent a frame this client cannot read: ${(error as Error).message}`, { cause: error }));
        return;
      }
      for (const frame of frames) this.#onFrame(frame);
    });
    socket.on('error', (error) => this.#fail(new HostConnectionClosedError(`the connection to the job host failed: ${error.message}`, { cause: error })));
    socket.on('close', () => this.#fail(new HostConnectionClosedError('the job host closed the connection')));
    for (const frame of early) this.#onFrame(frame);
    if (keepAliveMs !== undefined && keepAliveMs > 0) {
      this.#keepAlive = setInterval(() => this.ping().catch(() => {}), keepAliveMs);
      this.#keepAlive.unref();
    }
  }

  /**
   * Connects to the host listening on `socketPath` and agrees on a protocol version. Rejects with
   * a {@link HostUnavailableError} when nothing answers (`cause` has the system error: ENOENT,
   * ECONNREFUSED, ...), a {@link HostVersionError} when the host speaks no version offered.
   */
  static connect(socketPath: string, options: HostClientOptions = {}): Promise<HostClient> {
    const versions = [...(options.versions ?? PROTOCOL_VERSIONS)];
    const agent = options.agent ?? `jobwire pid ${process.pid}`;
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      const decoder = new FrameDecoder();
      let settled = false;
      const timer = setTimeout(() => fail(new HostUnavailableError(`the job host at ${socketPath} did not answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const onData = (data: Buffer): void => {
        let frames: Frame[];
        try {
          frames = decoder.push(data);
        } catch (error) {
          fail(new HostProtocolError(`the job host sent a frame this client cannot read: ${(error as Error).message}`, { cause: error }));
          return;
        }
        const first = frames.shift();
        if (first === undefined) return;
        const message = first.kind === FrameKind.json ? (first.message as FromHost) : undefined;
        if (message?.type === 'refused') {
          fail(new HostVersionError(`the job host refused this client: ${message.message}`, message.versions));
          return;
        }
        if (message?.type !== 'welcome') {
          fail(new HostProtocolError(`the job host answered the hello with ${message?.type ?? `a frame of kind ${first.kind}`}`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        resolve(new HostClient(socket, decoder, message.version, message.host, frames, options.keepAliveMs));
      };
      const onError = (error: Error): void => fail(new HostUnavailableError(`cannot reach the job host at ${socketPath}: ${error.message}`, { cause: error }));
      const onClose = (): void => fail(new HostUnavailableError(`the job host at ${socketPath} closed the connection before welcoming this client`));
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
      socket.on('connect', () => socket.write(jsonFrame({ type: 'hello', versions, agent })));
    });
  }

  /**
   * Starts a job. Idempotent per `jobId`: a repeat (say, after a reconnect when the first reply
   * was lost) answers the running job with `existing: true` and starts nothing. With a
   * `listener`, follows the job from its first byte in the same round trip (see {@link subscribe});
   * with `forget` too, and a host of protocol version 3 ({@link forgetsOnExit}), the host forgets
   * the job by itself once it has sent its exit (no {@link forget} needed, the listener is dropped).
   */
  async start(job: StartJob, follow?: { listener: (event: HostJobEvent) => void; output?: boolean; forget?: boolean }): Promise<{ job: HostJobState; existing: boolean }> {
    if (this.version < 2 && job.description.outputWindow !== undefined) {
      // A version 1 host knows no output window (and no acks could move one): it reads the output as it comes.
      const { outputWindow: _unused, ...description } = job.description;
      job = { ...job, description };
    }
    let envSent: Promise<Error | undefined> | undefined;
    if (job.baseEnv !== undefined && this.version >= BASE_ENV_VERSION) ({ job, envSent } = this.#withEnvDiff(job, job.baseEnv));
    if (follow === undefined) return (await this.#startRequest({ type: 'start', job }, envSent)) as { job: HostJobState; existing: boolean };
    // Registered first: frames may come right behind the reply.
    this.#listeners.set(job.jobId, follow.listener);
    const forget = follow.forget === true && this.forgetsOnExit;
    if (forget) this.#forgetting.add(job.jobId);
    try {
      return (await this.#startRequest({ type: 'start', job, subscribe: { output: follow.output ?? true, ...(forget ? { forget } : {}) } }, envSent)) as { job: HostJobState; existing: boolean };
    } catch (error) {
      this.#forgetting.delete(job.jobId);
      if (this.#listeners.get(job.jobId) === follow.listener) this.#listeners.delete(job.jobId);
      throw error;
    }
  }

  /**
   * `job` with its `baseEnv` as a difference from this connection's `base-env` (protocol
   * version 4): nothing when it is the environment sent last (the same object: the server's
   * own, every start), else what differs; a new `base-env` first when nothing was sent yet or
   * most of it differs.
   */
  #withEnvDiff(job: StartJob, env: Record<string, string>): { job: StartJob; envSent?: Promise<Error | undefined> } {
    const { baseEnv: _sent, ...rest } = job;
    let diff: EnvDiff = {};
    let envSent: Promise<Error | undefined> | undefined;
    if (env !== this.#baseEnv) {
      const base = this.#baseEnv;
      diff = base === undefined ? { set: env } : envDiff(base, env);
      const changed = Object.keys(diff.set ?? {}).length + (diff.unset?.length ?? 0);
      if (base === undefined || changed > Object.keys(env).length / 2) {
        this.#baseEnv = env;
        // Ahead of the start on the same socket: the host has it when the start comes. When
        // it is refused (a value that is not a string), so is the start, for that reason.
        envSent = this.#request({ type: 'base-env', env }).then(
          () => undefined,
          (error: unknown) => {
            if (this.#baseEnv === env) this.#baseEnv = undefined;
            return error as Error;
          },
        );
        diff = {};
      }
    }
    return { job: { ...rest, baseEnvDiff: diff }, ...(envSent !== undefined ? { envSent } : {}) };
  }

  /** A start request; when it fails after its `base-env` was refused, that refusal, about the start's `job.baseEnv`. */
  async #startRequest(message: DistributiveOmit<Extract<ToHost, { type: 'start' }>, 'rid'>, envSent: Promise<Error | undefined> | undefined): Promise<unknown> {
    try {
      return await this.#request(message);
    } catch (error) {
      const refused = await envSent;
      if (refused === undefined) throw error;
      const { code, field } = refused as Error & { code?: string; field?: string };
      if (field !== 'env' || code === undefined) throw refused;
      throw fromWire({ code, field: 'job.baseEnv', message: refused.message.replace(/^bad request: env/, 'bad request: job.baseEnv') });
    }
  }

  /** Whether the host forgets a job started with `forget` once it has sent its exit (protocol version 3). */
  get forgetsOnExit(): boolean {
    return this.version >= FORGET_ON_EXIT_VERSION;
  }

  /** The jobs the host holds: running, or ended and not yet forgotten. */
  async list(): Promise<HostJobState[]> {
    return ((await this.#request({ type: 'list' })) as { jobs: HostJobState[] }).jobs;
  }

  /**
   * Follows a job: `listener` gets its output from `from` (stored, then live), its events and,
   * last, its exit. One listener per job and connection; subscribing again replaces it.
   * Resolves with the job's state when the host has accepted.
   */
  async subscribe(jobId: string, listener: (event: HostJobEvent) => void, options: SubscribeOptions = {}): Promise<HostJobState> {
    // Registered first: frames may come right behind the reply. A new subscription does not forget.
    this.#forgetting.delete(jobId);
    this.#listeners.set(jobId, listener);
    try {
      return ((await this.#request({ type: 'subscribe', jobId, from: options.from ?? 0, output: options.output ?? true })) as { job: HostJobState }).job;
    } catch (error) {
      if (this.#listeners.get(jobId) === listener) this.#listeners.delete(jobId);
      throw error;
    }
  }

  /** Stops following a job. */
  async unsubscribe(jobId: string): Promise<void> {
    this.#listeners.delete(jobId);
    this.#forgetting.delete(jobId);
    await this.#request({ type: 'unsubscribe', jobId });
  }

  /**
   * Sends stdin bytes starting at stdin offset `offset` (bytes the host already has are
   * skipped). Returns false when the socket's buffer is full: wait for {@link drained}.
   * Refusals come as `stdin-refused` events of the job's subscription.
   */
  writeStdin(jobId: string, offset: number, data: Uint8Array): boolean {
    if (this.#ended) throw this.#closedError ?? new HostConnectionClosedError('the connection to the job host is closed');
    const socket = this.#socket;
    this.#cork.hold();
    socket.cork();
    socket.write(stdinHeader(jobId, offset, data.byteLength));
    const ok = socket.write(data);
    socket.uncork();
    return ok;
  }

  /** Resolves once the socket's buffer has drained (or the connection ended). */
  drained(): Promise<void> {
    if (this.#ended || this.#socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  /** Sends the job EOF once it has read `offset` bytes of stdin. */
  async closeStdin(jobId: string, offset: number): Promise<void> {
    await this.#request({ type: 'close-stdin', jobId, offset });
  }

  /** Changes a tty job's terminal size. */
  async resize(jobId: string, cols: number, rows: number): Promise<void> {
    await this.#request({ type: 'resize', jobId, cols, rows });
  }

  /**
   * Tells the host the job's output is taken up to merged position `end` (its `outputWindow`
   * moves on). Needs protocol version 2: false, and nothing sent, with a version 1 host.
   */
  async ackOutput(jobId: string, end: number): Promise<boolean> {
    if (this.version < 2) return false;
    await this.#request({ type: 'output-ack', jobId, end });
    return true;
  }

  /** Stops a job: SIGTERM to its group, SIGKILL after `graceMs`. */
  async terminate(jobId: string, options: TerminateOptions): Promise<void> {
    await this.#request({ type: 'terminate', jobId, graceMs: options.graceMs, reason: options.reason });
  }

  /** Tells the host its client has stored the job's exit: it forgets the job. */
  async forget(jobId: string): Promise<void> {
    this.#listeners.delete(jobId);
    this.#forgetting.delete(jobId);
    await this.#request({ type: 'forget', jobId });
  }

  /** A round trip, to check that the host still answers. */
  async ping(): Promise<void> {
    await this.#request({ type: 'ping' });
  }

  /** Ends the connection. The host and its jobs go on. */
  close(): void {
    if (this.#ended) return;
    // end(), not destroy(): stdin written just before must still reach the host.
    this.#socket.end();
    this.#fail(undefined, false);
  }

  /** Closes the connection (`await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #request(message: DistributiveOmit<Exclude<ToHost, { type: 'hello' }>, 'rid'>): Promise<unknown> {
    if (this.#ended) return Promise.reject(this.#closedError ?? new HostConnectionClosedError('the connection to the job host is closed'));
    const rid = this.#nextRid++;
    return new Promise((resolve, reject) => {
      this.#pending.set(rid, { resolve, reject });
      this.#cork.hold();
      this.#socket.write(jsonFrame({ ...message, rid } as ToHost));
    });
  }

  #onFrame(frame: Frame): void {
    switch (frame.kind) {
      case FrameKind.output:
        this.#listeners.get(frame.jobId)?.({ type: 'output', chunk: frame.chunk });
        return;
      case FrameKind.durable:
        this.#listeners.get(frame.jobId)?.({ type: 'durable', durable: frame.durable });
        return;
      case FrameKind.json:
        this.#onMessage(frame.message as FromHost);
        return;
      case FrameKind.stdin:
        this.#fail(new HostProtocolError('the job host sent a STDIN frame'));
        return;
      default: {
        const never: never = frame;
        void never;
      }
    }
  }

  #onMessage(message: FromHost): void {
    switch (message.type) {
      case 'reply': {
        const pending = this.#pending.get(message.rid);
        if (pending === undefined) return;
        this.#pending.delete(message.rid);
        if ('error' in message) pending.reject(fromWire(message.error));
        else pending.resolve(message.result);
        return;
      }
      case 'exit':
        this.#listeners.get(message.jobId)?.({ type: 'exit', exit: message.exit });
        // Started with `forget`: the host has forgotten it now.
        if (this.#forgetting.delete(message.jobId)) this.#listeners.delete(message.jobId);
        return;
      case 'storage':
        this.#listeners.get(message.jobId)?.({ type: 'storage', storage: message.storage });
        return;
      case 'progress':
        this.#listeners.get(message.jobId)?.({ type: 'progress', message: message.message });
        return;
      case 'stdin-ack':
        this.#listeners.get(message.jobId)?.({ type: 'stdin-ack', consumed: message.consumed });
        return;
      case 'stdin-refused':
        this.#listeners.get(message.jobId)?.({ type: 'stdin-refused', error: fromWire(message.error) });
        return;
      case 'fatal':
        this.#fail(new HostProtocolError(`the job host closed the connection: ${message.error.message}`));
        return;
      case 'welcome':
      case 'refused':
        this.#fail(new HostProtocolError(`the job host sent ${message.type} after the hello`));
        return;
      default: {
        const never: never = message;
        void never;
      }
    }
  }

  /** Ends the connection; every waiting request fails with `error` (or a plain "closed"). */
  #fail(error: Error | undefined, destroy = true): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#keepAlive);
    this.#closedError = error;
    if (destroy) this.#socket.destroy();
    const reason = error ?? new HostConnectionClosedError('the connection to the job host was closed by this client');
    for (const pending of this.#pending.values()) pending.reject(reason);
    this.#pending.clear();
    this.#listeners.clear();
    this.#forgetting.clear();
    this.#resolveClosed(error);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function fromWire(error: WireError): JobwireError {
  return errorFromWire(error);
}
