/**
 * `@jobwire/client/protocol` — the attach protocol: binary WebSocket frames with a one-byte
 * channel tag, their encoders and decoder, shared by the server, the SDK and the dashboard. SDK
 * users do not need it (`Client.attach` speaks it for them), so it lives behind this subpath
 * rather than in the package root. Uses only Uint8Array/DataView so it runs in browsers too.
 *
 * Frame layouts (integers big-endian; u48 = 6 bytes, enough for 256 TiB of output):
 * | tag | name      | direction | body |
 * |-----|-----------|-----------|------|
 * | 0   | STDIN     | c → s     | offset:u48, bytes (offset = position of the first byte in the job's stdin) |
 * | 1   | STDOUT    | s → c     | pos:u48, offset:u48, bytes |
 * | 2   | STDERR    | s → c     | pos:u48, offset:u48, bytes |
 * | 3   | STATUS    | s → c     | JSON {@link StatusFrame}; the frame with `final: true` is the last frame |
 * | 4   | RESIZE    | c → s     | cols:u16, rows:u16 |
 * | 5   | CLOSE     | c → s     | channel:u8 (0 = stdin): end of that channel (stdin EOF) |
 * | 6   | FLOW      | c → s     | 0 = pause output, 1 = resume output |
 * | 7   | STDIN_ACK | s → c     | consumed:u48, window:u48 — the job has read `consumed` bytes of stdin; the client may have at most `window` bytes beyond it in flight |
 * | 8   | ERROR     | s → c     | JSON {code, message} |
 * | 9   | HELLO     | s → c     | JSON {@link HelloFrame}, always the first frame |
 * @module
 */
import { FrameError } from './errors.js';
import type { ExitStatus, JobStatus, OutputChannel } from './types.js';

export { FrameError };

/** Channel tags. */
export const Tag = {
  STDIN: 0,
  STDOUT: 1,
  STDERR: 2,
  STATUS: 3,
  RESIZE: 4,
  CLOSE: 5,
  FLOW: 6,
  STDIN_ACK: 7,
  ERROR: 8,
  HELLO: 9,
} as const;
/** One of the channel tags. */
export type Tag = (typeof Tag)[keyof typeof Tag];

/** First frame of every attach session. */
export interface HelloFrame {
  jobId: string;
  /** Merged output position the server starts sending from. */
  from: number;
  /** Bytes of stdin the server has already accepted (resume a stdin writer from here). */
  stdinOffset: number;
  /** Whether stdin has been closed. */
  stdinClosed: boolean;
  status: JobStatus;
  /** The job's progress message at the greeting (absent from older servers: read as null). */
  progress?: string | null;
  /** Why the job waits (Queued) or is held back, at the greeting, when known (absent from older servers). */
  reason?: string | null;
  interactive: boolean;
  tty: boolean;
}

/** A status change; `final: true` marks the exit frame, sent after all output. */
export interface StatusFrame extends ExitStatus {
  final: boolean;
  progress?: string | null;
  /** Why a Queued job waits (or a Running one is held back), when known; absent from older servers. */
  reason?: string | null;
}

/** Decoded frame. */
export type Frame =
  | { tag: typeof Tag.STDIN; offset: number; data: Uint8Array }
  | { tag: typeof Tag.STDOUT | typeof Tag.STDERR; pos: number; offset: number; data: Uint8Array }
  | { tag: typeof Tag.STATUS; status: StatusFrame }
  | { tag: typeof Tag.RESIZE; cols: number; rows: number }
  | { tag: typeof Tag.CLOSE; channel: number }
  | { tag: typeof Tag.FLOW; resume: boolean }
  | { tag: typeof Tag.STDIN_ACK; consumed: number; window: number }
  | { tag: typeof Tag.ERROR; code: string; message: string }
  | { tag: typeof Tag.HELLO; hello: HelloFrame };

const enc = new TextEncoder();
const dec = new TextDecoder();

function putU48(view: DataView, at: number, n: number): void {
  view.setUint16(at, Math.floor(n / 2 ** 32));
  view.setUint32(at + 2, n >>> 0);
}

function getU48(view: DataView, at: number): number {
  return view.getUint16(at) * 2 ** 32 + view.getUint32(at + 2);
}

function header(tag: Tag, size: number): { buf: Uint8Array; view: DataView } {
  const buf = new Uint8Array(size);
  buf[0] = tag;
  return { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength) };
}

/** Header size of an output frame (tag + pos + offset). */
export const OUTPUT_HEADER = 13;

/** Encodes an output frame. */
export function encodeOutput(channel: OutputChannel, pos: number, offset: number, data: Uint8Array): Uint8Array {
  const buf = new Uint8Array(OUTPUT_HEADER + data.byteLength);
  writeOutputHeader(buf, channel, pos, offset);
  buf.set(data, OUTPUT_HEADER);
  return buf;
}

/**
 * Writes the {@link OUTPUT_HEADER} bytes of an output frame at the start of `frame`, whose
 * bytes from `OUTPUT_HEADER` on the caller fills (a server gathering several chunks into one
 * frame, in a buffer it need not zero).
 */
