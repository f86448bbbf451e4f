/**
 * The Redis store (distributed mode): job records, groups, events and job streams in one Redis,
 * shared by any number of servers and workers, with the registry, placement and hand-over of
 * distributed mode ({@link RedisClusterStore}). Everything lives under one key prefix. This module
 * loads ioredis and BullMQ: import it only in Redis mode (`store/index.ts` does so on demand).
 * @module
 */
import { Redis } from 'ioredis';
import { JobwireError } from '@jobwire/client';
import { warnListenerError, type ListenerErrorHandler } from '../listeners.js';
import { duplicateConnection, openConnection } from './connection.js';
import { Keys } from './keys.js';
import { RedisClusterStore } from './cluster-store.js';
import { defineScripts } from './scripts/index.js';

export { RedisStore } from './redis-store.js';
export { RedisClusterStore } from './cluster-store.js';
export { RedisStreamLog } from './redis-stream-log.js';
export { Keys } from './keys.js';
export { redactUrl } from './errors.js';

/** Options of {@link openRedisStore}. */
export interface RedisStoreOptions {
  /**
   * Redis URL: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
   * @defaultValue "redis://127.0.0.1:6379"
   */
  url?: string;
  /**
   * Prefix of every key, so several installations (or test runs) share one Redis.
   * @defaultValue "jobwire:"
   */
  prefix?: string;
  /**
   * Name of the connections in `CLIENT LIST`.
   * @defaultValue "jobwire"
   */
  connectionName?: string;
  /**
   * How long opening may wait for Redis to answer, in milliseconds.
   * @defaultValue 10000
   */
  connectTimeoutMs?: number;
  /**
   * About how many events the all-owners event stream keeps for live readers (each owner's
   * own stream, used for replay, keeps all).
   * @defaultValue 100000
   */
  eventsMaxLen?: number;
  /**
   * Receives errors thrown by `onEvent` and `subscribe` listeners.
   * @defaultValue a process warning (`process.emitWarning`)
   */
  onListenerError?: ListenerErrorHandler;
}

type ResolvedOptions = Required<RedisStoreOptions>;

/** The defaults, filled in one place. */
function defaultOptions(): ResolvedOptions {
  return {
    url: 'redis://127.0.0.1:6379',
    prefix: 'jobwire:',
    connectionName: 'jobwire',
    connectTimeoutMs: 10_000,
    eventsMaxLen: 100_000,
    onListenerError: warnListenerError,
  };
}

/** Fills in defaults and checks the values. */
export function parseRedisStoreOptions(options: RedisStoreOptions): ResolvedOptions {
  const resolved = defaultOptions();
  for (const [key, value] of Object.entries(options) as Array<[keyof ResolvedOptions, unknown]>) {
    if (value !== undefined) (resolved as Record<string, unknown>)[key] = value;
  }
  if (typeof resolved.url !== 'string' || !/^rediss?:\/\//.test(resolved.url)) {
    throw new TypeError(`RedisStoreOptions.url must be a redis:// or rediss:// URL, got ${JSON.stringify(resolved.url)}`);
  }
  if (typeof resolved.prefix !== 'string' || resolved.prefix === '' || /[\s{}]/.test(resolved.prefix)) {
    throw new TypeError('RedisStoreOptions.prefix must be a non-empty string without spaces or braces');
  }
  for (const key of ['connectTimeoutMs', 'eventsMaxLen'] as const) {
    const value = resolved[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new TypeError(`RedisStoreOptions.${key} must be a positive integer, got ${String(value)}`);
    }
  }
  if (typeof resolved.onListenerError !== 'function') throw new TypeError('RedisStoreOptions.onListenerError must be a function');
  return resolved;
}

/**
 * Connects to Redis and returns the store. Fails with a clear error when Redis does not answer
 * within `connectTimeoutMs`; after that, lost connections are re-established by themselves.
 */
export async function openRedisStore(options: RedisStoreOptions = {}): Promise<RedisClusterStore> {
  const resolved = parseRedisStoreOptions(options);
  const redis = await openConnection({ url: resolved.url, name: resolved.connectionName, connectTimeoutMs: resolved.connectTimeoutMs });
  try {
    const subscriber = await duplicateConnection(redis, 'sub');
    const scripts = defineScripts(redis, resolved.prefix, { eventsMaxLen: resolved.eventsMaxLen });
    return new RedisClusterStore({
      redis,
      subscriber,
      scripts,
      keys: new Keys(resolved.prefix),
      eventsMaxLen: resolved.eventsMaxLen,
      onListenerError: resolved.onListenerError,
    });
  } catch (error) {
    redis.disconnect();
    throw error instanceof JobwireError ? error : new JobwireError('internal', `cannot open the redis store: ${String(error)}`, { cause: error });
  }
}

/**
 * Deletes every key under `prefix` (SCAN + UNLINK in batches of 1000): removes one installation
 * or test run from a shared Redis. Connects to `url` for the purpose and disconnects after.
 */
export async function dropPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
