/**
 * Typed events of the long-lived parts (graphile-worker's `WorkerEventMap` style: namespaced
 * names, one payload object each). This module holds what servers and workers share — what
 * happens to jobs and workers under them; `ServerEventMap` (`server/index.ts`) and
 * `WorkerEventMap` (`distributed/worker.ts`) add their own lifecycle events. Handles expose them
 * on a node `EventEmitter` typed with the map, so a misspelt name or a wrong payload does not
 * compile.
 *
 * Listeners run synchronously where the event happens; one that throws is reported as a process
 * warning (`JobwireListenerError`) and changes nothing else.
 * @module
 */
import type { EventEmitter } from 'node:events';
import type { JobInfo } from '@jobwire/client';
import { warnListenerError } from '../store/listeners.js';
import type { JobRecord } from '../store/types.js';
import { publicInfo } from './service.js';

/** Payload of `job:lost`. */
export interface JobLostEvent {
  /** The job as it is now: status Lost, `error` saying why. */
  job: JobInfo;
}

/** Payload of `worker:reaped`. */
export interface WorkerReapedEvent {
  /** Node name of the worker that stopped answering. */
  node: string;
  /** Ids of its jobs now Lost (each also has a `job:lost` event). */
  lost: string[];
  /** Ids of its jobs queued again for another attempt (their retries allowed one). */
  retried: string[];
}

/** Payload of `runner:error`. */
export interface RunnerErrorEvent {
  /** What failed (a store operation of the job's run: its output, status or stdin). */
  error: unknown;
  /** The job whose bookkeeping failed ("(dispatcher)" when it was the look for queued jobs). */
  jobId: string;
}

/** Payload of `housekeeping:error`. */
export interface HousekeepingErrorEvent {
  /** What failed (a heartbeat, a placement pass, a look for dead workers...). */
  error: unknown;
}

/** Events both servers and workers emit. */
export interface JobwireEventMap {
  /**
   * A job this process (or its backend) moved to Lost because what ran it went away: found
   * Running when an embedded server started after a crash (its processes stopped first), stopped
   * by a shutdown, or left by a worker that stopped answering and had no retries left.
   */
  'job:lost': [JobLostEvent];
  /** A worker stopped answering and this process removed it from the registry and settled its jobs (distributed mode). */
  'worker:reaped': [WorkerReapedEvent];
  /** Bookkeeping of a job's run failed (the job goes on or ends as it can; this is also logged). */
  'runner:error': [RunnerErrorEvent];
  /** A housekeeping step not tied to one job failed (distributed mode; also logged; the next pass retries). */
  'housekeeping:error': [HousekeepingErrorEvent];
}

/** Emits one of the shared events (what a backend is handed by its server, which emits them on its own emitter). */
export type EmitShared = <K extends keyof JobwireEventMap>(name: K, ...args: JobwireEventMap[K]) => void;

/** A map of event names to the argument list of their listeners. */
export type EventMapOf<M> = { [K in keyof M]: unknown[] };

/** Emits an event, reporting a listener that throws instead of throwing into the caller. */
export function emitSafely<M extends EventMapOf<M>, K extends keyof M & string>(events: EventEmitter<M>, name: K, ...args: M[K]): void {
  try {
    (events as unknown as EventEmitter).emit(name, ...args);
  } catch (error) {
    warnListenerError(error);
  }
}

/** The payload of `job:lost` for a record. */
export function lostEvent(job: JobRecord): JobLostEvent {
  return { job: publicInfo(job, false) };
}
