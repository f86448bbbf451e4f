/**
 * Jobs on plain pipes: a child process with separate stdin, stdout and stderr, leading its own
 * process group. Command jobs use it directly; function jobs use it with a Node runner and an
 * IPC channel on top (see js-process.ts).
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import type { ProcessHandle, ProcessResult, StartSpec } from '../types.js';
import { commandAs } from './os-account.js';
import { GroupTerminator } from './process-group.js';
import { startedJobProcess, type JobProcess } from './process-identity.js';
import {
  OutputCopy,
  ReadGate,
  StartError,
  checkCwd,
  closeCopies,
  describe,
  jobCwd,
  jobEnv,
  notStarted,
  openCopy,
  openStdinFile,
  withProblem,
} from './setup.js';

/** Options of a {@link PipeProcess}. */
export interface PipeProcessOptions {
  /** The program and its arguments. @defaultValue `description.executable` with `description.arguments` */
  command?: { file: string; args: readonly string[] };
  /** What the job is, for "cannot start ..." messages. @defaultValue the quoted executable */
  what?: string;
  /** Extra stdio entries after stdin, stdout and stderr (e.g. `'ipc'`). @defaultValue [] */
  extraStdio?: ('ipc' | 'pipe' | 'ignore')[];
  /** How IPC messages are encoded, with an `'ipc'` entry. @defaultValue "json" */
  serialization?: 'json' | 'advanced';
}

/**
 * A job running on pipes. `done` settles once the process has exited and both output pipes are
 * drained (the child's 'close' event) and the description's output files are flushed.
 */
export class PipeProcess implements ProcessHandle {
  /** The child, or undefined when the job could not be started. */
  readonly child: ChildProcess | undefined;
  /** Leader and runner of the job's processes, read right after the spawn. */
  readonly process: JobProcess | undefined;
  readonly done: Promise<ProcessResult>;
  readonly #interactive: boolean;
  readonly #terminator: GroupTerminator;
  /** One gate per output pipe: the caller and the description's file copy may both pause it. */
  readonly #gates = { stdout: new ReadGate(() => this.child?.stdout ?? undefined), stderr: new ReadGate(() => this.child?.stderr ?? undefined) };

  constructor(spec: StartSpec, options: PipeProcessOptions = {}) {
    const description = spec.description;
    this.#interactive = description.interactive === true;
    this.#terminator = new GroupTerminator(() => this.child?.pid);
    const what = options.what ?? `"${description.executable ?? ''}"`;
    const command = options.command ?? { file: description.executable ?? '', args: description.arguments ?? [] };
    const account = spec.account;

    let stdinFd: number | undefined;
    const copies: (OutputCopy | undefined)[] = [];
    let child: ChildProcess;
    try {
      const cwd = jobCwd(spec);
      const stdinFile = !this.#interactive ? description.stdin : undefined;
      // As another account, the working directory and the stdin file are entered and opened by
      // the job's own process (see os-account.ts); root checks and opens nothing for it.
      if (account === undefined) checkCwd(cwd, what);
      if (account === undefined && stdinFile !== undefined) stdinFd = openStdinFile(stdinFile, cwd);
      copies.push(openCopy(spec, 'stdout', cwd));
      copies.push(openCopy(spec, 'stderr', cwd));
      const run = account === undefined ? command : commandAs(account, cwd, command.file, command.args, stdinFile);
      try {
        child = spawn(run.file, run.args, {
          cwd: account === undefined ? cwd : '/',
          env: jobEnv(spec),
          stdio: [stdinFd ?? 'pipe', 'pipe', 'pipe', ...(options.extraStdio ?? [])],
          serialization: options.serialization ?? 'json',
          detached: true,
        });
      } catch (error) {
        // Some spawn failures (EINVAL, a bad argument) throw instead of emitting 'error'.
        throw new StartError(`cannot start ${what}: ${describe(error)}`, { cause: error });
      }
    } catch (error) {
      this.child = undefined;
      this.process = undefined;
      this.done = closeCopies(copies).then(() => notStarted(error));
      return;
    } finally {
      // The child holds its own copy of the stdin file from here on.
      if (stdinFd !== undefined) fs.closeSync(stdinFd);
    }
    this.child = child;
    this.process = startedJobProcess(child.pid);
    const [stdoutCopy, stderrCopy] = copies;

    child.stdin?.on('error', () => {
      // EPIPE/ECONNRESET: the job exited or closed its stdin; what was not read is lost by design.
    });
    if (!this.#interactive) child.stdin?.end();

    // A read error on an output pipe ends that pipe; 'close' still follows, so just absorb it.
    child.stdout?.on('error', () => {});
    child.stderr?.on('error', () => {});
    // Pipes deliver Buffers as they arrive; one listener per channel keeps arrival order.
    child.stdout?.on('data', (data: Buffer) => {
      spec.onOutput('stdout', data);
      stdoutCopy?.write(data, this.#gates.stdout.as('copy'));
    });
    child.stderr?.on('data', (data: Buffer) => {
      spec.onOutput('stderr', data);
      stderrCopy?.write(data, this.#gates.stderr.as('copy'));
    });

    this.done = new Promise<ProcessResult>((resolve) => {
      let settled = false;
      const settle = (result: ProcessResult): void => {
        if (settled) return;
        settled = true;
        this.#terminator.finish();
        void closeCopies(copies).then((problem) => resolve(withProblem(result, problem)));
      };
      child.on('error', (error) => {
        // Without a pid the process never ran (ENOENT, EACCES, ...); later errors come from
        // kill() or the IPC channel and change nothing about how the job ends.
        if (child.pid === undefined) settle(notStarted(new StartError(`cannot start ${what}: ${describe(error)}`, { cause: error })));
      });
      child.on('close', (exitCode, signal) => settle({ exitCode, signal }));
    });
  }

  /** OS process id of the job (its process group id too). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Writes to the job's stdin and resolves once the pipe has taken the data, so a writer that
   * awaits each call goes no faster than the job reads. For a batch job, or after stdin was closed or the job exited, the data
   * is dropped and the promise resolves: there is no reader left to slow down.
   */
  writeStdin(data: Uint8Array): Promise<void> {
    const stdin = this.child?.stdin;
    if (!this.#interactive || !isOpen(stdin)) return Promise.resolve();
    // The write callback runs once libuv has handed this chunk to the kernel, which for a full
    // pipe is only after the reader made room: awaiting it is the backpressure. It also runs,
    // with an error, when the pipe broke; that drop is covered by the rule above.
    return new Promise((resolve) => {
      stdin.write(data, () => resolve());
    });
  }

  /** Ends the job's stdin: the job reads EOF once it has read what was written before. */
  closeStdin(): void {
    const stdin = this.child?.stdin;
    if (isOpen(stdin)) stdin.end();
  }

  /** Pipes have no terminal size: ignored. */
  resize(): void {}

  /** SIGTERM to the job's process group, SIGKILL after `graceMs` if it has not finished. */
  terminate(graceMs: number): void {
    this.#terminator.terminate(graceMs);
  }

  /** Stops reading stdout and stderr: the job blocks once a pipe is full. */
  pauseOutput(): void {
    this.#gates.stdout.hold('caller');
    this.#gates.stderr.hold('caller');
  }

  /** Reads stdout and stderr again (unless the description's file copy still holds them). */
  resumeOutput(): void {
    this.#gates.stdout.release('caller');
    this.#gates.stderr.release('caller');
  }
}

function isOpen(stream: Writable | null | undefined): stream is Writable {
  return stream != null && !stream.destroyed && !stream.writableEnded;
}
