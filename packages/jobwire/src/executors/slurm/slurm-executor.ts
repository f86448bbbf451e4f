/**
 * The Slurm executor: batch jobs through `sbatch` and followed by one `squeue` per tick for all
 * of them (`scontrol`, `sacct` and the script's exit file for those that left the queue),
 * interactive jobs through `srun --unbuffered`, tty jobs through `srun --pty` in a
 * pseudo-terminal. Queues are Slurm's partitions. Commands run on a {@link SubmitHost}.
 * @module
 */
import * as path from 'node:path';
import { BadRequestError, type JobDescription } from '@jobwire/client';
import pLimit from 'p-limit';
import { LOCAL_QUEUES } from '../local/local-executor.js';
import type { Executor, ExecutorState, ExecutorStatus, ProcessHandle, ProcessResult, QueueDef, ResumeFrom, StartSpec } from '../types.js';
import { BatchJob, type BatchJobControl, type RecordedExit } from './batch-job.js';
import {
  ENV_NAME,
  SINFO_FORMAT,
  SQUEUE_FORMAT,
  batchScript,
  commentOf,
  jobFiles,
  parseScontrolJob,
  parseSinfo,
  parseSqueue,
  phaseOf,
  resourceOptions,
  scontrolComment,
  type Partition,
  type SlurmJobState,
} from './commands.js';
import { LocalSubmitHost, type CommandResult, type HostCommand, type SubmitHost } from './submit-host.js';

/** Options of {@link slurmExecutor}. */
export interface SlurmExecutorOptions {
  /** Where the Slurm commands run. @defaultValue a {@link LocalSubmitHost} (this machine) */
  host?: SubmitHost;
  /**
   * Folder for the jobs' output and exit files, on the submit host and visible from the
   * compute nodes (a shared file system). @defaultValue `.jobwire/slurm-jobs` in the submit host's home
   */
  jobsFolder?: string;
  /** Time between two `squeue` calls while jobs are followed. @defaultValue 1000 */
  pollMs?: number;
  /**
   * How long a job may be missing from `squeue`, `scontrol` and `sacct` without an exit file
   * before it ends as lost. @defaultValue 60000
   */
  lostAfterMs?: number;
  /** Time between two `sinfo` calls that refresh the partitions. @defaultValue 60000 */
  partitionsRefreshMs?: number;
  /**
   * Keep each batch job's `ID.out`, `ID.err` and `ID.exit` in the jobs folder after the job
   * ended and its output is stored (they are removed then, by default). @defaultValue false
   */
  keepJobFiles?: boolean;
}

/** A Slurm command failed or is missing: its name, where, and Slurm's words. */
export class SlurmCommandError extends Error {
  override name = 'SlurmCommandError';
}

/** What a batch job records for {@link SlurmExecutor.resume}. */
export interface SlurmJobRecord extends ExecutorState {
  slurmJobId: string;
  stdout: string;
  stderr: string;
  exit: string;
}

/** sbatch processes at once: the controller answers them one by one anyway. */
const SBATCH_AT_ONCE = 8;

/** Longest wait between two tries to reach a Slurm that did not answer. */
const RETRY_MAX_MS = 30_000;

/** {@link SlurmExecutorOptions} filled in; `jobsFolder` undefined until the submit host's home is known. */
export type ParsedSlurmOptions = Required<Omit<SlurmExecutorOptions, 'jobsFolder'>> & { jobsFolder: string | undefined };

/** Fills in and checks {@link SlurmExecutorOptions}; throws a RangeError for a bad value. */
export function parseSlurmOptions(options: SlurmExecutorOptions): ParsedSlurmOptions {
  const parsed: ParsedSlurmOptions = {
    host: options.host ?? new LocalSubmitHost(),
    jobsFolder: options.jobsFolder,
    pollMs: options.pollMs ?? 1000,
    lostAfterMs: options.lostAfterMs ?? 60_000,
    partitionsRefreshMs: options.partitionsRefreshMs ?? 60_000,
    keepJobFiles: options.keepJobFiles ?? false,
  };
  for (const key of ['pollMs', 'lostAfterMs', 'partitionsRefreshMs'] as const) {
    if (!Number.isFinite(parsed[key]) || parsed[key] < 10) throw new RangeError(`${key} must be a number of milliseconds of at least 10, got ${String(parsed[key])}`);
  }
  if (parsed.jobsFolder !== undefined && !parsed.jobsFolder.startsWith('/')) throw new RangeError(`jobsFolder must be an absolute path, got "${parsed.jobsFolder}"`);
  return parsed;
}

