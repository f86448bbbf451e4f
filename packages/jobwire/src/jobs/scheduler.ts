/**
 * What the job service asks of whatever runs its jobs: the part of a backend (`backends/`) that
 * a submission and a queue listing meet. Defined here, beside the service, so that `jobs/`
 * needs nothing from above it.
 * @module
 */
import type { ExecutorInfo, JobDescription } from '@jobwire/client';
import type { QueueDef } from '../executors/types.js';
import type { JobRecord } from '../store/types.js';

/** Where submitted jobs go to be run. */
export interface JobScheduler {
  /** The executor adaptor jobs run with, as Xenon clients see it ("local"; "worker" in distributed mode). */
  readonly adaptor: string;
  /** Throws a BadRequestError (code "unsupported", naming the field) for what its jobs cannot do. */
  check(description: JobDescription, owner?: string): void;
  /** Rejects a submission whose owner could not have it run (see `run-as.ts`); nothing is queued then. */
  admit(owner: string): Promise<void>;
  /** A job was queued: run or place it when there is room. */
  queued(job: JobRecord): void;
  /** The queues and their limits now. */
  queues(): Promise<QueueDef[]>;
  /** The named executors a description's `executor` may name; undefined when only `local` runs jobs. */
  readonly executors?: () => ExecutorInfo[];
}
