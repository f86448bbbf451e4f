/**
 * How the Redis store reports failures: refusals of its Lua scripts (error replies starting
 * with `CONFLICT`, `NOTFOUND` or `BADREQ`) become the matching jobwire errors; anything else (a
 * lost connection, a Redis error) becomes an `internal` JobwireError that keeps it as `cause`.
 * @module
 */
import { BadRequestError, ConflictError, JobwireError, NotFoundError } from '@jobwire/client';

/** The error to hand across the Store API for `error`. */
export function toRedisStoreError(error: unknown): JobwireError {
  if (error instanceof JobwireError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const refusal = /^(CONFLICT|NOTFOUND|BADREQ) ([\s\S]*)$/.exec(message);
  if (refusal) {
    const [, code, text] = refusal as unknown as [string, string, string];
    if (code === 'CONFLICT') return new ConflictError(text, { cause: error });
    if (code === 'NOTFOUND') return new NotFoundError(text, { cause: error });
    return new BadRequestError(text, { cause: error });
  }
  return new JobwireError('internal', `redis store: ${message}`, { cause: error });
}

/** The error for using a store after `close()`. */
export function closedError(): JobwireError {
  return new JobwireError('internal', 'the redis store is closed');
}

/** The error for a Redis that cannot be reached when a store opens. */
export function unreachableError(url: string, cause: unknown): JobwireError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new JobwireError('internal', `cannot reach Redis at ${redactUrl(url)}${detail}`, { cause });
}

/** A Redis URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:/@]*:)[^@]*@/, '$1***@');
}
