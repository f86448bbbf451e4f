/**
 * The ssh executor: jobs run on one host over one shared SSH connection (`ssh://[user@]host[:port]`).
 * Batch jobs run detached (see `scripts.ts`) and are followed by byte offset, so a dropped
 * connection or a restarted server loses and repeats nothing; interactive and tty jobs run on an
 * exec channel (with a pty for tty). Queues as the local executor's, for Xenon's ssh adaptor.
 * @module
 */
import { constants } from 'node:os';
import { BadRequestError, type JobDescription, type OutputChannel } from '@jobwire/client';
import type { ClientChannel } from 'ssh2';
import type { Executor, ExecutorState, ExecutorStatus, ProcessHandle, ProcessResult, QueueDef, ResumeFrom, StartSpec } from '../types.js';
import { ChannelHandle, channelResult, pumpChannel } from './channel-handle.js';
import { channelEnd, SshConnection, shellQuote, type SshConnectionOptions } from './connection.js';
import { batchStartScript, collectScript, FOLLOW_COLLECT, followScript, folderWord, interactiveScript, terminateScript, viaSh, type StartGate } from './scripts.js';
import { parseSshTarget, targetText } from './url.js';

/** Options of an {@link SshExecutor}. */
export interface SshExecutorOptions extends SshConnectionOptions {
  /** How many jobs the `multi` queue runs at once on the host. @defaultValue 4 */
  multiSlots?: number;
  /**
   * How long a batch job's host may stay unreachable before the job ends Lost (the job may
   * still run there; nothing follows it any more). @defaultValue 600000 (10 minutes)
   */
  lostAfterMs?: number;
  /** Folder on the host holding the job folders. @defaultValue `~/.jobwire/jobs` */
  jobsFolder?: string;
  /** An existing connection to use (shared with other users of the host). @defaultValue a new one */
  connection?: SshConnection;
  /**
   * For tests only: makes every batch start script pause at a known point while a file exists
   * on the host (see {@link StartGate}), so a test can cut the connection there. @defaultValue none
   */
  startGate?: StartGate;
}

/** Queue names of the ssh executor (those of Xenon's ssh adaptor). */
export const SSH_QUEUES = ['single', 'multi', 'unlimited'] as const;

/** The state an ssh batch job reports once it started (see {@link StartSpec.onState}). */
interface SshJobState {
  kind: 'ssh-batch';
  host: string;
  folder: string;
  wrapper: number;
  pid: number;
}

/**
 * The state an ssh batch job reports before its start script runs: a restarted server given it
 * runs the (idempotent) start again, which finds the job if it was started. `jobsFolder` null is
 * the default, `~/.jobwire/jobs`.
 */
interface SshStartingState {
  kind: 'ssh-batch';
  host: string;
  starting: true;
  jobsFolder: string | null;
}

/** The host stayed unreachable past the bound: the job is Lost, with this message. */
class HostLost extends Error {}

/** Signal name for a shell's `128 + n` exit status. */
function signalOf(code: number): string | undefined {
  if (code <= 128) return undefined;
  return Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0];
}

/** The environment a job gets: the runner's extras under the description's. */
function jobEnvironment(spec: StartSpec): Record<string, string> {
  return { ...spec.env, ...(spec.description.environment ?? {}) };
}

/** A handle with nothing behind it, ended with `result`. */
function endedHandle(result: ProcessResult): ProcessHandle {
  return { pid: undefined, writeStdin: async () => {}, closeStdin: () => {}, resize: () => {}, terminate: () => {}, done: Promise.resolve(result) };
}

/** The handle of a job that was not started: `done` reports `error`. */
function failed(error: string): ProcessHandle {
  return endedHandle({ exitCode: null, signal: null, error });
}

/** The handle of a job that cannot be followed any more: `done` reports it `lost`. */
function lostHandle(lost: string): ProcessHandle {
  return endedHandle({ exitCode: null, signal: null, lost });
}

