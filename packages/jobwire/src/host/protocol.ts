/**
 * The job host's wire protocol: what a server (or worker) and its job host say to each other
 * over `<home>/host.sock`.
 *
 * Framing, the same in every version so that a HELLO can always be read:
 * `u32 length (big-endian, of what follows) | u8 kind | body`.
 *
 * | kind | name    | direction      | body                                                        |
 * |------|---------|----------------|-------------------------------------------------------------|
 * | 1    | JSON    | both           | one UTF-8 JSON object with a `type` ({@link ToHost}, {@link FromHost}) |
 * | 2    | OUTPUT  | host → client  | `u8 idLength, id, u8 channel (0 stdout, 1 stderr), u64 pos, u64 offset, bytes` |
 * | 3    | DURABLE | host → client  | `u8 idLength, id, u64 durable end of the merged output`    |
 * | 4    | STDIN   | client → host  | `u8 idLength, id, u64 stdin offset, bytes`                  |
 *
 * Output and stdin bytes travel raw (no base64, no JSON): they are the throughput. Control
 * messages are JSON: rare, and readable in a trace. DURABLE frames and `stdin-ack` messages
 * carry the latest value per job and may lag by a couple of milliseconds: the host sends them
 * with the next frame it writes anyway, to save a client a wake-up per line on interactive jobs.
 * A DURABLE value is about the files, and may be ahead of the output a subscription has
 * received so far.
 *
 * Versions: the client's first frame is `{"type":"hello","versions":[...]}`; the host answers
 * `welcome` with the highest version both speak, or `refused` naming its own and closes. The
 * rule that keeps upgrades from interrupting work: **a host keeps serving every version it was
 * built with, and a new client keeps speaking at least the previous version**, so a host left
 * running by the previous jobwire keeps serving its jobs under a new server.
 *
 * | version | adds |
 * |---------|------|
 * | 1       | everything above |
 * | 2       | a start's `followDeadline` (the host stops a job no live client has followed for that long); a client speaking 2 keeps its connection live with a `ping` at least every {@link KEEPALIVE_MS}. `output-ack` (a client has taken a job's output up to a position): a job whose description has an `outputWindow` is read at most that far beyond the newest ack, so it blocks once its reader lags |
 * | 3       | a start's `subscribe.forget`: the host forgets the job itself once it has sent this connection the job's `exit` (its end is in `exit.json` by then), saving a `forget` request and its reply per job |
 * | 4       | `base-env`: the environment jobs start from, sent once per connection (about 2 KB of JSON that every start carried); a start's `baseEnvDiff` then names only what differs from it (usually nothing) instead of a whole `baseEnv`. A client that agreed on 3 or less sends the whole `baseEnv` in every start, as before |
 *
 * A client sends version-2 (3, 4) fields only on a connection that agreed on 2 (3, 4): a version-1 host would
 * ignore them (and so never stop such a job by itself, and read a windowed job's output as it
 * comes). A client that agreed on version 1 sends no acks; the host then ignores `outputWindow`.
 * @module
 */
import type { OutputChannel, OutputChunk } from '@jobwire/client';
import type { JobDescription } from '@jobwire/client';
import type { EnvDiff } from '../env-diff.js';
import type { OsAccount } from '../executors/local/os-account.js';
import type { JobProcess, ProcessIdentity } from '../executors/local/process-identity.js';

/** Protocol versions this build speaks, oldest first. */
export const PROTOCOL_VERSIONS: readonly number[] = [1, 2, 3, 4];

/** The first version with {@link FollowDeadline}. */
export const FOLLOW_DEADLINE_VERSION = 2;

/** The first version where a start may ask the host to forget the job after its exit (`subscribe.forget`). */
export const FORGET_ON_EXIT_VERSION = 3;

/** The first version with `base-env` and a start's `baseEnvDiff`. */
export const BASE_ENV_VERSION = 4;

/**
 * How often a client that sets follow deadlines sends a frame (a `ping` when it has nothing else
 * to say): a connection the host has not heard from for a follow deadline does not count as
 * following, so a client that is stopped (SIGSTOP) or hangs is treated as gone.
 */
export const KEEPALIVE_MS = 250;

