/**
 * Runs one job with an executor and keeps the store true to it: output into the stream log,
 * stdin from the stream log into the process (with flow control), resize and cancel from
 * control messages, maxRuntime, and the final status — set only after all output is stored.
 * Used by the embedded dispatcher and by distributed workers alike.
 * @module
 */
import type { OutputChannel } from '@jobwire/client';
import type { OsAccount } from '../executors/local/os-account.js';
import type { Executor, ExecutorState, ProcessHandle, ProcessResult, StartSpec } from '../executors/types.js';
import { finalStatusOf, type FinishFields, type JobRecord, type Store, type StreamEvent, type StreamSizes, type StoredEnd } from '../store/types.js';
import { setLongTimeout, type LongTimeout } from '../timers.js';
import { resolve } from 'node:path';
import { withProblem } from '../executors/local/setup.js';
import { keepOutputFiles, placeInputFiles } from './sandbox.js';
import { startDirectory } from './start-directory.js';

/** What a runner needs. */
export interface RunnerContext {
  store: Store;
  executor: Executor;
  /** Name of the machine the job runs on. */
  node: string;
  /** Milliseconds between SIGTERM and SIGKILL. */
  graceMs: number;
  /** Working directory for jobs that name none. */
  defaultCwd: string;
  /** URL handed to jobs as JOBWIRE_URL (for `jobwire progress`). */
  serverUrl: string;
  /** CA file handed to jobs as JOBWIRE_CA, so `jobwire progress` trusts an `https:` JOBWIRE_URL. @defaultValue undefined (none) */
  caFile?: string;
  /**
   * The OS account a job of `owner` runs as: undefined for this process's own; rejects (with a
   * message saying why and what to do) when the job must not run at all. @defaultValue every job runs as this process's account
   */
  accountFor?(owner: string): Promise<OsAccount | undefined>;
  /** Reports a bookkeeping failure (never thrown: a job's run must not crash the server). */
  onError(err: unknown, jobId: string): void;
  /**
   * Asked when a run's signal aborts: true leaves a job whose handle can detach (a job host's)
   * running, unsettled, for {@link RunOptions.resume} after the restart; false stops it.
   * @defaultValue every job is stopped
   */
  keepRunning?(): boolean;
  /**
   * Keep a job Queued while its executor's own scheduler holds it ({@link ProcessHandle.started},
   * a Slurm job PENDING), and follow a Queued job whose executor state says it was submitted
   * already (a restart) instead of starting it again. Only for a backend whose Queued jobs no
   * one else takes: the embedded dispatcher, and a worker (its placed jobs are its own; the
   * cluster store treats a placed one with an executor state as started there). Elsewhere the
   * job is Running with `reason` saying it waits. @defaultValue false
   */
  queuedInExecutor?: boolean;
}

/** What one run is given besides the shared {@link RunnerContext}. */
export interface RunOptions {
  /**
   * Stops the run when it aborts (the server or worker shuts down, or a worker learns its jobs
   * were handed on): the process is stopped and the job ends Lost, with `signal.reason` (a
   * sentence saying why) as its error. A run that aborts before its process started leaves the
   * job Queued. @defaultValue never aborts
   */
  signal?: AbortSignal;
  /**
   * Stores the end of the run: its final status, then, once that is stored, the end of its
   * output; resolves to the job as finished, or undefined when this run did not finish it.
   * A worker's checks that the job is still its run's (see `distributed/worker.ts`).
   * @defaultValue the store's `finishJob`, then `closeOutput`
   */
  settle?(fields: FinishFields): Promise<JobRecord | undefined>;
  /**
   * Follows a job that is Running already (a restart found it) instead of starting it: the
   * executor's `resume` with this state (what it reported through `onState`) and the output and
   * stdin stored so far. A job the executor cannot find again ends Lost. @defaultValue starts the Queued job
   */
  resume?: ExecutorState;
  /**
   * The job's stream sizes, read by the caller beside its own checks (a worker reads them with
   * the placement check, in one round trip); only for a store that keeps the output itself
   * (not with an executor that `storesOutput`). @defaultValue read here
   */
  sizes?: Promise<StreamSizes>;
}

const STDIN_READ = 64 * 1024;

/** The default {@link RunOptions.settle}: every failure is reported, and the output is closed whatever happened. */
async function settleInStore(ctx: RunnerContext, id: string, fields: FinishFields, stored?: StoredEnd): Promise<JobRecord | undefined> {
  let finished: JobRecord | undefined;
  try {
    finished = await ctx.store.finishJob(id, fields);
  } catch (err) {
    ctx.onError(err, id);
  }
  try {
    // The close carries the final status, so nobody following the output reads the job at the end.
    await ctx.store.streams.closeOutput(id, finished && finalStatusOf(finished), stored);
  } catch (err) {
    ctx.onError(err, id);
  }
  return finished;
}

