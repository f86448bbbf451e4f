/**
 * The store interface: job records, groups, events and the per-job stream log. One interface,
 * two implementations: embedded (SQLite + append-only files, `./embedded`) and Redis
 * (`./redis`, distributed mode). The behaviour suite in `test/` runs against both.
 *
 * Ownership is enforced by callers passing `owner`; a record of another owner is reported as
 * missing (undefined), never as forbidden, so ids leak nothing.
 * @module
 */
import type { ExitStatus, GroupInfo, JobDescription, JobEvent, JobInfo, JobStatus, OutputChannel, OutputChunk } from '@jobwire/client';
import type { JobProcess } from '../job-process.js';

/** A job as stored: its info plus what only the server sees. */
export interface JobRecord extends JobInfo {
  description: JobDescription;
  /** Secret that lets the running job set its own progress. */
  jobToken: string;
  /** OS pid while running, when known. */
  pid: number | null;
  /** While running on a machine's processes: their identity, to stop them if their runner dies. */
  process: JobProcess | null;
}

/** Input of `createJob`. */
export interface NewJob {
  id: string;
  owner: string;
  name: string;
  /** Group path, '' for the root. */
  group: string;
  queue: string;
  description: JobDescription;
  interactive: boolean;
  tty: boolean;
  url: string | null;
  jobToken: string;
  createdAt: string;
}

/** A file kept in a {@link FileBlobs} folder. */
export interface BlobEntry {
  name: string;
  size: number;
}

/**
 * Files kept by the store, in folders: uploads waiting for their job, and the output files a job
 * kept (sandboxes, `jobs/sandbox.ts`). In distributed mode they live in Redis, so a worker on
 * another machine reads a job's inputs and returns its outputs through it.
 */
export interface FileBlobs {
  /**
   * Writes the file `name` in `folder` from `chunks` (replacing one of that name); refuses, with
   * a `payload_too_large` BadRequestError and nothing kept, past `limit` bytes. Returns its size.
   */
  write(folder: string, name: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limit: number): Promise<number>;
  /** The file's bytes, or undefined when there is none. */
  read(folder: string, name: string): Promise<Buffer | undefined>;
  /** The files of `folder`, by name. */
  list(folder: string): Promise<BlobEntry[]>;
  /** Removes `folder` and its files (nothing when missing). */
  remove(folder: string): Promise<void>;
  /** Removes the file `name` of `folder` (nothing when missing). */
  removeFile(folder: string, name: string): Promise<void>;
}

/** Filters of `listJobs`. */
export interface ListJobsQuery {
  owner: string;
  /** Subtree: jobs whose group equals this path or lies under it. */
  group?: string;
  status?: JobStatus[];
  name?: string;
  limit: number;
  /** Opaque cursor from a previous page. */
  cursor?: string;
}

/** Fields set when a job starts running. */
export interface RunningFields {
  startedAt: string;
  pid: number | null;
  node: string | null;
  /** Identity of its processes, when they run on a machine jobwire can check. @defaultValue null */
  process?: JobProcess | null;
}

/** Why Running jobs are Lost: one text for all, or one per job (given the job as it was). */
export type LostReason = string | ((job: JobRecord) => string);

/** Fields set when a job ends. */
export interface FinishFields {
  status: Extract<JobStatus, 'Success' | 'Failed' | 'Cancelled' | 'Lost'>;
  exitCode?: number | null;
  signal?: string | null;
  error?: string | null;
  result?: unknown;
  endedAt: string;
}

/**
 * How a job ended, as its output's close records it: `output-closed`, {@link StreamSizes} and
 * {@link StreamLog.readOutput} carry it, so a reader of the output learns the end without
 * reading the job (and without racing a job read against the close).
 */
export interface FinalStatus extends ExitStatus {
  /** The job's last progress message. */
  progress: string | null;
}

/** The {@link FinalStatus} of a job record (one that is final, such as `finishJob` returns). */
export function finalStatusOf(job: JobRecord): FinalStatus {
  return { status: job.status, exitCode: job.exitCode, signal: job.signal, error: job.error, progress: job.progress };
}

/** A store event, as delivered to live listeners: the event plus the owner it belongs to. */
export interface StoredEvent extends JobEvent {
  owner: string;
  /** Group path of the info object (for a group: its own path). */
  group: string;
}

/** Job records, groups and events. Every mutation of a job or group appends an event. */
export interface Store {
  /** The stream log of this store. */
  readonly streams: StreamLog;
  /** Files kept for jobs: uploads and output files. */
  readonly blobs: FileBlobs;

