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
}

/** A batch job submitted with `sbatch` (or found again by its Slurm id). */
export class BatchJob implements ProcessHandle {
  readonly pid = undefined;
  readonly done: Promise<ProcessResult>;
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
