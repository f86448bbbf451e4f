/**
 * Warm runners for function jobs: long-lived Node processes (js-runner.ts in pooled mode) that
 * run function jobs one after another, so that a job does not pay for starting Node.
 *
 * Processes rather than worker threads: a function may call `process.exit`, `process.chdir`
 * (workers cannot), write to file descriptors 1 and 2 directly or from a native addon or a
 * child process (a worker shares them with the server), block its thread for ever, or leak
 * memory; in a process each of these takes only the runner down, and its output is a pipe of
 * its own like any other job's. One job at a time per runner: the working directory and the
 * environment are per process, so a runner that ran two jobs at once could give neither its own.
 *
 * The pool does not limit concurrency (the queues do): a job that finds no idle runner gets a
 * new one. Once a job has ended, its runner goes back to the pool when it is reusable — the job
 * left nothing running (see `leftovers` in js-runner.ts), did not crash it, it has served fewer
 * than `maxJobsPerRunner` jobs and fewer than `maxIdle` runners are idle — and is stopped (with
 * its whole process group) otherwise. An idle runner stops after `idleTimeoutMs`. Runners are
 * grouped by the environment variables Node reads only when it starts (`NODE_OPTIONS`, ...), so a
 * job always runs in a Node started the way a process of its own would have been.
 *
 * An interactive job (not a tty one) runs in the pool too: its stdin bytes travel over the IPC
 * channel to a stream that is the job's `process.stdin` for its run only, paced by what the job
 * reads (see js-runner.ts). A job that reads file descriptor 0 itself sees no input there.
 *
 * A job's output is told apart from the next one's by an end marker (random per job) that the
 * runner writes to stdout and stderr after the function settled; the job ends once both markers
 * and its outcome have arrived, or when its runner dies.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { OutputChannel } from '@jobwire/client';
import { envDiff, type EnvDiff } from '../../env-diff.js';
import type { ProcessHandle, ProcessResult, StartSpec } from '../types.js';
import { settle } from './js-process.js';
import { isFromRunner, type FromRunner, type ToRunner } from './js-protocol.js';
import { setLongTimeout, type LongTimeout } from '../../timers.js';
import { signalGroup } from './process-group.js';
import { startedJobProcess, type JobProcess } from './process-identity.js';
import { StartError, checkCwd, describe, jobCwd, jobEnv, notStarted } from './setup.js';

/** The compiled runner, next to this module. */
const RUNNER = fileURLToPath(new URL('./js-runner.js', import.meta.url));

/**
 * Variables Node reads only at start-up: a job whose values differ from a runner's cannot run
 * in it, so runners are kept per set of values.
 */
const STARTUP_VARIABLES = ['NODE_OPTIONS', 'NODE_PATH', 'NODE_EXTRA_CA_CERTS', 'NODE_ICU_DATA', 'NODE_NO_WARNINGS', 'NODE_PENDING_DEPRECATION', 'UV_THREADPOOL_SIZE'];

/** Options of a {@link JsRunnerPool}. */
export interface JsRunnerPoolOptions {
  /** Node binary of the runners. */
  nodePath: string;
  /** Most runners kept idle; 0 stops every runner after its job (no reuse). */
  maxIdle: number;
  /** How long an idle runner waits for a job before it is stopped. */
  idleTimeoutMs: number;
  /** Jobs a runner serves before it is replaced (bounds what a slow leak can grow to). */
  maxJobsPerRunner: number;
}

/** Why a function job cannot run in a pooled runner, or undefined when it can. */
export function unpoolable(spec: StartSpec): string | undefined {
  const d = spec.description;
  if (spec.account !== undefined) return 'it runs as another OS account';
  if (d.interactive === true && d.tty === true) return 'it is interactive on a terminal';
  if (d.stdin !== undefined) return 'it reads a stdin file';
  if (d.stdout !== undefined || d.stderr !== undefined) return 'it copies its output to a file';
  return undefined;
}

/** A pool of warm function-job runners; see the module documentation. */
export class JsRunnerPool {
  /** Idle runners per start-up environment key, most recently used last. */
  readonly #idle = new Map<string, Runner[]>();
  #jobs = 0;
  #closed = false;

  constructor(private readonly options: JsRunnerPoolOptions) {}