  /** Creates a Queued job, creating missing groups on its path (each an `add` event), then an `add` event for the job. */
  createJob(job: NewJob): Promise<JobRecord>;
  /** A job of `owner` (or of anyone when owner is undefined — server-internal use only). */
  getJob(id: string, owner?: string): Promise<JobRecord | undefined>;
  /**
   * What a stdin write checks of job `id` of `owner` (whether it is interactive, and its status),
   * or undefined when `owner` has no such job. Optional: without it the job service reads the
   * whole record ({@link getJob}). It runs on every line typed into an interactive job, where
   * reading the whole record (its description parsed) cost the embedded store twice as much.
   */
  stdinTarget?(id: string, owner: string): Promise<{ interactive: boolean; status: JobStatus } | undefined>;
  /** Jobs oldest first (createdAt, then id). */
  listJobs(query: ListJobsQuery): Promise<{ items: JobInfo[]; next?: string }>;
  /** Queued → Running. Returns undefined if the job was not Queued (e.g. cancelled meanwhile). */
  markRunning(id: string, fields: RunningFields): Promise<JobRecord | undefined>;
  /** Sets the progress message of a job that is not final. */
  setProgress(id: string, message: string): Promise<JobRecord | undefined>;
  /**
   * Records what the job's executor needs to find it again after a restart (the latest value
   * replaces the one before); ignored for a job that is no longer Queued or Running.
   */
  setExecutorState(id: string, state: Record<string, unknown>): Promise<void>;
  /** The executor state last recorded for a job, if any. */
  executorState(id: string): Promise<Record<string, unknown> | undefined>;
  /** Sets why a Queued job waits, or why a Running one is held back (null clears it). */
  setReason(id: string, reason: string | null): Promise<JobRecord | undefined>;
  /** Moves a non-final job to a final status. Returns undefined if it was final already. */
  finishJob(id: string, fields: FinishFields): Promise<JobRecord | undefined>;
  /** Deletes a final job, its output and stdin; appends a `remove` event. */
  deleteJob(id: string): Promise<void>;
  /** Queued jobs of one queue, oldest first. */
  queuedJobs(queue: string, limit: number): Promise<JobRecord[]>;
  /** Counts of running and queued jobs per queue name. */
  queueCounts(): Promise<Map<string, { running: number; queued: number }>>;
  /** Running jobs (of `node`, when given), oldest first. */
  runningJobs(node?: string): Promise<JobRecord[]>;
  /**
   * At start-up: every Running job (of `node`, when given) becomes Lost with `reason` (or the
   * reason it gives for that job); returns them.
   */
  loseRunningJobs(reason: LostReason, node?: string): Promise<JobRecord[]>;

  /** Groups of `owner` under `under` (inclusive), or all of them. */
  listGroups(owner: string, under?: string): Promise<GroupInfo[]>;

  /** Events of `owner` in the subtree `group` ('' = all) with id > sinceId, oldest first. */
  readEvents(owner: string, group: string, sinceId: number, limit: number): Promise<JobEvent[]>;
  /** Id of the newest event (0 when none). */
  lastEventId(): Promise<number>;
  /** Live events (all owners); returns an unsubscribe function. */
  onEvent(listener: (event: StoredEvent) => void): () => void;

  /** Releases connections and file handles. */
  close(): Promise<void>;
}

/** Where a job's output files end once its writer is done: per-channel sizes and index records. */
export interface StoredEnd {
  stdout: number;
  stderr: number;
  records: number;
}

/** Something that happened on a job's streams. */
export type StreamEvent =
  | { type: 'output'; chunk: OutputChunk }
  /** `final` is how the job ended, when the close recorded it (see {@link StreamLog.closeOutput}). */
  | { type: 'output-closed'; end: number; final?: FinalStatus }
  | { type: 'stdin'; offset: number; data: Uint8Array }
  | { type: 'stdin-closed'; offset: number }
  | { type: 'stdin-ack'; consumed: number }
  | { type: 'control'; control: ControlMessage };

/** Messages from servers to whoever runs the job. */
export type ControlMessage =
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'cancel' }
  /**
   * The job's reader has taken its output up to merged position `end`: for a job with an
   * `outputWindow`, its output may be read up to `end + outputWindow` (see
   * `networks/output-window.ts`). A runner that cannot hold output back ignores it.
   */
  | { type: 'output-ack'; end: number };

/** Sizes of a job's streams. */
export interface StreamSizes {
  /** End of the merged output (stdout + stderr bytes). */
  end: number;
  stdout: number;
  stderr: number;
  /** Bytes of stdin accepted. */
  stdin: number;
  stdinClosed: boolean;
  /** Bytes of stdin the job has read. */
  stdinConsumed: number;
  /** True once no more output will come. */
  outputClosed: boolean;
  /** How the job ended, once its output was closed with it (absent before, or when the close did not say). */
  final?: FinalStatus;
}

/** A page of merged output (see {@link StreamLog.readOutput}). */
export interface OutputPage {
  chunks: OutputChunk[];
  /** The current end of the merged output. */
  end: number;
  /** True once no more output will come. */
  closed: boolean;
  /** How the job ended, once its output was closed with it (absent before, or when the close did not say). */
  final?: FinalStatus;
}