/**
 * Connects to Slurm (runs `sinfo` once for the partitions) and returns the executor; throws a
 * {@link SlurmCommandError} when Slurm's commands are missing or the controller does not answer.
 */
export async function slurmExecutor(options: SlurmExecutorOptions = {}): Promise<SlurmExecutor> {
  const executor = new SlurmExecutor(parseSlurmOptions(options));
  await executor.refreshPartitions();
  return executor;
}

/** Runs jobs on a Slurm cluster; made by {@link slurmExecutor}. */
export class SlurmExecutor implements Executor, BatchJobControl {
  /** Adaptor name. */
  readonly name = 'slurm';
  /** `--time` from maxRuntime: Slurm ends the job TIMEOUT, the runner sets no timer of its own. */
  readonly enforcesMaxRuntime = true;
  /** A PENDING job waits in Slurm's queue (Queued in jobwire) until Slurm starts it. */
  readonly queuesJobs = true;
  readonly #options: ParsedSlurmOptions;
  readonly #host: SubmitHost;
  #partitions: Partition[] = [];
  /** Whether `sinfo` has answered once, and what the last try said. */
  #status: ExecutorStatus = { state: 'idle' };
  #everConnected = false;
  /** The first `sinfo` in flight (for jobs started before Slurm answered). */
  #connecting: Promise<void> | undefined;
  #retryMs = 1000;
  /** Batch jobs followed by the poller, by jobwire id. */
  readonly #jobs = new Map<string, BatchJob>();
  #pollTimer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #partitionsTimer: NodeJS.Timeout | undefined;
  #folderReady: Promise<void> | undefined;
  /** sbatch calls in flight: a burst of submissions must not start hundreds of them at once. */
  readonly #submitting = pLimit(SBATCH_AT_ONCE);
  #closed = false;
  readonly #queueListeners: Array<() => void> = [];

  /**
   * Use {@link slurmExecutor}, which reads the partitions first; or this with
   * {@link parseSlurmOptions} and then {@link connect}, for an executor that starts before Slurm
   * answers (its jobs wait for the first answer; {@link status} says why none came).
   */
  constructor(options: ParsedSlurmOptions) {
    this.#options = options;
    this.#host = options.host;
  }

  /**
   * Asks Slurm for its partitions in the background, again and again (backoff up to 30 s)
   * until it answers; {@link status} tells how it goes.
   */
  connect(): void {
    this.#connecting ??= this.refreshPartitions().catch(() => undefined);
  }

  /** Calls `listener` after the partitions were first read, and whenever they change. */
  onQueuesChanged(listener: () => void): void {
    this.#queueListeners.push(listener);
  }