  /** Runs a function job in an idle runner, or in a new one. Call only when {@link unpoolable} is undefined. */
  start(spec: StartSpec): ProcessHandle {
    const what = `the function runner ("${this.options.nodePath}")`;
    let cwd: string;
    let env: Record<string, string>;
    try {
      cwd = jobCwd(spec);
      checkCwd(cwd, what);
      env = jobEnv(spec);
    } catch (error) {
      return failed(notStarted(error));
    }
    const key = JSON.stringify(STARTUP_VARIABLES.map((name) => env[name] ?? null));
    let runner = this.#take(key);
    try {
      runner ??= new Runner(this.options.nodePath, startupEnv(spec, env), what);
    } catch (error) {
      // Some spawn failures (EINVAL, a bad argument) throw instead of emitting 'error'.
      return failed(notStarted(new StartError(`cannot start ${what}: ${describe(error)}`, { cause: error })));
    }
    const job = new PooledJob(spec, runner, ++this.#jobs);
    void job.done.then(() => this.#release(key, runner));
    const stdin = spec.description.interactive === true;
    runner.run(job, { type: 'run', job: job.number, fn: spec.description.js ?? {}, cwd, ...runner.envFor(env), marker: job.marker, ...(stdin ? { stdin } : {}) });
    return job;
  }

  /** Stops every idle runner; from now on runners are stopped after their job. */
  close(): void {
    this.#closed = true;
    for (const runners of this.#idle.values()) for (const runner of runners.splice(0)) runner.stop();
  }

  /** Idle runners (for tests and metrics). */
  get idle(): number {
    let count = 0;
    for (const runners of this.#idle.values()) count += runners.length;
    return count;
  }

  #take(key: string): Runner | undefined {
    const runners = this.#idle.get(key);
    for (let runner = runners?.pop(); runner !== undefined; runner = runners?.pop()) {
      if (runner.usable) return runner;
    }
    return undefined;
  }

  #release(key: string, runner: Runner): void {
    const runners = this.#idle.get(key) ?? [];
    if (this.#closed || !runner.usable || runner.served >= this.options.maxJobsPerRunner || this.idle >= this.options.maxIdle) {
      runner.stop();
      return;
    }
    runners.push(runner);
    this.#idle.set(key, runners);
    runner.idle(this.options.idleTimeoutMs, () => {
      const at = runners.indexOf(runner);
      if (at >= 0) runners.splice(at, 1);
    });
  }
}

/** The environment a new runner starts with: the base one, plus the job's start-up variables. */
function startupEnv(spec: StartSpec, env: Record<string, string>): Record<string, string> {
  const base: Record<string, string> = {};
  for (const [name, value] of Object.entries(spec.baseEnv ?? process.env)) if (value !== undefined) base[name] = value;
  for (const name of STARTUP_VARIABLES) {
    if (env[name] === undefined) delete base[name];
    else base[name] = env[name];
  }
  return base;
}

/** A handle for a job that never reached a runner. */
function failed(result: ProcessResult): ProcessHandle {
  return {
    pid: undefined,
    done: Promise.resolve(result),
    writeStdin: () => Promise.resolve(),
    closeStdin: () => {},
    resize: () => {},
    terminate: () => {},
  };
}

/** One long-lived runner process: a Node child leading its own process group. */
class Runner {
  readonly child: ChildProcess;
  readonly process: JobProcess | undefined;
  /** Jobs given to this runner so far. */
  served = 0;
  #job: PooledJob | undefined;
  #gone = false;
  #stopped = false;
  #idleTimer: NodeJS.Timeout | undefined;
  /** The environment of the last job given to it. */
  #env: Record<string, string> | undefined;

  constructor(nodePath: string, env: Record<string, string>, what: string) {
    // `what` names the runner in start errors.
    // No execArgv: the server's own flags (--inspect, --test, ...) stay out of the jobs.
    const child = spawn(nodePath, [RUNNER], { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'json', detached: true });
    this.child = child;
    this.process = startedJobProcess(child.pid);
    child.stdout?.on('data', (data: Buffer) => this.#job?.output('stdout', data));
    child.stderr?.on('data', (data: Buffer) => this.#job?.output('stderr', data));
    child.stdout?.on('error', () => {});
    child.stderr?.on('error', () => {});
    child.on('message', (message: unknown) => {
      if (isFromRunner(message)) this.#job?.message(message);
    });
    child.on('error', (error) => {
      // Without a pid the runner never started (ENOENT, EACCES, ...); later errors come from
      // kill() or the IPC channel, and the 'close' that follows settles what is left.
      if (child.pid !== undefined || this.#gone) return;
      this.#gone = true;
      this.#job?.ended(notStarted(new StartError(`cannot start ${what}: ${describe(error)}`, { cause: error })));
    });
    child.on('exit', () => {
      this.#gone = true;
      // What the runner started goes with it (a job's leftovers would hold its pipes open).
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
    });
    child.on('close', (exitCode, signal) => {
      this.#gone = true;
      clearTimeout(this.#idleTimer);
      this.#job?.ended({ exitCode, signal });
    });
  }

  /** True while the runner can take a job. */
  get usable(): boolean {
    return !this.#gone && !this.#stopped && this.child.connected;
  }

  /**
   * How a `run` message gives `env`: whole to a new runner, else as what differs from the
   * previous job's (a few variables such as JOBWIRE_JOB_ID, instead of about 2 KB per job).
   */
  envFor(env: Record<string, string>): { env: Record<string, string> } | { envDiff: EnvDiff } {
    const previous = this.#env;
    this.#env = env;
    return previous === undefined ? { env } : { envDiff: envDiff(previous, env) };
  }

  /** Gives `job` to this runner. */
  run(job: PooledJob, message: ToRunner): void {
    clearTimeout(this.#idleTimer);
    this.#job = job;
    this.served++;
    this.#setRef(true);
    this.send(message);
  }

  /** The job has ended; the runner may idle, waiting for the next one, for `timeoutMs`. */
  idle(timeoutMs: number, onStop: () => void): void {
    this.#job = undefined;
    this.#setRef(false);
    this.#idleTimer = setTimeout(() => {
      onStop();
      this.stop();
    }, timeoutMs).unref();
  }

  /** Stops the runner and everything it started. */
  stop(): void {
    clearTimeout(this.#idleTimer);
    this.#stopped = true;
    if (!this.#gone && this.child.pid !== undefined) signalGroup(this.child.pid, 'SIGKILL');
  }

  send(message: ToRunner): void {
    // The callback swallows send errors: a runner that is gone needs no more messages.
    if (this.child.connected) this.child.send(message, undefined, {}, () => {});
  }

  /** An idle runner must not keep the server (or a test) alive; a busy one does, like any job. */
  #setRef(ref: boolean): void {
    const child = this.child;
    // Pipes to a child are sockets: they can be unref'd like the child and its IPC channel.
    const items: ({ ref(): unknown; unref(): unknown } | null | undefined)[] = [child, child.channel, child.stdout as Socket | null, child.stderr as Socket | null];
    for (const item of items) {
      if (item == null) continue;
      if (ref) item.ref();
      else item.unref();
    }
  }
}

/** Splits a runner's output at a job's end marker, which may arrive in pieces. */
class MarkedChannel {
  #carry: Buffer | undefined;
  /** True once the marker has been seen. */
  ended = false;

  constructor(private readonly marker: Buffer) {}

  /** The part of `data` that belongs to the job (nothing after the marker). */
  push(data: Buffer): Buffer {
    if (this.ended) return EMPTY;
    const bytes = this.#carry === undefined ? data : Buffer.concat([this.#carry, data]);
    this.#carry = undefined;
    const at = bytes.indexOf(this.marker);
    if (at >= 0) {
      this.ended = true;
      return bytes.subarray(0, at);
    }
    // Hold back a tail that may be the start of the marker (it begins with a NUL byte).
    const from = Math.max(0, bytes.length - this.marker.length + 1);
    for (let i = bytes.indexOf(0, from); i >= 0; i = bytes.indexOf(0, i + 1)) {
      if (this.marker.subarray(0, bytes.length - i).equals(bytes.subarray(i))) {
        this.#carry = Buffer.from(bytes.subarray(i));
        return bytes.subarray(0, i);
      }
    }
    return bytes;
  }
}

const EMPTY = Buffer.alloc(0);

/** A function job in a pooled runner. */
class PooledJob implements ProcessHandle {
  readonly done: Promise<ProcessResult>;
  readonly marker: string;
  readonly #channels: Record<OutputChannel, MarkedChannel>;
  #killTimer: LongTimeout | undefined;
  #outcome: Extract<FromRunner, { type: 'result' | 'error' }> | undefined;
  #settle!: (result: ProcessResult) => void;
  #settled = false;
  #paused = false;
  #killDeadline = Number.POSITIVE_INFINITY;
  /** Resolvers of stdin writes the runner has not yet taken, oldest first. */
  readonly #stdinTaken: Array<() => void> = [];
  #stdinEnded = false;

  constructor(
    private readonly spec: StartSpec,
    private readonly runner: Runner,
    readonly number: number,
  ) {
    this.marker = `\0jobwire-end-${randomBytes(12).toString('hex')}\0`;
    const marker = Buffer.from(this.marker);
    this.#channels = { stdout: new MarkedChannel(marker), stderr: new MarkedChannel(marker) };
    this.done = new Promise((resolve) => (this.#settle = resolve));
  }

  /** The runner's process id (its process group id too); the same for every job it serves. */
  get pid(): number | undefined {
    return this.runner.child.pid;
  }

  /** Leader (the runner) and runner of the job's processes. */
  get process(): JobProcess | undefined {
    return this.runner.process;
  }

  output(channel: OutputChannel, data: Buffer): void {
    if (this.#settled) return;
    const mine = this.#channels[channel].push(data);
    if (mine.length > 0) this.spec.onOutput(channel, mine);
    this.#check();
  }

  message(message: FromRunner): void {
    if (this.#settled || message.job !== this.number) return;
    if (message.type === 'progress') this.spec.onProgress(message.message);
    else if (message.type === 'stdin-taken') this.#stdinTaken.shift()?.();
    else this.#outcome ??= message;
    this.#check();
  }

  /** The runner is gone (or never started): the job ends with what it reported, if anything. */
  ended(how: ProcessResult): void {
    if (this.#settled) return;
    this.#finish(how.error !== undefined ? how : settle(how, this.#outcome), false);
  }

  #check(): void {
    const outcome = this.#outcome;
    if (outcome === undefined || !this.#channels.stdout.ended || !this.#channels.stderr.ended) return;
    this.#finish(settle({ exitCode: outcome.type === 'result' ? 0 : 1, signal: null }, outcome), outcome.reusable === true);
  }

  #finish(result: ProcessResult, reusable: boolean): void {
    this.#settled = true;
    for (const taken of this.#stdinTaken.splice(0)) taken();
    this.#killTimer?.clear();
    if (this.#paused) this.resumeOutput();
    if (!reusable) this.runner.stop();
    this.#settle(result);
  }

  /**
   * Hands stdin bytes to the runner, for the job's `process.stdin` (interactive jobs; a batch
   * job's stdin is empty); resolves once the runner took them into a stdin with room left, so a
   * job that does not read holds its writer back as a pipe would.
   */
  writeStdin(data: Uint8Array): Promise<void> {
    if (this.spec.description.interactive !== true || this.#settled || this.#stdinEnded || data.byteLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#stdinTaken.push(resolve);
      this.runner.send({ type: 'stdin', job: this.number, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') });
    });
  }

  closeStdin(): void {
    if (this.spec.description.interactive !== true || this.#settled || this.#stdinEnded) return;
    this.#stdinEnded = true;
    this.runner.send({ type: 'stdin-end', job: this.number });
  }

  resize(): void {}

  /**
   * Aborts the function's AbortSignal; if the job has not ended after `graceMs`, stops its
   * runner (SIGKILL to the runner's group). No SIGTERM: the runner is shared over time, and a
   * signal cannot say which job it is meant for. A second call can only bring the kill forward.
   */
  terminate(graceMs: number): void {
    if (this.#settled) return;
    this.runner.send({ type: 'abort', job: this.number });
    const deadline = Date.now() + (Number.isFinite(graceMs) ? Math.max(0, graceMs) : 0);
    if (deadline >= this.#killDeadline) return;
    this.#killDeadline = deadline;
    this.#killTimer?.clear();
    this.#killTimer = setLongTimeout(() => this.runner.stop(), deadline - Date.now(), { unref: true });
  }

  /** Stops reading the runner's output until {@link resumeOutput}. */
  pauseOutput(): void {
    if (this.#settled) return;
    this.#paused = true;
    this.runner.child.stdout?.pause();
    this.runner.child.stderr?.pause();
  }

  resumeOutput(): void {
    this.#paused = false;
    this.runner.child.stdout?.resume();
    this.runner.child.stderr?.resume();
  }
}