/** Options of {@link StreamLog.readChannelChunks}. */
export interface ChannelChunksOptions {
  /**
   * Most bytes in one chunk. Each chunk is read only when the consumer asks for it, so this
   * bounds what one reader holds. @defaultValue {@link CHANNEL_CHUNK_BYTES}
   */
  chunkBytes?: number;
}

/** Default {@link ChannelChunksOptions.chunkBytes}: 256 KiB. */
export const CHANNEL_CHUNK_BYTES = 256 * 1024;

/** Largest {@link ChannelChunksOptions.chunkBytes} the stores accept: 4 MiB. */
export const MAX_CHANNEL_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Per-job append-only streams: merged output (stdout/stderr chunks in arrival order, each with
 * `pos` in the merged sequence and `offset` in its channel) and stdin; plus a live bus for
 * stream events and control messages.
 *
 * Appends are applied in call order even when the caller does not await each one.
 */
export interface StreamLog {
  /** Appends a chunk of output; returns it with its positions. */
  appendOutput(jobId: string, channel: OutputChannel, data: Uint8Array): Promise<OutputChunk>;
  /**
   * Marks the output complete (after the process exited and its pipes drained), recording
   * `final` — how the job ended — with it: the `output-closed` event, `sizes()` and
   * `readOutput()` carry it from then on, so readers of the output need no job read at the end.
   * `final` is what the job's record says: the record is final before the close or, for a job
   * lost with its runner, turns final right after it with the same fields. Idempotent: a second
   * close changes nothing. A close without `final` (made by older code) leaves readers to read
   * the record. `stored`, for output adopted from a job host (see {@link adoptOutput}): where
   * the host's files end, as its exit said; without it they are read.
   */
  closeOutput(jobId: string, final?: FinalStatus, stored?: StoredEnd): Promise<void>;
  /**
   * Reads merged output from `from`, at most about `maxBytes` (whole chunks, split only when a
   * chunk starts before `from`). `end` is the current end, `closed` whether output is complete,
   * `final` how the job ended once it is.
   */
  readOutput(jobId: string, from: number, maxBytes: number): Promise<OutputPage>;
  /** Reads bytes [from, to) of one channel (to clipped to its size). */
  readChannel(jobId: string, channel: OutputChannel, from: number, to?: number): Promise<Uint8Array>;
  /**
   * Bytes [from, to) of one channel as chunks of at most `chunkBytes`, in order, each read from
   * storage only when the consumer asks for the next (so a slow consumer costs one chunk of
   * memory, whatever the range). `to` is clipped to the channel's size when the first chunk is
   * read; bytes appended later are not included. Breaking out of the loop releases what the read
   * holds. Bad arguments reject the first `next()`.
   */
  readChannelChunks(jobId: string, channel: OutputChannel, from: number, to?: number, options?: ChannelChunksOptions): AsyncIterable<Uint8Array>;

  /**
   * Appends stdin bytes that start at `offset`. Bytes before the current end are skipped
   * (idempotent resend); a gap (offset > end) or an append after close throws ConflictError.
   * Returns the new stdin length.
   */
  appendStdin(jobId: string, offset: number, data: Uint8Array): Promise<number>;
  /** Ends stdin; idempotent. Returns the stdin length. */
  closeStdin(jobId: string): Promise<number>;
  /** Reads stdin from `from`, at most `maxBytes`. */
  readStdin(jobId: string, from: number, maxBytes: number): Promise<{ data: Uint8Array; end: number; closed: boolean }>;
  /** Records how much stdin the job has read (emits `stdin-ack`). */
  ackStdin(jobId: string, consumed: number): Promise<void>;

  /** Sends a control message to whoever runs the job (emits `control`). */
  sendControl(jobId: string, control: ControlMessage): Promise<void>;

  sizes(jobId: string): Promise<StreamSizes>;
  /** Live events of one job; returns an unsubscribe function. */
  subscribe(jobId: string, listener: (event: StreamEvent) => void): () => void;
  /** Removes everything stored for a job. */
  remove(jobId: string): Promise<void>;

  /**
   * Output written into this log's files by another process (the job host writes
   * `<home>/output/<id>/` in this format), for stores whose files a job host can reach (the
   * embedded store; absent elsewhere). `adoptOutput` declares a job's output as written
   * elsewhere — from then on the log never repairs, truncates or appends to its output files —
   * and returns the sizes stored so far (read afresh from the files).
   */
  adoptOutput?(jobId: string): StreamSizes;
  /**
   * A chunk of adopted output as it arrives, before it is stored: kept in memory (so readers get
   * it at once) and announced as an `output` event. A chunk that starts before the known end has
   * the part known dropped; one that leaves a gap throws.
   */
  noteOutput?(jobId: string, chunk: OutputChunk): void;
  /** Adopted output before `end` (merged position) is in the files now: memory may let it go. */
  noteStored?(jobId: string, end: number): void;
}
