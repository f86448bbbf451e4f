/**
 * Redis connections of the distributed mode (ioredis). Every connection reconnects by itself
 * with backoff when Redis goes away (a restart, a network cut) and replays what it had in flight;
 * commands issued meanwhile wait for the connection instead of failing, so a short Redis outage
 * delays jobs rather than failing them. Only the first connection of a process must succeed
 * within a time limit, so a wrong URL is a clear error at start-up.
 * @module
 */
import { Redis, type RedisOptions } from 'ioredis';
import { unreachableError } from './errors.js';

/** Options of {@link openConnection}. */
export interface ConnectionSettings {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  url: string;
  /** Name shown by `CLIENT LIST`, e.g. `jobwire:server`. */
  name: string;
  /** How long the first connection may take, in milliseconds. */
  connectTimeoutMs: number;
}

/** Settings every jobwire connection uses (also given to BullMQ). */
export function connectionOptions(name: string): RedisOptions {
  return {
    connectionName: name,
    // Wait for the connection to come back rather than fail a command after N retries: the
    // runner's appends and the servers' reads should survive a Redis restart.
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 2000),
    lazyConnect: true,
  };
}

/** Opens a connection and waits until Redis answers; rejects (and gives up) after the time limit. */
export async function openConnection(settings: ConnectionSettings): Promise<Redis> {
  const redis = new Redis(settings.url, connectionOptions(settings.name));
  let lastError: unknown;
  const onError = (err: unknown): void => {
    lastError = err;
  };
  redis.on('error', onError);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(unreachableError(settings.url, lastError ?? new Error(`no answer within ${settings.connectTimeoutMs} ms`))), settings.connectTimeoutMs);
      }),
    ]);
  } catch (err) {
    redis.disconnect();
    throw unreachableError(settings.url, lastError ?? err);
  } finally {
    clearTimeout(timer);
  }
  return redis;
}

/**
 * A second connection like `redis` (same server, options and name suffix), for blocking reads
 * or pub/sub, which take a connection for themselves.
 */
export async function duplicateConnection(redis: Redis, suffix: string): Promise<Redis> {
  const copy = redis.duplicate({ connectionName: `${redis.options.connectionName ?? 'jobwire'}:${suffix}`, lazyConnect: true });
  copy.on('error', () => undefined);
  await copy.connect();
  return copy;
}
