/**
 * Pipes over the store's stream log. A pipe is one stream (`net.NETWORK.PIPE`): its producer
 * appends encoded frames (`frame.ts`) to the stream's output, so the pipe can be replayed from
 * any position and followed live like any job's output. Each consumer has a cursor stream
 * (`net.NETWORK.PIPE.c.CONSUMER`) whose stdin holds its commits, one fixed record each
 * ({@link CURSOR_RECORD_BYTES}: position, index of the next frame, frames dropped); the newest
 * record is the cursor, so a consumer that restarts resumes where it committed.
 *
 * The queue bound is the lag between the producer and its slowest consumer, counted in frames:
 * the producer's next index minus the lowest index a consumer has *read* up to — its committed
 * cursor, or further when the consumer says it has taken frames it has not finished
 * ({@link PipeWriter.noteRead}: a consumer that holds at most `max` frames taken and not
 * committed, as a network's js job does). So the bound counts the frames waiting in the pipe, as
 * an OS pipe's buffer does, and a consumer's own window of at most `max` frames comes on top:
 * frames stored and not committed are at most twice the bound. Commits alone decide where a
 * consumer resumes. With `overflow: block` the writer waits while the lag is at the bound and
 * goes on once it fell to half the bound (its low-water mark: it then writes half a queue or
 * more at once, not a frame per commit); with `drop-newest` it drops the new frame (counted); with
 * `drop-oldest` it never waits and each reader keeps only the newest `max` frames it has not yet
 * taken (the rest counted as its drops). A `latest` pipe never waits: its readers take the newest
 * frame only.
 *
 * Everything here goes through the {@link StreamLog} interface, so the same code runs on the
 * embedded store and on Redis.
 * @module
 */
import { ConflictError } from '@jobwire/client';
import type { OutputChunk, Queue } from '@jobwire/client';
import type { StreamEvent, StreamLog } from '../store/types.js';
import { FrameDecoder, FrameFlag, HEADER_BYTES, checkPayload, encodeFrameAt, hasFlag, type Frame } from './frame.js';

/** Id of the stream a pipe lives in. */
export function pipeStreamId(network: string, pipe: string): string {
  return `net.${network}.${pipe}`;
}

/** Id of the stream holding one consumer's cursor. */
export function cursorStreamId(network: string, pipe: string, consumer: string): string {
  return `net.${network}.${pipe}.c.${consumer}`;
}

/** Bytes of one cursor record: u64 position, u64 next index, u64 dropped (little-endian). */
export const CURSOR_RECORD_BYTES = 24;

/** A consumer's committed place in a pipe. */
export interface Cursor {
  /** Stream position of the next frame to take. */
  pos: number;
  /** Index of the next frame to take. */
  index: number;
  /** Frames this consumer dropped so far. */
  dropped: number;
}

const START: Cursor = { pos: 0, index: 0, dropped: 0 };

/** Reads the newest committed cursor of a consumer (the start when it never committed). */
export async function readCursor(streams: StreamLog, streamId: string): Promise<Cursor> {
  const { stdin } = await streams.sizes(streamId);
  const whole = stdin - (stdin % CURSOR_RECORD_BYTES);
  if (whole === 0) return { ...START };
  const { data } = await streams.readStdin(streamId, whole - CURSOR_RECORD_BYTES, CURSOR_RECORD_BYTES);
  const record = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return { pos: Number(record.readBigUInt64LE(0)), index: Number(record.readBigUInt64LE(8)), dropped: Number(record.readBigUInt64LE(16)) };
}

function encodeCursor(cursor: Cursor): Buffer {
  const record = Buffer.alloc(CURSOR_RECORD_BYTES);
  record.writeBigUInt64LE(BigInt(cursor.pos), 0);
  record.writeBigUInt64LE(BigInt(cursor.index), 8);
  record.writeBigUInt64LE(BigInt(cursor.dropped), 16);
  return record;
}