/** Runs jobs on one SSH host (see the module comment). */
export class SshExecutor implements Executor {
  /** Adaptor name. */
  readonly name = 'ssh';
  /** The connection all jobs of this executor share. */
  readonly connection: SshConnection;
  readonly #multiSlots: number;
  readonly #lostAfterMs: number;
  readonly #jobsFolder: string | undefined;
  readonly #startGate: StartGate | undefined;

  /** `url`: `ssh://[user@]host[:port]`; throws a RangeError for a bad URL or option. */
  constructor(url: string, options: SshExecutorOptions = {}) {
    const target = parseSshTarget(url);
    this.connection = options.connection ?? new SshConnection(target, options);
    this.#multiSlots = options.multiSlots ?? 4;
    this.#lostAfterMs = options.lostAfterMs ?? 600_000;
    this.#jobsFolder = options.jobsFolder;
    this.#startGate = options.startGate;
    if (!Number.isSafeInteger(this.#multiSlots) || this.#multiSlots < 1) throw new RangeError(`multiSlots must be a positive integer, got ${this.#multiSlots}`);
    if (!(this.#lostAfterMs >= 0)) throw new RangeError(`lostAfterMs must be 0 or more, got ${this.#lostAfterMs}`);
  }

  /** `single` (1), `multi` (`multiSlots`) and `unlimited`. */
  queues(): QueueDef[] {
    return [
      { name: 'single', limit: 1 },
      { name: 'multi', limit: this.#multiSlots },
      { name: 'unlimited', limit: null },
    ];
  }

  /** The connection's state. */
  status(): ExecutorStatus {
    return this.connection.state;
  }

  /**
   * Refuses what it cannot honour, naming the field: function jobs, several tasks or cores,
   * scheduler arguments, a memory limit, an unknown queue, a stdin file for interactive or tty
   * jobs, and output files for interactive or tty jobs (their output is not kept on the host).
   */
  check(description: JobDescription): void {
    const refuse = (field: string, message: string): never => {
      throw new BadRequestError(message, { code: 'unsupported', field });
    };
    if (description.js !== undefined) refuse('js', 'the ssh executor runs commands, not function jobs');
    if (description.executable === undefined) refuse('executable', 'give "executable"');
    if (description.queueName !== undefined && !(SSH_QUEUES as readonly string[]).includes(description.queueName)) {
      refuse('queueName', `the ssh executor has no queue "${description.queueName}"; its queues are ${SSH_QUEUES.join(', ')}`);
    }
    if (description.tasks !== undefined && description.tasks > 1) refuse('tasks', 'the ssh executor runs one task per job; use a Slurm executor for several');
    if (description.coresPerTask !== undefined && description.coresPerTask > 1) refuse('coresPerTask', 'the ssh executor cannot reserve cores');
    if (description.schedulerArguments !== undefined && description.schedulerArguments.length > 0) refuse('schedulerArguments', 'the ssh executor has no scheduler to hand arguments to');
    if (description.maxMemory !== undefined && description.maxMemory > 0) refuse('maxMemory', 'the ssh executor cannot limit memory');
    const live = description.interactive === true || description.tty === true;
    if (description.stdin !== undefined && live) refuse('stdin', 'an interactive or tty job takes its stdin from clients, not from a file');
    if (description.stdout !== undefined && live) refuse('stdout', 'on the ssh executor, stdout files are for batch jobs (an interactive job’s output is not kept on the host)');
    if (description.stderr !== undefined && live) refuse('stderr', 'on the ssh executor, stderr files are for batch jobs');
  }

  /** Starts a job; a job that cannot start (host unreachable, refused, missing program) reports it in `done`. */
  start(spec: StartSpec): ProcessHandle {
    const d = spec.description;
    try {
      // A worker's jobs were checked by servers as for the local executor: check again here.
      this.check(d);
    } catch (err) {
      return failed(`cannot run on ${targetText(this.connection.target)}: ${(err as Error).message}`);
    }
    if (d.interactive === true || d.tty === true) return new LiveJob(this.connection, spec, this.#jobsFolder);
    return BatchJob.start(this.connection, spec, { lostAfterMs: this.#lostAfterMs, jobsFolder: this.#jobsFolder, gate: this.#startGate });
  }

  /**
   * Follows a batch job an earlier process started on this host again, from `from`. Resolves
   * undefined when its folder on the host is gone, or for a state this executor did not write;
   * a host unreachable past the bound gives a handle whose `done` reports the job `lost`. A job
   * whose start was under way (its state says `starting`) is started again: the start finds the
   * job if it was started and starts it otherwise, never twice.
   */
  async resume(spec: StartSpec, state: ExecutorState, from: ResumeFrom): Promise<ProcessHandle | undefined> {
    const s = state as Partial<SshJobState> & Partial<SshStartingState>;
    const starting = s.kind === 'ssh-batch' && s.starting === true && (s.jobsFolder === null || typeof s.jobsFolder === 'string');
    if (!starting && (s.kind !== 'ssh-batch' || typeof s.folder !== 'string' || typeof s.wrapper !== 'number' || typeof s.pid !== 'number')) return undefined;
    try {
      await this.connection.waitConnected(Date.now() + this.#lostAfterMs);
    } catch (err) {
      // Not gone for good, but out of reach past the bound: the job ends Lost with why.
      return lostHandle(`${this.connection.target.host} unreachable for ${Math.round(this.#lostAfterMs / 1000)} s (${(err as Error).message}); the job may still run there`);
    }
    if (starting) return BatchJob.start(this.connection, spec, { lostAfterMs: this.#lostAfterMs, jobsFolder: s.jobsFolder ?? undefined, gate: this.#startGate, resumeFrom: from });
    const found = await this.connection.run(viaSh(`[ -d ${shellQuote(s.folder!)} ]`));
    if (found.code !== 0) return undefined;
    return new BatchJob(this.connection, spec, this.#lostAfterMs, Promise.resolve(s as SshJobState), from);
  }

  /** Closes the connection. */
  close(): void {
    this.connection.close();
  }
}

/** A detached batch job, followed by byte offset (stdin and resize do not apply). */
class BatchJob implements ProcessHandle {
  readonly pid = undefined;
  readonly done: Promise<ProcessResult>;
  readonly #connection: SshConnection;
  readonly #spec: StartSpec;
  readonly #lostAfterMs: number;
  readonly #state: Promise<SshJobState | ProcessResult>;
  #terminated = false;
  /** Set by {@link detach}: the job is left running on the host for a later `resume`. */
  #detached = false;
  /** The channel following the output now. */
  #channel: { close(): void } | undefined;

  /**
   * Starts the job on the host (or, with `resumeFrom`, finds it there after a restart), then
   * follows it. The start script is safe to run twice, so a connection that drops while it runs is
   * waited for (up to `lostAfterMs`) and the script run again. A host that cannot be reached when
   * a new job starts fails it, as before anything ran.
   */
  static start(connection: SshConnection, spec: StartSpec, options: { lostAfterMs: number; jobsFolder: string | undefined; gate: StartGate | undefined; resumeFrom?: ResumeFrom }): BatchJob {
    return new BatchJob(connection, spec, options.lostAfterMs, (job) => job.#start(options.jobsFolder, options.gate, options.resumeFrom !== undefined), options.resumeFrom ?? { stdout: 0, stderr: 0 });
  }

  constructor(connection: SshConnection, spec: StartSpec, lostAfterMs: number, state: Promise<SshJobState | ProcessResult> | ((job: BatchJob) => Promise<SshJobState | ProcessResult>), from: ResumeFrom) {
    this.#connection = connection;
    this.#spec = spec;
    this.#lostAfterMs = lostAfterMs;
    this.#state = typeof state === 'function' ? state(this) : state;
    this.done = this.#follow(from);
  }

  /** Runs the start script until it has answered, reporting the job's state before and after. */
  async #start(jobsFolder: string | undefined, gate: StartGate | undefined, resumed: boolean): Promise<SshJobState | ProcessResult> {
    const connection = this.#connection;
    const where = targetText(connection.target);
    const starting: SshStartingState = { kind: 'ssh-batch', host: where, starting: true, jobsFolder: jobsFolder ?? null };
    this.#spec.onState?.({ ...starting });
    const script = viaSh(batchStartScript(jobsFolder, this.#spec.jobId, this.#spec.description, jobEnvironment(this.#spec), gate));
    try {
      if (!resumed) await connection.connect();
    } catch (err) {
      return { exitCode: null, signal: null, error: `cannot start on ${where}: ${(err as Error).message}` };
    }
    try {
      const started = await this.#again(() => connection.run(script));
      const [folder, wrapper, pid] = started.stdout.trim().split('\n');
      if (started.code !== 0 || folder === undefined || wrapper === undefined || pid === undefined) {
        const why = started.stderr.trim() || `exit ${started.code}`;
        return { exitCode: null, signal: null, error: `cannot start on ${where}: ${started.code === 91 ? why : `the job folder could not be made (${why})`}` };
      }
      const state: SshJobState = { kind: 'ssh-batch', host: where, folder, wrapper: Number(wrapper), pid: Number(pid) };
      this.#spec.onState?.({ ...state });
      return state;
    } catch (err) {
      if (err instanceof HostLost) return { exitCode: null, signal: null, lost: err.message };
      return { exitCode: null, signal: null, error: `cannot start on ${where}: ${(err as Error).message}` };
    }
  }

  async writeStdin(): Promise<void> {}
  closeStdin(): void {}
  resize(): void {}

  /**
   * Stops following and leaves the job running on the host (a server that stops and keeps its
   * jobs): no more output, `done` never settles; `resume` follows it again from the stored offsets.
   */
  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#channel?.close();
  }

  /** TERM to the job's group on the host, KILL after `graceMs` (run there, detached). */
  terminate(graceMs: number): void {
    if (this.#terminated) return;
    this.#terminated = true;
    void this.#state.then(async (state) => {
      if (!('folder' in state)) return;
      const deadline = Date.now() + this.#lostAfterMs;
      for (;;) {
        try {
          await this.#connection.waitConnected(deadline);
          await this.#connection.run(viaSh(terminateScript(shellQuote(state.folder), graceMs)));
          return;
        } catch {
          if (Date.now() > deadline) return;
        }
      }
    });
  }

  /** Follows both output files to their end, then collects the exit code. */
  async #follow(from: ResumeFrom): Promise<ProcessResult> {
    const state = await this.#state;
    if (!('folder' in state)) return state;
    try {
      let exitCode = await this.#followOutput(state, from);
      if (exitCode === FOLLOW_COLLECT) {
        const collected = await this.#again(() => this.#connection.run(viaSh(collectScript(state.folder))));
        if (collected.code === 3) return { exitCode: null, signal: null, error: `the job's folder ${state.folder} on ${state.host} vanished before its exit code was read` };
        const [code, ...error] = collected.stdout.split('\n');
        if (error.join('\n').trim() !== '') return { exitCode: null, signal: null, error: error.join('\n').trim() };
        exitCode = Number(code);
      }
      const signal = this.#terminated ? signalOf(exitCode) : undefined;
      return signal !== undefined ? { exitCode: null, signal } : { exitCode, signal: null };
    } catch (err) {
      return { exitCode: null, signal: null, lost: (err as Error).message };
    }
  }

  /** Runs `step` until it completes on a live connection, reconnecting after drops, within the lost bound. */
  async #again<T>(step: () => Promise<T>): Promise<T> {
    let deadline = Date.now() + this.#lostAfterMs;
    for (;;) {
      if (this.#detached) return new Promise<never>(() => {});
      try {
        await this.#connection.waitConnected(deadline);
      } catch (err) {
        if (this.#detached) return new Promise<never>(() => {});
        throw new HostLost(`${this.#connection.target.host} unreachable for ${Math.round(this.#lostAfterMs / 1000)} s (${(err as Error).message}); the job may still run there`, { cause: err });
      }
      try {
        return await step();
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'JOBWIRE_SSH_CONNECT') throw err;
        deadline = Date.now() + this.#lostAfterMs;
      }
    }
  }

  /**
   * Follows both output files from `from` to their end, resuming after drops without loss or
   * repeats; resolves to the job's exit code, or {@link FOLLOW_COLLECT} when it must be collected.
   */
  async #followOutput(state: SshJobState, from: ResumeFrom): Promise<number> {
    const at = { out: from.stdout, err: from.stderr };
    return this.#again(async () => {
      const ch = await this.#connection.exec(viaSh(followScript(state.folder, at, state.wrapper)));
      this.#channel = ch;
      if (this.#detached) ch.close();
      ch.on('data', (data: Buffer) => {
        if (this.#detached) return;
        at.out += data.length;
        this.#spec.onOutput('stdout', data);
      });
      ch.stderr.on('data', (data: Buffer) => {
        if (this.#detached) return;
        at.err += data.length;
        this.#spec.onOutput('stderr', data);
      });
      const ended = channelEnd(ch);
      ch.end();
      const { code } = await ended;
      if (this.#detached) return new Promise<never>(() => {});
      if (code === null) throw Object.assign(new Error('connection dropped'), { code: 'JOBWIRE_SSH_CONNECT' });
      if (code === 3) throw new Error(`the job's folder ${state.folder} on ${state.host} is gone`);
      if (code === 4) throw new Error(`following the output on ${state.host} failed (tail failed)`);
      return code;
    });
  }
}

/** An interactive or tty job on an exec channel. */
class LiveJob extends ChannelHandle implements ProcessHandle {
  readonly pid = undefined;
  readonly done: Promise<ProcessResult>;
  readonly #connection: SshConnection;
  protected readonly channel: Promise<ClientChannel | undefined>;
  protected readonly tty: boolean;
  readonly #folder: string;
  #terminated = false;

  constructor(connection: SshConnection, spec: StartSpec, jobsFolder: string | undefined) {
    super();
    this.#connection = connection;
    this.tty = spec.description.tty === true;
    this.#folder = folderWord(jobsFolder, spec.jobId);
    const size = spec.description.size ?? { cols: 80, rows: 24 };
    const where = targetText(connection.target);
    let startError: string | undefined;
    this.channel = connection.exec(interactiveScript(jobsFolder, spec.jobId, spec.description, jobEnvironment(spec)), this.tty ? { pty: size } : {}).catch((err: unknown) => {
      startError = `cannot start on ${where}: ${(err as Error).message}`;
      return undefined;
    });
    this.done = this.channel.then(async (ch) => {
      if (ch === undefined) return { exitCode: null, signal: null, error: startError ?? 'cannot start' };
      const ended = await pumpChannel(ch, this.tty, spec.onOutput);
      let error: string | undefined;
      try {
        const after = await connection.run(`F=${this.#folder}; ${ended.code === 127 ? 'cat "$F/error" 2>/dev/null; ' : ''}rm -rf -- "$F"`);
        if (after.stdout.trim() !== '') error = after.stdout.trim();
      } catch {
        // The folder stays behind on a dropped connection; it holds only a pid.
      }
      if (error !== undefined) return { exitCode: null, signal: null, error };
      return channelResult(ended, where);
    });
  }

  /** TERM to the job's group on the host, KILL after `graceMs`. */
  terminate(graceMs: number): void {
    if (this.#terminated) return;
    this.#terminated = true;
    void this.channel.then(async (ch) => {
      if (ch === undefined) return;
      try {
        await this.#connection.run(viaSh(terminateScript(this.#folder, graceMs)));
      } catch {
        ch.close();
      }
    });
  }
}
