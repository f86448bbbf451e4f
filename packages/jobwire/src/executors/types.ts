/**
 * The executor interface: how jobwire starts a job's process somewhere and talks to it — and
 * nothing more: where jobs wait, who starts them and how their runs are settled belong to the
 * backend (`backends/`). The local executor (`local/`) implements it with child processes and
 * pseudo-terminals; executors that start processes elsewhere (a job host, ssh, Slurm) would
 * implement the same interface.
 * @module
 */
import type { JobDescription, OutputChannel, OutputChunk } from '@jobwire/client';
import type { JobProcess } from '../job-process.js';
import type { StoredEnd } from '../store/types.js';
import type { OsAccount } from './local/os-account.js';

/**
 * Jobs of a queue without a limit that one machine takes at a time: the embedded dispatcher
 * starts at most this many per pass, a worker runs at most this many at once ("unlimited" must
 * not mean thousands of processes started in one go).
 */
export const UNLIMITED_AT_ONCE = 256;

/** A queue an executor offers. */
export interface QueueDef {
  name: string;
  /** Maximum jobs running at once; null = unlimited (see {@link UNLIMITED_AT_ONCE}). */
  limit: number | null;
}

/** How a process ended. */
export interface ProcessResult {
  /** Exit code, null when killed by a signal. */
  exitCode: number | null;
  /** Signal name (e.g. "SIGTERM") when killed by a signal. */
  signal: string | null;
  /** For function jobs: the JSON-serialisable value the function returned. */
  result?: unknown;
  /** For function jobs: the error (message + stack) the function threw; or a start failure. */
  error?: string;
  /**
   * Set when the executor lost track of the job — a remote host unreachable past its bound, a
   * connection that dropped under an interactive job, a job host that died: the job ends Lost
   * with this sentence as its error, whatever the other fields say.
   */
  lost?: string;
  /**
   * Set when the job was cancelled outside jobwire (an operator's `scancel`): the job ends
   * Cancelled with this sentence as its error, whatever the other fields say (but `lost`).
   */
  cancelled?: string;
  /**
   * Where the job's stored output ends, as the executor that wrote the stream log's files said
   * when it ended (a job host's exit): the stream log closes the output with it instead of
   * reading the files again. Absent when unknown (the files are read then).
   */
  stored?: StoredEnd;
}

/** What an executor is doing, as `jobwire executors` lists it. */
export interface ExecutorStatus {
  /** `ready` for an executor with nothing to connect to; `idle` before a remote one first connects. */
  state: 'ready' | 'idle' | 'connected' | 'reconnecting' | 'failing';
  /** Why it is not connected, when it is not. */
  reason?: string;
}

/** What the executor needs to start one job. */
export interface StartSpec {
  jobId: string;
  /** The validated description, with defaults filled in. */
  description: JobDescription;
  /** Working directory when the description gives none. */
  defaultCwd: string;
  /**
   * The OS account the job runs as (root servers and workers only; see docs/security.md);
   * undefined runs it as this process's own account.
   */
  account?: OsAccount;
  /** Extra environment (JOBWIRE_URL, JOBWIRE_JOB_ID, JOBWIRE_JOB_TOKEN) on top of the description's. */
  env: Record<string, string>;
  /**
   * The environment the job starts from, instead of this process's: a job host started by
   * one server and serving the next must give jobs the environment of the server that submitted
   * them. Ignored for a job run as another OS account (that account's environment is used).
   * @defaultValue this process's environment
   */
  baseEnv?: Record<string, string>;
  /**
   * Called for every chunk the process writes, in arrival order across both channels.
   * For tty jobs everything arrives on "stdout".
   */
  onOutput(channel: OutputChannel, data: Buffer): void;
  /**
   * For an executor that stores output itself ({@link Executor.storesOutput}), instead of
   * onOutput: each chunk with its place in the job's stored output, as it arrives (before it is
   * stored), none missing or repeated from the resume position on.
   */
  onStoredOutput?(chunk: OutputChunk): void;
  /** For an executor that stores output itself: the merged output before this position is in the files now. */
  onStored?(end: number): void;
  /**
   * For an executor that writes the notice itself ({@link Executor.writesNotice}): a line (with
   * its newline) the job's stderr opens with, before anything of the job's (where the job starts,
   * when not where it was submitted from). Other executors never see it: the runner appends it.
   * @defaultValue none
   */
  notice?: string;
  /** Called when a function job reports progress. */
  onProgress(message: string): void;
  /**
   * Called when the job is held back by its executor — its output cannot be stored (disk full),
   * so it is not read and the job blocks — with why; null when it goes on. Optional for callers.
   */
  onHeldBack?(reason: string | null): void;
  /**
   * Called when the executor learns what it needs to find the job again after this process
   * restarts (a Slurm job id, a remote job folder, a job host's record); the runner stores the
   * latest value with the job's run and hands it to {@link Executor.resume}. Optional for callers.
   */
  onState?(state: ExecutorState): void;
  /**
   * For an executor with a queue of its own (Slurm): called with why the job waits there (e.g.
   * "queued in Slurm as job 42: PENDING (Priority)") while it does, and with null once it starts.
   * The runner shows it as the job's `reason`. Optional for callers.
   */
  onQueued?(reason: string | null): void;
}

