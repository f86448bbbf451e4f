/**
 * The local executor: jobs run as child processes of this machine, on pipes or under a
 * pseudo-terminal, with Xenon's local queues.
 * @module
 */
import * as os from 'node:os';
import { BadRequestError, type JobDescription } from '@jobwire/client';
import type { Executor, ProcessHandle, QueueDef, StartSpec } from '../types.js';
import { JsRunnerPool, unpoolable } from './js-pool.js';
import { JsProcess } from './js-process.js';
import { PipeProcess } from './pipe-process.js';
import { PtyProcess } from './pty-process.js';

/** Options of a {@link LocalExecutor}. */
export interface LocalExecutorOptions {
  /** How many jobs the `multi` queue runs at once. @defaultValue os.availableParallelism() */
  multiSlots?: number;
  /** Node binary that runs function (`js`) jobs. @defaultValue process.execPath */
  nodePath?: string;
  /**
   * Most warm function-job runners kept idle between jobs (see js-pool.ts); 0 runs every
   * function job in a Node process of its own. @defaultValue os.availableParallelism()
   */
  jsRunners?: number;
  /** How long an idle function-job runner waits for a job before it stops. @defaultValue 60000 */
  jsRunnerIdleMs?: number;
  /** Function jobs one runner serves before it is replaced. @defaultValue 1000 */
  jsRunnerMaxJobs?: number;
}

/** Queue names of the local executor, after Xenon's local adaptor. */
export const LOCAL_QUEUES = ['single', 'multi', 'unlimited'] as const;

/** Fills in and checks {@link LocalExecutorOptions}; throws a RangeError for a bad value. */
function parseOptions(options: LocalExecutorOptions): Required<LocalExecutorOptions> {
  const parsed = {
    multiSlots: os.availableParallelism(),
    nodePath: process.execPath,
    jsRunners: os.availableParallelism(),
    jsRunnerIdleMs: 60_000,
    jsRunnerMaxJobs: 1000,
    ...definedOnly(options),
  };
  const integer = (name: keyof LocalExecutorOptions, min: number): void => {
    const value = parsed[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw new RangeError(`${name} must be an integer of at least ${min}, got ${String(value)}`);
    }
  };
  if (!Number.isSafeInteger(parsed.multiSlots) || parsed.multiSlots < 1) {
    throw new RangeError(`multiSlots must be a positive integer, got ${String(parsed.multiSlots)}`);
  }
  integer('jsRunners', 0);
  integer('jsRunnerIdleMs', 0);
  integer('jsRunnerMaxJobs', 1);
  if (typeof parsed.nodePath !== 'string' || parsed.nodePath === '') throw new RangeError('nodePath must be a non-empty path');
  return parsed;
}

/** Drops keys whose value is undefined, so they do not override defaults. */
function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Runs jobs on this machine. Command jobs run on pipes (or under a pseudo-terminal with
 * `tty: true`), function jobs in a warm runner of a pool (js-pool.ts) or, when the pool cannot
 * honour the job (another OS account, an interactive terminal, a stdin file or output files), in a child Node
 * process of their own; every job leads its own process group (a pooled job, its runner's) so
 * that stopping it stops everything it started. Queues: `single` (one job at a time), `multi`
 * (up to `multiSlots`) and `unlimited`.
 */
export class LocalExecutor implements Executor {
  /** Adaptor name. */
  readonly name = 'local';
  readonly #options: Required<LocalExecutorOptions>;
  readonly #pool: JsRunnerPool;

  constructor(options: LocalExecutorOptions = {}) {
    this.#options = parseOptions(options);
    this.#pool = new JsRunnerPool({
      nodePath: this.#options.nodePath,
      maxIdle: this.#options.jsRunners,
      idleTimeoutMs: this.#options.jsRunnerIdleMs,
      maxJobsPerRunner: this.#options.jsRunnerMaxJobs,
    });
  }

  /** `single` (limit 1), `multi` (limit `multiSlots`) and `unlimited` (no limit). */
  queues(): QueueDef[] {
    return [
      { name: 'single', limit: 1 },
      { name: 'multi', limit: this.#options.multiSlots },
      { name: 'unlimited', limit: null },
    ];
  }

  /**
   * Refuses, with a BadRequestError (code "unsupported") naming the field, what this executor
   * cannot honour rather than silently ignoring it: several tasks or cores per task, scheduler
   * arguments, a memory limit, an unknown queue, a terminal for a function job, a stdin file for
   * an interactive or tty job, and a stderr file for a tty job (a terminal has one output).
   */
  check(description: JobDescription): void {
    const refuse = (field: string, message: string): never => {
      throw new BadRequestError(message, { code: 'unsupported', field });
    };
    if ((description.executable === undefined) === (description.js === undefined)) {
      refuse(description.executable === undefined ? 'executable' : 'js', 'give exactly one of "executable" and "js"');
    }
    if (description.queueName !== undefined && !(LOCAL_QUEUES as readonly string[]).includes(description.queueName)) {
      refuse('queueName', `the local executor has no queue "${description.queueName}"; its queues are ${LOCAL_QUEUES.join(', ')}`);
    }
    if (description.tasks !== undefined && description.tasks > 1) {
      refuse('tasks', 'the local executor runs one task per job; use a cluster executor for several tasks');
    }
    if (description.coresPerTask !== undefined && description.coresPerTask > 1) {
      refuse('coresPerTask', 'the local executor cannot reserve cores; use the "single" queue or a cluster executor');
    }
    if (description.schedulerArguments !== undefined && description.schedulerArguments.length > 0) {
      refuse('schedulerArguments', 'the local executor has no scheduler to hand arguments to');
    }
    // 0 is read as "no limit", as for maxRuntime.
    if (description.maxMemory !== undefined && description.maxMemory > 0) {
      refuse('maxMemory', 'the local executor cannot limit memory; leave maxMemory out or use a cluster executor');
    }
    if (description.tty === true && description.js !== undefined) {
      refuse('tty', 'a function job cannot run under a terminal');
    }
    if (description.stdin !== undefined && description.interactive === true) {
      refuse('stdin', 'an interactive job takes its stdin from clients, not from a file');
    }
    if (description.stdin !== undefined && description.tty === true) {
      refuse('stdin', 'a tty job cannot read a stdin file (the terminal would rewrite its bytes)');
    }
    if (description.stderr !== undefined && description.tty === true) {
      refuse('stderr', 'a tty job has no separate stderr: everything it writes arrives on stdout');
    }
  }

  /**
   * Starts a job. Never throws for a job that cannot start (missing program, bad working
   * directory, unreadable stdin file): the handle's `done` reports it as `error`.
   */
  start(spec: StartSpec): ProcessHandle {
    const description = spec.description;
    if (description.js !== undefined) {
      if (this.#options.jsRunners > 0 && unpoolable(spec) === undefined) return this.#pool.start(spec);
      return new JsProcess(spec, { nodePath: this.#options.nodePath });
    }
    if (description.tty === true) return new PtyProcess(spec);
    return new PipeProcess(spec);
  }

  /**
   * Stops the idle function-job runners; later function jobs still run, each in a runner that
   * stops after it. Idle runners also stop by themselves when this process exits (they follow
   * their IPC channel), so calling this is optional.
   */
  close(): void {
    this.#pool.close();
  }
}
