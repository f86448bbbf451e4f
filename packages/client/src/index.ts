/**
 * @jobwire/client — the jobwire SDK: submit jobs, follow them, talk to them while they run.
 * No native dependencies; runs in Node (>= 20.19) and browsers.
 * @module
 */
export * from './types.js';
export * from './errors.js';
export * from './protocol.js';
export type * from './api.js';
