/**
 * Stores: where jobwire keeps job records, groups, events and job streams. The interface is in
 * `types.ts`; the embedded implementation (SQLite + files) is the default, the Redis one
 * (`redis/`) serves distributed mode.
 * @module
 */
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
export { CHANNEL_CHUNK_BYTES, MAX_CHANNEL_CHUNK_BYTES, finalStatusOf } from './types.js';
export { openEmbeddedStore, type EmbeddedStoreOptions } from './embedded/index.js';
export { openRedisStore, RedisStore, type RedisStoreOptions } from './redis/index.js';
