/**
 * `jobwire/redis` — the Redis store of distributed mode, for code that opens it directly (a
 * server started with `redis` opens its own). A subpath of its own so that importing `jobwire`
 * never loads the Redis packages.
 * @module
 */
export { openRedisStore, RedisStore, type RedisStoreOptions } from './store/redis/index.js';
