/**
 * A job's output files, written by its job host in the embedded stream log's on-disk format
 * (the table at the top of `store/embedded/file-stream-log.ts`): `stdout` and `stderr` hold the
 * bytes, `index` one {@link RECORD_BYTES}-byte record per chunk in arrival order (u32 length,
 * u8 channel, 3 reserved bytes, u64 merged position, u64 channel offset; little-endian), and
 * `exit.json` ({@link ExitRecord}) is written once the output is complete (a job that wrote
 * nothing has no `stdout`, `stderr` or `index`: readers take missing files for empty). The stream
 * log reads the end of the output and the stdin state from `exit.json` (its `stdin` field) when
 * the folder has no `state.json`: hosts before this one wrote both files, which cost a file
 * creation and a rename more per job.
 *
 * Write-behind: {@link OutputFiles.append} gives a chunk its position at once (so it can go to
 * clients from memory) and queues it; a write loop stores queued chunks in batches with
 * asynchronous positional writes (libuv's thread pool, off the event loop; a small batch, such
 * as a line of an interactive job, with synchronous ones: {@link SYNC_WRITE_BYTES}): each channel's bytes
 * first, then the batch's index records, so that an index record never names bytes that are not
 * in the files. {@link OutputFiles.durable} is the merged end of what is stored; a reader trusts
 * records below it only.
 *
 * Nothing is fsynced, as in the stream log itself: stored means in the files (the page cache),
 * which survives the host or the server dying, not a power cut.
 *
 * Failed writes (a full disk, a quota, an I/O error) are retried with a backoff, and the bytes
 * stay queued meanwhile; positional writes make a retry rewrite the same bytes at the same place,
 * so a torn write leaves nothing behind. The owner is told to stop reading the job's output while
 * the queue is over its bound or writes fail ({@link OutputFilesOptions.onPressure}).
 * @module
 */
