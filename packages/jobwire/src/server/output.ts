/**
 * `GET /v1/jobs/:id/output`: one output stream of a job, streamed from the stream log. Memory per
 * download is bounded whatever its size and however slowly the client reads: the bytes are read
 * in chunks of {@link OUTPUT_CHUNK_BYTES}, the next only once the socket has taken the previous
 * (about two chunks in flight per download), and the reads are asynchronous, so a big download
 * never blocks the event loop.
 *
 * Single-range HTTP Range requests (`bytes=a-b`, `bytes=a-`, `bytes=-n`) pick a part of the bytes
 * the query selected (`from`, `to`): the answer is 206 with `Content-Range`, or 416 when the range
 * starts at or past their end. Anything else in `Range` (other units, several ranges, bad syntax)
 * is ignored and the whole selection is sent, as RFC 9110 allows; so is a `Range` sent with
 * `If-Range`, since a growing stream has no validator to compare.
 * @module
 */
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { JobwireError, type OutputChannel } from '@jobwire/client';
import type { StreamLog, StreamSizes } from '../store/types.js';
import { countSent } from '../metrics.js';

/** Bytes read from the stream log per step of a download. */
export const OUTPUT_CHUNK_BYTES = 256 * 1024;

/** A byte range of a selection: `start` inclusive, `end` exclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The single byte range a `Range` header asks for in a selection of `length` bytes:
 * `undefined` when there is none to honour (no header, or one to ignore), `'unsatisfiable'`
 * when it lies wholly past the end (RFC 9110 §14.1.2: a first byte at or past the end, or a
 * zero-length suffix).
 */
export function parseRange(header: string | undefined, length: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, first, last] = m as unknown as [string, string, string];
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || length === 0) return 'unsatisfiable';
    return { start: Math.max(0, length - suffix), end: length };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= length) return 'unsatisfiable';
  return { start, end: last === '' ? length : Math.min(Number(last) + 1, length) };
}

/** What {@link sendOutput} sends: bytes [from, to) of one channel, as the query selected them. */
export interface OutputRequest {
  jobId: string;
  channel: OutputChannel;
  sizes: StreamSizes;
  from: number;
  /** Already clipped to the channel's size by the caller, or past it (then clipped here). */
  to: number;
  /** The request's `Range` header. */
  range: string | undefined;
  /** The request's `If-Range` header. */
  ifRange: string | undefined;
  /** A HEAD request: headers only, nothing read. */
  head: boolean;
}

/** Answers an output request: 200 (the selection), 206 (a range of it) or 416, streamed. */
export function sendOutput(reply: FastifyReply, streams: Pick<StreamLog, 'readChannelChunks'>, request: OutputRequest): FastifyReply {
  const size = request.sizes[request.channel];
  const start = Math.min(request.from, size);
  const length = Math.max(0, Math.min(request.to, size) - start);
  reply
    .header('accept-ranges', 'bytes')
    .header('x-jobwire-size', String(size))
    .header('x-jobwire-complete', String(request.sizes.outputClosed));
  const range = request.ifRange === undefined ? parseRange(request.range, length) : undefined;
  if (range === 'unsatisfiable') {
    reply.header('content-range', `bytes */${length}`);
    throw new JobwireError('range_not_satisfiable', `range ${JSON.stringify(request.range)}: the selection has ${length} byte(s)`, { field: 'range' });
  }
  const { start: a, end: b } = range ?? { start: 0, end: length };
  if (range) reply.code(206).header('content-range', `bytes ${a}-${b - 1}/${length}`);
  reply.type('application/octet-stream').header('content-length', String(b - a));
  if (a === b) return reply.send(Buffer.alloc(0));
  // Fastify answers HEAD by draining what GET would send (and sets the length of a buffer to
  // its own): an empty stream keeps our length and reads nothing.
  if (request.head) return reply.send(Readable.from([]));
  const chunks = streams.readChannelChunks(request.jobId, request.channel, start + a, start + b, { chunkBytes: OUTPUT_CHUNK_BYTES });
  // Byte mode with a one-chunk high-water mark: the next chunk is read once this one has gone
  // to the socket (objectMode's default would queue 16 chunks).
  return reply.send(Readable.from(countSent(chunks, 'http'), { objectMode: false, highWaterMark: OUTPUT_CHUNK_BYTES }));
}
