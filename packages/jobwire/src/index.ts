/**
 * jobwire — the server, the distributed-mode worker, the stores and the local executor, as a
 * library; the `jobwire` command is the CLI over the same parts, and `@jobwire/client` the SDK
 * that talks to a running server.
 *
 * ```ts
 * import { startServer } from 'jobwire';
 * const server = await startServer({ port: 0, home: '/tmp/jw' }); // embedded mode
 * console.log(server.url, server.token);
 * await server.close();
 * ```
 *
 * What only distributed mode needs is loaded only there: {@link startWorker} loads the worker
 * (and its Redis packages) when called, and the Redis store opener lives in `jobwire/redis`.
 * The gRPC service loads `@grpc/grpc-js` and `@grpc/proto-loader` (optional peer dependencies)
 * only when a gRPC port is given.
 * @module
 */
import type { WorkerHandle, WorkerOptions } from './distributed/worker.js';

export { startServer, TlsFileError, type ServerHandle, type ServerOptions, type ServerTlsOptions } from './server/index.js';
export { GrpcUnavailableError, type GrpcTlsOptions } from './grpc/server.js';
export type { CloseOptions, StopReport } from './stop.js';
export type { WorkerHandle, WorkerOptions } from './distributed/worker.js';
export { openEmbeddedStore, type EmbeddedStoreOptions } from './store/embedded/index.js';
export {
  CHANNEL_CHUNK_BYTES,
  MAX_CHANNEL_CHUNK_BYTES,
  type ChannelChunksOptions,
  type ControlMessage,
  type FinishFields,
  type JobRecord,
  type ListJobsQuery,
  type NewJob,
  type Store,
  type StoredEvent,
  type StreamEvent,
  type StreamLog,
  type StreamSizes,
} from './store/types.js';
export { LocalExecutor, LOCAL_QUEUES, type LocalExecutorOptions } from './executors/local/index.js';
export type { Executor, ProcessHandle, ProcessResult, QueueDef, StartSpec } from './executors/types.js';

/**
 * Starts a distributed-mode worker: it claims jobs from the Redis that its servers share and
 * runs them with the local executor (`jobwire worker` is this). The worker and its Redis
 * packages are loaded on the first call, so embedded-mode users never load them.
 */
export async function startWorker(options: WorkerOptions = {}): Promise<WorkerHandle> {
  const worker = await import('./distributed/worker.js');
  return worker.startWorker(options);
}
