/**
 * The backend seam: everything a server does differently by where its jobs live and run. A
 * server takes one backend (a {@link BackendFactory}); the embedded one (`embedded.ts`: SQLite
 * store, token file, dispatcher and local executor in this process) is the default, the Redis
 * one (`redis.ts`: Redis store, shared token book, placement on `jobwire worker` processes) an
 * option. Everything else a server does — HTTP, WebSocket, gRPC, dashboard — is the same code
 * over the backend's store, token book and {@link JobScheduler} part.
 *
 * A new way of running jobs (a job host per machine, ssh, Slurm) is a new backend or a new
 * executor behind the embedded one, not a branch in `server/index.ts`.
 * @module
 */
import type { WorkersReport } from '@jobwire/client';
import type { TokenBook } from '../auth/tokens.js';
import type { EmitShared } from '../jobs/events.js';
import type { JobScheduler } from '../jobs/scheduler.js';
import type { StopSteps } from '../stop.js';
import type { Store } from '../store/types.js';
import type { BackendSsh } from '../grpc/options.js';

/** Where a backend logs (pino's shape, as the server's logger has it). */
export interface BackendLog {
  warn(data: object, message: string): void;
  error(data: object, message: string): void;
}

/** What a server hands the backend it opens. */
export interface BackendContext {
  /** The jobwire home (token file, embedded store). */
  home: string;
  /** Working directory of jobs that name none. */
  workDir: string;
  /** Milliseconds between SIGTERM and SIGKILL when jobs are stopped. */
  graceMs: number;
  /**
   * Aborts when the server shuts down, with the shutdown reason (a sentence) as its `reason`:
   * jobs running in this process then stop and end Lost with that reason.
   */
  signal: AbortSignal;
  /** The server's log. */
  log: BackendLog;
  /** Emits on the server's events: a backend emits `job:lost`, `worker:reaped`, `runner:error`, `housekeeping:error`. */
  emit: EmitShared;
}

/** Where the server is reached, for the jobs it runs (`JOBWIRE_URL`, `JOBWIRE_CA`). */
export interface ServerAddress {
  url: string;
  /** CA file that makes a client trust an `https:` URL. @defaultValue undefined (none needed) */
  caFile?: string;
}

/** One backend of a server (see the module comment). */
export interface Backend extends JobScheduler {
  /** Job records, groups, events and streams. */
  readonly store: Store;
  /** Who a token stands for. */
  readonly tokens: TokenBook;
  /** The SSH connections of the backend's ssh and slurm+ssh executors (for the gRPC sftp adaptor); undefined when it runs no jobs itself. */
  readonly ssh?: BackendSsh;
  /** The report behind `GET /v1/workers`; undefined for a backend without workers. */
  readonly workers?: () => Promise<WorkersReport>;
  /**
   * The server listens at `address`: called once it does (from then on jobs are run or placed),
   * and again when the address changes (a TLS reload with another CA file).
   */
  serve(address: ServerAddress): void;
  /**
   * Called before the shutdown signal aborts: whether the stop also stops the jobs. A backend
   * whose jobs outlive the server (the embedded one, on its job host) leaves them running unless
   * `stopJobs`; one without the choice ignores it. @defaultValue jobs are stopped (no such choice)
   */
  prepareStop?(options: { stopJobs: boolean }): void;
  /** After the shutdown signal aborted: resolves once the jobs running in this process have ended (or were left running) and are stored. */
  drain(): Promise<void>;
  /** Ends housekeeping and closes the store, each as a step of `steps` (a stop that gives up on the store reports what it left). */
  close(steps: StopSteps): Promise<void>;
  /** Drops every connection at once, without waiting (the stop gave up; see `stop.ts`). */
  abandon(): void;
}

/** Opens a backend for a server. */
export type BackendFactory = (context: BackendContext) => Promise<Backend>;