/**
 * A job's follow deadline (protocol version 2): once no live connection has followed the job
 * (subscribed to it, and heard from) for `afterMs`, the host stops it — SIGTERM to its group,
 * SIGKILL after `graceMs` — and records why as the exit's `stoppedBy`. A distributed worker sets
 * it so that the job of a worker that is gone is stopped before the cluster hands it on; the
 * embedded server sets none (nobody would run its jobs elsewhere).
 */
export interface FollowDeadline {
  afterMs: number;
  graceMs: number;
}

/** Frame kinds (the byte after the length). */
export const FrameKind = {
  json: 1,
  output: 2,
  durable: 3,
  stdin: 4,
} as const;
/** One of {@link FrameKind}'s values. */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/**
 * Largest frame either side accepts (kind byte and body). OUTPUT frames are at most
 * {@link OUTPUT_FRAME_BYTES} (older hosts: a pipe read, or a page read from the files); stdin
 * frames at most what a client chooses to send, which this bounds.
 */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Most output bytes the host puts in one OUTPUT frame: the chunks of one job and channel that a
 * connection is sent in one turn of the host's event loop (several pipe reads, or a page read
 * from the files) go out as one frame of up to this size.
 */
export const OUTPUT_FRAME_BYTES = 256 * 1024;

/** Bytes of output a catching-up subscription reads from the files at a time. */
export const OUTPUT_PAGE_BYTES = 1024 * 1024;

/** Job ids travel with a one-byte length: the store's ids are at most 255 characters. */
const MAX_ID_BYTES = 255;

/** Where a job's output storage stands. */
export type StorageState =
  /** Output is being stored as it comes. */
  | { state: 'ok' }
  /**
   * Output could not be written: the disk (or quota) is `full`, or writes are `failing` for
   * another reason. The host keeps the unwritten bytes, stops reading the job's output (so the
   * job blocks) and retries; nothing is dropped.
   */
  | { state: 'full' | 'failing'; message: string; since: string };

/** How a job ended: `exit.json` in its output folder, and the `exit` message. */
export interface ExitRecord {
  /** Exit code, null when killed by a signal or never started. */
  exitCode: number | null;
  /** Signal name when killed by one. */
  signal: string | null;
  /** Why the job failed to start or run, or the function's error (message and stack). */
  error?: string;
  /** A function job's JSON result. */
  result?: unknown;
  /** Why the host stopped the job (the `reason` of a terminate, or `maxRuntime`); absent when it ended by itself. */
  stoppedBy?: string;
  /** When the host started it (ISO 8601). */
  startedAt: string;
  /** When it ended and all its output was stored (ISO 8601). */
  endedAt: string;
  /**
   * Output totals: merged end, per-channel sizes, and the index records stored (`records`: absent
   * from hosts of earlier builds), so that a client closing the job's stream log need not read
   * the files again to learn where they end.
   */
  output: { end: number; stdout: number; stderr: number; records?: number };
  /** Stdin bytes the job consumed, and whether it was sent EOF. */
  stdin: { consumed: number; closed: boolean };
}

/** What a start request carries: everything {@link StartSpec} has but its callbacks. */
export interface StartJob {
  jobId: string;
  /** The validated description. */
  description: JobDescription;
  /** Working directory when the description gives none. */
  defaultCwd: string;
  /** Extra environment (JOBWIRE_URL, JOBWIRE_JOB_ID, ...). */
  env: Record<string, string>;
  /** The environment the job starts from (the submitting server's). @defaultValue the host's own */
  baseEnv?: Record<string, string>;
  /**
   * Protocol version 4, instead of `baseEnv`: the job starts from the connection's `base-env`
   * changed by this (see {@link EnvDiff}). A client sends it only on a connection that agreed on 4
   * and after a `base-env`; the client's `start` (client.ts) makes it from `baseEnv` by itself.
   */
  baseEnvDiff?: EnvDiff;
  /** The OS account to run as (root hosts only). @defaultValue the host's own account */
  account?: OsAccount;
  /** Milliseconds between SIGTERM and SIGKILL when the host stops the job (maxRuntime). @defaultValue 10000 */
  graceMs?: number;
  /**
   * A line the job's stderr opens with, stored before anything of the job's (where the job
   * starts, when not where it was submitted from). A host of an older build ignores it. @defaultValue none
   */
  notice?: string;
  /** Protocol version 2: stop the job when no client follows it (see {@link FollowDeadline}). @defaultValue none: it runs until it ends */
  followDeadline?: FollowDeadline;
}

