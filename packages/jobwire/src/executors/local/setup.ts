/**
 * What every local job needs before its process starts: working directory, environment, the
 * stdin/stdout/stderr files of the description, and one error type for "could not start".
 * Files are opened synchronously so that `start()` can hand back a handle with a pid at once, and
 * so that a bad path stops the job before anything runs.
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { ProcessResult, StartSpec } from '../types.js';
import { accountEnv, spawnCopyAs, type OsAccount } from './os-account.js';

/** Why a job could not be started; its message is what `ProcessResult.error` reports. */
export class StartError extends Error {
  override name = 'StartError';
}

/** The `done` value of a job that never started. */
export function notStarted(error: unknown): ProcessResult {
  const message = error instanceof StartError ? error.message : `cannot start the job: ${describe(error)}`;
  return { exitCode: null, signal: null, error: message };
}

/** `ENOENT: no such file or directory` from a Node system error, or the plain message. */
export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  if (code === undefined) return error.message;
  // Node's messages repeat the code and the syscall ("spawn foo ENOENT"); say it plainly.
  const plain: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    ENOTDIR: 'not a directory',
    EISDIR: 'is a directory',
    ENOEXEC: 'not an executable format',
    E2BIG: 'argument list too long',
  };
  return `${code}: ${plain[code] ?? error.message}`;
}

/** The job's working directory: the description's (relative to the default), else the default. */
export function jobCwd(spec: StartSpec): string {
  return path.resolve(spec.defaultCwd, spec.description.workingDirectory ?? '.');
}

/** Throws a StartError unless `cwd` is an existing directory. */
export function checkCwd(cwd: string, what: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(cwd);
  } catch (error) {
    throw new StartError(`cannot start ${what}: working directory "${cwd}": ${describe(error)}`, { cause: error });
  }
  if (!stat.isDirectory()) throw new StartError(`cannot start ${what}: working directory "${cwd}" is not a directory`);
}

/**
 * Server variables that describe the server's own terminal, not the job's: left out of tty jobs
 * so that programs do not believe a stale size or a multiplexer that is not there.
 */
const TERMINAL_VARIABLES = ['COLUMNS', 'LINES', 'TMUX', 'TMUX_PANE', 'STY', 'WINDOW', 'WINDOWID', 'TERMCAP'];

/**
 * The job's environment: the server's (`spec.baseEnv` when given; for a job run as another
 * account, that account's — see {@link accountEnv}), then `terminal` defaults for tty jobs, then the description's
 * `environment`, then the executor's own variables (which always win).
 */
export function jobEnv(spec: StartSpec, terminal?: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = spec.account === undefined ? {} : accountEnv(spec.account);
  if (spec.account === undefined) for (const [key, value] of Object.entries(spec.baseEnv ?? process.env)) if (value !== undefined) env[key] = value;
  if (terminal !== undefined) {
    for (const key of TERMINAL_VARIABLES) delete env[key];
    Object.assign(env, terminal);
  }
  return Object.assign(env, spec.description.environment, spec.env);
}

/** Opens the description's stdin file (relative to `cwd`) for reading; returns its fd. */
export function openStdinFile(file: string, cwd: string): number {
  const full = path.resolve(cwd, file);
  try {
    return fs.openSync(full, 'r');
  } catch (error) {
    throw new StartError(`cannot open stdin file "${full}": ${describe(error)}`, { cause: error });
  }
}

/** What can be paused and resumed: a readable stream, or a {@link ReadGate} view of one. */
export interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

/**
 * Pauses a readable stream while anyone holds it paused: the job host (its write-behind buffer
 * is full) and an {@link OutputCopy} (the description's file is behind) pause the same pipe, and
 * one must not resume what the other still holds.
 */
export class ReadGate {
  readonly #holders = new Set<string>();
  readonly #views = new Map<string, Pausable>();

  /** @param stream - the stream to pause; read lazily, as it may not exist yet. */
  constructor(private readonly stream: () => Pausable | undefined) {}

  /** Pauses the stream on behalf of `holder`. */
  hold(holder: string): void {
    this.#holders.add(holder);
    this.stream()?.pause();
  }

  /** Drops `holder`'s pause; the stream flows again once nobody holds it. */
  release(holder: string): void {
    if (!this.#holders.delete(holder) || this.#holders.size > 0) return;
    this.stream()?.resume();
  }

  /** A pause/resume pair acting as `holder`, for code that pauses a stream itself (OutputCopy). */
  as(holder: string): Pausable {
    let view = this.#views.get(holder);
    if (view === undefined) {
      view = { pause: () => this.hold(holder), resume: () => this.release(holder) };
      this.#views.set(holder, view);
    }
    return view;
  }
}

/** Most of a copy process's stderr kept for the error message. */
const COPY_STDERR_LIMIT = 2048;
/**
 * How long a copy process may take to finish once the job has ended. What is left then is at
 * most a pipe buffer; the bound is for a copy stuck opening its file (a FIFO nobody reads).
 */
const COPY_CLOSE_WAIT_MS = 10_000;

/**
 * A copy of one output channel into the file the description names. Writes are ordered; when the
 * file falls behind, the source stream is paused, so a slow disk slows the job instead of filling
 * the server's memory. For a job run as another OS account the file is written by a process of
 * that account ({@link OutputCopy.openAs}), so the job cannot have root write where it may not.
 */
export class OutputCopy {
  readonly #stream: Writable;
  #error: unknown;
  readonly #closed: Promise<string | undefined>;
  /** Sources paused until the file catches up. */
  readonly #waiting = new Set<Pausable>();