  /** `idle` before Slurm first answered, `connected` once it did, `failing` (or `reconnecting`) with Slurm's words. */
  status(): ExecutorStatus {
    return { ...this.#status };
  }

  /** The cluster's partitions, each a queue without a jobwire limit (Slurm schedules). */
  queues(): QueueDef[] {
    return this.#partitions.map((p) => ({ name: p.name, limit: null }));
  }

  /** The cluster's default partition, if it has one: the queue of jobs that name none. */
  get defaultQueue(): string | undefined {
    return this.#partitions.find((p) => p.isDefault)?.name;
  }

  /**
   * Reads the partitions with `sinfo` (and, the first time, the submit host's home for the
   * default jobs folder), then again every `partitionsRefreshMs`; after a failure, again
   * sooner (backoff up to 30 s), and rejects with a {@link SlurmCommandError}.
   */
  async refreshPartitions(): Promise<void> {
    clearTimeout(this.#partitionsTimer);
    try {
      const answer = await this.#command('sinfo', SINFO_FORMAT);
      if (this.#options.jobsFolder === undefined) {
        const home = await this.#host.home();
        this.#options.jobsFolder = path.posix.join(home, '.jobwire', 'slurm-jobs');
      }
      const before = this.#partitions.map((p) => `${p.name}${p.isDefault ? '*' : ''}`).join(',');
      this.#partitions = parseSinfo(answer.stdout);
      const changed = before !== this.#partitions.map((p) => `${p.name}${p.isDefault ? '*' : ''}`).join(',');
      if (changed || !this.#everConnected) {
        for (const listener of this.#queueListeners) {
          try {
            listener();
          } catch {
            // a listener's trouble is its own
          }
        }
      }
      this.#status = { state: 'connected' };
      this.#everConnected = true;
      this.#retryMs = 1000;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#status = { state: this.#everConnected ? 'reconnecting' : 'failing', reason };
      this.#schedule(this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
      throw error instanceof SlurmCommandError ? error : new SlurmCommandError(reason, { cause: error });
    }
    this.#schedule(this.#options.partitionsRefreshMs);
  }

  #schedule(ms: number): void {
    clearTimeout(this.#partitionsTimer);
    if (this.#closed) return;
    this.#partitionsTimer = setTimeout(() => void this.refreshPartitions().catch(() => undefined), ms);
    this.#partitionsTimer.unref();
  }

  /** Resolves once Slurm has answered once; rejects with why it does not (after one more try). */
  async #ready(): Promise<void> {
    if (this.#everConnected) return;
    await this.refreshPartitions();
  }

  /**
   * Refuses, with a BadRequestError (code "unsupported") naming the field, what Slurm cannot
   * run as asked: a function job, an unknown partition, a scheduler argument that is no option
   * or spans lines, an environment name a shell cannot export, a stdin file for an interactive
   * or tty job, a stderr file for a tty job.
   */
  check(description: JobDescription): void {
    const refuse = (field: string, message: string): never => {
      throw new BadRequestError(message, { code: 'unsupported', field });
    };
    if (description.js !== undefined || description.executable === undefined) refuse('js', 'the Slurm executor runs executables, not function jobs');
    const queue = description.queueName;
    if (queue !== undefined && this.#everConnected && !this.#partitions.some((p) => p.name === queue)) {
      refuse('queueName', `Slurm has no partition "${queue}"; its partitions are ${this.#partitions.map((p) => p.name).join(', ') || '(none)'}`);
    }
    for (const argument of description.schedulerArguments ?? []) {
      if (!argument.startsWith('-') || /[\r\n]/.test(argument)) refuse('schedulerArguments', `"${argument}" is not one sbatch option (it must start with "-" and fit on one line)`);
    }
    for (const key of Object.keys(description.environment ?? {})) {
      if (!ENV_NAME.test(key)) refuse('environment', `"${key}" is not a variable name a shell can export`);
    }
    const live = description.interactive === true || description.tty === true;
    if (description.stdin !== undefined && live) refuse('stdin', 'an interactive or tty job takes its stdin from clients, not from a file');
    if (description.stderr !== undefined && description.tty === true) refuse('stderr', 'a tty job has no separate stderr: everything it writes arrives on stdout');
  }

  /**
   * Starts a job: interactive and tty jobs under `srun` right away, batch jobs with `sbatch`
   * (its answer comes later: a refusal ends `done` with Slurm's words).
   */
  start(spec: StartSpec): ProcessHandle {
    const description = spec.description;
    const cwd = path.posix.resolve(spec.defaultCwd, description.workingDirectory ?? '.');
    const options = resourceOptions(spec.jobId, description, cwd, this.#partitionOf(description.queueName));
    if (spec.account !== undefined) {
      // Slurm runs a job as whoever submits it: never as root for a user mapped to another account.
      const refused = new BatchJob(spec, this.#host, this);
      refused.settle({ exitCode: null, signal: null, error: `the Slurm executor submits jobs as the account running jobwire; it cannot run a job as OS account "${spec.account.name}"` });
      return refused;
    }
    if (description.interactive === true || description.tty === true) return this.#startSrun(spec, options);
    const job = new BatchJob(spec, this.#host, this);
    void this.#submit(spec, job, options).catch((error: unknown) => {
      job.settle({ exitCode: null, signal: null, error: `cannot submit to Slurm on ${this.#host.where}: ${error instanceof Error ? error.message : String(error)}` });
    });
    return job;
  }

  /**
   * The partition of a job's queue: the queue itself, except jobwire's own queue names (`single`,
   * `multi`, `unlimited`: a server's or a distributed worker's default) where the cluster has no
   * such partition, which mean the default partition (no `--partition`).
   */
  #partitionOf(queue: string | undefined): string | undefined {
    if (queue === undefined || this.#partitions.some((p) => p.name === queue)) return queue;
    return (LOCAL_QUEUES as readonly string[]).includes(queue) ? undefined : queue;
  }

  /**
   * Follows a batch job an earlier executor submitted, from its {@link SlurmJobRecord}, with
   * its output from `from` on; undefined when Slurm no longer knows it and it left no exit file
   * (or the state is not one this executor wrote). Rejects with a {@link SlurmCommandError} when
   * `squeue` cannot be asked at all (controller down): that says nothing about the job.
   */
  async resume(spec: StartSpec, state: ExecutorState, from: ResumeFrom): Promise<ProcessHandle | undefined> {
    const record = state as Partial<SlurmJobRecord>;
    if (typeof record.slurmJobId !== 'string' || typeof record.stdout !== 'string' || typeof record.stderr !== 'string' || typeof record.exit !== 'string') {
      return undefined;
    }
    const job = new BatchJob(spec, this.#host, this, { stdout: record.stdout, stderr: record.stderr, exit: record.exit }, from);
    job.slurmId = record.slurmJobId;
    const known = (await this.#squeue([job.slurmId])).get(job.slurmId) ?? (await this.#scontrol(job.slurmId));
    const foreign = known === undefined ? undefined : foreignTo(job, known);
    const recorded = known === undefined || foreign !== undefined ? await this.#recordedExit(job) : undefined;
    if (known === undefined && recorded === undefined) return undefined;
    // The id is another job's now (the cluster reused it) and ours left no exit file: never
    // adopted (nor signalled); the job ends Lost saying so.
    if (foreign !== undefined && recorded === undefined) {
      job.settle({ exitCode: null, signal: null, lost: foreign });
      return job;
    }
    this.#follow(spec.jobId, job);
    return job;
  }

  /** Stops polling; jobs still followed are left running in Slurm (a later executor can resume them). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#pollTimer);
    clearTimeout(this.#partitionsTimer);
  }

  /**
   * TERM to every process of the job (the script too), then `scancel` after the grace time —
   * each only while Slurm still gives the job's id to this job (its comment), never to another's.
   */
  cancel(job: BatchJob, graceMs: number): void {
    const id = job.slurmId!;
    // A Slurm that cannot be asked cannot tell: the scancel is tried as it would be without the check.
    const scancel = (args: string[]): void =>
      void this.#isOurs(job)
        .catch(() => true)
        .then((ours) => (ours ? this.#host.run({ file: 'scancel', args: [...args, id] }) : undefined))
        .catch(() => undefined);
    const hard = (): void => scancel([]);
    if (job.phase === 'queued') hard();
    else {
      scancel(['--full', '--signal=TERM']);
      setTimeout(() => {
        if (!job.settled) hard();
      }, graceMs).unref();
    }
    this.#pollSoon();
  }

  async #submit(spec: StartSpec, job: BatchJob, options: string[]): Promise<void> {
    const description = spec.description;
    try {
      await this.#ready();
    } catch (error) {
      job.settle({ exitCode: null, signal: null, error: `Slurm is not reachable: ${(error as Error).message}` });
      return;
    }
    const jobsFolder = this.#options.jobsFolder!;
    job.files = jobFiles(jobsFolder, spec.jobId);
    const env = { ...description.environment, ...spec.env };
    const script = batchScript(description, env, job.files, path.posix.resolve(spec.defaultCwd, description.workingDirectory ?? '.'));
    try {
      this.#folderReady ??= this.#host.mkdir(jobsFolder);
      await this.#folderReady;
    } catch (error) {
      this.#folderReady = undefined;
      job.settle({ exitCode: null, signal: null, error: `cannot create the Slurm job folder "${jobsFolder}" on ${this.#host.where}: ${String(error)}` });
      return;
    }
    const args = ['--parsable', ...options, `--output=${job.files.stdout}`, `--error=${job.files.stderr}`];
    const answer = await this.#submitting(() => this.#host.run({ file: 'sbatch', args }, script));
    const failure = commandFailure('sbatch', answer, this.#host.where);
    if (failure !== undefined) {
      job.settle({ exitCode: null, signal: null, error: failure.replace(/^sbatch failed/, 'sbatch refused the job') });
      return;
    }
    // --parsable: "id" or "id;cluster".
    const id = answer.stdout.trim().split(';')[0] ?? '';
    if (!/^\d+$/.test(id)) {
      job.settle({ exitCode: null, signal: null, error: `sbatch answered "${answer.stdout.trim()}" instead of a job id` });
      return;
    }
    job.slurmId = id;
    const record: SlurmJobRecord = { slurmJobId: id, ...job.files };
    spec.onState?.(record);
    this.#follow(spec.jobId, job);
    if (job.pendingCancel !== undefined) this.cancel(job, job.pendingCancel);
  }

  /** Removes an ended job's files from the jobs folder (best effort), unless they are kept. */
  release(job: BatchJob): void {
    if (this.#options.keepJobFiles) return;
    const { stdout, stderr, exit } = job.files;
    void this.#host.run({ file: 'rm', args: ['-f', '--', stdout, stderr, exit, `${exit}.tmp`] }).catch(() => undefined);
  }

  /** Stops following a detached job (see {@link BatchJob.detach}). */
  forget(job: BatchJob): void {
    for (const [id, followed] of this.#jobs) if (followed === job) this.#jobs.delete(id);
  }

  #follow(jobId: string, job: BatchJob): void {
    this.#jobs.set(jobId, job);
    void job.done.then(() => this.#jobs.delete(jobId));
    this.#pollSoon();
  }

  /** Starts a poll now unless one runs; the poller keeps itself going while jobs are followed. */
  #pollSoon(): void {
    if (this.#closed || this.#polling !== undefined) return;
    clearTimeout(this.#pollTimer);
    this.#polling = this.#poll()
      .catch(() => undefined)
      .finally(() => {
        this.#polling = undefined;
        if (this.#jobs.size > 0 && !this.#closed) this.#pollTimer = setTimeout(() => this.#pollSoon(), this.#options.pollMs);
      });
  }

  /** One tick: one `squeue` for all followed jobs, then each job's output and, for ended ones, their end. */
  async #poll(): Promise<void> {
    const jobs = [...this.#jobs.values()].filter((job) => job.slurmId !== undefined && !job.settled);
    if (jobs.length === 0) return;
    let listed: Map<string, SlurmJobState> | undefined;
    try {
      listed = await this.#squeue(jobs.map((job) => job.slurmId!));
    } catch {
      listed = undefined; // the controller did not answer: nothing is concluded from silence.
    }
    await Promise.all(jobs.map((job) => this.#update(job, listed).then(() => (job.trouble = undefined), (error: unknown) => this.#troubled(job, error))));
  }

  /**
   * A job that could not be followed this tick (its output file unreadable, a command that
   * would not start): tried again next tick, and ended with the error once it has failed for
   * `lostAfterMs` in a row — never left hanging, and never stopping the other jobs' ticks.
   */
  #troubled(job: BatchJob, error: unknown): void {
    job.trouble ??= { since: Date.now(), error };
    if (Date.now() - job.trouble.since < this.#options.lostAfterMs) return;
    const why = error instanceof Error ? error.message : String(error);
    job.settle({ exitCode: null, signal: null, error: `Slurm job ${job.slurmId} could not be followed for ${Math.round(this.#options.lostAfterMs / 1000)} s: ${why}` });
  }

  async #update(job: BatchJob, listed: Map<string, SlurmJobState> | undefined): Promise<void> {
    let state = listed?.get(job.slurmId!);
    if (listed !== undefined && state === undefined) state = await this.#scontrol(job.slurmId!).catch(() => undefined);
    const foreign = state === undefined ? undefined : foreignTo(job, state);
    if (foreign !== undefined) {
      // Slurm knows the id as another job's: ours is gone (the cluster reused the id). Its exit
      // file, if there, says how it ended; else it ends Lost. The other job is never touched.
      await job.follow();
      const recorded = await this.#recordedExit(job);
      if (recorded !== undefined) await job.finish({ state: recorded === 0 ? 'COMPLETED' : 'FAILED', reason: 'None' }, recorded);
      else job.settle({ exitCode: null, signal: null, lost: foreign });
      return;
    }
    if (state !== undefined) {
      job.goneSince = undefined;
      job.slurmState = state;
      job.phase = phaseOf(state.state);
      job.observe(state);
    }
    await job.follow();
    if (state !== undefined && job.phase === 'ended') {
      await job.finish(state, await this.#recordedExit(job));
      return;
    }
    if (listed === undefined || state !== undefined) return;
    // Slurm forgot the job (no accounting, or it aged out): its exit file says how it ended.
    const recorded = await this.#recordedExit(job);
    if (recorded !== undefined) {
      await job.finish({ state: recorded === 0 ? 'COMPLETED' : 'FAILED', reason: 'None' }, recorded);
      return;
    }
    job.goneSince ??= Date.now();
    if (Date.now() - job.goneSince >= this.#options.lostAfterMs) {
      await job.follow();
      job.settle({
        exitCode: null,
        signal: null,
        error: `Slurm job ${job.slurmId} is gone: squeue and scontrol no longer know it and it left no exit file for ${Math.round(this.#options.lostAfterMs / 1000)} s`,
      });
    }
  }

  /** False when Slurm knows the job's id as another job's (see {@link foreignTo}); true otherwise (its own, or unknown). */
  async #isOurs(job: BatchJob): Promise<boolean> {
    const id = job.slurmId!;
    const state = (await this.#squeue([id])).get(id) ?? (await this.#scontrol(id));
    return state === undefined || foreignTo(job, state) === undefined;
  }

  /** The states of the jobs `squeue` still lists (a job it forgot is missing from the map). */
  async #squeue(ids: string[]): Promise<Map<string, SlurmJobState>> {
    const answer = await this.#host.run({ file: 'squeue', args: [...SQUEUE_FORMAT, `--jobs=${ids.join(',')}`] });
    // squeue fails for a list of ids it all forgot: that is an empty answer, not an error.
    if (answer.code !== 0 && /Invalid job id/i.test(answer.stderr)) return new Map();
    const failure = commandFailure('squeue', answer, this.#host.where);
    if (failure !== undefined) throw new SlurmCommandError(failure);
    return parseSqueue(answer.stdout);
  }

  /**
   * The job as `scontrol` (with its comment) or else `sacct` (without: it keeps comments only
   * with `job_comment` accounting) remembers it; undefined when neither does.
   */
  async #scontrol(id: string): Promise<SlurmJobState | undefined> {
    const answer = await this.#host.run({ file: 'scontrol', args: ['--oneliner', 'show', 'job', id] });
    if (answer.code === 0) {
      const parsed = parseScontrolJob(answer.stdout);
      return parsed && { ...parsed, comment: scontrolComment(answer.stdout) };
    }
    const accounted = await this.#host.run({ file: 'sacct', args: ['--noheader', '--parsable2', '--allocations', `--jobs=${id}`, '--format=State,ExitCode,Reason'] });
    if (accounted.code !== 0) return undefined;
    const [state, exit = '', reason = 'None'] = accounted.stdout.trim().split('\n')[0]?.split('|') ?? [];
    if (!state) return undefined;
    return parseScontrolJob(`JobState=${state} Reason=${reason} ExitCode=${exit}`);
  }

  /** The exit code the batch script wrote, or why the job could not start, when its exit file is there. */
  async #recordedExit(job: BatchJob): Promise<RecordedExit | undefined> {
    const text = (await this.#host.read(job.files.exit, 0, 4096).catch(() => undefined))?.toString('utf8').trim();
    if (text?.startsWith('error: ')) return text.slice('error: '.length);
    return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
  }

  /** Runs a Slurm command; throws a SlurmCommandError naming it when it fails or is missing. */
  async #command(file: string, args: string[]): Promise<CommandResult> {
    const answer = await this.#host.run({ file, args });
    const failure = commandFailure(file, answer, this.#host.where);
    if (failure !== undefined) throw new SlurmCommandError(failure);
    return answer;
  }

  #startSrun(spec: StartSpec, options: string[]): ProcessHandle {
    const tty = spec.description.tty === true;
    const description = spec.description;
    const command: HostCommand = {
      file: 'srun',
      args: [tty ? '--pty' : '--unbuffered', ...options, ...(description.schedulerArguments ?? []), description.executable ?? '', ...(description.arguments ?? [])],
    };
    const inner = this.#host.spawn(spec, command, { tty });
    return new SrunJob(inner, (signal) => this.#cancelSrun(spec.jobId, signal));
  }

  /**
   * `scancel` of the srun job that carries jobwire id `jobId` in its comment (srun does not tell
   * its id); with `signal`, that signal to all its processes instead.
   */
  async #cancelSrun(jobId: string, signal?: string): Promise<void> {
    const answer = await this.#host.run({ file: 'squeue', args: ['--noheader', '--format=%i|%k', '--me'] });
    for (const line of answer.stdout.split('\n')) {
      const [id, comment] = line.trim().split('|');
      if (id && comment === commentOf(jobId)) await this.#host.run({ file: 'scancel', args: [...(signal !== undefined ? [`--signal=${signal}`] : []), id] });
    }
  }
}

/**
 * An `srun` job: the submit host's process handle, with a stop that also sends TERM through
 * Slurm (`scancel --signal=TERM`: srun on a login node cannot always be signalled) and cancels
 * the Slurm job once the grace time is over (a killed srun would not end its tasks).
 */
class SrunJob implements ProcessHandle {
  readonly #inner: ProcessHandle;
  readonly #cancel: (signal?: string) => Promise<void>;

  readonly #done: Promise<ProcessResult>;
  #terminated = false;

  constructor(inner: ProcessHandle, cancel: (signal?: string) => Promise<void>) {
    this.#inner = inner;
    this.#cancel = cancel;
    // srun ends its tasks with KILL once it gets TERM: a job jobwire stopped reports the TERM it was stopped with.
    this.#done = inner.done.then((result) => {
      const killed = result.signal !== null || (result.exitCode !== null && result.exitCode > 128);
      return this.#terminated && killed && result.error === undefined ? { ...result, exitCode: null, signal: 'SIGTERM' } : result;
    });
  }

  get pid(): number | undefined {
    return this.#inner.pid;
  }

  /** As srun ended; a job stopped by {@link terminate} that srun ended by a signal reports SIGTERM. */
  get done(): Promise<ProcessResult> {
    return this.#done;
  }

  writeStdin(data: Uint8Array): Promise<void> {
    return this.#inner.writeStdin(data);
  }

  closeStdin(): void {
    this.#inner.closeStdin();
  }

  resize(cols: number, rows: number): void {
    this.#inner.resize(cols, rows);
  }

  terminate(graceMs: number): void {
    this.#terminated = true;
    this.#inner.terminate(graceMs);
    void this.#cancel('TERM').catch(() => undefined);
    const timer = setTimeout(() => void this.#cancel().catch(() => undefined), graceMs);
    timer.unref();
    void this.#inner.done.then(() => clearTimeout(timer));
  }

  pauseOutput(): void {
    this.#inner.pauseOutput?.();
  }

  resumeOutput(): void {
    this.#inner.resumeOutput?.();
  }
}

/**
 * Why a state Slurm reported under a batch job's Slurm id is not that job's — its comment names
 * another job (or none), so the cluster reused the id (its state was wiped) — or undefined when
 * it is the job's, or the answer does not tell (no comment in it).
 */
function foreignTo(job: BatchJob, state: SlurmJobState): string | undefined {
  const ours = commentOf(job.jobId);
  if (state.comment === undefined || state.comment === ours) return undefined;
  const whose = state.comment === '' || state.comment === '(null)' ? 'a job without a comment' : `another job (comment "${state.comment}")`;
  return `Slurm job ${job.slurmId} is not this job any more: Slurm knows that id as ${whose}, not "${ours}" — the cluster reused the id (its state was wiped?), so this job is gone; the other job was left alone`;
}

/**
 * Why a command failed, in words naming it and where it ran (with Slurm's own message), or
 * undefined when it succeeded.
 */
function commandFailure(file: string, answer: CommandResult, where: string): string | undefined {
  if (answer.startError !== undefined) {
    const hint = /ENOENT|not found/i.test(answer.startError) ? ": are Slurm's client commands installed and on PATH?" : '';
    return `${file} cannot run on ${where} (${answer.startError})${hint}`;
  }
  if (answer.code === 0) return undefined;
  // Slurm starts each line with "sbatch: error: ": said once, by us.
  const prefix = new RegExp(`^${file}: (error: )?`);
  const lines = answer.stderr.split('\n').map((line) => line.trim().replace(prefix, '')).filter(Boolean);
  const said = lines.join('; ') || `exit code ${answer.code}`;
  return `${file} failed on ${where}: ${said}`;
}
