/**
 * One Slurm batch job as a process handle: what jobwire knows of it (Slurm id, state, how far
 * its output files have been read) and how it ends. The executor's poller drives it; the job
 * itself only reads its files and settles `done`.
 * @module
 */
import type { ProcessHandle, ProcessResult, StartSpec } from '../types.js';
import { endResult, type JobFiles, type SlurmJobState, type SlurmPhase } from './commands.js';
import type { SubmitHost } from './submit-host.js';

/** Bytes read from one output file in one go. */
const READ_CHUNK = 256 * 1024;
/** At most this much per file and poll, so one chatty job cannot hold up the others' ticks. */
const READ_PER_TICK = 8 * 1024 * 1024;

/** What a batch script recorded in its exit file: the command's exit code, or why it could not start. */
export type RecordedExit = number | string;

/** What the executor does for a batch job's handle. */
export interface BatchJobControl {
  /** Stops the job in Slurm: TERM to all its processes, then `scancel` after `graceMs`. */
  cancel(job: BatchJob, graceMs: number): void;
  /** Stops following the job (it was detached: left running in Slurm for a later resume). */
  forget(job: BatchJob): void;
  /** Removes the job's output and exit files (unless the executor keeps them). */
  release(job: BatchJob): void;
}

/** A batch job submitted with `sbatch` (or found again by its Slurm id). */
export class BatchJob implements ProcessHandle {
  readonly pid = undefined;
  readonly done: Promise<ProcessResult>;
  /** Resolves once Slurm has started the job (see {@link ProcessHandle.started}). */
  readonly started: Promise<void>;
  /** The Slurm job id, once `sbatch` has answered. */
  slurmId: string | undefined;
  /** The last state Slurm reported. */
  slurmState: SlurmJobState | undefined;
  /** Queued, running or ended, from {@link slurmState}; "queued" until Slurm says otherwise. */
  phase: SlurmPhase = 'queued';
  /** When the job was first missing from both `squeue` and `scontrol`, for the lost grace time. */
  goneSince: number | undefined;
  /** When following the job (reading its files, asking Slurm) first failed in a row, and why. */
  trouble: { since: number; error: unknown } | undefined;
  /** Set once jobwire asked Slurm to stop the job. */
  terminated = false;
  /** The grace time of a terminate that came before the Slurm id was known. */
  pendingCancel: number | undefined;
  /** Its files; set by the executor before it submits the job (when its jobs folder is known). */
  files: JobFiles;
  readonly offsets: { stdout: number; stderr: number };
  #paused = false;
  #settled = false;
  #detached = false;
  #resolve!: (result: ProcessResult) => void;
  #markStarted!: () => void;
  #hasStarted = false;
  /** The last reason handed to onQueued, so each change is told once. */
  #queuedReason: string | null | undefined;
  readonly #spec: StartSpec;
  readonly #host: SubmitHost;
  readonly #control: BatchJobControl;

  constructor(spec: StartSpec, host: SubmitHost, control: BatchJobControl, files: JobFiles = { stdout: '', stderr: '', exit: '' }, from = { stdout: 0, stderr: 0 }) {
    this.#spec = spec;
    this.#host = host;
    this.#control = control;
    this.files = files;
    this.offsets = { ...from };
    this.done = new Promise((resolve) => (this.#resolve = resolve));
    this.started = new Promise((resolve) => (this.#markStarted = resolve));
  }

  /** The jobwire id of the job (its Slurm comment is `jobwire:ID`). */
  get jobId(): string {
    return this.#spec.jobId;
  }

  /** True once Slurm started the job (or it ended after running). */
  get hasStarted(): boolean {
    return this.#hasStarted;
  }

  /**
   * Takes the state Slurm reported: while the job is PENDING (or otherwise queued) its reason is
   * told through onQueued; once it runs, `started` resolves and the reason is cleared.
   */
  observe(state: SlurmJobState): void {
    if (this.#detached || this.#settled) return;
    if (this.phase === 'queued') {
      const why = state.reason && state.reason !== 'None' ? ` (${state.reason})` : '';
      this.#tellQueued(`queued in Slurm as job ${this.slurmId}: ${state.state}${why}`);
      return;
    }
    if (this.phase === 'running' || state.state !== 'CANCELLED') this.#start();
  }

  #start(): void {
    if (this.#hasStarted) return;
    this.#hasStarted = true;
    this.#tellQueued(null);
    this.#markStarted();
  }

  #tellQueued(reason: string | null): void {
    if (reason === this.#queuedReason) return;
    this.#queuedReason = reason;
    this.#spec.onQueued?.(reason);
  }

  /** True once `done` has settled. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Batch jobs read no stdin (a stdin file is given in the description): accepted and dropped. */
  writeStdin(): Promise<void> {
    return Promise.resolve();
  }

  closeStdin(): void {}

  resize(): void {}

  terminate(graceMs: number): void {
    if (this.#settled || this.terminated) return;
    this.terminated = true;
    if (this.slurmId === undefined) this.pendingCancel = graceMs;
    else this.#control.cancel(this, graceMs);
  }

  /**
   * Stops following and leaves the job in Slurm (a server that stops and keeps its jobs): no
   * more output, `done` never settles; `resume` finds it again by its Slurm id.
   */
  detach(): void {
    if (this.#settled || this.#detached) return;
    this.#detached = true;
    this.#control.forget(this);
  }

  /** Its final status and output are stored: its files in the jobs folder may go. */
  release(): void {
    if (!this.#settled || this.#detached || this.files.exit === '') return;
    this.#control.release(this);
  }

  pauseOutput(): void {
    this.#paused = true;
  }

  resumeOutput(): void {
    this.#paused = false;
  }

  /** Passes what the output files gained since the last read to `onOutput` (unless paused). */
  async follow(): Promise<void> {
    if (this.#paused || this.#detached) return;
    await this.#readChannel('stdout', READ_PER_TICK);
    await this.#readChannel('stderr', READ_PER_TICK);
  }

  /**
   * Ends the job: reads its output files to their end (pausing is over: nothing comes after),
   * then settles `done` with the result of Slurm's final state and the recorded exit code.
   */
  async finish(state: SlurmJobState, recordedExit: RecordedExit | undefined): Promise<void> {
    if (this.#detached) return;
    // A job that ended between two polls ran unless it was cancelled while waiting (or left an
    // exit file: then its script ran).
    if (recordedExit !== undefined || state.state !== 'CANCELLED' || this.phase === 'running') this.#start();
    await this.#readChannel('stdout', Infinity);
    await this.#readChannel('stderr', Infinity);
    if (typeof recordedExit === 'string') {
      this.settle({ exitCode: null, signal: null, error: recordedExit });
      return;
    }
    this.settle(endResult({ slurmId: this.slurmId ?? '?', state, recordedExit, terminated: this.terminated }));
  }

  /** Settles `done` (once). */
  settle(result: ProcessResult): void {
    if (this.#settled || this.#detached) return;
    this.#settled = true;
    this.#resolve(result);
  }

  async #readChannel(channel: 'stdout' | 'stderr', budget: number): Promise<void> {
    let left = budget;
    while (left > 0) {
      const chunk = await this.#host.read(this.files[channel], this.offsets[channel], READ_CHUNK);
      if (chunk === undefined || chunk.length === 0 || this.#detached) return;
      this.offsets[channel] += chunk.length;
      left -= chunk.length;
      this.#spec.onOutput(channel, chunk);
      if (chunk.length < READ_CHUNK) return;
    }
  }
}