/** What a pipe's two ends need to know of it. */
export interface PipeIdentity {
  /** The network's name. */
  network: string;
  /** The pipe's name. */
  pipe: string;
  queue: Queue;
}

/** Options of {@link PipeWriter.open}. */
export interface PipeWriterOptions extends PipeIdentity {
  streams: StreamLog;
  /** Consumers whose cursors bound the queue (names, as in the network file). */
  consumers: readonly string[];
}

/** Counters of a pipe writer. */
export interface PipeWriterStats {
  /** Frames of data stored since this writer opened (the end frame not counted). */
  written: number;
  /** Frames dropped by `drop-newest` since this writer opened. */
  dropped: number;
  /** Frames between the producer and its slowest consumer, as last known. */
  lag: number;
}

/** Options of {@link PipeWriter.write}. */
export interface WriteOptions {
  /** Sequence number of the frame. @defaultValue one more than the previous frame's */
  seq?: number;
  /** Extra flags ({@link FrameFlag.GAP}); RESET and END are the writer's own. @defaultValue 0 */
  flags?: number;
  /** Gives up waiting for room (`overflow: block`). */
  signal?: AbortSignal;
}

/**
 * The producer's end of a pipe. Opening it on a pipe that already holds frames continues their
 * index and sequence numbers in a new epoch, and flags its first frame *reset*.
 */
export class PipeWriter {
  readonly #streams: StreamLog;
  readonly #stream: string;
  readonly #identity: PipeIdentity;
  /** Committed next-index of each consumer, as last read. */
  readonly #committed = new Map<string, number>();
  /** Next index each consumer has taken up to, as it told ({@link noteRead}); at least its commit counts. */
  readonly #read = new Map<string, number>();
  readonly #unsubscribes: Array<() => void> = [];
  #waiters: Array<() => void> = [];
  #index: number;
  #seq: number;
  #epoch: number;
  #reset: boolean;
  #ended = false;
  #closed = false;
  /** The newest append (appends land in call order, so it settles last). */
  #lastAppend: Promise<unknown> = Promise.resolve();
  /** Why an append failed: every later write and the end report it. */
  #error: unknown;
  readonly stats: PipeWriterStats = { written: 0, dropped: 0, lag: 0 };

  private constructor(options: PipeWriterOptions, resume: { index: number; seq: number; epoch: number; reset: boolean }) {
    this.#streams = options.streams;
    this.#identity = { network: options.network, pipe: options.pipe, queue: options.queue };
    this.#stream = pipeStreamId(options.network, options.pipe);
    this.#index = resume.index;
    this.#seq = resume.seq;
    this.#epoch = resume.epoch;
    this.#reset = resume.reset;
  }

