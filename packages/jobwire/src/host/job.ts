/**
 * One job inside the job host: its process (through the local executor), its output files
 * written behind, its stdin with offsets, its stop requests and its end.
 * @module
 */
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { OutputChunk } from '@jobwire/client';
import type { Executor, ProcessHandle, ProcessResult } from '../executors/types.js';
import { setLongTimeout, type LongTimeout } from '../timers.js';
import type { HostLogger } from './log.js';
import { OutputFiles } from './output-files.js';
import type { ExitRecord, FollowDeadline, FromHost, HostJobState, StartJob, StorageState, WireError } from './protocol.js';

/** Most stdin a client may send beyond what the job has read. */
export const STDIN_BACKLOG_BYTES = 8 * 1024 * 1024;
/** Grace period for stops the host decides itself (maxRuntime) when the start request gives none. */
export const DEFAULT_GRACE_MS = 10_000;

/** Someone following the job (a subscription of a client connection). */
export interface JobWatcher {
  /** A chunk of output, as it arrived. */
  onChunk(chunk: OutputChunk): void;
  /** The stored end moved. */
  onDurable(): void;
  /** A job event to pass on as it is. */
  onEvent(message: FromHost): void;
  /** The job ended and its output is stored. */
  onExit(): void;
}

/** What a {@link HostedJob} needs from its host. */
export interface HostedJobContext {
  executor: Executor;
  /** The job's output folder. */
  dir: string;
  writeBehindBytes: number;
  retryMinMs: number;
  retryMaxMs: number;
  log: HostLogger;
  /** Called once the job has ended and its exit is stored. */
  onExit(job: HostedJob): void;
}

/** A job the host runs. */
export class HostedJob {
  readonly jobId: string;
  readonly startedAt = new Date().toISOString();
  readonly interactive: boolean;
  readonly tty: boolean;
  readonly files: OutputFiles;
  readonly handle: ProcessHandle;
  readonly watchers = new Set<JobWatcher>();
  /** Set once ended and stored. */
  exit: ExitRecord | null = null;
  progress: string | null = null;
  stoppedBy: string | null = null;
  size: { cols: number; rows: number } | null;
  /** Stop the job when nobody follows it for this long (see FollowDeadline); null: never. */
  readonly followDeadline: FollowDeadline | null;
  /** When a live client last followed the job (ms since the epoch); the host moves it on. */
  followedAt = Date.now();
  readonly #graceMs: number;
  readonly #log: HostLogger;
  #timer: LongTimeout | undefined;
  // Stdin: bytes accepted (`received`) are queued until written to the process (`consumed`).
  #received = 0;
  #consumed = 0;
  #closeAt: number | null = null;
  #stdinClosed = false;
  readonly #stdinQueue: Buffer[] = [];
  #stdinWriting = false;
  /** Output is not read while storage lags (`#pressure`) or it is a window ahead of the newest ack. */
  #pressure = false;
  /** The description's `outputWindow` (0: none) and the newest `output-ack`. */
  readonly #window: number;
  #acked = 0;
  #paused = false;

