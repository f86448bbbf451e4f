/**
 * @jobwire/client — the jobwire SDK: submit jobs, follow them, talk to them while they run.
 * No native dependencies; runs in Node (>= 20.19) and browsers. Node stream adapters live in
 * `@jobwire/client/node`, the jobwire home helpers in `@jobwire/client/home`, and the attach
 * protocol's frame encoders and decoder (for servers and protocol tools) in
 * `@jobwire/client/protocol`; the network file's zod schema in `@jobwire/client/network` (its
 * types are exported here too).
 * @module
 */
export * from './types.js';
export * from './errors.js';
export type * from './api.js';
export { Client } from './client.js';
export { QueuedIterator, type QueuedIteratorOptions } from './queued-iterator.js';
export type { Connection } from './http.js';
export type { Builtin, FrameEncoding, Framing, GapPolicy, NetworkJobSpec, NetworkGraph, NetworkJobStatus, NetworkPipeStatus, NetworkSpec, PipeFrame, NetworkStatus, Overflow, ParsedNetwork, PipeSpec, Queue, QueueSpec } from './network.js';
