/**
 * Executors: where jobs run. Each implements {@link Executor}.
 * @module
 */
export type { Executor, ProcessHandle, ProcessResult, QueueDef, StartSpec } from './types.js';
export { LocalExecutor, LOCAL_QUEUES, type LocalExecutorOptions } from './local/index.js';