  /** Opens the producer's end: learns where a previous producer stopped, and starts following the consumers' cursors. */
  static async open(options: PipeWriterOptions): Promise<PipeWriter> {
    const stream = pipeStreamId(options.network, options.pipe);
    const sizes = await options.streams.sizes(stream);
    if (sizes.outputClosed) throw new ConflictError(`pipe ${options.pipe} of network ${options.network} has ended; it takes no more frames`);
    const last = await lastFrame(options.streams, stream, sizes.end);
    const writer = new PipeWriter(
      options,
      last === undefined ? { index: 0, seq: 0, epoch: 0, reset: false } : { index: last.index + 1, seq: last.seq + 1, epoch: last.epoch + 1, reset: true },
    );
    for (const consumer of options.consumers) {
      const cursorStream = cursorStreamId(options.network, options.pipe, consumer);
      writer.#unsubscribes.push(
        options.streams.subscribe(cursorStream, (event) => {
          if (event.type !== 'stdin') return;
          // The event carries the new records when the store sends them (it may send none): the
          // newest one is the cursor, with no read.
          const end = event.offset + event.data.byteLength;
          if (event.data.byteLength >= CURSOR_RECORD_BYTES && end % CURSOR_RECORD_BYTES === 0) {
            writer.#advance(consumer, Number(Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength).readBigUInt64LE(event.data.byteLength - CURSOR_RECORD_BYTES + 8)));
          } else void writer.#refresh(consumer, cursorStream);
        }),
      );
      writer.#committed.set(consumer, (await readCursor(options.streams, cursorStream)).index);
    }
    writer.#updateLag();
    return writer;
  }

  /**
   * Consumer `consumer` has taken the frames before `index` (read them, not yet finished them):
   * they no longer count against the bound. For a consumer that holds at most the bound's frames
   * taken and not committed; a commit moves its read place too. Ignored for a consumer the pipe
   * does not name.
   */
  noteRead(consumer: string, index: number): void {
    if (!this.#committed.has(consumer) || index <= (this.#read.get(consumer) ?? 0)) return;
    this.#read.set(consumer, index);
    this.#resumeIfLow();
  }

  /** Index the next stored frame will get. */
  get nextIndex(): number {
    return this.#index;
  }

  /**
   * Frames {@link writeBatch} would store now without waiting: the free places of a `block`
   * queue (its bound minus the lag), unbounded for the others (`drop-*` and `latest` never wait).
   */
  get room(): number {
    const queue = this.#identity.queue;
    if (queue.mode === 'latest' || queue.overflow !== 'block') return Number.POSITIVE_INFINITY;
    return Math.max(0, queue.max - this.#updateLag());
  }

  /**
   * Waits while a `block` queue is full, until its lag fell to the low-water mark (at once when
   * it is not full, and for the other queues): for a caller that sizes what it writes by
   * {@link room}, so that it writes half a queue or more, not what one commit freed.
   */
  async waitForRoom(signal?: AbortSignal): Promise<void> {
    this.#checkOpen();
    while (this.room === 0) {
      await this.#roomOrAbort(signal);
      this.#checkOpen();
    }
  }

  /** The epoch of this writer (0 for the pipe's first producer). */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Stores one frame, after waiting for room when the queue blocks. Resolves true when stored,
   * false when `drop-newest` dropped it.
   */
  async write(payload: Uint8Array, options: WriteOptions = {}): Promise<boolean> {
    this.#checkOpen();
    const seq = options.seq ?? this.#seq;
    const queue = this.#identity.queue;
    if (queue.mode !== 'latest' && queue.overflow !== 'drop-oldest') {
      if (queue.overflow === 'drop-newest' && this.#updateLag() >= queue.max) {
        this.stats.dropped++;
        this.#seq = seq + 1;
        return false;
      }
      await this.waitForRoom(options.signal);
    }
    this.#append(payload, seq, options.flags ?? 0);
    return true;
  }

  /**
   * Stores several frames (numbered on from the previous one) with as few appends as the queue
   * allows: under `block` it waits for room as {@link write} does and stores what fits at once;
   * under `drop-newest` what does not fit is dropped (counted). Resolves to how many were stored.
   */
  async writeBatch(payloads: readonly Uint8Array[], options: Pick<WriteOptions, 'signal'> = {}): Promise<number> {
    this.#checkOpen();
    const queue = this.#identity.queue;
    const bounded = queue.mode !== 'latest' && queue.overflow !== 'drop-oldest';
    let stored = 0;
    for (let at = 0; at < payloads.length; ) {
      let room = payloads.length - at;
      if (bounded) {
        if (queue.overflow === 'drop-newest') {
          room = Math.min(room, Math.max(0, queue.max - this.#updateLag()));
          if (room === 0) {
            this.stats.dropped += payloads.length - at;
            this.#seq += payloads.length - at;
            return stored;
          }
        } else {
          await this.waitForRoom(options.signal);
          room = Math.min(room, this.room);
        }
      }
      this.#appendAll(payloads.slice(at, at + room));
      at += room;
      stored += room;
    }
    return stored;
  }

  /**
   * Ends the pipe: an *end* frame, then the stream closes. Consumers see the end after every
   * frame before it. The writer goes on following their commits (its `stats.lag` falls to 0 as
   * they take the end) until {@link close}.
   */
  async end(): Promise<void> {
    this.#checkOpen();
    this.#append(new Uint8Array(0), this.#seq, FrameFlag.END);
    this.#ended = true;
    await this.flush();
    await this.#streams.closeOutput(this.#stream);
  }

  /** Waits until every frame written so far is stored; rejects with the first failed append's error. */
  async flush(): Promise<void> {
    await this.#lastAppend;
    if (this.#error !== undefined) throw this.#error;
  }

  /** Stops following the consumers (without ending the pipe: a new producer may continue it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    this.#wake();
  }

  #append(payload: Uint8Array, seq: number, flags: number): void {
    this.#store(this.#encode(payload, seq, flags));
  }

  /** Frames numbered on from the previous one, stored in one append. */
  /** Stores frames numbered on from the previous one, encoded into one buffer (one append). */
  #appendAll(payloads: readonly Uint8Array[]): void {
    let length = 0;
    for (const payload of payloads) {
      checkPayload(payload);
      length += HEADER_BYTES + payload.byteLength;
    }
    const bytes = Buffer.allocUnsafe(length);
    let at = 0;
    for (const payload of payloads) at = this.#encodeAt(bytes, at, payload, this.#seq, 0);
    this.#store(bytes);
  }

  #encode(payload: Uint8Array, seq: number, flags: number): Buffer {
    checkPayload(payload);
    const bytes = Buffer.allocUnsafe(HEADER_BYTES + payload.byteLength);
    this.#encodeAt(bytes, 0, payload, seq, flags);
    return bytes;
  }

  /** Encodes the next frame into `bytes` at `at` and numbers it; returns the position after it. */
  #encodeAt(bytes: Buffer, at: number, payload: Uint8Array, seq: number, flags: number): number {
    const end = encodeFrameAt(bytes, at, { seq, index: this.#index, epoch: this.#epoch, flags: flags | (this.#reset ? FrameFlag.RESET : 0) }, payload);
    this.#reset = false;
    this.#index++;
    this.#seq = seq + 1;
    if ((flags & FrameFlag.END) === 0) this.stats.written++;
    return end;
  }

  #store(bytes: Buffer): void {
    // Appends land in call order, so the producer need not wait for each one; a failure is
    // kept and reported by the next write, flush or end.
    this.#lastAppend = this.#streams.appendOutput(this.#stream, 'stdout', bytes).catch((error: unknown) => {
      this.#error ??= error;
    });
    this.#updateLag();
  }

  #updateLag(): number {
    let slowest = this.#index;
    for (const [consumer, index] of this.#committed) slowest = Math.min(slowest, Math.max(index, this.#read.get(consumer) ?? 0));
    this.stats.lag = this.#index - slowest;
    return this.stats.lag;
  }

  /** The lag a blocked writer waits for before it goes on: half the bound (the low-water mark). */
  get #lowWater(): number {
    return Math.floor(this.#identity.queue.max / 2);
  }

  /** Wakes a blocked writer once the lag fell to the low-water mark. */
  #resumeIfLow(): void {
    if (this.#updateLag() <= this.#lowWater) this.#wake();
  }

  async #refresh(consumer: string, cursorStream: string): Promise<void> {
    try {
      this.#advance(consumer, (await readCursor(this.#streams, cursorStream)).index);
    } catch {
      // The next commit's event reads again.
      this.#wake();
    }
  }

  #advance(consumer: string, index: number): void {
    if (index > (this.#committed.get(consumer) ?? 0)) this.#committed.set(consumer, index);
    this.#resumeIfLow();
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Waits until the lag fell to the low-water mark (or the writer closed, or a cursor read failed: the caller checks again). */
  #roomOrAbort(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (this.#updateLag() <= this.#lowWater) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  #checkOpen(): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#ended) throw new ConflictError(`pipe ${this.#identity.pipe} has ended`);
    if (this.#closed) throw new ConflictError(`the writer of pipe ${this.#identity.pipe} is closed`);
  }
}

/** The last frame stored in a pipe's stream (read from the start: frames are found only by walking them). */
async function lastFrame(streams: StreamLog, stream: string, end: number): Promise<Frame | undefined> {
  const decoder = new FrameDecoder(0);
  let last: Frame | undefined;
  for (let pos = 0; pos < end; ) {
    const page = await streams.readOutput(stream, pos, 1024 * 1024);
    if (page.chunks.length === 0) break;
    for (const chunk of page.chunks) {
      const frames = decoder.push(chunk.data);
      if (frames.length > 0) last = frames[frames.length - 1];
      pos = chunk.pos + chunk.data.byteLength;
    }
  }
  return last;
}

/**
 * Frames read and not yet taken, first in first out. An array with a head index: `shift` on a
 * large array copies the rest each time (a page holds tens of thousands of small frames).
 */
class FrameQueue {
  #items: Frame[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  get first(): Frame | undefined {
    return this.#items[this.#head];
  }

  get last(): Frame | undefined {
    return this.length > 0 ? this.#items[this.#items.length - 1] : undefined;
  }

  push(frames: readonly Frame[]): void {
    for (const frame of frames) this.#items.push(frame);
  }

  shift(): Frame | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const frame = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined as unknown as Frame;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return frame;
  }

  /** Drops the first `count` frames; returns how many it dropped. */
  drop(count: number): number {
    const n = Math.max(0, Math.min(count, this.length));
    this.#items = this.#items.slice(this.#head + n);
    this.#head = 0;
    return n;
  }
}

