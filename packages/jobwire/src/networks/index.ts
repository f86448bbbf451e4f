/**
 * Job networks: long-running jobs joined by pipes. This folder holds the network file (`file.ts`,
 * `model.ts`), the checks made before anything starts (`checks.ts`), drawings (`graph.ts`), and
 * pipes as a library over the store's stream log: frames and their headers (`frame.ts`),
 * framings (`framing.ts`), bounded pipes with per-consumer cursors (`pipe.ts`) and alignment of
 * several inputs by sequence number (`align.ts`); and running networks on a server (`run.ts`,
with `fifo-host.ts` and `mux.ts` for named pipes, `js-host.ts`, `js-wire.ts` and `builtins.ts`
for js and builtin jobs; the server loads it itself).
docs/networks.md describes them.
 * @module
 */
export { NetworkFileError, fieldName, formatIssue, loadNetworkFile, parseNetworkSpec, parseNetworkText } from './file.js';
export type { FieldPath, LoadedNetwork, Locator, NetworkIssue, ParseNetworkOptions } from './file.js';
export { DEFAULT_RESTART, neverBlocks, resolveNetwork } from './model.js';
export type { Alignment, JobKind, Network, NetworkJob, NetworkPipe, Restart } from './model.js';
export { PIPE_PLACEHOLDER, checkNetwork, networkIssues, type CheckNetworkOptions } from './checks.js';
export { jobSummary, networkToDot, networkToMermaid, pipeLabel } from './graph.js';
export { networkGraph } from './shape.js';
export { FrameDecoder, FrameFlag, HEADER_BYTES, MAX_PAYLOAD_BYTES, encodeFrame, hasFlag, type Frame } from './frame.js';
export { Deframer, encodeForConsumer, payloadToValue, valueToPayload, zeroPayload, type FramingOf } from './framing.js';
export { CURSOR_RECORD_BYTES, PipeReader, PipeWriter, cursorStreamId, pipeStreamId, readCursor } from './pipe.js';
export type { Cursor, PipeIdentity, PipeReaderOptions, PipeReaderStats, PipeWriterOptions, PipeWriterStats, WriteOptions } from './pipe.js';
export { alignBySeq, type AlignOptions, type AlignStats, type AlignedSet, type FrameSource } from './align.js';
