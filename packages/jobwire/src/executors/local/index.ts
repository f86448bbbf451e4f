/**
 * The local executor: jobs as child processes of this machine, on pipes or a pseudo-terminal.
 * @module
 */
export { LocalExecutor, LOCAL_QUEUES, type LocalExecutorOptions } from './local-executor.js';