/** Most frames waiting in a reader for it to take a live chunk from its event (see `PipeReader.#takeLive`). */
const LIVE_FRAMES = 4096;

/** Options of {@link PipeReader.open}. */
export interface PipeReaderOptions extends PipeIdentity {
  streams: StreamLog;
  /** The consumer's name: its cursor is kept under it. Readers without one (taps) keep no cursor and bound nothing. */
  consumer?: string;
  /** Where to start: the committed cursor (default for consumers), or the stream's start (default for taps). */
  from?: 'committed' | 'start';
  /** Most bytes one store read returns. @defaultValue 262144 */
  pageBytes?: number;
  /**
   * `auto`: each {@link PipeReader.next} commits the frames taken before it. `manual`: only
   * {@link PipeReader.commit} does — for a consumer that finishes frames later than it takes
   * them (a job's stdin: done once the job has read them). @defaultValue "auto"
   */
  commits?: 'auto' | 'manual';
  /**
   * Told the index after the newest frame handed out, each time frames are handed out — for a
   * consumer that tells its pipe's writer what it has read ({@link PipeWriter.noteRead}).
   */
  onTake?: (nextIndex: number) => void;
}

/** Counters of a pipe reader. */
export interface PipeReaderStats {
  /** Frames handed out. */
  taken: number;
  /** Frames skipped by `drop-oldest` (for a consumer: since its first commit, kept across restarts). */
  dropped: number;
  /** Older frames a `latest` reader passed over. */
  skipped: number;
}