export function writeOutputHeader(frame: Uint8Array, channel: OutputChannel, pos: number, offset: number): void {
  if (frame.byteLength < OUTPUT_HEADER) throw new RangeError(`an output frame has at least ${OUTPUT_HEADER} bytes, got ${frame.byteLength}`);
  frame[0] = channel === 'stdout' ? Tag.STDOUT : Tag.STDERR;
  const view = new DataView(frame.buffer, frame.byteOffset, OUTPUT_HEADER);
  putU48(view, 1, pos);
  putU48(view, 7, offset);
}

/** Encodes a stdin frame. */
export function encodeStdin(offset: number, data: Uint8Array): Uint8Array {
  const { buf, view } = header(Tag.STDIN, 7 + data.byteLength);
  putU48(view, 1, offset);
  buf.set(data, 7);
  return buf;
}

function encodeJson(tag: Tag, value: unknown): Uint8Array {
  const body = enc.encode(JSON.stringify(value));
  const { buf } = header(tag, 1 + body.byteLength);
  buf.set(body, 1);
  return buf;
}

/** Encodes a status (or, with `final`, exit) frame. */
export function encodeStatus(status: StatusFrame): Uint8Array {
  return encodeJson(Tag.STATUS, status);
}

/** Encodes the hello frame. */
export function encodeHello(hello: HelloFrame): Uint8Array {
  return encodeJson(Tag.HELLO, hello);
}

/** Encodes an error frame. */
export function encodeError(code: string, message: string): Uint8Array {
  return encodeJson(Tag.ERROR, { code, message });
}

/** Encodes a terminal resize. */
export function encodeResize(cols: number, rows: number): Uint8Array {
  const { buf, view } = header(Tag.RESIZE, 5);
  view.setUint16(1, cols);
  view.setUint16(3, rows);
  return buf;
}

/** Encodes end-of-channel; channel 0 is stdin. */
export function encodeClose(channel = 0): Uint8Array {
  const { buf } = header(Tag.CLOSE, 2);
  buf[1] = channel;
  return buf;
}

/** Encodes pause (false) or resume (true) of output. */
export function encodeFlow(resume: boolean): Uint8Array {
  const { buf } = header(Tag.FLOW, 2);
  buf[1] = resume ? 1 : 0;
  return buf;
}

/** Encodes a stdin acknowledgement. */
export function encodeStdinAck(consumed: number, window: number): Uint8Array {
  const { buf, view } = header(Tag.STDIN_ACK, 13);
  putU48(view, 1, consumed);
  putU48(view, 7, window);
  return buf;
}

function need(frame: Uint8Array, size: number, what: string): void {
  if (frame.byteLength < size) throw new FrameError(`${what} frame too short: ${frame.byteLength} bytes`);
}

function parseJson(frame: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(dec.decode(frame.subarray(1)));
  } catch (err) {
    throw new FrameError(`${what} frame is not JSON`, { cause: err });
  }
  // `null`, numbers and arrays parse too; the JSON frames all carry an object.
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FrameError(`${what} frame is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Decodes one frame. Data fields are views into `frame` (no copy). */
export function decodeFrame(frame: Uint8Array): Frame {
  need(frame, 1, 'empty');
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const tag = frame[0] as Tag;
  switch (tag) {
    case Tag.STDIN:
      need(frame, 7, 'stdin');
      return { tag, offset: getU48(view, 1), data: frame.subarray(7) };
    case Tag.STDOUT:
    case Tag.STDERR:
      need(frame, OUTPUT_HEADER, 'output');
      return { tag, pos: getU48(view, 1), offset: getU48(view, 7), data: frame.subarray(OUTPUT_HEADER) };
    case Tag.STATUS:
      return { tag, status: parseJson(frame, 'status') as unknown as StatusFrame };
    case Tag.RESIZE:
      need(frame, 5, 'resize');
      return { tag, cols: view.getUint16(1), rows: view.getUint16(3) };
    case Tag.CLOSE:
      need(frame, 2, 'close');
      return { tag, channel: frame[1]! };
    case Tag.FLOW:
      need(frame, 2, 'flow');
      return { tag, resume: frame[1] === 1 };
    case Tag.STDIN_ACK:
      need(frame, 13, 'stdin-ack');
      return { tag, consumed: getU48(view, 1), window: getU48(view, 7) };
    case Tag.ERROR: {
      const e = parseJson(frame, 'error') as { code?: string; message?: string };
      return { tag, code: String(e.code ?? 'unknown'), message: String(e.message ?? '') };
    }
    case Tag.HELLO:
      return { tag, hello: parseJson(frame, 'hello') as unknown as HelloFrame };
    default: {
      const never: never = tag;
      throw new FrameError(`unknown frame tag ${String(never)}`);
    }
  }
}

/** WebSocket close codes used by jobwire (4000-4999 are application codes). */
export const CloseCode = {
  /** Normal end: the exit frame was sent. */
  NORMAL: 1000,
  /** The server is going away (shutdown); reconnect elsewhere. */
  GOING_AWAY: 1001,
  /** A frame broke the protocol. */
  PROTOCOL: 4400,
  UNAUTHORIZED: 4401,
  NOT_FOUND: 4404,
} as const;

/** Default stdin window: bytes a client may have in flight beyond what the job consumed. */
export const DEFAULT_STDIN_WINDOW = 1024 * 1024;
