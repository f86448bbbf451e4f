/**
 * Stores: where jobwire keeps job records, groups, events and job streams. The interface is in
 * `types.ts` (plus `cluster.ts` for distributed mode); the embedded implementation (SQLite +
 * files) is the default, the Redis one (`redis/`) serves distributed mode. The Redis store is
 * loaded on demand, so an embedded install never loads ioredis or BullMQ (optional peer
 * dependencies) and need not have them.
 * @module
 */
import { JobwireError } from '@jobwire/client';
import type { RedisClusterStore, RedisStoreOptions } from './redis/index.js';

export type {
  ChannelChunksOptions,
  ControlMessage,
  FinalStatus,
  FinishFields,
  JobRecord,
  ListJobsQuery,
  NewJob,
  OutputPage,
  Store,
  StoredEvent,
  StreamEvent,
  StreamLog,
  StreamSizes,
} from './types.js';
export type { ClusterStore, RunClaim } from './cluster.js';
export { CHANNEL_CHUNK_BYTES, MAX_CHANNEL_CHUNK_BYTES, finalStatusOf } from './types.js';
export { openEmbeddedStore, type EmbeddedStoreOptions } from './embedded/index.js';
export type { RedisClusterStore, RedisStore, RedisStoreOptions } from './redis/index.js';

/** The packages distributed mode needs besides jobwire's own (optional peer dependencies). */
export const REDIS_PACKAGES = ['ioredis', 'bullmq'] as const;

/** A package that an optional mode needs is not installed. */
export class MissingPackageError extends JobwireError {
  override name = 'MissingPackageError';
  constructor(message: string, options?: ErrorOptions) {
    super('internal', message, options);
  }
}

/**
 * Loads the Redis store's module (and with it ioredis and BullMQ). Throws a
 * {@link MissingPackageError} saying what to install when they are missing.
 */
export async function loadRedisStore(): Promise<typeof import('./redis/index.js')> {
  try {
    return await import('./redis/index.js');
  } catch (err) {
    const missing = REDIS_PACKAGES.find((name) => isMissing(err, name));
    if (missing === undefined) throw err;
    throw new MissingPackageError(`distributed mode (Redis) needs the packages ${REDIS_PACKAGES.join(' and ')}, and ${missing} is not installed: npm install ${REDIS_PACKAGES.join(' ')}`, { cause: err });
  }
}

/** Opens the Redis store (see {@link loadRedisStore}). */
export async function openRedisStore(options: RedisStoreOptions = {}): Promise<RedisClusterStore> {
  return (await loadRedisStore()).openRedisStore(options);
}

/** True when `err` says package `name` could not be found. */
function isMissing(err: unknown, name: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return false;
  const message = err instanceof Error ? err.message : '';
  return message.includes(`'${name}'`) || message.includes(`"${name}"`) || message.includes(`/${name}/`);
}