import { mkdirSync, renameSync, rmSync, writeFileSync, writevSync } from 'node:fs';
import { mkdir, open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { OutputChannel, OutputChunk } from '@jobwire/client';
import { RECORD_BYTES } from '../store/embedded/file-stream-log.js';
import type { ExitRecord, StorageState } from './protocol.js';

export { RECORD_BYTES };

/** Options of {@link OutputFiles}. */
export interface OutputFilesOptions {
  /** The job's folder (`<home>/output/<jobId>`); created when missing. */
  dir: string;
  /**
   * Bytes of output kept in memory waiting to be written before the job's output is paused
   * (`onPressure(true)`); it is resumed once the queue is down to half of it.
   * @defaultValue 4 MiB ({@link WRITE_BEHIND_BYTES})
   */
  writeBehindBytes?: number;
  /** First wait before retrying a failed write; doubled on each failure. @defaultValue 100 */
  retryMinMs?: number;
  /** Longest wait between retries of a failed write. @defaultValue 2000 */
  retryMaxMs?: number;
  /** Called when the stored end advances. @defaultValue nothing */
  onDurable?(durable: number): void;
  /** Called when writes start or stop failing. @defaultValue nothing */
  onStorage?(storage: StorageState): void;
  /** Called with true when the job's output must stop being read, false when it may go on. @defaultValue nothing */
  onPressure?(paused: boolean): void;
}

/** Default bound of the write-behind buffer of one job. */
export const WRITE_BEHIND_BYTES = 4 * 1024 * 1024;
/** Queued bytes that start a batch of writes at once (less waits up to {@link WRITE_DELAY_MS}). */
export const WRITE_BATCH_BYTES = 512 * 1024;
/** Longest a queued chunk waits for its batch of writes to start. */
export const WRITE_DELAY_MS = 5;
/**
 * Batches of at most this many bytes are written with synchronous calls on the host's event
 * loop: a few kilobytes go to the page cache in microseconds, where a write in libuv's thread pool
 * costs a wake-up of a pool thread and one of the loop for each of its two writes (bytes, then
 * index). On an interactive job, where each line typed is such a batch, those wake-ups were
 * most of the host's sleeps per line. Larger batches (fast output) stay off the loop.
 */
export const SYNC_WRITE_BYTES = 64 * 1024;
/** Most chunks stored by one batch of writes (bounds the iovecs of one writev). */
const BATCH_CHUNKS = 512;
/** Index records read per read while collecting a page. */
const RECORD_BATCH = 256;

type FileName = OutputChannel | 'index';

/** The open files of one job's output. */
export interface OutputFileHandles {
  stdout: FileHandle;
  stderr: FileHandle;
  index: FileHandle;
}

/** How far a reader may trust the files: records and merged end that are stored. */
export interface StoredBounds {
  /** Index records stored. */
  records: number;
  /** Merged end of the stored output. */
  end: number;
}

/** One decoded index record. */
export interface IndexRecord {
  channel: OutputChannel;
  length: number;
  pos: number;
  offset: number;
}

/**
 * One job's output files, written behind. Not safe to share between processes: the host is the
 * only writer of a job's output.
 */
export class OutputFiles {
  /** Merged end of everything appended. */
  end = 0;
  /** Per-channel ends of everything appended. */
  readonly ends = { stdout: 0, stderr: 0 };
  /** Merged end of what is stored. */
  durable = 0;
  /** Index records stored. */
  durableRecords = 0;
  /** Where output storage stands. */
  storage: StorageState = { state: 'ok' };

  readonly #options: Required<Omit<OutputFilesOptions, 'onDurable' | 'onStorage' | 'onPressure'>> & Pick<OutputFilesOptions, 'onDurable' | 'onStorage' | 'onPressure'>;
  /** Chunks appended and not yet stored, in arrival order; slots before `#head` are done. */
  #pending: OutputChunk[] = [];
  #head = 0;
  #pendingBytes = 0;
  #files: OutputFileHandles | undefined;
  /** Opening the files (once). */
  #opening: Promise<void> | undefined;
  /** The write loop while it runs. */
  #loop: Promise<void> | undefined;
  /** The write loop's start at the end of this turn ({@link WRITE_BATCH_BYTES} queued, or a waiter). */
  #start: NodeJS.Immediate | undefined;
  /** The write loop's start after {@link WRITE_DELAY_MS}, while less is queued. */
  #startLater: NodeJS.Timeout | undefined;
  #paused = false;
  #closed = false;
  /** Reads in flight: close() waits for them before closing the files. */
  #reads = 0;
  #readsDone: (() => void) | undefined;
  readonly #stored: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  /** Where the previous page read stopped, so the next one skips the search. */
  #resume = { pos: -1, record: 0 };
  #retryTimer: { timer: NodeJS.Timeout; wake: () => void } | undefined;

  constructor(options: OutputFilesOptions) {
    this.#options = { writeBehindBytes: WRITE_BEHIND_BYTES, retryMinMs: 100, retryMaxMs: 2000, ...definedOnly(options), dir: options.dir };
    const { writeBehindBytes, retryMinMs, retryMaxMs } = this.#options;
    if (!Number.isSafeInteger(writeBehindBytes) || writeBehindBytes < 1) throw new RangeError(`writeBehindBytes must be a positive integer, got ${writeBehindBytes}`);
    if (!(retryMinMs > 0) || !(retryMaxMs >= retryMinMs)) throw new RangeError(`retry waits must satisfy 0 < retryMinMs <= retryMaxMs, got ${retryMinMs} and ${retryMaxMs}`);
  }

  /** Bytes appended and not yet stored. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Whether the owner has been told to stop reading output. */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Takes one chunk of output: gives it its merged position and channel offset, queues it for
   * the files and returns it. `data` is kept as it is: the caller must not reuse its buffer.
   */
  append(channel: OutputChannel, data: Buffer): OutputChunk {
    if (this.#closed) throw new Error('the output files are closed');
    const chunk: OutputChunk = { channel, pos: this.end, offset: this.ends[channel], data };
    if (data.length === 0) return chunk;
    this.end += data.length;
    this.ends[channel] += data.length;
    this.#pending.push(chunk);
    this.#pendingBytes += data.length;
    this.#checkPressure();
    this.#schedule();
    return chunk;
  }

  /**
   * The queued (not yet stored) chunks from merged position `from` on, `from` cut to size.
   * Empty unless `durable <= from < end`: below `durable` the bytes are in the files.
   */
  pendingFrom(from: number): OutputChunk[] {
    if (from < this.durable || from >= this.end) return [];
    let lo = this.#head;
    let hi = this.#pending.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.#pending[mid]!.pos <= from) lo = mid;
      else hi = mid - 1;
    }
    const out = this.#pending.slice(lo);
    const first = out[0]!;
    const cut = from - first.pos;
    if (cut > 0) out[0] = { channel: first.channel, pos: from, offset: first.offset + cut, data: first.data.subarray(cut) };
    return out;
  }

  /**
   * A page of stored output from merged position `from` (below {@link durable}): at least one
   * chunk, more while they fit in `maxBytes`.
   */
  async read(from: number, maxBytes: number): Promise<OutputChunk[]> {
    const files = this.#files;
    if (files === undefined || from >= this.durable) return [];
    this.#reads += 1;
    try {
      const bounds = { records: this.durableRecords, end: this.durable };
      const { chunks, next } = await readStoredOutput(files, bounds, from, maxBytes, this.#resume.pos === from ? this.#resume.record : undefined);
      const last = chunks.at(-1);
      if (last !== undefined) this.#resume = { pos: last.pos + last.data.length, record: next };
      return chunks;
    } finally {
      this.#reads -= 1;
      if (this.#reads === 0) this.#readsDone?.();
    }
  }

  /** Resolves once everything appended so far is stored (waiting out a full disk if it must). */
  stored(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the output files are closed'));
    if (this.durable === this.end && this.#loop === undefined) return Promise.resolve();
    const stored = new Promise<void>((resolve, reject) => this.#stored.push({ resolve, reject }));
    // Somebody waits: what is queued is written now, however little.
    this.#schedule();
    return stored;
  }

  /**
   * Writes `exit.json` atomically (written aside, then renamed), retrying failures like output
   * writes: it closes the output for the stream log too (see the module documentation), so its
   * `stdin` field ({@link ExitRecord}) must say the job's stdin state. Call it after {@link stored}.
   *
   * The folder and the file are made with synchronous calls, on the host's event loop: a few
   * small system calls, where each asynchronous one was a round trip through libuv's thread
   * pool (a wake-up of a pool thread and one of the loop) that cost the host more than the call.
   */
  async finish<T extends Pick<ExitRecord, 'stdin'>>(exit: T): Promise<void> {
    // A job that wrote nothing needs no output files: readers take missing ones for empty. Only
    // its folder is made, unless an earlier run of the same id left one (its files are cut then).
    if (this.#opening === undefined && this.end === 0) {
      const made = await this.#retrying(async () => mkdirSync(this.#options.dir, { recursive: true, mode: 0o700 }));
      if (made === undefined) await this.#ensureOpen();
    } else await this.#ensureOpen();
    const exitFile = join(this.#options.dir, 'exit.json');
    await this.#retrying(async () => writeJsonAtomicallySync(exitFile, exit));
  }

  /** Closes the files once reads in flight are done. Appending after this throws. */
  async close(): Promise<void> {
    this.#closed = true;
    clearImmediate(this.#start);
    this.#start = undefined;
    clearTimeout(this.#startLater);
    this.#startLater = undefined;
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer.timer);
      this.#retryTimer.wake();
    }
    for (const waiter of this.#stored.splice(0)) waiter.reject(new Error('the output files were closed before all output was stored'));
    await this.#loop;
    await this.#opening?.catch(() => {});
    if (this.#reads > 0) await new Promise<void>((resolve) => (this.#readsDone = resolve));
    const files = this.#files;
    this.#files = undefined;
    if (files !== undefined) await Promise.allSettled([files.stdout.close(), files.stderr.close(), files.index.close()]);
  }

  /**
   * Starts the write loop when it is due: at the end of this turn once {@link WRITE_BATCH_BYTES}
   * are queued or somebody waits for them to be stored, else after {@link WRITE_DELAY_MS}. A
   * write in the thread pool costs the same wake-ups (of a worker thread, then of the event loop)
   * for 64 KiB as for a megabyte, so fast output is written in large batches; readers meanwhile
   * get the queued bytes from memory ({@link pendingFrom}).
   */
  #schedule(): void {
    if (this.#loop !== undefined || this.#closed || this.#start !== undefined || this.#head >= this.#pending.length) return;
    if (this.#pendingBytes < WRITE_BATCH_BYTES && this.#stored.length === 0) {
      this.#startLater ??= setTimeout(() => {
        this.#startLater = undefined;
        this.#kick(true);
      }, WRITE_DELAY_MS);
      return;
    }
    clearTimeout(this.#startLater);
    this.#startLater = undefined;
    this.#start = setImmediate(() => {
      this.#start = undefined;
      this.#kick();
    });
  }

  /** Runs the write loop; with `due`, its first batch is written however small. */
  #kick(due = false): void {
    if (this.#loop !== undefined || this.#closed) return;
    this.#loop = this.#writeLoop(due)
      // Only a close() cuts the loop short with an error; the caller of close() knows.
      .catch(() => {})
      .finally(() => {
        this.#loop = undefined;
        if (this.durable === this.end) for (const waiter of this.#stored.splice(0)) waiter.resolve();
        else this.#schedule();
      });
  }

  async #writeLoop(due: boolean): Promise<void> {
    await this.#ensureOpen();
    // On while a batch's worth is queued (or somebody waits); less waits for #schedule.
    for (let first = due; !this.#closed && this.#head < this.#pending.length && (first || this.#pendingBytes >= WRITE_BATCH_BYTES || this.#stored.length > 0); first = false) {
      const batch = this.#pending.slice(this.#head, this.#head + BATCH_CHUNKS);
      const firstRecord = this.durableRecords;
      await this.#retrying(() => this.#writeBatch(batch, firstRecord));
      if (this.#closed) return;
      let bytes = 0;
      for (const chunk of batch) bytes += chunk.data.length;
      for (let i = 0; i < batch.length; i++) this.#pending[this.#head + i] = undefined as unknown as OutputChunk;
      this.#head += batch.length;
      // Compact once the stored slots outnumber the queued ones: amortised O(1) per chunk.
      if (this.#head >= 64 && this.#head * 2 >= this.#pending.length) {
        this.#pending = this.#pending.slice(this.#head);
        this.#head = 0;
      }
      this.#pendingBytes -= bytes;
      this.durableRecords += batch.length;
      const last = batch.at(-1)!;
      this.durable = last.pos + last.data.length;
      this.#checkPressure();
      this.#options.onDurable?.(this.durable);
    }
  }

  #ensureOpen(): Promise<void> {
    this.#opening ??= this.#open();
    return this.#opening;
  }

  async #open(): Promise<void> {
    const dir = this.#options.dir;
    this.#files = await this.#retrying(async () => {
      const made = await mkdir(dir, { recursive: true, mode: 0o700 });
      // A new run starts new output: what an earlier run of the same id left is not ours to keep
      // (a folder made just now holds nothing).
      if (made === undefined) await Promise.all([rm(join(dir, 'exit.json'), { force: true }), rm(join(dir, 'state.json'), { force: true })]);
      const opened: Partial<Record<FileName, FileHandle>> = {};
      try {
        for (const name of ['stdout', 'stderr', 'index'] as const) opened[name] = await open(join(dir, name), 'w+', 0o600);
      } catch (error) {
        await Promise.allSettled(Object.values(opened).map((file) => file.close()));
        throw error;
      }
      return opened as OutputFileHandles;
    });
  }

  /**
   * Stores one batch: each channel's bytes (contiguous in its file), then the index records;
   * with synchronous calls when it is small ({@link SYNC_WRITE_BYTES}).
   */
  async #writeBatch(batch: OutputChunk[], firstRecord: number): Promise<void> {
    const files = this.#files!;
    const index = Buffer.allocUnsafe(batch.length * RECORD_BYTES);
    const spans: Record<OutputChannel, { at: number; buffers: Buffer[] }> = { stdout: { at: -1, buffers: [] }, stderr: { at: -1, buffers: [] } };
    let bytes = 0;
    batch.forEach((chunk, i) => {
      encodeRecord(index, i * RECORD_BYTES, chunk);
      const span = spans[chunk.channel];
      if (span.at < 0) span.at = chunk.offset;
      span.buffers.push(chunk.data as Buffer);
      bytes += chunk.data.length;
    });
    if (bytes <= SYNC_WRITE_BYTES) {
      for (const channel of ['stdout', 'stderr'] as const) if (spans[channel].at >= 0) writeAllAtSync(files[channel].fd, spans[channel].buffers, spans[channel].at);
      writeAllAtSync(files.index.fd, [index], firstRecord * RECORD_BYTES);
      return;
    }
    await Promise.all(
      (['stdout', 'stderr'] as const).filter((channel) => spans[channel].at >= 0).map((channel) => writeAllAt(files[channel], spans[channel].buffers, spans[channel].at)),
    );
    await writeAllAt(files.index, [index], firstRecord * RECORD_BYTES);
  }

  /** Runs `operation` until it succeeds, reporting the storage state and waiting in between. */
  async #retrying<T>(operation: () => Promise<T>): Promise<T> {
    let wait = this.#options.retryMinMs;
    for (;;) {
      try {
        const value = await operation();
        if (this.storage.state !== 'ok') {
          this.storage = { state: 'ok' };
          this.#checkPressure();
          this.#options.onStorage?.(this.storage);
        }
        return value;
      } catch (error) {
        if (this.#closed) throw error;
        const code = (error as NodeJS.ErrnoException).code;
        const state = code === 'ENOSPC' || code === 'EDQUOT' ? 'full' : 'failing';
        const message = `cannot write the output to ${this.#options.dir}: ${(error as Error).message}`;
        const before = this.storage;
        if (before.state === 'ok' || before.state !== state || before.message !== message) {
          this.storage = { state, message, since: before.state === state ? before.since : new Date().toISOString() };
          this.#checkPressure();
          this.#options.onStorage?.(this.storage);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            this.#retryTimer = undefined;
            resolve();
          }, wait);
          this.#retryTimer = { timer, wake: resolve };
        });
        if (this.#closed) throw error;
        wait = Math.min(wait * 2, this.#options.retryMaxMs);
      }
    }
  }

  /** Pauses the job's output while the queue is over its bound or writes fail; resumes below half. */
  #checkPressure(): void {
    const limit = this.#options.writeBehindBytes;
    const failing = this.storage.state !== 'ok';
    if (!this.#paused && (failing || this.#pendingBytes >= limit)) {
      this.#paused = true;
      this.#options.onPressure?.(true);
    } else if (this.#paused && !failing && this.#pendingBytes <= limit / 2) {
      this.#paused = false;
      this.#options.onPressure?.(false);
    }
  }
}

