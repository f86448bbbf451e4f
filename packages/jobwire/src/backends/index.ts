/**
 * Backends of a server: the embedded one (default) and the Redis one (distributed mode). The
 * interface is in `types.ts`.
 * @module
 */
export type { Backend, BackendContext, BackendFactory, BackendLog, ServerAddress } from './types.js';
export { embeddedBackend, type EmbeddedBackendOptions } from './embedded.js';
export { redisBackend, type RedisBackendOptions } from './redis.js';