/**
 * A consumer's end of a pipe: frames in order from its cursor, the end after the last. Each
 * call of {@link next} commits the frames taken before it (so a consumer that dies mid-frame
 * gets that frame again), and {@link commit} commits now. Iterate with `for await`.
 */
export class PipeReader implements AsyncIterable<Frame> {
  readonly #streams: StreamLog;
  readonly #identity: PipeIdentity;
  readonly #stream: string;
  readonly #cursorStream: string | undefined;
  readonly #pageBytes: number;
  readonly #autoCommit: boolean;
  readonly #onTake: ((nextIndex: number) => void) | undefined;
  readonly #buffer = new FrameQueue();
  #decoder: FrameDecoder;
  /** Next position to read from the store. */
  #readPos: number;
  /** Index of the next frame to take when the buffer is empty. */
  #nextIndex: number;
  /** End of the stream as the live events tell it. */
  #knownEnd = 0;
  #closedSeen = false;
  #ended = false;
  /** The pipe's end was read (its end frame, or its stream closed), not only the reader closed. */
  #finished = false;
  /** Set by {@link endAtStored}: no frame will be added, so the reader ends at what is stored. */
  #noMore = false;
  /** A store read is under way (see {@link #takeLive}). */
  #reading = false;
  #events = 0;
  #notify: (() => void) | undefined;
  #unsubscribe: () => void;
  /** Stdin length of the cursor stream, where the next commit goes. */
  #cursorEnd = 0;
  #committing: Promise<void> | undefined;
  /** The cursor of a commit asked for while another was in flight. */
  #commitAgain: Cursor | undefined;
  #commitError: unknown;
  #taken: Frame | undefined;
  readonly stats: PipeReaderStats = { taken: 0, dropped: 0, skipped: 0 };