/**
 * Reads a page of merged output from a job's files: the chunks from merged position `from`
 * (the first one cut to start there), at least one, more while they fit in `maxBytes`, none at
 * or past `bounds.end`. Only the first `bounds.records` index records are trusted (a writer may
 * be appending after them). `hint`, when given, is the index of the record holding `from`
 * (skips the binary search). Returns the chunks and the record after the last one.
 */
export async function readStoredOutput(files: OutputFileHandles, bounds: StoredBounds, from: number, maxBytes: number, hint?: number): Promise<{ chunks: OutputChunk[]; next: number }> {
  if (from >= bounds.end || bounds.records === 0) return { chunks: [], next: bounds.records };
  let first: number;
  if (hint !== undefined && hint < bounds.records) {
    first = hint;
  } else {
    // The last record whose position is <= from.
    let lo = 0;
    let hi = bounds.records - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((await readRecord(files.index, mid)).pos <= from) lo = mid;
      else hi = mid - 1;
    }
    first = lo;
  }
  const records: IndexRecord[] = [];
  let total = 0;
  let next = first;
  collect: while (next < bounds.records) {
    const count = Math.min(RECORD_BATCH, bounds.records - next);
    const batch = await readExactly(files.index, next * RECORD_BYTES, count * RECORD_BYTES);
    for (let i = 0; i < count; i++) {
      const record = decodeRecord(batch, i * RECORD_BYTES);
      if (records.length === 0 && record.pos < from) {
        const cut = from - record.pos;
        record.pos += cut;
        record.offset += cut;
        record.length -= cut;
      }
      if (records.length > 0 && total + record.length > maxBytes) break collect;
      records.push(record);
      total += record.length;
      next += 1;
    }
  }
  // Within a run of records each channel's bytes are contiguous in its file: one read each.
  const spans: Record<OutputChannel, { start: number; end: number; data: Buffer }> = {
    stdout: { start: -1, end: 0, data: Buffer.alloc(0) },
    stderr: { start: -1, end: 0, data: Buffer.alloc(0) },
  };
  for (const record of records) {
    const span = spans[record.channel];
    if (span.start < 0) span.start = record.offset;
    span.end = record.offset + record.length;
  }
  await Promise.all(
    (['stdout', 'stderr'] as const).map(async (channel) => {
      const span = spans[channel];
      if (span.start >= 0) span.data = await readExactly(files[channel], span.start, span.end - span.start);
    }),
  );
  const chunks = records.map((record): OutputChunk => {
    const span = spans[record.channel];
    const at = record.offset - span.start;
    return { channel: record.channel, pos: record.pos, offset: record.offset, data: span.data.subarray(at, at + record.length) };
  });
  return { chunks, next };
}

