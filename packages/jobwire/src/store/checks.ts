/**
 * Argument checks every store shares: byte positions, page sizes and job ids. A bad value is a
 * BadRequestError naming the field, so it reaches the client as a clear 400.
 * @module
 */
import { BadRequestError, type OutputChannel } from '@jobwire/client';
import type { FinalStatus } from './types.js';

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

/** Checks the chunk size of a streaming read: from 1 to `max` bytes. */
export function checkChunkBytes(value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new BadRequestError(`chunkBytes must be an integer from 1 to ${max}, got ${String(value)}`, { field: 'chunkBytes' });
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

/**
 * Checks a group path: `''` (the root) or `:`-separated non-empty names. Both stores call it
 * before creating anything, so a bad path changes nothing.
 */
export function checkGroupPath(path: unknown): asserts path is string {
  if (typeof path !== 'string' || (path !== '' && path.split(':').some((segment) => segment === ''))) {
    throw new BadRequestError(`a group path is ":"-separated non-empty names, got ${JSON.stringify(path)}`, { field: 'group' });
  }
}

/** 'a:b:c' → ['a', 'a:b', 'a:b:c']; '' → []. */
export function ancestorPaths(path: string): string[] {
  if (path === '') return [];
  const paths: string[] = [];
  for (let at = path.indexOf(':'); at >= 0; at = path.indexOf(':', at + 1)) paths.push(path.slice(0, at));
  paths.push(path);
  return paths;
}

/** Checks an output channel name: `stdout` or `stderr`. */
export function checkChannel(channel: string): asserts channel is OutputChannel {
  if (channel !== 'stdout' && channel !== 'stderr') {
    throw new BadRequestError(`channel must be "stdout" or "stderr", got ${JSON.stringify(channel)}`, { field: 'channel' });
  }
}

/** Checks that data to append is bytes. */
export function checkBytes(data: unknown): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) throw new BadRequestError('data must be bytes (a Uint8Array)', { field: 'data' });
}

/** Where a page of jobs ends (jobs are listed by creation time, then id): the next page starts after it. */
export interface PageCursor {
  createdAt: string;
  id: string;
}

/** The opaque `next` cursor of a page of jobs; both stores give out and take the same form. */
export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

/** Reads a cursor made by {@link encodeCursor}; anything else is a BadRequestError on `cursor`. */
export function decodeCursor(cursor: string): PageCursor {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string') {
      return { createdAt: value[0], id: value[1] };
    }
  } catch {
    // Reported below.
  }
  throw new BadRequestError('invalid cursor', { field: 'cursor' });
}

/**
 * A job's result as JSON text (null for none). A result that JSON cannot hold is dropped, with
 * the reason in `error`, rather than failing the finish: a job must never stay Running because
 * its result was odd.
 */
export function resultText(result: unknown, error: string | null): { result: string | null; error: string | null } {
  if (result === undefined || result === null) return { result: null, error };
  try {
    const text = JSON.stringify(result) as string | undefined;
    if (text !== undefined) return { result: text, error };
  } catch (cause) {
    return { result: null, error: error ?? `the job's result could not be stored as JSON: ${String(cause)}` };
  }
  return { result: null, error: error ?? `the job's result could not be stored as JSON` };
}

const FINAL: readonly string[] = ['Success', 'Failed', 'Cancelled', 'Lost'];

/**
 * Checks the final status a close of output records (see `StreamLog.closeOutput`); returns a
 * copy holding only its fields, which is what gets stored.
 */
export function checkFinalStatus(final: unknown): FinalStatus {
  const f = final as Partial<Record<keyof FinalStatus, unknown>> | null;
  if (typeof f !== 'object' || f === null || typeof f.status !== 'string' || !FINAL.includes(f.status)) {
    throw new BadRequestError(`final.status must be one of ${FINAL.join(', ')}, got ${JSON.stringify(f?.status)}`, { field: 'final.status' });
  }
  if (f.exitCode !== null && !Number.isSafeInteger(f.exitCode)) {
    throw new BadRequestError(`final.exitCode must be an integer or null, got ${String(f.exitCode)}`, { field: 'final.exitCode' });
  }
  for (const field of ['signal', 'error', 'progress'] as const) {
    if (f[field] !== null && typeof f[field] !== 'string') {
      throw new BadRequestError(`final.${field} must be a string or null, got ${String(f[field])}`, { field: `final.${field}` });
    }
  }
  return { status: f.status as FinalStatus['status'], exitCode: f.exitCode as number | null, signal: f.signal as string | null, error: f.error as string | null, progress: f.progress as string | null };
}
