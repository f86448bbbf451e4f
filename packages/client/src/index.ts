/**
 * @jobwire/client — the jobwire SDK: submit jobs, follow them, talk to them while they run.
 * No native dependencies; runs in Node (>= 20.19) and browsers. Node stream adapters live in
 * `@jobwire/client/node`, the jobwire home helpers in `@jobwire/client/home`.
 * @module
 */
export * from './types.js';
export * from './errors.js';
export * from './protocol.js';
export type * from './api.js';
export { Client } from './client.js';
export { QueuedIterator, type QueuedIteratorOptions } from './queued-iterator.js';
export type { Connection } from './http.js';