  private constructor(
    readonly channel: string,
    readonly file: string,
    stream: Writable,
    /** Resolves once the file is closed, with the copy process's complaint if it had one. */
    closed: Promise<string | undefined>,
    /** Stops a copy process that does not finish in time. */
    private readonly kill?: () => void,
  ) {
    this.#stream = stream;
    const resumeAll = (): void => {
      for (const source of this.#waiting) source.resume();
      this.#waiting.clear();
    };
    this.#stream.on('drain', resumeAll);
    this.#stream.on('error', (error) => {
      this.#error ??= error;
      // On a write error 'drain' never comes; the job must not stall on its copy.
      resumeAll();
    });
    this.#closed = closed;
  }

  /** Opens (truncates or creates) `file`, relative to `cwd`; throws a StartError if it cannot. */
  static open(channel: string, file: string, cwd: string): OutputCopy {
    const full = path.resolve(cwd, file);
    let fd: number;
    try {
      fd = fs.openSync(full, 'w');
    } catch (error) {
      throw new StartError(`cannot open ${channel} file "${full}": ${describe(error)}`, { cause: error });
    }
    const stream = fs.createWriteStream('', { fd, autoClose: true });
    return new OutputCopy(channel, full, stream, new Promise((resolve) => stream.once('close', () => resolve(undefined))));
  }

  /**
   * A copy into `file` (relative to `cwd`) written by a process running as `account`. It cannot
   * fail here: a file the account may not write ends the copy process, and `close()` reports why.
   */
  static openAs(channel: string, file: string, cwd: string, account: OsAccount): OutputCopy {
    const full = path.resolve(cwd, file);
    let child: ChildProcess;
    try {
      child = spawnCopyAs(account, cwd, file);
    } catch (error) {
      throw new StartError(`cannot open ${channel} file "${full}": ${describe(error)}`, { cause: error });
    }
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      if (stderr.length < COPY_STDERR_LIMIT) stderr += text;
    });
    const closed = new Promise<string | undefined>((resolve) => {
      child.on('error', (error) => resolve(describe(error)));
      child.on('close', (code, signal) => resolve(code === 0 ? undefined : stderr.trim() || `the copy process ended with ${signal ?? `exit code ${String(code)}`}`));
    });
    return new OutputCopy(channel, full, child.stdin!, closed, () => child.kill('SIGKILL'));
  }

  /** Appends `data`; pauses `source` until the file has caught up. */
  write(data: Buffer, source?: Pausable): void {
    if (this.#error !== undefined || this.#stream.destroyed) return;
    if (!this.#stream.write(data) && source !== undefined && !this.#waiting.has(source)) {
      source.pause();
      this.#waiting.add(source);
    }
  }

  /** Flushes and closes the file; resolves with why the copy is incomplete, if it is. */
  async close(): Promise<string | undefined> {
    if (!this.#stream.destroyed && !this.#stream.writableEnded) this.#stream.end();
    let timer: NodeJS.Timeout | undefined;
    const complaint = await (this.kill === undefined
      ? this.#closed
      : Promise.race([
          this.#closed,
          new Promise<string>((resolve) => {
            timer = setTimeout(() => {
              this.kill?.();
              resolve(`the copy did not finish within ${COPY_CLOSE_WAIT_MS / 1000} s of the job's end and was stopped`);
            }, COPY_CLOSE_WAIT_MS);
          }),
        ]));
    clearTimeout(timer);
    const why = complaint ?? (this.#error === undefined ? undefined : describe(this.#error));
    return why === undefined ? undefined : `could not write the ${this.channel} copy "${this.file}": ${why}`;
  }
}

/** Opens the copy of `channel` the description asks for, as the job's account when it has one. */
export function openCopy(spec: StartSpec, channel: 'stdout' | 'stderr', cwd: string): OutputCopy | undefined {
  const file = spec.description[channel];
  if (file === undefined) return undefined;
  return spec.account === undefined ? OutputCopy.open(channel, file, cwd) : OutputCopy.openAs(channel, file, cwd, spec.account);
}

/** Closes every copy; returns the problems, joined, or undefined when all went well. */
export async function closeCopies(copies: readonly (OutputCopy | undefined)[]): Promise<string | undefined> {
  const problems = await Promise.all(copies.map((copy) => copy?.close()));
  const found = problems.filter((problem): problem is string => problem !== undefined);
  return found.length === 0 ? undefined : found.join('; ');
}

/** Adds `problem` to a result's error (a copy that failed is worth reporting, not hiding). */
export function withProblem(result: ProcessResult, problem: string | undefined): ProcessResult {
  if (problem === undefined) return result;
  return { ...result, error: result.error === undefined ? problem : `${result.error}; ${problem}` };
}

/**
 * Finds the file `execvp` would run for `executable`, with the job's PATH and cwd, so that a tty
 * job can report a missing program the same way a pipe job does (the pty's child can only print
 * an error into the terminal once it is already running).
 */
export function findExecutable(executable: string, cwd: string, envPath: string | undefined): string {
  const candidates = executable.includes('/')
    ? [path.resolve(cwd, executable)]
    : (envPath ?? '/usr/local/bin:/usr/bin:/bin').split(':').map((dir) => path.resolve(cwd, dir || '.', executable));
  let firstError: unknown;
  for (const candidate of candidates) {
    try {
      if (!fs.statSync(candidate).isFile()) throw Object.assign(new Error('not a file'), { code: 'EACCES' });
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch (error) {
      // execvp reports EACCES over ENOENT when some candidate existed but could not be run.
      if (firstError === undefined || (error as NodeJS.ErrnoException).code === 'EACCES') firstError = error;
    }
  }
  throw new StartError(`cannot start "${executable}": ${describe(firstError ?? Object.assign(new Error(''), { code: 'ENOENT' }))}`);
}
