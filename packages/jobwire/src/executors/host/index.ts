/**
 * The host executor: jobs run on the home's job host (`host/`), which outlives the server.
 * @module
 */
export { HostExecutor, STDIN_WINDOW_BYTES, type HostExecutorOptions, type HostJobRecord } from './host-executor.js';