/** A job as the host sees it: returned by start, list and subscribe. */
export interface HostJobState {
  jobId: string;
  /** Pid of the job's process-group leader; null when it never started. */
  pid: number | null;
  /** Leader and runner (this host) identities, to be recorded with the job. */
  process: JobProcess | null;
  startedAt: string;
  interactive: boolean;
  tty: boolean;
  /** Current terminal size of a tty job. */
  size: { cols: number; rows: number } | null;
  output: {
    /** Merged end of what the job wrote (in memory or stored). */
    end: number;
    stdout: number;
    stderr: number;
    /** Merged end of what is stored in the files (readable there by anyone). */
    durable: number;
  };
  stdin: {
    /** Stdin bytes the host has accepted (the next offset it expects). */
    received: number;
    /** Stdin bytes the job has read. */
    consumed: number;
    /** Stdin length at which EOF is (or will be) sent; null while stdin is open. */
    closeAt: number | null;
    /** EOF has been sent to the job. */
    closed: boolean;
  };
  storage: StorageState;
  /** Latest progress message of a function job. */
  progress: string | null;
  /** Reason of the first stop request, once one came. */
  stoppedBy: string | null;
  /** Its follow deadline, if it has one (hosts of protocol version 2 on; older ones leave it out). */
  followDeadline?: FollowDeadline | null;
  /** Set once the job ended and all its output is stored. */
  exit: ExitRecord | null;
}

/** What the host says about itself in `welcome` and `host.json`. */
export interface HostInfo {
  pid: number;
  identity: ProcessIdentity;
  /** Protocol versions the host speaks. */
  versions: number[];
  /** jobwire version of the host's code. */
  jobwireVersion: string;
  startedAt: string;
  /** Absolute path of the socket. */
  socket: string;
}

/** Wire form of an error in a reply (the same shape as the HTTP API's). */
export interface WireError {
  code: string;
  message: string;
  field?: string;
}

/** Requests a client sends (JSON frames). Each but `hello` carries `rid`, echoed in the reply. */
export type ToHost =
  /** First frame: the versions the client speaks. */
  | { type: 'hello'; versions: number[]; agent?: string }
  /**
   * Starts a job; idempotent per jobId (a repeat answers the existing job's state). With
   * `subscribe`, the connection also follows the job from position 0 (as `subscribe` would),
   * saving a round trip. Reply: `{ job, existing }`. With `subscribe.forget` (version 3), the
   * host forgets the job once it has sent this connection its `exit`, as a `forget` would.
   */
  | { type: 'start'; rid: number; job: StartJob; subscribe?: { output: boolean; forget?: boolean } }
  /** Jobs the host holds (running, or ended and not yet forgotten). Reply: `{ jobs }`. */
  | { type: 'list'; rid: number }
  /**
   * Follows a job: with `output`, OUTPUT frames from merged position `from` (replayed from the
   * files or memory, then live, no gap, no repeat); always DURABLE frames and the job's events,
   * and `exit` after the last output. Reply: `{ job }`.
   */
  | { type: 'subscribe'; rid: number; jobId: string; from: number; output: boolean }
  | { type: 'unsubscribe'; rid: number; jobId: string }
  /** Sends EOF once the job has read `offset` stdin bytes (all stdin up to there). */
  | { type: 'close-stdin'; rid: number; jobId: string; offset: number }
  | { type: 'resize'; rid: number; jobId: string; cols: number; rows: number }
  /** SIGTERM to the job's group (function jobs: abort first), SIGKILL after `graceMs`. */
  | { type: 'terminate'; rid: number; jobId: string; graceMs: number; reason: string }
  /** The client has stored the job's exit: the host may forget it. Conflict while it runs. */
  | { type: 'forget'; rid: number; jobId: string }
  | { type: 'ping'; rid: number }
  /**
   * Version 4: the environment later starts on this connection start from (with their
   * `baseEnvDiff`); replaces the previous one. Jobs started already keep theirs. Reply: `{}`.
   */
  | { type: 'base-env'; rid: number; env: Record<string, string> }
  /**
   * Version 2: the client has taken the job's output up to merged position `end` (see
   * `outputWindow` in the job description). Reply: `{}`.
   */
  | { type: 'output-ack'; rid: number; jobId: string; end: number };