/** The handle of a job that was not started (or, `lost`, not found again): it ends at once with `reason` as its error. */
function notRun(reason: unknown, lost = false): ProcessHandle {
  const error = reason instanceof Error ? reason.message : String(reason);
  return {
    pid: undefined,
    writeStdin: async () => {},
    closeStdin: () => {},
    resize: () => {},
    terminate: () => {},
    done: Promise.resolve(lost ? { exitCode: null, signal: null, lost: error } : { exitCode: null, signal: null, error }),
  };
}

/**
 * Runs `job` to the end. Resolves once its final status is stored (or at once if it was no longer
 * Queued), to the job as this run finished it (undefined when it did not). Never rejects.
 */
export async function runJob(ctx: RunnerContext, job: JobRecord, options: RunOptions = {}): Promise<JobRecord | undefined> {
  const { signal } = options;
  let { resume } = options;
  const { store } = ctx;
  // The executor that runs this job (of the server's named ones), asked about output and resume.
  const executor = ctx.executor.executorFor?.(job.description) ?? ctx.executor;
  const streams = store.streams;
  const id = job.id;
  let handle: ProcessHandle | undefined;
  let cancelled = false;
  /** Why the run was stopped by its signal, once it was. */
  let stoppedFor: string | undefined;
  let timedOut = false;
  let pendingAppend: Promise<unknown> = Promise.resolve();
  let appendFailed: unknown;
  const early: StreamEvent[] = [];
  /** Set when the run leaves the job running (see {@link RunnerContext.keepRunning}). */
  let detached = false;
  /** Set while the job waits in its executor's own queue (still Queued here). */
  let waiting = false;
  let onDetached!: () => void;
  const detaching = new Promise<'detached'>((resolve) => (onDetached = () => resolve('detached')));

  // An executor that stores output itself (a job host) writes the log's files; the log only learns of it.
  const stored = executor.storesOutput === true;
  /** The executor puts the start notice into the output itself, as the job's first stderr bytes. */
  const notices = stored || executor.writesNotice === true;
  const adopt = streams.adoptOutput?.bind(streams);
  if (stored && (adopt === undefined || streams.noteOutput === undefined)) {
    ctx.onError(new Error(`the ${executor.name} executor stores output itself, which this store cannot read`), id);
    return undefined;
  }
  // The owner's OS account (a read of the shared token book in Redis on a root worker) is looked
  // up while the stream sizes are read: one round trip less on the way to the start.
  const accountLookup = ctx.accountFor?.(job.owner).then(
    (account) => ({ account }),
    (error: unknown) => ({ error }),
  );
  let sizes;
  try {
    sizes = stored ? adopt!(id) : await (options.sizes ?? streams.sizes(id));
  } catch (err) {
    ctx.onError(err, id);
    return undefined;
  }

  // Stdin pump state: one loop at a time, reading from the consumed offset.
  let consumed = sizes.stdinConsumed;
  let pumping = false;
  let stdinEnded = false;
  /** Writes stdin from `consumed` on; `live` is the chunk just appended, used when it is next (no read). */
  const pump = async (live?: { offset: number; data: Uint8Array }): Promise<void> => {
    if (pumping || !handle || stdinEnded) return;
    pumping = true;
    try {
      if (live && live.offset === consumed && live.data.byteLength > 0) {
        await handle.writeStdin(live.data);
        consumed += live.data.byteLength;
        await streams.ackStdin(id, consumed);
      }
      for (;;) {
        const { data, end, closed } = await streams.readStdin(id, consumed, STDIN_READ);
        if (data.byteLength > 0) {
          await handle.writeStdin(data);
          consumed += data.byteLength;
          await streams.ackStdin(id, consumed);
          continue;
        }
        if (closed && consumed >= end) {
          stdinEnded = true;
          handle.closeStdin();
        }
        break;
      }
    } catch (err) {
      ctx.onError(err, id);
    } finally {
      pumping = false;
    }
  };
  let pumpAgain = false;
  const kick = (live?: { offset: number; data: Uint8Array }): void => {
    if (pumping) {
      pumpAgain = true;
      return;
    }
    void pump(live).then(() => {
      if (pumpAgain) {
        pumpAgain = false;
        kick();
      }
    });
  };

  const stopForCancel = (): void => {
    cancelled = true;
    handle?.terminate(ctx.graceMs);
  };
  const stopForSignal = (): void => {
    if (handle?.detach !== undefined && ctx.keepRunning?.() === true) {
      detached = true;
      handle.detach();
      onDetached();
      return;
    }
    stoppedFor ??= reasonText(signal?.reason);
    handle?.terminate(ctx.graceMs);
  };
  signal?.addEventListener('abort', stopForSignal, { once: true });

  const onStream = (ev: StreamEvent): void => {
    if (!handle) {
      early.push(ev);
      return;
    }
    switch (ev.type) {
      case 'stdin':
        if (job.interactive) kick(ev);
        break;
      case 'stdin-closed':
        if (job.interactive) kick();
        break;
      case 'control':
        if (ev.control.type === 'resize') handle.resize(ev.control.cols, ev.control.rows);
        else if (ev.control.type === 'output-ack') handle.ackOutput?.(ev.control.end);
        else stopForCancel();
        break;
      case 'output-closed':
        // Cancelled while Queued (the job service ends a Queued job at once): out of the executor's queue too.
        if (waiting) stopForCancel();
        break;
      case 'output':
      case 'stdin-ack':
        break;
      default: {
        const never: never = ev;
        void never;
      }
    }
  };
  const unsubscribe = streams.subscribe(id, onStream);

  let timer: LongTimeout | undefined;
  let result: ProcessResult;
  try {
    // A job its owner may not run (run-as.ts) ends Failed like one whose program is missing.
    let account: OsAccount | undefined;
    let refusal: unknown;
    const looked = await accountLookup;
    if (looked !== undefined) {
      if ('error' in looked) refusal = looked.error;
      else account = looked.account;
    }
    // A Queued job that an earlier server already handed to its executor's queue (a Slurm job
    // PENDING when it stopped) is followed there, not submitted again.
    if (resume === undefined && ctx.queuedInExecutor === true && executor.queuesJobs === true && job.status === 'Queued') resume = await store.executorState(id);
    // Stopped before it started: nothing ran, the job stays Queued for whoever starts next.
    if (signal?.aborted && resume === undefined) return undefined;
    const defaultCwd = account?.home ?? ctx.defaultCwd;
    const start = startDirectory(job.description, defaultCwd, ctx.node);
    const cwd = resolve(defaultCwd, start.description.workingDirectory ?? '.');
    if (resume === undefined) {
      // An executor that writes the notice itself (a job host) makes it the job's first stderr line.
      if (start.notice !== undefined && refusal === undefined && !notices) await streams.appendOutput(id, 'stderr', Buffer.from(start.notice));
      if (refusal === undefined) refusal = await placeInputFiles(store.blobs, job.owner, job.description, cwd, account).then(() => undefined, (err: unknown) => err);
    }
    const spec: StartSpec = {
      ...(start.notice !== undefined && notices ? { notice: start.notice } : {}),
      jobId: id,
      description: start.description,
      defaultCwd,
      ...(account !== undefined ? { account } : {}),
      env: { JOBWIRE_URL: ctx.serverUrl, JOBWIRE_JOB_ID: id, JOBWIRE_JOB_TOKEN: job.jobToken, ...(ctx.caFile ? { JOBWIRE_CA: ctx.caFile } : {}) },
      onOutput: (channel: OutputChannel, data: Buffer) => {
        pendingAppend = streams.appendOutput(id, channel, data).catch((err: unknown) => {
          appendFailed ??= err;
        });
      },
      onStoredOutput: (chunk) => {
        try {
          streams.noteOutput!(id, chunk);
        } catch (err) {
          appendFailed ??= err;
        }
      },
      onStored: (end) => streams.noteStored?.(id, end),
      onProgress: (message: string) => {
        store.setProgress(id, message).catch((err: unknown) => ctx.onError(err, id));
      },
      onHeldBack: (reason) => {
        store.setReason(id, reason).catch((err: unknown) => ctx.onError(err, id));
      },
      onState: (state) => {
        store.setExecutorState(id, state).catch((err: unknown) => ctx.onError(err, id));
      },
      onQueued: (reason) => {
        store.setReason(id, reason).catch((err: unknown) => ctx.onError(err, id));
      },
    };
    let running: JobRecord | undefined;
    /** Set once the handle's `done` has settled (known before `ready` when both came in one read). */
    let endedEarly = false;
    /** Marks the job Running, once its executor's own queue (if any) let it start. */
    const markRunning = async (): Promise<JobRecord | undefined | 'detached'> => {
      const h = handle!;
      await h.ready;
      if (ctx.queuedInExecutor === true && h.started !== undefined) {
        waiting = true;
        // Cancelled while it was being handed over (heard before there was a handle).
        if (early.some((ev) => ev.type === 'output-closed')) stopForCancel();
        const first = await Promise.race([h.started.then(() => 'started' as const), h.done.then(() => 'ended' as const), detaching]);
        waiting = false;
        if (first === 'detached') return 'detached';
        // Ended without ever running (refused, cancelled while waiting): it is settled from Queued.
        if (first === 'ended') return job;
      }
      const write = store.markRunning(id, { startedAt: new Date().toISOString(), pid: h.pid ?? null, node: ctx.node, process: h.process ?? null });
      // Only with the default settle (the embedded dispatcher): its store commits one turn's
      // writes in call order, in one transaction. A worker's settle goes to Redis, where the
      // order of two scripts not awaited in turn is not promised.
      if (!endedEarly || options.settle !== undefined) return write;
      // It ended before its start was answered (a function job: the job host answers its start
      // with its end): not waited for, its end is stored in the same turn, so the store commits
      // both in one transaction, Running's event first. Had it stopped being Queued (cancelled),
      // the end changes nothing either.
      write.catch((err: unknown) => ctx.onError(err, id));
      return job;
    };
    if (resume !== undefined) {
      const found = executor.resume === undefined ? undefined : await executor.resume(spec, resume, { stdout: sizes.stdout, stderr: sizes.stderr, stdin: consumed });
      handle = found ?? notRun(`its ${executor.name} executor could not find it again after a restart`, true);
      // A job still in its executor's queue when the last server stopped is Running only once it starts.
      const marked = job.status === 'Queued' && found !== undefined ? await markRunning() : job;
      if (marked === 'detached') return undefined;
      running = marked;
    } else {
      handle = refusal !== undefined ? notRun(refusal) : executor.start(spec);
      // (A rejection is the runner's to handle where it awaits `done`; this only notes an end.)
      handle.done.then(
        () => (endedEarly = true),
        () => undefined,
      );
      const marked = await markRunning();
      if (marked === 'detached') return undefined;
      running = marked;
    }
    if (signal?.aborted) stopForSignal();
    else if (!running) stopForCancel(); // cancelled while starting
    const maxRuntime = job.description.maxRuntime ?? 0;
    // An executor whose scheduler enforces the limit (Slurm's --time, TIMEOUT) is left to it.
    if (maxRuntime > 0 && executor.enforcesMaxRuntime !== true) {
      // Up to a year (the schema's limit): longer than one setTimeout can wait.
      timer = setLongTimeout(() => {
        timedOut = true;
        handle?.terminate(ctx.graceMs);
      }, maxRuntime * 60_000);
    }
    for (const ev of early.splice(0)) onStream(ev);
    if (job.interactive) kick();
    else stdinEnded = true;
    const ended = await Promise.race([handle.done, detaching]);
    if (ended === 'detached') return undefined;
    result = ended;
    if (refusal === undefined && result.lost === undefined) result = withProblem(result, await keepOutputFiles(store.blobs, id, job.description, cwd));
  } catch (err) {
    result = { exitCode: null, signal: null, error: `could not run the job: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    timer?.clear();
    unsubscribe();
    signal?.removeEventListener('abort', stopForSignal);
  }
  if (detached) return undefined;

  await pendingAppend;
  const fields: FinishFields = { status: 'Success', exitCode: result.exitCode, signal: result.signal, endedAt: new Date().toISOString() };
  if (result.result !== undefined) fields.result = result.result;
  if (result.lost !== undefined) {
    fields.status = 'Lost';
    fields.error = result.lost;
  } else if (stoppedFor !== undefined) {
    fields.status = 'Lost';
    fields.error = stoppedFor;
  } else if (result.lost !== undefined) {
    fields.status = 'Lost';
    fields.error = result.lost;
  } else if (cancelled) {
    fields.status = 'Cancelled';
    fields.error = 'cancelled';
  } else if (result.cancelled !== undefined) {
    fields.status = 'Cancelled';
    fields.error = result.cancelled;
  } else if (timedOut) {
    fields.status = 'Failed';
    fields.error = `stopped after maxRuntime of ${job.description.maxRuntime} minute(s)`;
  } else if (result.error !== undefined) {
    fields.status = 'Failed';
    fields.error = result.error;
  } else if (result.exitCode !== 0) {
    fields.status = 'Failed';
    fields.error = result.signal ? `killed by ${result.signal}` : `exited with code ${result.exitCode}`;
  }
  if (appendFailed !== undefined) {
    fields.status = 'Failed';
    fields.error = `output could not be stored: ${appendFailed instanceof Error ? appendFailed.message : String(appendFailed)}`;
  }
  let settled: JobRecord | undefined;
  // Where the host's files end, from its exit: only for output this store adopted.
  if (options.settle === undefined) settled = await settleInStore(ctx, id, fields, stored ? result.stored : undefined);
  else {
    try {
      settled = await options.settle(fields);
    } catch (err) {
      ctx.onError(err, id);
      return undefined;
    }
  }
  // Final and stored by this run, output too: what the executor kept to follow the job may go
  // (kept when the output could not be stored, or when the job was no longer this run's).
  if (settled !== undefined && appendFailed === undefined) handle?.release?.();
  return settled;
}

/** The text of an abort reason: a sentence as given, an error's message. */
function reasonText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}