  private constructor(options: PipeReaderOptions, cursor: Cursor) {
    this.#streams = options.streams;
    this.#identity = { network: options.network, pipe: options.pipe, queue: options.queue };
    this.#stream = pipeStreamId(options.network, options.pipe);
    this.#cursorStream = options.consumer === undefined ? undefined : cursorStreamId(options.network, options.pipe, options.consumer);
    this.#pageBytes = options.pageBytes ?? 256 * 1024;
    this.#autoCommit = (options.commits ?? 'auto') === 'auto';
    this.#onTake = options.onTake;
    this.#decoder = new FrameDecoder(cursor.pos);
    this.#readPos = cursor.pos;
    this.#nextIndex = cursor.index;
    this.stats.dropped = cursor.dropped;
    this.#unsubscribe = this.#streams.subscribe(this.#stream, (event) => this.#onEvent(event));
  }

  /** Opens a consumer (or a tap) on a pipe. */
  static async open(options: PipeReaderOptions): Promise<PipeReader> {
    const from = options.from ?? (options.consumer === undefined ? 'start' : 'committed');
    const cursorStream = options.consumer === undefined ? undefined : cursorStreamId(options.network, options.pipe, options.consumer);
    const cursor = from === 'committed' && cursorStream !== undefined ? await readCursor(options.streams, cursorStream) : { ...START };
    const reader = new PipeReader(options, cursor);
    if (cursorStream !== undefined) reader.#cursorEnd = (await options.streams.sizes(cursorStream)).stdin;
    const sizes = await options.streams.sizes(reader.#stream);
    reader.#knownEnd = Math.max(reader.#knownEnd, sizes.end);
    reader.#closedSeen ||= sizes.outputClosed;
    return reader;
  }

  /** The cursor this reader would commit now. */
  get cursor(): Cursor {
    const next = this.#buffer.first;
    return next !== undefined ? { pos: next.pos, index: next.index, dropped: this.stats.dropped } : { pos: this.#readPos, index: this.#nextIndex, dropped: this.stats.dropped };
  }

  /** The next frame, waiting for one; undefined once the pipe ended. Commits what was taken before. */
  async next(): Promise<Frame | undefined> {
    if (this.#taken !== undefined && this.#autoCommit) this.commit();
    if (this.#commitError !== undefined) throw this.#commitError;
    if (this.#ended) return undefined;
    const latest = this.#identity.queue.mode === 'latest';
    for (;;) {
      // Counted before the read: an event that comes while the read is under way is not missed.
      const seen = this.#events;
      await this.#catchUp();
      if (latest && this.#buffer.length > 1) this.stats.skipped += this.#buffer.drop(this.#buffer.length - 1);
      const frame = this.#buffer.shift();
      if (frame !== undefined) {
        this.#nextIndex = frame.index + 1;
        this.#taken = frame;
        if (hasFlag(frame, FrameFlag.END)) {
          this.#ended = true;
          this.#finished = true;
          if (this.#autoCommit) this.commit();
          return undefined;
        }
        this.stats.taken++;
        this.#onTake?.(this.#nextIndex);
        return frame;
      }
      if ((this.#closedSeen || this.#noMore) && this.#readPos >= this.#knownEnd) {
        this.#ended = true;
        this.#finished = this.#closedSeen;
        return undefined;
      }
      await this.#change(seen);
      // Closed while waiting: no more frames for this reader.
      if (this.#ended) return undefined;
    }
  }

  /**
   * The next frame (waiting for one, as {@link next}), with the frames already read after it, up
   * to `limit` in all — so a consumer can pass on a burst at once. Undefined once the pipe ended.
   */
  async nextBatch(limit: number): Promise<Frame[] | undefined> {
    const first = await this.next();
    if (first === undefined) return undefined;
    const batch = [first];
    if (this.#identity.queue.mode === 'latest') return batch;
    while (batch.length < limit && this.#buffer.length > 0 && !hasFlag(this.#buffer.first!, FrameFlag.END)) {
      const frame = this.#buffer.shift()!;
      this.#nextIndex = frame.index + 1;
      this.#taken = frame;
      this.stats.taken++;
      batch.push(frame);
    }
    if (batch.length > 1) this.#onTake?.(this.#nextIndex);
    return batch;
  }

  /** The cursor just after `frame` (one this reader handed out): what to commit once it is done. */
  cursorAfter(frame: Frame): Cursor {
    return { pos: frame.end, index: frame.index + 1, dropped: this.stats.dropped };
  }

  /** Whether the pipe's end was reached. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Whether the reader ended at the pipe's own end (its end frame, or its closed stream) — not
   * because it was closed, or because {@link endAtStored} ended it where the frames stop.
   */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Tells the reader that its pipe will get no more frames although it has no end (its producer
   * was stopped for good: its network was stopped, or failed): it reads every frame the store
   * holds, then ends instead of waiting. Call it once every frame written is stored.
   */
  endAtStored(): void {
    this.#noMore = true;
    this.#events++;
    this.#notify?.();
  }

  /**
   * For `latest` pipes: the newest frame now, without waiting — undefined when none came yet
   * (the caller then uses the queue's `default`). Takes it like {@link next} does.
   */
  async latest(): Promise<Frame | undefined> {
    await this.#catchUp();
    if (this.#buffer.length > 1) this.stats.skipped += this.#buffer.drop(this.#buffer.length - 1);
    const frame = this.#buffer.first;
    if (frame === undefined || hasFlag(frame, FrameFlag.END)) return this.#taken;
    this.#buffer.shift();
    this.#nextIndex = frame.index + 1;
    this.#taken = frame;
    this.stats.taken++;
    this.#onTake?.(this.#nextIndex);
    if (this.#autoCommit) this.commit();
    return frame;
  }

  /**
   * Records the cursor as it is now in the store (coalesced: one append in flight at a time; a
   * commit asked for meanwhile stores the cursor as it was when asked, never a later one). No-op
   * for taps.
   */
  commit(cursor: Cursor = this.cursor): void {
    if (this.#cursorStream === undefined) return;
    if (this.#committing !== undefined) {
      this.#commitAgain = cursor;
      return;
    }
    const record = encodeCursor(cursor);
    const offset = this.#cursorEnd;
    this.#cursorEnd += record.byteLength;
    this.#committing = this.#streams
      .appendStdin(this.#cursorStream, offset, record)
      .then(
        () => undefined,
        (error: unknown) => {
          this.#commitError = error;
        },
      )
      .finally(() => {
        this.#committing = undefined;
        const again = this.#commitAgain;
        if (again !== undefined) {
          this.#commitAgain = undefined;
          this.commit(again);
        }
      });
  }

  /** Waits until every commit made so far is stored. */
  async flush(): Promise<void> {
    while (this.#committing !== undefined) await this.#committing;
    if (this.#commitError !== undefined) throw this.#commitError;
  }

  /** Stops following the pipe (commits stay as they are; call {@link flush} first to keep the last). */
  close(): void {
    this.#unsubscribe();
    this.#ended = true;
    this.#notify?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Frame> {
    try {
      for (let frame = await this.next(); frame !== undefined; frame = await this.next()) yield frame;
    } finally {
      if (this.#autoCommit) this.commit();
      await this.flush().catch(() => {});
    }
  }

  #onEvent(event: StreamEvent): void {
    if (event.type === 'output') {
      const { chunk } = event;
      this.#knownEnd = Math.max(this.#knownEnd, chunk.pos + chunk.data.byteLength);
      this.#takeLive(chunk);
    } else if (event.type === 'output-closed') {
      this.#knownEnd = Math.max(this.#knownEnd, event.end);
      this.#closedSeen = true;
    } else return;
    this.#events++;
    this.#notify?.();
  }

  /**
   * A chunk just appended to the pipe, from its event: when it continues exactly what this reader
   * has read (no store read under way, nothing missed between), its frames are decoded from
   * memory, with no store read. Only while few frames wait, so a reader that takes nothing (a
   * slow tap) holds no more than {@link LIVE_FRAMES} in memory; what it leaves is read from the
   * store when the reader gets to it.
   */
  #takeLive(chunk: OutputChunk): void {
    if (this.#reading || this.#ended || chunk.pos !== this.#readPos || chunk.data.byteLength === 0 || this.#buffer.length >= LIVE_FRAMES) return;
    this.#buffer.push(this.#decoder.push(chunk.data));
    this.#readPos = chunk.pos + chunk.data.byteLength;
    if (this.#dropOldest) this.#trim();
  }

  get #dropOldest(): boolean {
    return this.#identity.queue.overflow === 'drop-oldest' && this.#identity.queue.mode !== 'latest';
  }

  /** Waits for an event on the pipe's stream after the `seen`-th (at once when one came already). */
  #change(seen: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#events !== seen || this.#ended) return resolve();
      this.#notify = () => {
        this.#notify = undefined;
        resolve();
      };
    });
  }

  /**
   * Reads what the store holds beyond the read position, trimming to the newest `max` frames
   * under `drop-oldest`. With frames in hand and no newer bytes announced by the stream's events,
   * it reads nothing: a consumer working through a page costs no store read per frame.
   */
  async #catchUp(): Promise<void> {
    if (this.#buffer.length > 0 && this.#readPos >= this.#knownEnd) return;
    // Live chunks wait while a read is under way: the page may hold them too.
    this.#reading = true;
    try {
      for (;;) {
        const page = await this.#streams.readOutput(this.#stream, this.#readPos, this.#pageBytes);
        this.#knownEnd = Math.max(this.#knownEnd, page.end);
        this.#closedSeen ||= page.closed;
        for (const chunk of page.chunks) {
          const frames = this.#decoder.push(chunk.data);
          this.#readPos = chunk.pos + chunk.data.byteLength;
          this.#buffer.push(frames);
        }
        if (this.#dropOldest) this.#trim();
        if (page.chunks.length === 0 || this.#readPos >= page.end) return;
      }
    } finally {
      this.#reading = false;
    }
  }

  #trim(): void {
    // The end frame is no data: it never counts against the bound, and is never dropped.
    const last = this.#buffer.last;
    const data = last !== undefined && hasFlag(last, FrameFlag.END) ? this.#buffer.length - 1 : this.#buffer.length;
    const over = data - this.#identity.queue.max;
    if (over > 0) this.stats.dropped += this.#buffer.drop(over);
  }
}
