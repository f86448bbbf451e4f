/**
 * Function jobs: a JavaScript function run in a child Node process (js-runner.ts) on pipes plus
 * an IPC channel, so that a function that loops, leaks or crashes takes only itself down.
 * @module
 */
import { fileURLToPath } from 'node:url';
import type { ProcessHandle, ProcessResult, StartSpec } from '../types.js';
import { isFromRunner, type FromRunner, type ToRunner } from './js-protocol.js';
import { PipeProcess } from './pipe-process.js';
import type { JobProcess } from './process-identity.js';
import { withProblem } from './setup.js';

/** The compiled runner, next to this module. */
const RUNNER = fileURLToPath(new URL('./js-runner.js', import.meta.url));

/**
 * How long to wait, once the runner's pipes are closed, for its IPC channel to close too. It
 * closes with the process; the bound only guards against a grandchild holding it open.
 */
const IPC_CLOSE_WAIT_MS = 1000;

/** Options of a {@link JsProcess}. */
export interface JsProcessOptions {
  /** Node binary that runs the function. */
  nodePath: string;
}

/**
 * A function job. Its `done` settles once the runner has exited, its output is drained and its
 * IPC channel is closed, with the function's `result`, or its `error` (message and stack).
 *
 * Calling convention (details in js-runner.ts): a `code` string is the body of
 * `async (progress, signal, args) => { ... }` in sloppy mode; a `module` export is called as
 * `fn(...args, { progress, signal })`. `progress(message)` reaches `StartSpec.onProgress`; the
 * returned value must be JSON-serialisable; `signal` aborts when the job is terminated.
 */
export class JsProcess implements ProcessHandle {
  readonly done: Promise<ProcessResult>;
  readonly #pipe: PipeProcess;

  constructor(spec: StartSpec, options: JsProcessOptions) {
    this.#pipe = new PipeProcess(spec, {
      what: `the function runner ("${options.nodePath}")`,
      extraStdio: ['ipc'],
      serialization: 'json',
      // What child_process.fork does, spelled out so the runner can be started as another OS
      // account too; no execArgv: the server's own flags (--inspect, --test, ...) stay out of the job.
      command: { file: options.nodePath, args: [RUNNER] },
    });
    const child = this.#pipe.child;
    if (child === undefined) {
      this.done = this.#pipe.done;
      return;
    }

    let outcome: Extract<FromRunner, { type: 'result' | 'error' }> | undefined;
    child.on('message', (message: unknown) => {
      if (!isFromRunner(message)) return;
      switch (message.type) {
        case 'progress':
          spec.onProgress(message.message);
          break;
        case 'result':
        case 'error':
          outcome ??= message;
          break;
        case 'stdin-taken':
          // Pooled runners only: a one-shot runner's stdin is a pipe.
          break;
        default: {
          const never: never = message;
          void never;
        }
      }
    });
    const disconnected = new Promise<void>((resolve) => {
      if (!child.connected) return resolve();
      child.once('disconnect', () => resolve());
    });
    this.#send({ type: 'start', fn: spec.description.js ?? {} });

    this.done = this.#pipe.done.then(async (ended) => {
      if (child.pid === undefined) return ended;
      // Messages are delivered before the channel closes: once it has, `outcome` is final.
      await Promise.race([disconnected, new Promise((resolve) => setTimeout(resolve, IPC_CLOSE_WAIT_MS).unref())]);
      return settle(ended, outcome);
    });
  }

  /** Leader (the Node runner) and runner of the job's processes. */
  get process(): JobProcess | undefined {
    return this.#pipe.process;
  }

  /** OS process id of the runner (its process group id too). */
  get pid(): number | undefined {
    return this.#pipe.pid;
  }

  /** Writes to the runner's stdin (`process.stdin` in the function); see {@link PipeProcess.writeStdin}. */
  writeStdin(data: Uint8Array): Promise<void> {
    return this.#pipe.writeStdin(data);
  }

  /** Ends the runner's stdin. */
  closeStdin(): void {
    this.#pipe.closeStdin();
  }

  /** Function jobs have no terminal: ignored. */
  resize(): void {}

  /** Stops reading the runner's stdout and stderr (see {@link PipeProcess.pauseOutput}). */
  pauseOutput(): void {
    this.#pipe.pauseOutput();
  }

  /** Reads the runner's stdout and stderr again. */
  resumeOutput(): void {
    this.#pipe.resumeOutput();
  }

  /**
   * Aborts the function's AbortSignal, then SIGTERM to the group (which the runner also turns
   * into an abort, so the function has `graceMs` to settle), then SIGKILL after `graceMs`.
   */
  terminate(graceMs: number): void {
    this.#send({ type: 'abort' });
    this.#pipe.terminate(graceMs);
  }

  #send(message: ToRunner): void {
    const child = this.#pipe.child;
    // The callback swallows send errors: a runner that is gone needs no more messages.
    if (child?.connected === true) child.send(message, undefined, {}, () => {});
  }
}

/** Combines how a runner ended (or, for a pooled runner, how its job did) with what it reported. */
export function settle(ended: ProcessResult, outcome: Extract<FromRunner, { type: 'result' | 'error' }> | undefined): ProcessResult {
  const { error: problem, ...base } = ended;
  if (outcome?.type === 'error') return withProblem({ ...base, error: outcome.error }, problem);
  if (outcome?.type === 'result') {
    if (outcome.json === undefined) return withProblem(base, problem);
    try {
      return withProblem({ ...base, result: JSON.parse(outcome.json) as unknown }, problem);
    } catch {
      return withProblem({ ...base, error: 'the function runner sent a result that is not JSON' }, problem);
    }
  }
  // No report: killed (the signal says so) or the function called process.exit itself.
  if (base.signal !== null) return withProblem(base, problem);
  return withProblem({ ...base, error: `the function ended without a result (runner exit code ${String(base.exitCode)})` }, problem);
}