/** Reads index record number `index`. */
export async function readRecord(file: FileHandle, index: number): Promise<IndexRecord> {
  return decodeRecord(await readExactly(file, index * RECORD_BYTES, RECORD_BYTES), 0);
}

/** Encodes `chunk`'s index record into `buffer` at `at`. */
export function encodeRecord(buffer: Buffer, at: number, chunk: Pick<OutputChunk, 'channel' | 'pos' | 'offset' | 'data'>): void {
  buffer.writeUInt32LE(chunk.data.length, at);
  // Channel byte, then three reserved zero bytes.
  buffer.writeUInt32LE(chunk.channel === 'stdout' ? 0 : 1, at + 4);
  writeUint64LE(buffer, chunk.pos, at + 8);
  writeUint64LE(buffer, chunk.offset, at + 16);
}

/** Decodes the index record in `buffer` at `at`. */
export function decodeRecord(buffer: Buffer, at: number): IndexRecord {
  return {
    length: buffer.readUInt32LE(at),
    channel: buffer[at + 4] === 0 ? 'stdout' : 'stderr',
    pos: buffer.readUInt32LE(at + 8) + buffer.readUInt32LE(at + 12) * 0x1_0000_0000,
    offset: buffer.readUInt32LE(at + 16) + buffer.readUInt32LE(at + 20) * 0x1_0000_0000,
  };
}

