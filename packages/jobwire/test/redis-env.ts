/**
 * Where tests find Redis, and fresh key prefixes there. Tests that need Redis fail (never
 * skip) when it is down: `.ci/run` starts it, and a developer gets a clear message.
 */
import { randomBytes } from 'node:crypto';
import { dropPrefix as dropRedisPrefix } from '../src/store/redis/index.js';

/** The Redis the tests use (`JOBWIRE_TEST_REDIS`, default the local standard port). */
export const REDIS_URL = process.env.JOBWIRE_TEST_REDIS ?? 'redis://127.0.0.1:6379';

/** A key prefix no other test run uses: `jwtest:RANDOM:`. */
export function freshPrefix(): string {
  return `jwtest:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under `prefix`. */
export function dropPrefix(prefix: string, url = REDIS_URL): Promise<void> {
  return dropRedisPrefix(url, prefix);
}