  constructor(spec: StartJob, context: HostedJobContext) {
    this.jobId = spec.jobId;
    this.#log = context.log;
    const description = spec.description;
    this.interactive = description.interactive === true;
    this.tty = description.tty === true;
    this.size = this.tty ? (description.size ?? { cols: 80, rows: 24 }) : null;
    this.#graceMs = spec.graceMs ?? DEFAULT_GRACE_MS;
    this.#window = description.outputWindow ?? 0;
    this.followDeadline = spec.followDeadline ?? null;
    // An exit record left by an earlier run of the same id must not be taken for this run's,
    // by a reader or by recovery after a crash: it goes before anything runs.
    removeIfThere(join(context.dir, 'exit.json'));
    this.files = new OutputFiles({
      dir: context.dir,
      writeBehindBytes: context.writeBehindBytes,
      retryMinMs: context.retryMinMs,
      retryMaxMs: context.retryMaxMs,
      onDurable: () => {
        for (const watcher of this.watchers) watcher.onDurable();
      },
      onStorage: (storage) => this.#onStorage(storage),
      onPressure: (paused) => {
        this.#pressure = paused;
        this.#applyHold();
      },
    });
    // Before anything of the job's: nobody follows yet, subscriptions replay it from the queue.
    if (spec.notice !== undefined) this.files.append('stderr', Buffer.from(spec.notice));
    this.handle = context.executor.start({
      jobId: spec.jobId,
      description,
      defaultCwd: spec.defaultCwd,
      env: spec.env,
      ...(spec.baseEnv !== undefined ? { baseEnv: spec.baseEnv } : {}),
      ...(spec.account !== undefined ? { account: spec.account } : {}),
      onOutput: (channel, data) => {
        const chunk = this.files.append(channel, data);
        for (const watcher of this.watchers) watcher.onChunk(chunk);
        if (this.#window > 0) this.#applyHold();
      },
      onProgress: (message) => {
        this.progress = message;
        this.#emit({ type: 'progress', jobId: this.jobId, message });
      },
    });
    // A batch job's stdin is closed by the executor at the start.
    if (!this.interactive) this.#stdinClosed = true;
    const maxRuntime = description.maxRuntime ?? 0;
    if (maxRuntime > 0) this.#timer = setLongTimeout(() => this.terminate(this.#graceMs, 'maxRuntime'), maxRuntime * 60_000);
    void this.handle.done.then(
      (result) => this.#end(result, context),
      (error: unknown) => this.#end({ exitCode: null, signal: null, error: `the job's process failed: ${String(error)}` }, context),
    );
  }

  /** The job's state for clients. */
  state(): HostJobState {
    const files = this.files;
    return {
      jobId: this.jobId,
      pid: this.handle.pid ?? null,
      process: this.handle.process ?? null,
      startedAt: this.startedAt,
      interactive: this.interactive,
      tty: this.tty,
      size: this.size,
      output: { end: files.end, stdout: files.ends.stdout, stderr: files.ends.stderr, durable: files.durable },
      stdin: { received: this.#received, consumed: this.#consumed, closeAt: this.#closeAt, closed: this.#stdinClosed },
      storage: files.storage,
      progress: this.progress,
      stoppedBy: this.stoppedBy,
      followDeadline: this.followDeadline,
      exit: this.exit,
    };
  }

  /**
   * Accepts stdin bytes starting at stdin offset `offset`: bytes already accepted are skipped (a
   * client that reconnects may resend), a gap is refused. Returns why it refused, if it did.
   */
  writeStdin(offset: number, data: Buffer): WireError | undefined {
    if (!this.interactive) return { code: 'conflict', message: `job ${this.jobId} is not interactive: its stdin is closed` };
    if (this.exit !== null) return { code: 'conflict', message: `job ${this.jobId} has ended` };
    if (offset > this.#received) {
      return { code: 'conflict', message: `stdin of job ${this.jobId}: offset ${offset} leaves a gap after the ${this.#received} bytes accepted` };
    }
    const skip = this.#received - offset;
    if (skip >= data.length) return undefined;
    const fresh = data.subarray(skip);
    if (this.#closeAt !== null && this.#received + fresh.length > this.#closeAt) {
      return { code: 'conflict', message: `the stdin of job ${this.jobId} is closed at ${this.#closeAt} bytes` };
    }
    if (this.#received + fresh.length - this.#consumed > STDIN_BACKLOG_BYTES) {
      return { code: 'conflict', message: `stdin of job ${this.jobId}: more than ${STDIN_BACKLOG_BYTES} bytes not yet read by the job; wait for stdin-ack` };
    }
    this.#received += fresh.length;
    this.#stdinQueue.push(fresh);
    void this.#pumpStdin();
    return undefined;
  }

  /** Sends EOF once the job has read `offset` bytes of stdin. Returns why it refused, if it did. */
  closeStdin(offset: number): WireError | undefined {
    if (!this.interactive || this.#stdinClosed) return undefined;
    if (offset < this.#received) {
      return { code: 'conflict', message: `stdin of job ${this.jobId}: cannot close at ${offset}, ${this.#received} bytes were already accepted` };
    }
    if (this.#closeAt !== null && this.#closeAt !== offset) {
      return { code: 'conflict', message: `the stdin of job ${this.jobId} is already closing at ${this.#closeAt} bytes` };
    }
    this.#closeAt = offset;
    void this.#pumpStdin();
    return undefined;
  }

  /** The job's reader has taken its output up to merged position `end` (its window moves on). */
  ackOutput(end: number): void {
    if (end <= this.#acked) return;
    this.#acked = end;
    this.#applyHold();
  }

  #applyHold(): void {
    const pause = this.#pressure || (this.#window > 0 && this.exit === null && this.files.end >= this.#acked + this.#window);
    if (pause === this.#paused) return;
    this.#paused = pause;
    if (pause) this.handle.pauseOutput?.();
    else this.handle.resumeOutput?.();
  }

  /** Changes a tty job's terminal size (remembered for clients that attach later). */
  resize(cols: number, rows: number): void {
    if (!this.tty || this.exit !== null) return;
    this.size = { cols, rows };
    this.handle.resize(cols, rows);
  }

  /** Stops the job (SIGTERM to its group, SIGKILL after `graceMs`); the first reason is kept. */
  terminate(graceMs: number, reason: string): void {
    if (this.exit !== null) return;
    this.stoppedBy ??= reason;
    this.handle.terminate(graceMs);
  }

  /** Releases the output files (once the job is forgotten). */
  async release(): Promise<void> {
    this.watchers.clear();
    await this.files.close();
  }

  /** Writes queued stdin to the process in order, one write at a time (its pace is the job's). */
  async #pumpStdin(): Promise<void> {
    if (this.#stdinWriting) return;
    this.#stdinWriting = true;
    try {
      for (;;) {
        const data = this.#stdinQueue.shift();
        if (data !== undefined) {
          await this.handle.writeStdin(data);
          this.#consumed += data.length;
          this.#emit({ type: 'stdin-ack', jobId: this.jobId, consumed: this.#consumed });
          continue;
        }
        if (this.#closeAt !== null && this.#consumed >= this.#closeAt && !this.#stdinClosed) {
          this.#stdinClosed = true;
          this.handle.closeStdin();
        }
        return;
      }
    } catch (error) {
      this.#log.error('writing stdin failed', { jobId: this.jobId, err: error });
    } finally {
      this.#stdinWriting = false;
    }
  }

  #onStorage(storage: StorageState): void {
    if (storage.state === 'ok') this.#log.info('output storage works again', { jobId: this.jobId });
    else this.#log.warn('output storage fails; the job waits', { jobId: this.jobId, storage });
    this.#emit({ type: 'storage', jobId: this.jobId, storage });
  }

  #emit(message: FromHost): void {
    for (const watcher of this.watchers) watcher.onEvent(message);
  }

  /** The process ended and handed over all its output: store it all, then the exit, then tell. */
  async #end(result: ProcessResult, context: HostedJobContext): Promise<void> {
    this.#timer?.clear();
    try {
      await this.files.stored();
      const files = this.files;
      const exit: ExitRecord = {
        exitCode: result.exitCode,
        signal: result.signal,
        ...(result.error !== undefined ? { error: result.error } : {}),
        ...(result.result !== undefined ? { result: result.result } : {}),
        ...(this.stoppedBy !== null ? { stoppedBy: this.stoppedBy } : {}),
        startedAt: this.startedAt,
        endedAt: new Date().toISOString(),
        output: { end: files.end, stdout: files.ends.stdout, stderr: files.ends.stderr, records: files.durableRecords },
        stdin: { consumed: this.#consumed, closed: this.#stdinClosed },
      };
      await files.finish(exit);
      this.exit = exit;
    } catch (error) {
      // Only a host shutting down cuts this short; its clients learn of the end from recovery.
      this.#log.error('could not store the end of a job', { jobId: this.jobId, err: error });
      return;
    }
    for (const watcher of this.watchers) watcher.onExit();
    context.onExit(this);
  }
}

/** Removes file `path` if it exists: one `unlink` (`rmSync` looks first, a second call per job). */
function removeIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
