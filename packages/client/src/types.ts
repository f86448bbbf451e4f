/**
 * Shapes that cross the wire between jobwire servers and clients. The server validates
 * descriptions with a zod schema of the same shape (packages/jobwire/src/jobs/schema.ts).
 * @module
 */

/** Path prefix of the REST API and the WebSocket endpoints (`/v1/jobs`, `/v1/events`). */
export const API_PREFIX = '/v1';

/** Life-cycle states of a job (moi's, plus Cancelled and Lost). */
export type JobStatus = 'Queued' | 'Running' | 'Success' | 'Failed' | 'Cancelled' | 'Lost';

/** Statuses after which nothing about a job changes any more. */
export const FINAL_STATUSES: readonly JobStatus[] = ['Success', 'Failed', 'Cancelled', 'Lost'];

/** True when `status` is final. */
export function isFinal(status: JobStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/** A JavaScript function job: either a code string (body of an async function) or a module export. */
export interface JsFunction {
  /** Body of an async function; `return` gives the job's result. Receives `progress`, `signal`, `args`. */
  code?: string;
  /** Path (absolute or relative to workingDirectory) or package name of an ES module. */
  module?: string;
  /** Export of `module` to call. @defaultValue "default" */
  export?: string;
  /** JSON arguments handed to the function. @defaultValue [] */
  args?: unknown[];
}

/**
 * What to run and how: Xenon's JobDescription fields plus jobwire's own.
 * Exactly one of `executable` and `js` is given.
 */
export interface JobDescription {
  /** Program to run (looked up on PATH when it has no slash). */
  executable?: string;
  /** Arguments for `executable`. @defaultValue [] */
  arguments?: string[];
  /** A JavaScript function to run in a child process instead of an executable. */
  js?: JsFunction;
  /** Extra environment variables (added to the server's environment). */
  environment?: Record<string, string>;
  /** Working directory of the job. @defaultValue the server's work folder (`<home>-work`); for a user mapped to an OS account by a root server, that account's home */
  workingDirectory?: string;
  /**
   * The directory the job was submitted from (the CLI's current directory), used as the working
   * directory when `workingDirectory` is absent and the directory exists on the machine that runs
   * the job; where it does not, the job starts in the default one, and the first line of its
   * stderr says so (as Slurm's `srun` does).
   */
  submitDirectory?: string;
  /** Queue to run in: `single`, `multi` or `unlimited` on the local and ssh executors. @defaultValue "multi" */
  queueName?: string;
  /**
   * The server's named executor to run on (`jobwire executors` lists them; docs/executors.md):
   * `local` (this machine) or a name given with `jobwire server --executor NAME=URL`. @defaultValue "local"
   */
  executor?: string;
  /** Maximum run time in minutes (Xenon's unit; fractions allowed, e.g. 0.5 = 30 s); 0 or absent means no limit. */
  maxRuntime?: number;
  /** Maximum memory in MiB (Xenon's unit). */
  maxMemory?: number;
  /**
   * Output flow control, in bytes: the job's output is read at most this far beyond what its
   * reader has acknowledged (a network acknowledges what its pipes took), so a job whose reader
   * lags blocks in its writes as with a full pipe. Enforced by the job host; absent: output is
   * read as it comes. @defaultValue none
   */
  outputWindow?: number;
  /** File to read stdin from (batch jobs). */
  stdin?: string;
  /** File to copy stdout to, besides jobwire's own stored stream. */
  stdout?: string;
  /** File to copy stderr to, besides jobwire's own stored stream. */
  stderr?: string;
  /** Human-readable name. @defaultValue the executable's base name, or "js" */
  name?: string;
  /** Number of tasks (MPI-style). @defaultValue 1 */
  tasks?: number;
  /** Cores per task. @defaultValue 1 */
  coresPerTask?: number;
  /** Arguments handed to a cluster scheduler as they are. */
  schedulerArguments?: string[];
  /** Keep stdin open for clients to write to. @defaultValue false */
  interactive?: boolean;
  /** Run under a pseudo-terminal. @defaultValue false */
  tty?: boolean;
  /** Initial terminal size for tty jobs. @defaultValue { cols: 80, rows: 24 } */
  size?: { cols: number; rows: number };
  /**
   * Files placed in the working directory before the job starts (gLite's InputSandbox): relative
   * name (folders allowed, no `..`) → id of an upload (`POST /v1/uploads`, SDK `upload`).
   * An input named as the executable is made executable. @defaultValue none
   */
  inputFiles?: Record<string, string>;
  /**
   * Patterns (globs, relative to the working directory) of files kept with the job after it ends
   * (gLite's OutputSandbox): read them with `GET /v1/jobs/:id/files`, SDK `getOutputFiles`, or
   * `jobwire output ID`. A pattern that matches nothing fails the job, saying so. @defaultValue none
   */
  outputFiles?: string[];
  /**
   * Attributes of the description the job was made from that jobwire keeps without acting on
   * them (a JDL file's `Requirements`, `Rank`, …), as name → value text. @defaultValue none
   */
  attributes?: Record<string, string>;
  /** Group path in the job tree, `:`-separated, e.g. `analysis-7:step-2`. @defaultValue "" (root) */
  group?: string;
  /** URL where the job's result can be seen (moi's `url`). */
  url?: string;
  /**
   * Distributed mode: worker pools the job may run in, highest priority first (MARVELO's
   * GROUPS). `ALL` is every worker's pool. Ignored by the embedded server. @defaultValue ["ALL"]
   */
  pools?: string[];
  /**
   * Distributed mode: the worker node tried first (MARVELO's DEFAULT_NODE); when it is gone or
   * full the pools are tried. Ignored by the embedded server.
   */
  node?: string;
  /**
   * Distributed mode: how many times a batch job is started again when the worker running it
   * is lost (instead of ending Lost). Ignored by the embedded server. @defaultValue 0
   */
  retries?: number;
}

/** moi's info object, extended. One per job and per group. */
export interface JobInfo {
  id: string;
  type: 'job';
  name: string;
  /** Group path, `''` for the root. */
  group: string;
  owner: string;
  status: JobStatus;
  queue: string;
  /** Free progress message set by the job. */
  progress: string | null;
  exitCode: number | null;
  signal: string | null;
  /** Error message (and stack for function jobs) when the job failed, or why it was Lost. */
  error: string | null;
  /** JSON result of a function job. */
  result: unknown;
  url: string | null;
  interactive: boolean;
  tty: boolean;
  /** Node (machine) the job ran on. */
  node: string | null;
  /** Why a Queued job is still waiting, or why a Running job is held back (its output cannot be stored: disk full), when known. */
  reason: string | null;
  /** ISO timestamps. */
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  /** The description as submitted (after defaults). Present on single-job reads. */
  description?: JobDescription;
}

/** A node of the job tree. */
export interface GroupInfo {
  id: string;
  type: 'group';
  /** Last segment of the path. */
  name: string;
  /** Full `:`-separated path. */
  path: string;
  /** Parent path, null for a top-level group. */
  parent: string | null;
  owner: string;
  createdAt: string;
}

/**
 * True when the group path `path` lies in the subtree rooted at `root` (`''` = everything):
 * the rule by which a `group` filter (listings, events) picks jobs and groups.
 */
export function inSubtree(path: string, root: string): boolean {
  return root === '' || path === root || path.startsWith(root + ':');
}

/** A job or group info object, as carried by events. */
export type InfoObject = JobInfo | GroupInfo;

/** moi's verbs. */
export type EventVerb = 'add' | 'update' | 'remove';

/** One message of the events WebSocket. `id` is the resume point for `since`. */
export interface JobEvent {
  id: number;
  verb: EventVerb;
  info: InfoObject;
}

/** Server messages on the events socket. */
export type EventsServerMessage =
  | { type: 'event'; event: JobEvent }
  /** Sent once the backlog (snapshot or replay) has been sent; live events follow. */
  | { type: 'ready'; lastEventId: number }
  | { type: 'error'; code: string; message: string };

/** Status of one queue. */
export interface QueueStatus {
  name: string;
  /** Maximum concurrent jobs, null when unlimited. */
  limit: number | null;
  running: number;
  queued: number;
}

/** How a job ended, delivered last on the attach stream. */
export interface ExitStatus {
  status: JobStatus;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
}

/**
 * A job's state while it lives, as an attachment reports it (`Attachment.statusUpdates`): its
 * status (Queued or Running), progress message and the reason it waits, when known.
 */
export interface JobStatusUpdate {
  status: JobStatus;
  /** Free progress message set by the job. */
  progress: string | null;
  /** Why a Queued job is still waiting (a full queue, no worker of its pools), or why a Running job is held back; null when unknown or not waiting. */
  reason: string | null;
}

/** Output channels. */
export type OutputChannel = 'stdout' | 'stderr';

/** A piece of output as it arrived, with its place in the job's merged output. */
export interface OutputChunk {
  channel: OutputChannel;
  /** Position of the first byte in the merged (stdout+stderr, arrival order) output. */
  pos: number;
  /** Offset of the first byte within its own channel. */
  offset: number;
  data: Uint8Array;
}

/** A page of a listing. */
export interface Page<T> {
  items: T[];
  /** Cursor for the next page, absent on the last one. */
  next?: string;
}

/** Who the token belongs to. */
export interface WhoAmI {
  user: string;
  admin: boolean;
}

/** A worker of distributed mode, as `GET /v1/workers` lists it. */
export interface WorkerInfo {
  /** Node name (unique among live workers). */
  name: string;
  /** False once its heartbeats stopped (it is removed shortly after). */
  alive: boolean;
  /** Pools it serves; always includes `ALL`. */
  pools: string[];
  /** Slots of the `multi` queue. */
  slots: number;
  /** `multi` slots taken by jobs placed on it or running there. */
  used: number;
  /** `multi` slots free. */
  free: number;
  /** Jobs of the `single` queue on it (at most 1) and of the `unlimited` queue. */
  single: number;
  unlimited: number;
  labels: Record<string, string>;
  /** Host name and process id of the worker process. */
  host: string;
  pid: number;
  /** ISO timestamps. */
  startedAt: string;
  heartbeatAt: string;
}

/** Load of one worker pool. */
export interface PoolStatus {
  name: string;
  /** Live workers in the pool. */
  workers: number;
  /** `multi` slots of those workers, and how many are taken. */
  slots: number;
  used: number;
  /** Jobs waiting for placement that name this pool first (or, without pools, `ALL`). */
  queued: number;
}

/** One named executor of a server (`GET /v1/executors`). */
export interface ExecutorInfo {
  /** The name jobs choose it by (`executor` in the description). */
  name: string;
  /** Where it runs jobs: `local:`, `ssh://user@host:port`, `slurm:`, ... */
  url: string;
  /** Its kind, as Xenon names adaptors: `local`, `ssh`, `slurm`. */
  adaptor: string;
  /**
   * `ready` (nothing to connect to), `idle` (not connected yet), `connected`, `reconnecting`
   * (a connection dropped; its jobs wait) or `failing` (the last attempt failed: see `reason`).
   */
  state: 'ready' | 'idle' | 'connected' | 'reconnecting' | 'failing';
  /** Why it is not connected, when it is not. */
  reason?: string;
  /** The queue of its jobs that name none, when it has its own (a Slurm cluster's default partition). */
  defaultQueue?: string;
  /** Its queues and how many jobs each runs at once (null: unlimited). */
  queues: { name: string; limit: number | null }[];
}

/** Answer of `GET /v1/executors`. */
export interface ExecutorList {
  items: ExecutorInfo[];
}

/** Answer of `GET /v1/workers`. */
export interface WorkersReport {
  /** `embedded` (one server runs every job itself: no workers) or `distributed`. */
  mode: 'embedded' | 'distributed';
  items: WorkerInfo[];
  pools: PoolStatus[];
}
