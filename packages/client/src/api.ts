/**
 * The SDK's public surface, as interfaces: what `Client` offers. Kept apart from the
 * implementation so the CLI, dashboard and tests program against one contract.
 * @module
 */
import type { NetworkGraph, NetworkSpec, NetworkStatus, PipeFrame } from './network.js';
import type { ExecutorInfo, ExitStatus, GroupInfo, JobDescription, JobEvent, JobInfo, JobStatus, JobStatusUpdate, OutputChunk, Page, QueueStatus, WhoAmI, WorkersReport } from './types.js';

/** Options of `new Client()`. */
export interface ClientOptions {
  /** Server URL, e.g. `http://127.0.0.1:7700`. @defaultValue `JOBWIRE_URL`, else the URL recorded in the jobwire home (Node only) */
  url?: string;
  /**
   * More servers of the same cluster (distributed mode: servers sharing one Redis). When the
   * current server cannot be reached, requests and reconnecting attachments and event streams
   * go on with the next one. @defaultValue []
   */
  fallbackUrls?: string[];
  /** Bearer token. @defaultValue `JOBWIRE_TOKEN`, else the admin token in the jobwire home (Node only) */
  token?: string;
  /**
   * PEM CA bundle (text, or its bytes as a Buffer/Uint8Array) to trust for an `https:` server
   * instead of the system's CAs — e.g. the certificate of a server with a self-signed one. Node
   * only: browsers use their own trust store and ignore it.
   * @defaultValue the file named by `JOBWIRE_CA`, else the CA file the server recorded in the jobwire home for its URL (Node only), else the system's CAs
   */
  ca?: string | Uint8Array;
  /** jobwire home to read defaults from. @defaultValue `JOBWIRE_HOME`, else `$XDG_DATA_HOME/jobwire` or `~/.local/share/jobwire` */
  home?: string;
  /** Reconnect an attach stream that drops, resuming from its offsets. @defaultValue true */
  reconnect?: boolean;
  /** How long (ms) a dropped attach stream keeps trying to reconnect before it fails with a `ConnectionError`. @defaultValue 30000 */
  reconnectTimeout?: number;
}

/** Filters of `getJobs`. */
export interface JobFilter {
  /** Only jobs in this group's subtree. @defaultValue all groups */
  group?: string;
  /** Only jobs in one of these statuses. @defaultValue any status */
  status?: JobStatus | JobStatus[];
  /** Only jobs with exactly this name. */
  name?: string;
  /** Page size, 1–1000. @defaultValue 100 */
  limit?: number;
  /** `next` of the previous page. */
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
  /** The job attached to. */
  readonly jobId: string;
  /**
   * Output chunks in arrival order, each exactly once; ends after the exit status arrived (or on
   * detach). One consumer; breaking out of the loop stops output delivery but not the attachment.
   */
  readonly output: AsyncIterable<OutputChunk>;
  /** Stdin of the job (interactive jobs). */
  readonly stdin: StdinWriter;
  /**
   * The job's state while it lives: first as the attach found it, then each change of status,
   * progress message or wait reason (a Queued job's reason, say "queue single is full"). Ends
   * when the exit status arrived (that goes to `exit`) or on detach. Reading it is optional:
   * unread updates beyond the latest 16 are dropped, oldest first. One consumer.
   */
  readonly statusUpdates: AsyncIterable<JobStatusUpdate>;
  /**
   * Resolves with the exit status after all output: when `output` is being read, only once the
   * reader has had every chunk (or left the loop). Rejects with a `ConnectionError` on detach or
   * when the connection is lost for good.
   */
  readonly exit: Promise<ExitStatus>;
  /** Terminal resize (tty jobs). */
  resize(cols: number, rows: number): void;
  /** Pauses output delivery (flow control for slow renderers). */
  pause(): void;
  /** Resumes output delivery after {@link Attachment.pause}. */
  resume(): void;
  /** Closes the connection; the job keeps running. */
  detach(): void;
}

/** Result of `submitInteractiveJob`: the attachment plus the submitted job's info. */
export interface InteractiveJob extends Attachment {
  /** The job as the server answered the submission. */
  readonly info: JobInfo;
}

/** Options of `events`. */
export interface EventsOptions {
  /** Resume after this event id (a saved `lastEventId`) instead of starting with a snapshot. @defaultValue none: start with a snapshot */
  since?: number;
  /**
   * Keep trying while the server cannot be reached, on the first connection too (a page or
   * widget that may load before its server is up), instead of failing the stream. A refusal
   * (bad token, bad group) still ends it. @defaultValue false
   */
  waitForServer?: boolean;
}

/**
 * Connection state of an event stream: `connecting` until the first backlog was received,
 * `live` while events flow, `reconnecting` while a dropped connection is being reopened (it
 * resumes by event id), `closed` once it ended — by `close()`, or by the failure in `error`.
 * A stream that paused itself because its reader fell behind stays `live`.
 */
export type EventStreamState = 'connecting' | 'live' | 'reconnecting' | 'closed';

/** Events as `EventStream.batches()` hands them over. */
export interface EventBatch {
  /**
   * True for the snapshot: every group and job of the subtree (as `add`, plus what changed while
   * it was read), delivered whole — replace what you knew. A connection lost half-way through a
   * snapshot leaves no part of it behind. False for replayed and live events, to apply in order.
   */
  snapshot: boolean;
  events: JobEvent[];
}

