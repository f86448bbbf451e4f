/**
 * How the embedded store reports failures: jobwire errors pass through, anything else (an
 * SQLite or file-system error) becomes an `internal` JobwireError that keeps it as `cause`.
 * @module
 */
import { BadRequestError, JobwireError } from '@jobwire/client';

/** The error to hand across the Store API for `error`. */
export function toStoreError(error: unknown): JobwireError {
  if (error instanceof JobwireError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new JobwireError('internal', `embedded store: ${message}`, { cause: error });
}

/**
 * Runs a synchronous store operation now and settles a promise with its outcome. Running it
 * before returning (rather than in a later tick) is what keeps un-awaited calls in call order.
 */
export function settle<T>(operation: () => T): Promise<T> {
  try {
    return Promise.resolve(operation());
  } catch (error) {
    return Promise.reject(toStoreError(error));
  }
}

/** The error for using a store after `close()`. */
export function closedError(): JobwireError {
  return new JobwireError('internal', 'the embedded store is closed');
}

/** Checks a byte position or count: a non-negative safe integer. */
export function checkPosition(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new BadRequestError(`${field} must be a non-negative integer, got ${String(value)}`, { field });
  }
  return value;
}

/** Checks a page size: a positive safe integer. */
export function checkLimit(value: unknown, field = 'limit'): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new BadRequestError(`${field} must be a positive integer, got ${String(value)}`, { field });
  }
  return value;
}

/** Job ids become folder names, so they are held to a safe alphabet (and never `.` or `..`). */
const JOB_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;

/** Checks that a job id is one the store can hold (letters, digits, `_`, `-`, `.`; no leading `.`). */
export function checkJobId(jobId: unknown): asserts jobId is string {
  if (typeof jobId !== 'string' || !JOB_ID.test(jobId)) {
    throw new BadRequestError(`invalid job id ${JSON.stringify(jobId)}`, { field: 'id' });
  }
}
