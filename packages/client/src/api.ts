/**
 * The SDK's public surface, as interfaces: what `Client` offers. Kept apart from the
 * implementation so the CLI, dashboard and tests program against one contract.
 * @module
 */
import type { ExitStatus, GroupInfo, JobDescription, JobEvent, JobInfo, JobStatus, OutputChunk, Page, QueueStatus, WhoAmI } from './types.js';

/** Options of `new Client()`. */
export interface ClientOptions {
  /** Server URL, e.g. `http://127.0.0.1:7700`. @defaultValue `JOBWIRE_URL`, else the URL recorded in the jobwire home (Node only) */
  url?: string;
  /** Bearer token. @defaultValue `JOBWIRE_TOKEN`, else the admin token in the jobwire home (Node only) */
  token?: string;
  /** jobwire home to read defaults from. @defaultValue `JOBWIRE_HOME`, else `$XDG_DATA_HOME/jobwire` or `~/.local/share/jobwire` */
  home?: string;
  /** Reconnect an attach stream that drops, resuming from its offsets. @defaultValue true */
  reconnect?: boolean;
}

/** Filters of `getJobs`. */
export interface JobFilter {
  group?: string;
  status?: JobStatus | JobStatus[];
  name?: string;
  limit?: number;
  cursor?: string;
}

/** Options of `attach`. */
export interface AttachOptions {
  /** Merged-output position to replay from. @defaultValue 0 */
  from?: number;
  /** Abort to detach. */
  signal?: AbortSignal;
}

/** Writes to a job's stdin with flow control; `end()` sends EOF. */
export interface StdinWriter {
  /** Resolves when the bytes are within the server's stdin window (backpressure). */
  write(data: Uint8Array | string): Promise<void>;
  /** Sends end-of-input after everything written so far. */
  end(): Promise<void>;
}

/** A live attachment to a job. */
export interface Attachment extends AsyncDisposable {
  readonly jobId: string;
  /** Output chunks in arrival order; ends after the exit status arrived (or on detach). */
  readonly output: AsyncIterable<OutputChunk>;
  /** Stdin of the job (interactive jobs). */
  readonly stdin: StdinWriter;
  /** Resolves with the exit status once it has been delivered (after all output). */
  readonly exit: Promise<ExitStatus>;
  /** Terminal resize (tty jobs). */
  resize(cols: number, rows: number): void;
  /** Pauses/resumes output delivery (flow control for slow renderers). */
  pause(): void;
  resume(): void;
  /** Closes the connection; the job keeps running. */
  detach(): void;
}

/** Result of `submitInteractiveJob`. */
export interface InteractiveJob extends Attachment {}

/** A subscription to a group's events. */
export interface EventStream extends AsyncIterable<JobEvent>, AsyncDisposable {
  /** Id of the last event received; pass as `since` to resume. */
  readonly lastEventId: number;
  /** Resolves when the backlog was delivered and live events follow. */
  readonly ready: Promise<void>;
  close(): void;
}

/** What a jobwire client can do (Xenon's verbs plus jobwire's). */
export interface JobwireApi {
  whoami(): Promise<WhoAmI>;
  submitBatchJob(description: JobDescription): Promise<JobInfo>;
  submitInteractiveJob(description: JobDescription): Promise<InteractiveJob>;
  getJobStatus(id: string): Promise<JobInfo>;
  getJobStatuses(ids: string[]): Promise<JobInfo[]>;
  /** Waits until final; with `timeoutMs` (0 = forever) returns the not-final info when it runs out. */
  waitUntilDone(id: string, timeoutMs?: number): Promise<JobInfo>;
  /** Waits until Running or final. */
  waitUntilRunning(id: string, timeoutMs?: number): Promise<JobInfo>;
  cancelJob(id: string): Promise<JobInfo>;
  deleteJob(id: string): Promise<void>;
  getJobs(filter?: JobFilter): Promise<Page<JobInfo>>;
  getQueueNames(): Promise<string[]>;
  getQueueStatus(name?: string): Promise<QueueStatus[]>;
  getGroups(under?: string): Promise<GroupInfo[]>;
  /** Reads a byte range of one output stream. */
  readOutput(id: string, stream?: 'stdout' | 'stderr', from?: number, to?: number): Promise<{ data: Uint8Array; size: number; complete: boolean }>;
  writeStdin(id: string, data: Uint8Array | string, offset?: number): Promise<number>;
  closeStdin(id: string): Promise<number>;
  setProgress(id: string, message: string): Promise<JobInfo>;
  attach(id: string, options?: AttachOptions): Promise<Attachment>;
  events(group?: string, options?: { since?: number }): EventStream;
}
