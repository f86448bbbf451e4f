/**
 * Frames as a pipe stores them: a fixed header, then the payload. The header carries the
 * frame's sequence number (the producer's count, which drops leave gaps in), its index (its
 * place among the frames stored in the pipe), the producer's epoch, and MARVELO's head bits as
 * flags: *gap* (a filler frame), *reset* (the producer restarted: a new epoch), *end*.
 *
 * Header layout, little-endian, {@link HEADER_BYTES} bytes: u32 payload length @0, u8 flags @4,
 * 3 reserved bytes, u32 epoch @8, 4 reserved bytes, u64 seq @16, u64 index @24.
 * @module
 */
import { BadRequestError } from '@jobwire/client';

/** The flags of a frame header. */
export const FrameFlag = {
  /** A filler frame, made up by alignment for one that was missing. */
  GAP: 1,
  /** The first frame of a new epoch: the producer restarted. */
  RESET: 2,
  /** The producer's last frame: the pipe ends after it. */
  END: 4,
} as const;

/** Bytes of a frame header. */
export const HEADER_BYTES = 32;

/** Largest payload of one frame: 64 MiB. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

/** A frame read from a pipe. */
export interface Frame {
  seq: number;
  index: number;
  epoch: number;
  flags: number;
  payload: Uint8Array;
  /** Position of the frame's first header byte in the pipe's stream. */
  pos: number;
  /** Position just after the frame. */
  end: number;
}

/** True when `frame` has `flag` set. */
export function hasFlag(frame: Pick<Frame, 'flags'>, flag: number): boolean {
  return (frame.flags & flag) !== 0;
}

/** A header and payload as stored bytes. */
export function encodeFrame(header: Pick<Frame, 'seq' | 'index' | 'epoch' | 'flags'>, payload: Uint8Array): Buffer {
  checkPayload(payload);
  const bytes = Buffer.allocUnsafe(HEADER_BYTES + payload.byteLength);
  encodeFrameAt(bytes, 0, header, payload);
  return bytes;
}

/**
 * Writes a header and payload into `bytes` at `at` (room for {@link HEADER_BYTES} plus the
 * payload, its size checked by the caller with {@link checkPayload}); returns the position after
 * it. For a writer that stores a batch of frames as one buffer, not a buffer per frame.
 */
export function encodeFrameAt(bytes: Buffer, at: number, header: Pick<Frame, 'seq' | 'index' | 'epoch' | 'flags'>, payload: Uint8Array): number {
  bytes.fill(0, at, at + HEADER_BYTES);
  bytes.writeUInt32LE(payload.byteLength, at);
  bytes.writeUInt8(header.flags, at + 4);
  bytes.writeUInt32LE(header.epoch, at + 8);
  writeU64(bytes, header.seq, at + 16);
  writeU64(bytes, header.index, at + 24);
  bytes.set(payload, at + HEADER_BYTES);
  return at + HEADER_BYTES + payload.byteLength;
}

/** Throws the BadRequestError of a payload too large for one frame. */
export function checkPayload(payload: Uint8Array): void {
  if (payload.byteLength > MAX_PAYLOAD_BYTES) throw new BadRequestError(`a frame holds at most ${MAX_PAYLOAD_BYTES} bytes, got ${payload.byteLength}`, { field: 'payload' });
}

const TWO_32 = 2 ** 32;

/** Writes a safe integer ≥ 0 as a little-endian u64 in two u32 halves (no BigInt per field). */
function writeU64(bytes: Buffer, value: number, at: number): void {
  bytes.writeUInt32LE(value % TWO_32, at);
  bytes.writeUInt32LE(Math.floor(value / TWO_32), at + 4);
}

/** Reads a little-endian u64 written by {@link writeU64}. */
function readU64(bytes: Buffer, at: number): number {
  return bytes.readUInt32LE(at) + bytes.readUInt32LE(at + 4) * TWO_32;
}

/**
 * Cuts stored bytes back into frames, whatever the pieces they arrive in. Bytes must be pushed
 * in order from a frame boundary (`start`).
 */
export class FrameDecoder {
  #pending: Buffer = Buffer.alloc(0);
  #pos: number;

  constructor(start: number) {
    this.#pos = start;
  }

  /** Position of the first byte not yet decoded into a frame. */
  get position(): number {
    return this.#pos;
  }

  /** Adds bytes; returns the frames they complete. */
  push(bytes: Uint8Array): Frame[] {
    let buffer = this.#pending.byteLength === 0 ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.concat([this.#pending, bytes]);
    const frames: Frame[] = [];
    let at = 0;
    while (buffer.byteLength - at >= HEADER_BYTES) {
      const length = buffer.readUInt32LE(at);
      if (length > MAX_PAYLOAD_BYTES) throw new Error(`pipe stream corrupt at byte ${this.#pos}: a frame of ${length} bytes`);
      if (buffer.byteLength - at < HEADER_BYTES + length) break;
      const end = this.#pos + HEADER_BYTES + length;
      frames.push({
        flags: buffer.readUInt8(at + 4),
        epoch: buffer.readUInt32LE(at + 8),
        seq: readU64(buffer, at + 16),
        index: readU64(buffer, at + 24),
        // A copy: the pipe's reader may hand the frame on long after this buffer is gone.
        payload: Uint8Array.prototype.slice.call(buffer, at + HEADER_BYTES, at + HEADER_BYTES + length),
        pos: this.#pos,
        end,
      });
      this.#pos = end;
      at += HEADER_BYTES + length;
    }
    buffer = buffer.subarray(at);
    this.#pending = buffer.byteLength === 0 ? Buffer.alloc(0) : Buffer.from(buffer);
    return frames;
  }
}
