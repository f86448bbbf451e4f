/**
 * How the embedded store reports failures: jobwire errors pass through, anything else (an
 * SQLite or file-system error) becomes an `internal` JobwireError that keeps it as `cause`.
 * @module
 */
import { JobwireError } from '@jobwire/client';

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

export { checkJobId, checkLimit, checkPosition } from '../checks.js';