/**
 * What an executor records about a started job so that a later process (a restarted server or
 * worker) can find the job again: a JSON object, stored with the job's run. Its shape belongs to
 * the executor that wrote it.
 */
export type ExecutorState = Record<string, unknown>;

/** Where a resumed job's output continues: the byte offsets already stored per channel. */
export interface ResumeFrom {
  stdout: number;
  stderr: number;
  /**
   * Stdin bytes the runner knows the job was handed; it resends from there, so the executor
   * numbers the next write from this offset (one that keeps stdin itself skips what it has).
   * @defaultValue 0
   */
  stdin?: number;
}

/** A started process. */
export interface ProcessHandle {
  /** OS process id (the process-group leader), when the process started. */
  readonly pid: number | undefined;
  /**
   * For a job running as processes of this machine: who leads its process group and who runs
   * it, recorded with the job so that a restart can stop it if its runner died.
   */
  readonly process?: JobProcess | undefined;
  /**
   * For an executor that starts jobs asynchronously (a job host): resolves once `pid` and
   * `process` are known (or the start failed, which `done` then reports). @defaultValue already known
   */
  readonly ready?: Promise<void>;
  /**
   * For an executor that queues jobs itself (Slurm): resolves once the job has left that queue
   * and started (never, for a job that ended without running: refused, cancelled while waiting).
   * Until then an embedded server keeps the job Queued ({@link StartSpec.onQueued} says why it
   * waits). @defaultValue the job runs as soon as it is started (or `ready`)
   */
  readonly started?: Promise<void>;
  /**
   * Stops following the job and leaves it running (a server that stops and keeps its jobs): no
   * more output, and `done` never resolves for this handle; {@link Executor.resume} finds the job
   * again. Optional: an executor without it cannot leave jobs behind.
   */
  detach?(): void;
  /**
   * Called once the job's final status and all its output are stored: the executor may remove
   * what it kept on a remote host to follow the job (a Slurm job's output and exit files).
   * Never called for a job left running (detached). Optional.
   */
  release?(): void;
  /** Writes to the job's stdin; resolves once the data is handed to the OS (backpressure). */
  writeStdin(data: Uint8Array): Promise<void>;
  /** Ends the job's stdin (EOF; for a tty job, the terminal's EOF character). */
  closeStdin(): void;
  /** Changes the terminal size of a tty job; ignored otherwise. */
  resize(cols: number, rows: number): void;
  /**
   * Stops the job: SIGTERM to the whole process group (and, for function jobs, aborts the
   * function's AbortSignal first), then SIGKILL to the group after `graceMs`.
   */
  terminate(graceMs: number): void;
  /** Resolves once the process has exited AND all its output has been passed to onOutput. */
  readonly done: Promise<ProcessResult>;
  /**
   * Stops reading the job's output until {@link resumeOutput}: the job blocks once its pipe or
   * terminal buffer is full, as it would with a slow reader. A job host uses it when output
   * cannot be stored as fast as it comes (write-behind buffer full, disk full). Optional: an
   * executor without it cannot be slowed down.
   */
  pauseOutput?(): void;
  /** Reads the job's output again after {@link pauseOutput}. */
  resumeOutput?(): void;
  /**
   * The job's reader has taken its output up to merged position `end` (see
   * `JobDescription.outputWindow`). Optional: an executor without it reads output as it comes.
   */
  ackOutput?(end: number): void;
}