/** Messages the host sends (JSON frames). */
export type FromHost =
  | { type: 'welcome'; version: number; host: HostInfo }
  | { type: 'refused'; versions: number[]; message: string }
  | { type: 'reply'; rid: number; result: unknown }
  | { type: 'reply'; rid: number; error: WireError }
  /** A subscribed job ended; sent after its last OUTPUT frame. */
  | { type: 'exit'; jobId: string; exit: ExitRecord }
  | { type: 'storage'; jobId: string; storage: StorageState }
  | { type: 'progress'; jobId: string; message: string }
  | { type: 'stdin-ack'; jobId: string; consumed: number }
  /** A STDIN frame was refused (gap, closed stdin, batch job, too much unread). */
  | { type: 'stdin-refused'; jobId: string; error: WireError }
  /** The host is closing this connection because of what the client sent. */
  | { type: 'fatal'; error: WireError };

/**
 * Holds a socket's writes until the end of the current turn of the event loop (its check phase),
 * so that the frames one turn produces — the replies and exits of several jobs, a start per
 * freed slot — leave in one system call. On a VM each write that wakes the other side costs far
 * more than the bytes (see docs/benchmarks.md); a turn adds no wait worth counting.
 * {@link keep} holds them longer, until a release or a bound.
 */
export class TurnCork {
  #corked = false;
  #turnEnd = false;
  /** Keeps not yet released in the current hold. */
  #keeps = 0;
  /** Counts holds, so that a release from an ended one changes nothing. */
  #hold = 0;
  /** Ends the current hold at the bound its first keep set. */
  #bound: NodeJS.Timeout | undefined;

  constructor(private readonly socket: { cork(): void; uncork(): void }) {}

