/**
 * Where tests find Redis, and fresh key prefixes there. Tests that need Redis fail (never
 * skip) when it is down: `.ci/run` starts it, and a developer gets a clear message.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** The Redis the tests use (`JOBWIRE_TEST_REDIS`, default the local standard port). */
export const REDIS_URL = process.env.JOBWIRE_TEST_REDIS ?? 'redis://127.0.0.1:6379';

/** A key prefix no other test run uses: `jwtest:RANDOM:`. */
export function freshPrefix(): string {
  return `jwtest:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under `prefix` (SCAN + UNLINK, in batches). */
export async function dropPrefix(prefix: string, url = REDIS_URL): Promise<void> {
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
