/**
 * Framings: how a pipe cuts a producer's bytes into frame payloads, how payloads are written
 * back as bytes for an executable consumer, and how they become values for a js job.
 *
 * | framing         | producer's bytes                   | payload         | js value     |
 * |-----------------|------------------------------------|-----------------|--------------|
 * | `bytes`         | each piece as it comes              | the piece       | `Uint8Array` |
 * | `lines`         | `\n`-ended lines                    | line without `\n` | `string`   |
 * | `frames` json   | one JSON value per line             | its JSON text   | the value    |
 * | `frames` binary | u32 big-endian length, then bytes   | the bytes       | `Uint8Array` |
 * @module
 */
import { BadRequestError, type FrameEncoding, type Framing } from '@jobwire/client';
import { MAX_PAYLOAD_BYTES } from './frame.js';

/** A pipe's framing with the encoding of `frames`. */
export interface FramingOf {
  framing: Framing;
  encoding?: FrameEncoding;
}

const NEWLINE = 0x0a;
const EMPTY = new Uint8Array(0);

function isJson(pipe: FramingOf): boolean {
  return pipe.framing === 'frames' && (pipe.encoding ?? 'json') === 'json';
}

/** Cuts a producer's byte stream into payloads by its pipe's framing. */
export class Deframer {
  #pending: Buffer = Buffer.alloc(0);

  constructor(readonly pipe: FramingOf) {}

  /** Bytes from the producer; returns the payloads they complete. Throws on bytes that break the framing (bad JSON, oversized frame). */
  push(bytes: Uint8Array): Uint8Array[] {
    if (this.pipe.framing === 'bytes') return bytes.byteLength === 0 ? [] : [Uint8Array.prototype.slice.call(bytes)];
    const buffer = this.#pending.byteLength === 0 ? Buffer.from(bytes) : Buffer.concat([this.#pending, bytes]);
    const payloads: Uint8Array[] = [];
    let at = 0;
    if (this.pipe.framing === 'frames' && this.pipe.encoding === 'binary') {
      while (buffer.byteLength - at >= 4) {
        const length = buffer.readUInt32BE(at);
        if (length > MAX_PAYLOAD_BYTES) throw new BadRequestError(`a binary frame of ${length} bytes is over the limit of ${MAX_PAYLOAD_BYTES}`, { field: 'frames' });
        if (buffer.byteLength - at < 4 + length) break;
        payloads.push(buffer.subarray(at + 4, at + 4 + length));
        at += 4 + length;
      }
    } else {
      for (let nl = buffer.indexOf(NEWLINE, at); nl >= 0; nl = buffer.indexOf(NEWLINE, at)) {
        this.#line(buffer.subarray(at, nl), payloads);
        at = nl + 1;
      }
      if (buffer.byteLength - at > MAX_PAYLOAD_BYTES) throw new BadRequestError(`a line of over ${MAX_PAYLOAD_BYTES} bytes`, { field: 'lines' });
    }
    this.#pending = Buffer.from(buffer.subarray(at));
    return payloads.map((p) => Uint8Array.prototype.slice.call(p));
  }

  /** The producer ended: what is left (a last line without `\n`). Throws on a cut binary frame. */
  end(): Uint8Array[] {
    const rest = this.#pending;
    this.#pending = Buffer.alloc(0);
    if (rest.byteLength === 0) return [];
    if (this.pipe.framing === 'frames' && this.pipe.encoding === 'binary') {
      throw new BadRequestError(`the producer ended inside a binary frame (${rest.byteLength} bytes left over)`, { field: 'frames' });
    }
    const payloads: Uint8Array[] = [];
    this.#line(rest, payloads);
    return payloads;
  }

  #line(line: Buffer, payloads: Uint8Array[]): void {
    const text = line.byteLength > 0 && line[line.byteLength - 1] === 0x0d ? line.subarray(0, -1) : line;
    if (isJson(this.pipe)) {
      if (text.toString('utf8').trim() === '') return;
      try {
        JSON.parse(text.toString('utf8'));
      } catch (error) {
        throw new BadRequestError(`not a JSON value: ${text.toString('utf8').slice(0, 80)}`, { field: 'frames', cause: error });
      }
    }
    payloads.push(text);
  }
}

/** A payload as bytes for an executable consumer's stdin or named pipe. */
export function encodeForConsumer(pipe: FramingOf, payload: Uint8Array): Uint8Array {
  switch (pipe.framing) {
    case 'bytes':
      return payload;
    case 'lines':
      return Buffer.concat([payload, Buffer.of(NEWLINE)]);
    case 'frames': {
      if (isJson(pipe)) return Buffer.concat([payload, Buffer.of(NEWLINE)]);
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32BE(payload.byteLength, 0);
      return Buffer.concat([length, payload]);
    }
  }
}

/** A payload as the value a js job's `run` receives. */
export function payloadToValue(pipe: FramingOf, payload: Uint8Array): unknown {
  if (pipe.framing === 'lines') return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  if (isJson(pipe)) return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  return payload;
}

/** A js job's value as a payload. Throws a BadRequestError for a value the framing cannot carry. */
export function valueToPayload(pipe: FramingOf, value: unknown): Uint8Array {
  if (isJson(pipe)) {
    const text = JSON.stringify(value);
    if (text === undefined) throw new BadRequestError(`a ${typeof value} is not a JSON value`, { field: 'frames' });
    return Buffer.from(text, 'utf8');
  }
  if (value instanceof Uint8Array) return value;
  if (pipe.framing === 'lines' || typeof value === 'string') {
    const text = typeof value === 'string' ? value : String(value);
    if (pipe.framing === 'lines' && text.includes('\n')) throw new BadRequestError('a line frame cannot hold a newline', { field: 'lines' });
    return Buffer.from(text, 'utf8');
  }
  throw new BadRequestError(`a pipe framed as ${pipe.framing} carries bytes (Uint8Array) or strings, not ${typeof value}`, { field: pipe.framing });
}

/** The payload `fill-zero` puts in place of a missing frame: `0` for JSON frames, empty otherwise. */
export function zeroPayload(pipe: FramingOf): Uint8Array {
  return isJson(pipe) ? Buffer.from('0') : EMPTY;
}