/** A subscription to a group's events. */
export interface EventStream extends AsyncIterable<JobEvent>, AsyncDisposable {
  /** Id of the last event received; pass as `since` to resume. */
  readonly lastEventId: number;
  /** Resolves when the backlog was delivered and live events follow. */
  readonly ready: Promise<void>;
  /** The connection state now. */
  readonly state: EventStreamState;
  /** What ended the stream, once `state` is `closed` because of a failure (undefined after `close()`). */
  readonly error: unknown;
  /** Calls `listener` on every change of {@link EventStream.state}; returns the function that stops it. */
  onStateChange(listener: (state: EventStreamState) => void): () => void;
  /**
   * The events in batches: the snapshot whole, then replayed and live events, each batch holding
   * all that had arrived by the time the reader asked. Reads the same single queue as
   * `for await (const event of stream)`: use one or the other.
   */
  batches(): AsyncIterable<EventBatch>;
  /**
   * Cuts a wait between reconnection attempts short, so the stream tries again at once — for a
   * page that becomes visible again, or a browser back online. Returns whether it was waiting.
   */
  reconnectNow(): boolean;
  /** Stops the subscription; the iterator ends. */
  close(): void;
}

/** What a jobwire client can do (Xenon's verbs plus jobwire's). */
export interface JobwireApi {
  /** Who the token belongs to. */
  whoami(): Promise<WhoAmI>;
  /** Starts a network; relative paths in `spec` resolve against `options.baseDir` (absolute, on the server's machine). */
  runNetwork(spec: NetworkSpec, options: { baseDir: string }): Promise<NetworkStatus>;
  /** How a network runs: its jobs and pipes. */
  networkStatus(name: string): Promise<NetworkStatus>;
  /** The shape of a network's newest run: its jobs (how each runs) and the pipes that join them. */
  networkGraph(name: string): Promise<NetworkGraph>;
  /** Your networks: the newest run of each, by name (in distributed mode every server's). */
  networks(): Promise<NetworkStatus[]>;
  /** Every frame of a network's pipe, from the first, live until the pipe ends (or its network is stopped or fails: then a ConflictError). */
  tapPipe(network: string, pipe: string): AsyncIterable<PipeFrame>;
  /** Stops a network: its jobs are cancelled, none restarts. */
  stopNetwork(name: string): Promise<NetworkStatus>;
  /** Removes a network that no longer runs: its saved record and its pipes' streams. */
  removeNetwork(name: string): Promise<{ name: string; run: string; streams: number }>;
  /** Submits a job; returns its info at once. */
  submitBatchJob(description: JobDescription): Promise<JobInfo>;
  /**
   * Submits many jobs in one request (1 to 1000, `POST /v1/jobs/batch`); returns their infos in
   * the order given. All or nothing: a wrong description is refused (its field starts
   * `jobs.<index>`) and no job is queued.
   */
  submitBatchJobs(descriptions: JobDescription[]): Promise<JobInfo[]>;
  /** Submits a job with `interactive: true` and attaches to it. */
  submitInteractiveJob(description: JobDescription): Promise<InteractiveJob>;
  /** A job's info, with its description. */
  getJobStatus(id: string): Promise<JobInfo>;
  /**
   * The full id of the caller's one job whose id starts with `prefix` (as git and docker take
   * short ids); NotFoundError when none does, AmbiguousIdError (listing them) when several do.
   */
  resolveJobId(prefix: string): Promise<string>;
  /** Several jobs' infos, in the order of `ids`. */
  getJobStatuses(ids: string[]): Promise<JobInfo[]>;
  /** Waits until final; with `timeoutMs` (0 = forever) returns the not-final info when it runs out. */
  waitUntilDone(id: string, timeoutMs?: number): Promise<JobInfo>;
  /** Waits until Running or final. */
  waitUntilRunning(id: string, timeoutMs?: number): Promise<JobInfo>;
  /** Cancels a job (Queued: at once; Running: by signal). */
  cancelJob(id: string): Promise<JobInfo>;
  /** Deletes a final job. */
  deleteJob(id: string): Promise<void>;
  /** One page of jobs, oldest first. */
  getJobs(filter?: JobFilter): Promise<Page<JobInfo>>;
  /** Names of the queues. */
  getQueueNames(): Promise<string[]>;
  /** Status of every queue, or of the named one. */
  getQueueStatus(name?: string): Promise<QueueStatus[]>;
  /** Groups of the job tree, all or those under `under`. */
  getGroups(under?: string): Promise<GroupInfo[]>;
  /** Workers of distributed mode with their load, and the pools' queues (none in embedded mode). */
  getWorkers(): Promise<WorkersReport>;
  /** The server's named executors, their state and queues (`local` always). */
  getExecutors(): Promise<ExecutorInfo[]>;
  /** Reads a byte range of one output stream. */
  readOutput(id: string, stream?: 'stdout' | 'stderr', from?: number, to?: number): Promise<{ data: Uint8Array; size: number; complete: boolean }>;
  /** Uploads a file for a description's `inputFiles` (strings as UTF-8); returns its id and size. */
  upload(data: Uint8Array | string): Promise<{ id: string; size: number }>;
  /** The output files a job kept (its description's `outputFiles`), by name. */
  getOutputFiles(id: string): Promise<{ name: string; size: number }[]>;
  /** One output file a job kept. */
  readOutputFile(id: string, name: string): Promise<Uint8Array>;
  /** Appends to an interactive job's stdin over HTTP; returns the stdin bytes accepted so far. */
  writeStdin(id: string, data: Uint8Array | string, offset?: number): Promise<number>;
  /** Closes an interactive job's stdin (EOF); returns its final size. */
  closeStdin(id: string): Promise<number>;
  /** Sets a job's progress message. */
  setProgress(id: string, message: string): Promise<JobInfo>;
  /** Attaches to a job's streams (replay from `from`, then live). */
  attach(id: string, options?: AttachOptions): Promise<Attachment>;
  /** Subscribes to the events of a group's subtree. */
  events(group?: string, options?: EventsOptions): EventStream;
}