function writeUint64LE(buffer: Buffer, value: number, at: number): void {
  buffer.writeUInt32LE(value >>> 0, at);
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}

/** Writes all of `buffers` at `position`, going on after short writes. */
async function writeAllAt(file: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let left = buffers;
  let at = position;
  while (left.length > 0) {
    const { bytesWritten } = await file.writev(left, at);
    if (bytesWritten === 0) throw Object.assign(new Error('a write stored no bytes'), { code: 'EIO' });
    at += bytesWritten;
    left = skipBytes(left, bytesWritten);
  }
}

/** {@link writeAllAt} with synchronous calls, on file descriptor `fd`. */
function writeAllAtSync(fd: number, buffers: Buffer[], position: number): void {
  let left = buffers;
  let at = position;
  while (left.length > 0) {
    const written = writevSync(fd, left, at);
    if (written === 0) throw Object.assign(new Error('a write stored no bytes'), { code: 'EIO' });
    at += written;
    left = skipBytes(left, written);
  }
}

/** `buffers` without their first `n` bytes. */
function skipBytes(buffers: Buffer[], n: number): Buffer[] {
  let skip = n;
  let i = 0;
  while (i < buffers.length && skip >= buffers[i]!.length) skip -= buffers[i++]!.length;
  if (i === buffers.length) return [];
  const rest = buffers.slice(i);
  rest[0] = rest[0]!.subarray(skip);
  return rest;
}

/** Reads exactly `length` bytes at `position`. */
async function readExactly(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let read = 0;
  while (read < length) {
    const { bytesRead } = await file.read(buffer, read, length - read, position + read);
    if (bytesRead === 0) throw new Error(`short read: expected ${length} bytes at ${position}, the file ended after ${read}`);
    read += bytesRead;
  }
  return buffer;
}

/** {@link writeJsonAtomically} with synchronous calls. */
function writeJsonAtomicallySync(path: string, value: unknown): void {
  const aside = `${path}.tmp`;
  try {
    writeFileSync(aside, JSON.stringify(value), { mode: 0o600 });
    renameSync(aside, path);
  } catch (error) {
    rmSync(aside, { force: true });
    throw error;
  }
}

/** Writes `value` as JSON to `path` atomically: aside first, then renamed over it. */
export async function writeJsonAtomically(path: string, value: unknown): Promise<void> {
  const aside = `${path}.tmp`;
  try {
    await writeFile(aside, JSON.stringify(value), { mode: 0o600 });
    await rename(aside, path);
  } catch (error) {
    await rm(aside, { force: true });
    throw error;
  }
}

/** Drops keys whose value is undefined, so they do not override defaults. */
function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