/** One kind of place jobs run. */
export interface Executor {
  /** Adaptor name ("local", "ssh", ...). */
  readonly name: string;
  /** Queues this executor offers. */
  queues(): QueueDef[];
  /**
   * The queue of a job that names none, when the executor has its own (a Slurm cluster's default
   * partition); undefined leaves the server's default queue.
   */
  readonly defaultQueue?: string | undefined;
  /**
   * Calls `listener` whenever the executor's queues may have changed (a Slurm cluster's
   * partitions read once it answers, or read again): a dispatcher that started before then
   * looks at their Queued jobs. Optional: an executor whose queues are fixed has none.
   */
  onQueuesChanged?(listener: () => void): void;
  /** Its state (connections of remote executors). @defaultValue `ready` when absent */
  status?(): ExecutorStatus;
  /**
   * True when the executor writes each job's output into the store's files itself (the job host
   * writes `<home>/output/<id>/`) and reports it with {@link StartSpec.onStoredOutput}; the runner
   * then only tells the stream log (`StreamLog.noteOutput`). Otherwise the runner appends what
   * {@link StartSpec.onOutput} hands it. @defaultValue false
   */
  readonly storesOutput?: boolean;
  /**
   * True when the executor's own scheduler enforces `maxRuntime` (Slurm's `--time`, ending the
   * job TIMEOUT): the runner then sets no timer of its own. @defaultValue false
   */
  readonly enforcesMaxRuntime?: boolean;
  /**
   * True when jobs may wait in a queue of the executor's own (Slurm) before they run
   * ({@link ProcessHandle.started}): a Queued job with a recorded state was handed to that
   * queue already, and a restarted server follows it there ({@link resume}) instead of starting
   * it again. @defaultValue false
   */
  readonly queuesJobs?: boolean;
  /**
   * True when the executor writes {@link StartSpec.notice} into the job's output itself, as its
   * first stderr bytes (handed over like any output); the runner then does not append it.
   * @defaultValue the value of {@link storesOutput}
   */
  readonly writesNotice?: boolean;
  /**
   * For an executor made of others (the server's named executors): the one that runs jobs of
   * `description`, which the runner asks whether it stores output and how to resume. Never
   * throws (an unknown name gives this executor, whose start reports it).
   * @defaultValue this executor
   */
  executorFor?(description: JobDescription): Executor;
  /**
   * Releases what the executor holds (timers, connections) when its server or worker stops;
   * running jobs are left as {@link ProcessHandle.detach} leaves them. Optional.
   */
  close?(): void;
  /** Throws a BadRequestError (code "unsupported", naming the field) for anything it cannot honour. */
  check(description: JobDescription): void;
  /** Starts a job. Never throws for a missing program: the handle's `done` reports it as an error. */
  start(spec: StartSpec): ProcessHandle;
  /**
   * Finds a job that an earlier process started with this executor again, from the last
   * {@link ExecutorState} it reported, and follows it on: output from `from` on (nothing stored
   * twice, nothing skipped), stdin, terminate and `done` as for a job it started. Resolves
   * undefined when the job is gone for good (the caller marks it Lost, with the reason it got
   * from the executor's log). Optional: an executor without it cannot keep jobs across restarts.
   */
  resume?(spec: StartSpec, state: ExecutorState, from: ResumeFrom): Promise<ProcessHandle | undefined>;
}