  /** Call before writing: the writes of this turn go out together at its end. */
  hold(): void {
    if (!this.#corked) {
      this.#corked = true;
      this.socket.cork();
    }
    if (this.#turnEnd) return;
    this.#turnEnd = true;
    setImmediate(() => {
      this.#turnEnd = false;
      if (this.#keeps > 0 || !this.#corked) return;
      this.#corked = false;
      this.socket.uncork();
    });
  }

  /**
   * Holds every write until each keep is released (what the turn of the last release writes goes
   * with them) or `maxMs` after the first keep of this hold, whichever comes first. A later keep
   * does not move that bound: a stream of keeps cannot hold the writes for ever. Releasing twice,
   * or after the bound, changes nothing.
   */
  keep(maxMs: number): () => void {
    this.hold();
    this.#keeps++;
    const hold = this.#hold;
    this.#bound ??= setTimeout(() => this.#endHold(), maxMs);
    let kept = true;
    return () => {
      if (!kept || hold !== this.#hold) return;
      kept = false;
      if (--this.#keeps === 0) this.#endHold();
    };
  }

  #endHold(): void {
    clearTimeout(this.#bound);
    this.#bound = undefined;
    this.#keeps = 0;
    this.#hold++;
    this.hold();
  }
}

/** A decoded frame. */
export type Frame =
  | { kind: typeof FrameKind.json; message: unknown }
  | { kind: typeof FrameKind.output; jobId: string; chunk: OutputChunk }
  | { kind: typeof FrameKind.durable; jobId: string; durable: number }
  | { kind: typeof FrameKind.stdin; jobId: string; offset: number; data: Buffer };

/** A frame that breaks the protocol; the connection cannot go on after it. */
export class FrameError extends Error {
  override name = 'FrameError';
}

/** The version a hello settles on: the highest both speak, or undefined when none. */
export function chooseVersion(ours: readonly number[], theirs: readonly number[]): number | undefined {
  let best: number | undefined;
  for (const v of theirs) if (ours.includes(v) && (best === undefined || v > best)) best = v;
  return best;
}

/** Encodes a JSON frame. */
export function jsonFrame(message: ToHost | FromHost): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const frame = Buffer.allocUnsafe(5 + body.length);
  frame.writeUInt32BE(1 + body.length, 0);
  frame[4] = FrameKind.json;
  body.copy(frame, 5);
  return frame;
}

/**
 * The header of an OUTPUT frame; the chunk's bytes follow it on the wire as they are (written
 * separately, so a 64 KiB chunk is never copied to add 30 bytes in front).
 */
export function outputHeader(jobId: string, channel: OutputChannel, pos: number, offset: number, length: number): Buffer {
  const id = idBytes(jobId);
  const header = Buffer.allocUnsafe(4 + 1 + 1 + id.length + 1 + 16);
  let at = header.writeUInt32BE(1 + 1 + id.length + 1 + 16 + length, 0);
  header[at++] = FrameKind.output;
  header[at++] = id.length;
  at += id.copy(header, at);
  header[at++] = channel === 'stdout' ? 0 : 1;
  at = writeU64(header, pos, at);
  writeU64(header, offset, at);
  return header;
}

/** Encodes a DURABLE frame. */
export function durableFrame(jobId: string, durable: number): Buffer {
  const id = idBytes(jobId);
  const frame = Buffer.allocUnsafe(4 + 1 + 1 + id.length + 8);
  let at = frame.writeUInt32BE(1 + 1 + id.length + 8, 0);
  frame[at++] = FrameKind.durable;
  frame[at++] = id.length;
  at += id.copy(frame, at);
  writeU64(frame, durable, at);
  return frame;
}

/** The header of a STDIN frame; the bytes follow it. */
export function stdinHeader(jobId: string, offset: number, length: number): Buffer {
  const id = idBytes(jobId);
  const header = Buffer.allocUnsafe(4 + 1 + 1 + id.length + 8);
  let at = header.writeUInt32BE(1 + 1 + id.length + 8 + length, 0);
  header[at++] = FrameKind.stdin;
  header[at++] = id.length;
  at += id.copy(header, at);
  writeU64(header, offset, at);
  return header;
}

/**
 * Splits a byte stream into frames. Bytes arrive in pieces of any size; a frame's body is
 * handed out as a view of the received buffers where it lies in one of them, else copied once.
 * OUTPUT frames are never copied: once a frame's header is in, its bytes are handed out as they
 * arrive, as views of the received buffers, so one frame may come out as several OUTPUT frames
 * of contiguous positions (the throughput path: a frame of 256 KiB spans several socket reads).
 */
export class FrameDecoder {
  readonly #pieces: Buffer[] = [];
  #buffered = 0;
  /** The OUTPUT frame whose bytes are being handed out, and how many of them are still to come. */
  #output: { jobId: string; channel: OutputChannel; pos: number; offset: number; left: number } | undefined;

  /** Feeds received bytes; returns the frames completed by them. Throws a {@link FrameError}. */
  push(data: Buffer): Frame[] {
    this.#pieces.push(data);
    this.#buffered += data.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.#output !== undefined) {
        if (!this.#streamOutput(frames)) break;
        continue;
      }
      if (this.#buffered < 4) break;
      const length = this.#peekLength();
      if (length < 1 || length > MAX_FRAME_BYTES) throw new FrameError(`a frame of ${length} bytes is outside 1..${MAX_FRAME_BYTES}`);
      if (this.#buffered >= 5 && this.#peekByte(4) === FrameKind.output) {
        // The header first (kind, id, channel, pos, offset), then the bytes as they come.
        if (this.#buffered < 6) break;
        const headerBytes = Math.min(length, 1 + 1 + this.#peekByte(5) + 17);
        if (this.#buffered < 4 + headerBytes) break;
        this.#take(4);
        const header = decodeOutputHeader(this.#take(headerBytes));
        this.#output = { ...header, left: length - headerBytes };
        // An empty frame is still a frame (its position is news).
        if (this.#output.left === 0) this.#streamOutput(frames);
        continue;
      }
      if (this.#buffered < 4 + length) break;
      this.#take(4);
      frames.push(decodeBody(this.#take(length)));
    }
    return frames;
  }

  /** Hands out what has come of the current OUTPUT frame; false when it waits for more bytes. */
  #streamOutput(frames: Frame[]): boolean {
    const output = this.#output!;
    if (output.left > 0 && this.#buffered === 0) return false;
    const first = this.#pieces[0];
    const data = output.left === 0 || first === undefined ? Buffer.alloc(0) : this.#take(Math.min(output.left, first.length));
    frames.push({ kind: FrameKind.output, jobId: output.jobId, chunk: { channel: output.channel, pos: output.pos, offset: output.offset, data } });
    output.pos += data.length;
    output.offset += data.length;
    output.left -= data.length;
    if (output.left === 0) this.#output = undefined;
    return true;
  }

  #peekLength(): number {
    const first = this.#pieces[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    const head = Buffer.concat(this.#pieces, Math.min(this.#buffered, 4));
    return head.readUInt32BE(0);
  }

  /** The buffered byte at index `at` (< the bytes buffered). */
  #peekByte(at: number): number {
    let i = at;
    for (const piece of this.#pieces) {
      if (i < piece.length) return piece[i]!;
      i -= piece.length;
    }
    throw new RangeError(`byte ${at} is not buffered`);
  }

  /** Removes and returns the next `n` buffered bytes (a view when they lie in one piece). */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#pieces[0]!;
    if (first.length > n) {
      this.#pieces[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#pieces.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const piece = this.#pieces[0]!;
      const use = Math.min(piece.length, n - filled);
      piece.copy(out, filled, 0, use);
      filled += use;
      if (use === piece.length) this.#pieces.shift();
      else this.#pieces[0] = piece.subarray(use);
    }
    return out;
  }
}

/** The header of an OUTPUT frame: its body up to the bytes (kind, id, channel, pos, offset). */
function decodeOutputHeader(body: Buffer): { jobId: string; channel: OutputChannel; pos: number; offset: number } {
  const { jobId, at } = readId(body, 1);
  need(body, at + 17, 'OUTPUT');
  const channel = body[at] === 0 ? 'stdout' : body[at] === 1 ? 'stderr' : undefined;
  if (channel === undefined) throw new FrameError(`an OUTPUT frame names channel ${body[at]}`);
  return { jobId, channel, pos: readU64(body, at + 1), offset: readU64(body, at + 9) };
}

function decodeBody(body: Buffer): Frame {
  const kind = body[0];
  switch (kind) {
    case FrameKind.json: {
      let message: unknown;
      try {
        message = JSON.parse(body.toString('utf8', 1));
      } catch (error) {
        throw new FrameError(`a JSON frame does not hold JSON: ${(error as Error).message}`, { cause: error });
      }
      if (message === null || typeof message !== 'object' || Array.isArray(message)) throw new FrameError('a JSON frame must hold an object');
      return { kind, message };
    }
    case FrameKind.durable: {
      const { jobId, at } = readId(body, 1);
      need(body, at + 8, 'DURABLE');
      return { kind, jobId, durable: readU64(body, at) };
    }
    case FrameKind.stdin: {
      const { jobId, at } = readId(body, 1);
      need(body, at + 8, 'STDIN');
      return { kind, jobId, offset: readU64(body, at), data: body.subarray(at + 8) };
    }
    default:
      throw new FrameError(`unknown frame kind ${String(kind)}`);
  }
}

function need(body: Buffer, length: number, what: string): void {
  if (body.length < length) throw new FrameError(`a ${what} frame is too short (${body.length} bytes)`);
}

function readId(body: Buffer, at: number): { jobId: string; at: number } {
  need(body, at + 1, 'binary');
  const length = body[at]!;
  need(body, at + 1 + length, 'binary');
  return { jobId: body.toString('utf8', at + 1, at + 1 + length), at: at + 1 + length };
}

function idBytes(jobId: string): Buffer {
  const id = Buffer.from(jobId, 'utf8');
  if (id.length === 0 || id.length > MAX_ID_BYTES) throw new RangeError(`a job id must be 1 to ${MAX_ID_BYTES} bytes, got ${id.length}`);
  return id;
}

// Positions are safe integers (< 2^53), written as two 32-bit halves to avoid BigInt.
function writeU64(buffer: Buffer, value: number, at: number): number {
  buffer.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at);
  buffer.writeUInt32BE(value >>> 0, at + 4);
  return at + 8;
}

function readU64(buffer: Buffer, at: number): number {
  const value = buffer.readUInt32BE(at) * 0x1_0000_0000 + buffer.readUInt32BE(at + 4);
  if (!Number.isSafeInteger(value)) throw new FrameError(`a position of ${value} is beyond 2^53`);
  return value;
}
