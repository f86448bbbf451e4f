/**
 * The embedded stream log: each job's streams in append-only files under `<dir>/<jobId>/`.
 *
 * | file         | content                                                              |
 * |--------------|----------------------------------------------------------------------|
 * | `stdout`     | the job's stdout bytes, as written                                  |
 * | `stderr`     | the job's stderr bytes, as written                                  |
 * | `index`      | one {@link RECORD_BYTES}-byte record per output chunk, arrival order |
 * | `stdin`      | stdin bytes accepted                                                 |
 * | `state.json` | `{outputClosed, stdinClosed, stdinConsumed, final?}`, rewritten on close |
 *
 * A job's folder is made when a file is first written in it. Output a job host wrote (adopted,
 * see {@link FileStreamLog.adoptOutput}) is closed by the host's `exit.json` (its `stdin` field
 * says the stdin state; hosts of earlier versions wrote a `state.json` as well), which has no
 * `final`: the close keeps how the job ended in memory only, and a reader that loads the job
 * again later takes it from the job's record (as for output closed by older jobwire). That
 * saves the server a folder, a file and a rename per job on its event loop.
 *
 * Per-channel reads are plain file reads ({@link FileStreamLog.readChannelChunks}: asynchronous
 * positional reads on a descriptor of its own, one chunk at a time); a merged read binary-searches the index (records
 * are fixed-size and sorted by merged position) and then reads each channel's span in one go.
 *
 * Writes are synchronous (`writeSync` on descriptors kept open while the job's output is open),
 * so appends land in call order and a reader in the same process sees them at once. Nothing is
 * fsynced: like SQLite's synchronous=NORMAL, a power cut may lose the newest bytes, and the
 * files are made consistent again when a job's streams are next loaded.
 *
 * The live path never reads files: sizes are kept in memory and the most recent output of
 * each open job is kept in a bounded in-memory tail, which serves readers that are close
 * behind the writer.
 * @module
 */
import {
  chmodSync,
  closeSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { BadRequestError, ConflictError, type OutputChannel, type OutputChunk } from '@jobwire/client';
import {
  CHANNEL_CHUNK_BYTES,
  MAX_CHANNEL_CHUNK_BYTES,
  type ChannelChunksOptions,
  type ControlMessage,
  type FinalStatus,
  type OutputPage,
  type StreamEvent,
  type StreamLog,
  type StreamSizes,
  type StoredEnd,
} from '../types.js';
import { checkBytes, checkChannel, checkChunkBytes, checkFinalStatus } from '../checks.js';
import { checkJobId, checkPosition, closedError, settle, toStoreError } from './errors.js';
import { ListenerSet, type ListenerErrorHandler } from './listeners.js';

/** Options of {@link FileStreamLog}. */
export interface FileStreamLogOptions {
  /** Folder holding one sub-folder per job (created when missing). */
  dir: string;
  /** Bytes of recent output kept in memory per job whose output is open. */
  tailBytes: number;
  /** Receives errors thrown by `subscribe` listeners. */
  onListenerError: ListenerErrorHandler;
}

/**
 * Size of one index record. Layout (little-endian): u32 length @0, u8 channel @4 (0 stdout,
 * 1 stderr), 3 reserved bytes, u64 merged position @8, u64 channel offset @16.
 */
export const RECORD_BYTES = 24;

/** Jobs with closed output whose state stays loaded (and files open) after their last use. */
const CACHED_CLOSED_JOBS = 64;
/** Index records read per system call while collecting a page. */
const RECORD_BATCH = 256;
/** Largest chunk an index record can describe. */
const MAX_CHUNK_BYTES = 0xffff_ffff;

const EMPTY: Buffer = Buffer.alloc(0);

type FileName = OutputChannel | 'index' | 'stdin';

/** One decoded index record. */
interface IndexRecord {
  channel: OutputChannel;
  length: number;
  pos: number;
  offset: number;
}

/** What `state.json` holds. */
interface PersistedState {
  outputClosed: boolean;
  stdinClosed: boolean;
  stdinConsumed: number;
  /** How the job ended, when the close of its output said. */
  final?: FinalStatus;
}

/** The loaded state of one job's streams. */
class JobStreams {
  stdout = 0;
  stderr = 0;
  stdin = 0;
  /** Number of index records. */
  records = 0;
  outputClosed = false;
  stdinClosed = false;
  stdinConsumed = 0;
  /** How the job ended, once its output was closed with it. */
  final: FinalStatus | undefined = undefined;
  /** Open descriptors, opened on first use. */
  readonly fds: Partial<Record<FileName, number>> = {};
  /**
   * Recent output, contiguous up to `end`; slots before `tailHead` are dropped. Only filled
   * while output is open.
   */
  tail: Array<OutputChunk | undefined> = [];
  tailHead = 0;
  tailBytes = 0;
  /** Where the previous merged read from files stopped, so the next page skips the search. */
  resume = { pos: -1, record: 0 };
  /**
   * Output written by another process (a job host; see {@link FileStreamLog.adoptOutput}): never
   * repaired or appended to here, and the tail keeps every chunk not yet stored.
   */
  adopted = false;
  /** For adopted output: the merged position before which the files hold everything (may be past `end`). */
  stored = 0;

  constructor(readonly dir: string) {}

  /** End of the merged output. */
  get end(): number {
    return this.stdout + this.stderr;
  }

  /** Merged position of the oldest byte in the tail (`end` when the tail is empty). */
  get tailStart(): number {
    return this.tailHead < this.tail.length ? this.tail[this.tailHead]!.pos : this.end;
  }
}

/**
 * The file-backed {@link StreamLog} of the embedded store.
 *
 * Output a job host writes into these files itself is *adopted* ({@link adoptOutput}): the
 * runner passes each chunk on as the host announces it ({@link noteOutput}) and how far the
 * host has stored ({@link noteStored}); readers get bytes not yet stored from the tail, which
 * for adopted output keeps everything past the stored end (bounded by the host's write-behind
 * buffer, 4 MiB per job), and the rest from the files.
 */
export class FileStreamLog implements StreamLog {
  /** Jobs whose output is open. */
  readonly #active = new Map<string, JobStreams>();
  /** Recently used jobs with closed output, least recently used first. */
  readonly #recent = new Map<string, JobStreams>();
  readonly #listeners = new Map<string, ListenerSet<StreamEvent>>();
  /** Scratch buffer for encoding index records (writes are synchronous, so one suffices). */
  readonly #record = Buffer.alloc(RECORD_BYTES);
  #closed = false;

  constructor(private readonly options: FileStreamLogOptions) {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    // Job output is its owner's alone; an output folder made by an older version may be 0755.
    chmodSync(options.dir, 0o700);
  }

  appendOutput(jobId: string, channel: OutputChannel, data: Uint8Array): Promise<OutputChunk> {
    return settle(() => this.appendOutputNow(jobId, channel, data));
  }

  closeOutput(jobId: string, final?: FinalStatus, stored?: StoredEnd): Promise<void> {
    return settle(() => this.closeOutputNow(jobId, final, stored));
  }

  readOutput(jobId: string, from: number, maxBytes: number): Promise<OutputPage> {
    return settle(() => this.readOutputNow(jobId, from, maxBytes));
  }

  readChannel(jobId: string, channel: OutputChannel, from: number, to?: number): Promise<Uint8Array> {
    return settle(() => this.readChannelNow(jobId, channel, from, to));
  }

  async *readChannelChunks(jobId: string, channel: OutputChannel, from: number, to?: number, options: ChannelChunksOptions = {}): AsyncGenerator<Uint8Array> {
    let file;
    try {
      checkChannel(channel);
      checkPosition(from, 'from');
      if (to !== undefined) checkPosition(to, 'to');
      const chunkBytes = checkChunkBytes(options.chunkBytes ?? CHANNEL_CHUNK_BYTES, MAX_CHANNEL_CHUNK_BYTES);
      const job = this.#job(jobId, false);
      if (job === undefined) return;
      const stop = Math.min(to ?? job[channel], job[channel]);
      if (from >= stop) return;
      for (let at = from; at < stop; ) {
        // Adopted output not yet stored is in memory (the files only reach the stored end).
        const inFiles = storedChannelSize(job, channel);
        if (at >= inFiles) {
          const data = tailBytes(job, channel, at, Math.min(stop, at + chunkBytes));
          at += data.byteLength;
          yield data;
          continue;
        }
        const length = Math.min(chunkBytes, stop - at, inFiles - at);
        // A descriptor of its own, read asynchronously: the log's descriptors are synchronous, and
        // are closed when the job leaves the cache, which a slow reader may well outlast. Opened
        // when first needed: a job host creates its files with the first bytes it stores.
        file ??= await open(join(job.dir, channel), 'r');
        // A fresh buffer per chunk: the consumer may still hold the previous one.
        const buffer = Buffer.allocUnsafe(length);
        for (let read = 0; read < length; ) {
          const { bytesRead } = await file.read(buffer, read, length - read, at + read);
          if (bytesRead === 0) throw new Error(`short read: ${channel} of job ${jobId} ended at ${at + read}, expected ${stop}`);
          read += bytesRead;
        }
        at += length;
        yield buffer;
      }
    } catch (error) {
      throw toStoreError(error);
    } finally {
      await file?.close();
    }
  }

  appendStdin(jobId: string, offset: number, data: Uint8Array): Promise<number> {
    return settle(() => this.appendStdinNow(jobId, offset, data));
  }

  closeStdin(jobId: string): Promise<number> {
    return settle(() => this.closeStdinNow(jobId));
  }

  readStdin(jobId: string, from: number, maxBytes: number): Promise<{ data: Uint8Array; end: number; closed: boolean }> {
    return settle(() => this.readStdinNow(jobId, from, maxBytes));
  }

  ackStdin(jobId: string, consumed: number): Promise<void> {
    return settle(() => this.ackStdinNow(jobId, consumed));
  }

  sendControl(jobId: string, control: ControlMessage): Promise<void> {
    return settle(() => {
      this.#checkOpen();
      checkJobId(jobId);
      this.#emit(jobId, { type: 'control', control });
    });
  }

  sizes(jobId: string): Promise<StreamSizes> {
    return settle(() => this.sizesNow(jobId));
  }

  subscribe(jobId: string, listener: (event: StreamEvent) => void): () => void {
    let listeners = this.#listeners.get(jobId);
    if (listeners === undefined) {
      listeners = new ListenerSet(this.options.onListenerError);
      this.#listeners.set(jobId, listeners);
    }
    const set = listeners;
    const remove = set.add(listener);
    return () => {
      remove();
      if (set.size === 0 && this.#listeners.get(jobId) === set) this.#listeners.delete(jobId);
    };
  }

  remove(jobId: string): Promise<void> {
    return settle(() => this.removeNow(jobId));
  }

  adoptOutput(jobId: string): StreamSizes {
    this.#checkOpen();
    checkJobId(jobId);
    let job = this.#active.get(jobId) ?? this.#recent.get(jobId);
    const dir = join(this.options.dir, jobId);
    if (job === undefined) {
      // The folder is the host's to make (or ours, when we first write in it: see #fd).
      job = loadJob(dir, false) ?? new JobStreams(dir);
    } else {
      // What is loaded may predate the host's writes: the sizes come from the files again.
      const sizes = storedSizes(dir);
      job.stdout = sizes.stdout;
      job.stderr = sizes.stderr;
      job.records = sizes.records;
      job.tail = [];
      job.tailHead = 0;
      job.tailBytes = 0;
      job.resume = { pos: -1, record: 0 };
    }
    job.adopted = true;
    job.stored = job.end;
    this.#recent.delete(jobId);
    if (job.outputClosed) this.#remember(jobId, job);
    else this.#active.set(jobId, job);
    return this.sizesNow(jobId);
  }

  noteOutput(jobId: string, chunk: OutputChunk): void {
    const job = this.#active.get(jobId);
    if (job === undefined || !job.adopted) throw new ConflictError(`the output of job ${jobId} is not open as written by a job host`);
    checkChannel(chunk.channel);
    let note = chunk;
    const length = note.data.byteLength;
    if (note.pos + length <= job.end) return;
    if (note.pos < job.end) note = cutChunk(note, job.end);
    if (note.pos > job.end) throw new ConflictError(`output of job ${jobId}: a chunk at ${note.pos} leaves a gap after ${job.end}`);
    if (note.offset !== job[note.channel]) throw new ConflictError(`output of job ${jobId}: a ${note.channel} chunk at offset ${note.offset}, expected ${job[note.channel]}`);
    job[note.channel] += note.data.byteLength;
    this.#pushTail(job, note);
    this.#emit(jobId, { type: 'output', chunk: note });
  }

  noteStored(jobId: string, end: number): void {
    const job = this.#active.get(jobId);
    if (job === undefined || !job.adopted || end <= job.stored) return;
    // Not capped at what this log has heard of: a host that stores faster than its chunks reach
    // this process has them stored already when they arrive, so they need not stay in memory.
    job.stored = end;
    this.#trimTail(job);
  }

  /** Closes every file; records the stdin state of jobs still open so a restart finds it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#active.values()) {
      try {
        writeState(job);
      } catch {
        // Best effort: stdin state only matters to a job that is Lost after the restart anyway.
      }
      closeFiles(job);
    }
    for (const job of this.#recent.values()) closeFiles(job);
    this.#active.clear();
    this.#recent.clear();
    this.#listeners.clear();
  }

  // The operations themselves, synchronous so the SQLite store can call them inside its own
  // flow (closing output before a job turns Lost, removing files after a delete).

  /** Appends one output chunk: the bytes to its channel file, then its index record. */
  appendOutputNow(jobId: string, channel: OutputChannel, data: Uint8Array): OutputChunk {
    checkChannel(channel);
    checkBytes(data);
    const job = this.#job(jobId, true)!;
    if (job.outputClosed) throw new ConflictError(`the output of job ${jobId} is closed`);
    const pos = job.end;
    const offset = job[channel];
    const length = data.byteLength;
    if (length === 0) return { channel, pos, offset, data: EMPTY };
    if (length > MAX_CHUNK_BYTES) {
      throw new BadRequestError(`an output chunk may hold at most ${MAX_CHUNK_BYTES} bytes`, { code: 'payload_too_large' });
    }
    // Our own copy: the caller may reuse its buffer, and the tail and listeners keep this one.
    const copy = Buffer.allocUnsafeSlow(length);
    copy.set(data);
    const dataFd = this.#fd(job, channel);
    const indexFd = this.#fd(job, 'index');
    appendOrUndo(dataFd, copy, offset);
    encodeRecord(this.#record, channel, length, pos, offset);
    try {
      appendOrUndo(indexFd, this.#record, job.records * RECORD_BYTES);
    } catch (error) {
      ftruncateSync(dataFd, offset);
      throw error;
    }
    job[channel] += length;
    job.records += 1;
    const chunk: OutputChunk = { channel, pos, offset, data: copy };
    this.#pushTail(job, chunk);
    this.#emit(jobId, { type: 'output', chunk });
    return chunk;
  }

  /** Marks output complete with how the job ended (persisted), releases the job's files and tail; idempotent. */
  closeOutputNow(jobId: string, final?: FinalStatus, stored?: StoredEnd): void {
    const checked = final === undefined ? undefined : checkFinalStatus(final);
    const job = this.#job(jobId, true)!;
    if (job.outputClosed) {
      // A job host closes the output it wrote (state.json) without knowing how the job ended.
      if (job.final === undefined && checked !== undefined) {
        job.final = checked;
        writeState(job);
      }
      return;
    }
    /** The host's exit.json (or state.json) closes the output already (see the module documentation). */
    let closedByHost = false;
    if (job.adopted) {
      // The host stored everything before it reported the end: the index is complete (and may
      // name output this log never heard of, when the end was learnt from exit.json).
      // Its exit says where the files end, and that its exit.json closed them: nothing to read
      // (two file reads and four system calls less per job). Else the files say.
      const fromExit = stored !== undefined && isStoredEnd(stored);
      const sizes = fromExit ? stored : storedSizes(job.dir);
      job.records = sizes.records;
      job.stdout = Math.max(job.stdout, sizes.stdout);
      job.stderr = Math.max(job.stderr, sizes.stderr);
      job.adopted = false;
      // Its stdin state is the host's: what the job itself read, and whether its stdin was closed.
      closedByHost = fromExit || readState(job.dir).outputClosed;
    }
    job.outputClosed = true;
    job.final = checked;
    if (!closedByHost) writeState(job);
    closeFiles(job);
    job.tail = [];
    job.tailHead = 0;
    job.tailBytes = 0;
    this.#active.delete(jobId);
    this.#remember(jobId, job);
    this.#emit(jobId, { type: 'output-closed', end: job.end, ...withFinal(job) });
  }

  /** A page of merged output starting at `from`. */
  readOutputNow(jobId: string, from: number, maxBytes: number): OutputPage {
    checkPosition(from, 'from');
    if (typeof maxBytes !== 'number' || Number.isNaN(maxBytes)) {
      throw new BadRequestError(`maxBytes must be a number, got ${String(maxBytes)}`, { field: 'maxBytes' });
    }
    const job = this.#job(jobId, false);
    if (job === undefined) return { chunks: [], end: 0, closed: false };
    const end = job.end;
    let chunks: OutputChunk[] = [];
    if (from < end) chunks = from >= job.tailStart ? readTail(job, from, maxBytes) : this.#readFiles(job, from, maxBytes);
    return { chunks, end, closed: job.outputClosed, ...withFinal(job) };
  }

  /** Bytes [from, to) of one channel. */
  readChannelNow(jobId: string, channel: OutputChannel, from: number, to?: number): Uint8Array {
    checkChannel(channel);
    checkPosition(from, 'from');
    if (to !== undefined) checkPosition(to, 'to');
    const job = this.#job(jobId, false);
    if (job === undefined) return EMPTY;
    const stop = Math.min(to ?? job[channel], job[channel]);
    if (from >= stop) return EMPTY;
    // Adopted output not yet stored is in memory (the files only reach the stored end).
    const inFiles = Math.min(stop, storedChannelSize(job, channel));
    const stored = from < inFiles ? readAt(this.#fd(job, channel), from, inFiles - from) : EMPTY;
    return inFiles >= stop ? stored : Buffer.concat([stored, tailBytes(job, channel, Math.max(from, inFiles), stop)]);
  }

  /** Appends the part of `data` (starting at stdin offset `offset`) that is not stored yet. */
  appendStdinNow(jobId: string, offset: number, data: Uint8Array): number {
    checkPosition(offset, 'offset');
    checkBytes(data);
    const job = this.#job(jobId, true)!;
    if (job.stdinClosed) throw new ConflictError(`the stdin of job ${jobId} is closed`);
    if (offset > job.stdin) {
      throw new ConflictError(`stdin of job ${jobId}: offset ${offset} leaves a gap after the ${job.stdin} bytes accepted`);
    }
    const skip = job.stdin - offset;
    if (skip >= data.byteLength) return job.stdin;
    const fresh = Buffer.allocUnsafeSlow(data.byteLength - skip);
    fresh.set(data.subarray(skip));
    const at = job.stdin;
    appendOrUndo(this.#fd(job, 'stdin'), fresh, at);
    job.stdin += fresh.byteLength;
    this.#emit(jobId, { type: 'stdin', offset: at, data: fresh });
    return job.stdin;
  }

  /** Ends stdin (persisted); idempotent. */
  closeStdinNow(jobId: string): number {
    const job = this.#job(jobId, true)!;
    if (!job.stdinClosed) {
      job.stdinClosed = true;
      closeFile(job, 'stdin');
      writeState(job);
      this.#emit(jobId, { type: 'stdin-closed', offset: job.stdin });
    }
    return job.stdin;
  }

  /** Stdin bytes from `from`, at most `maxBytes`. */
  readStdinNow(jobId: string, from: number, maxBytes: number): { data: Uint8Array; end: number; closed: boolean } {
    checkPosition(from, 'from');
    checkPosition(maxBytes, 'maxBytes');
    const job = this.#job(jobId, false);
    if (job === undefined) return { data: EMPTY, end: 0, closed: false };
    const stop = Math.min(job.stdin, from + maxBytes);
    const data = from < stop ? readAt(this.#fd(job, 'stdin'), from, stop - from) : EMPTY;
    return { data, end: job.stdin, closed: job.stdinClosed };
  }

  /**
   * Records that the job has read `consumed` stdin bytes (never moving backwards). Kept in
   * memory, and written to `state.json` with the next close.
   */
  ackStdinNow(jobId: string, consumed: number): void {
    checkPosition(consumed, 'consumed');
    const job = this.#job(jobId, true)!;
    if (consumed > job.stdinConsumed) {
      job.stdinConsumed = consumed;
      // A closed job writes nothing more on its own, so persist now (rare).
      if (job.outputClosed) writeState(job);
    }
    this.#emit(jobId, { type: 'stdin-ack', consumed: job.stdinConsumed });
  }

  /** Sizes and flags of a job's streams (all zero for a job with none). */
  sizesNow(jobId: string): StreamSizes {
    const job = this.#job(jobId, false);
    if (job === undefined) {
      return { end: 0, stdout: 0, stderr: 0, stdin: 0, stdinClosed: false, stdinConsumed: 0, outputClosed: false };
    }
    return {
      end: job.end,
      stdout: job.stdout,
      stderr: job.stderr,
      stdin: job.stdin,
      stdinClosed: job.stdinClosed,
      stdinConsumed: job.stdinConsumed,
      outputClosed: job.outputClosed,
      ...withFinal(job),
    };
  }

  /** Deletes a job's folder and forgets its state. */
  removeNow(jobId: string): void {
    this.#checkOpen();
    checkJobId(jobId);
    const job = this.#active.get(jobId) ?? this.#recent.get(jobId);
    if (job !== undefined) closeFiles(job);
    this.#active.delete(jobId);
    this.#recent.delete(jobId);
    rmSync(join(this.options.dir, jobId), { recursive: true, force: true });
  }

  /** The loaded state of a job: from memory, else from its folder, else (when `create`) new. */
  #job(jobId: string, create: boolean): JobStreams | undefined {
    this.#checkOpen();
    const active = this.#active.get(jobId);
    if (active !== undefined) return active;
    checkJobId(jobId);
    const recent = this.#recent.get(jobId);
    if (recent !== undefined) {
      this.#recent.delete(jobId);
      this.#recent.set(jobId, recent);
      return recent;
    }
    const dir = join(this.options.dir, jobId);
    let job = loadJob(dir, true);
    if (job === undefined) {
      if (!create) return undefined;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      job = new JobStreams(dir);
    }
    if (job.outputClosed) this.#remember(jobId, job);
    else this.#active.set(jobId, job);
    return job;
  }

  /** Keeps a closed job's state for a while, closing the least recently used beyond the cap. */
  #remember(jobId: string, job: JobStreams): void {
    this.#recent.set(jobId, job);
    if (this.#recent.size <= CACHED_CLOSED_JOBS) return;
    const [oldestId, oldest] = this.#recent.entries().next().value!;
    closeFiles(oldest);
    this.#recent.delete(oldestId);
  }

  /** The job's descriptor for `name`, opened on first use (append + read). */
  #fd(job: JobStreams, name: FileName): number {
    return (job.fds[name] ??= openMaking(job.dir, name));
  }

  #pushTail(job: JobStreams, chunk: OutputChunk): void {
    job.tail.push(chunk);
    job.tailBytes += chunk.data.byteLength;
    this.#trimTail(job);
  }

  /** Drops the oldest tail chunks beyond the limit (for adopted output, only stored ones). */
  #trimTail(job: JobStreams): void {
    const limit = this.options.tailBytes;
    while (job.tailBytes > limit && job.tailHead < job.tail.length) {
      const oldest = job.tail[job.tailHead]!;
      if (job.adopted && oldest.pos + oldest.data.byteLength > job.stored) break;
      job.tailBytes -= oldest.data.byteLength;
      job.tail[job.tailHead] = undefined;
      job.tailHead += 1;
    }
    // Compact once the dropped slots outnumber the live ones: amortised O(1) per chunk.
    if (job.tailHead >= 64 && job.tailHead * 2 >= job.tail.length) {
      job.tail = job.tail.slice(job.tailHead);
      job.tailHead = 0;
    }
  }

  /** A page of merged output from the files: find the record holding `from`, then read on. */
  #readFiles(job: JobStreams, from: number, maxBytes: number): OutputChunk[] {
    const indexFd = this.#fd(job, 'index');
    // Adopted output: the host adds records as it stores; each names bytes already in the files.
    if (job.adopted) job.records = Math.floor(fstatSync(indexFd).size / RECORD_BYTES);
    let first: number;
    if (job.resume.pos === from && job.resume.record < job.records) {
      first = job.resume.record;
    } else {
      // The last record whose position is <= from.
      let lo = 0;
      let hi = job.records - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (readRecord(indexFd, mid).pos <= from) lo = mid;
        else hi = mid - 1;
      }
      first = lo;
    }

    const records: IndexRecord[] = [];
    let total = 0;
    let next = first;
    collect: while (next < job.records) {
      const count = Math.min(RECORD_BATCH, job.records - next);
      const batch = readAt(indexFd, next * RECORD_BYTES, count * RECORD_BYTES);
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
    job.resume = { pos: from + total, record: next };

    // Within a run of records, each channel's bytes are contiguous in its file: one read each.
    const spans = { stdout: { start: -1, end: 0, data: EMPTY }, stderr: { start: -1, end: 0, data: EMPTY } };
    for (const record of records) {
      const span = spans[record.channel];
      if (span.start < 0) span.start = record.offset;
      span.end = record.offset + record.length;
    }
    for (const channel of ['stdout', 'stderr'] as const) {
      const span = spans[channel];
      if (span.start >= 0) span.data = readAt(this.#fd(job, channel), span.start, span.end - span.start);
    }
    return records.map((record) => {
      const span = spans[record.channel];
      const at = record.offset - span.start;
      return { channel: record.channel, pos: record.pos, offset: record.offset, data: span.data.subarray(at, at + record.length) };
    });
  }

  #emit(jobId: string, event: StreamEvent): void {
    this.#listeners.get(jobId)?.emit(event);
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }
}

/** A page of merged output from the in-memory tail (`from` lies within it). */
function readTail(job: JobStreams, from: number, maxBytes: number): OutputChunk[] {
  const tail = job.tail;
  let lo = job.tailHead;
  let hi = tail.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (tail[mid]!.pos <= from) lo = mid;
    else hi = mid - 1;
  }
  const chunks = [cutChunk(tail[lo]!, from)];
  let total = chunks[0]!.data.byteLength;
  for (let i = lo + 1; i < tail.length; i++) {
    const chunk = tail[i]!;
    if (total + chunk.data.byteLength > maxBytes) break;
    chunks.push(chunk);
    total += chunk.data.byteLength;
  }
  return chunks;
}

/** The part of `chunk` from merged position `from` on. */
function cutChunk(chunk: OutputChunk, from: number): OutputChunk {
  const cut = from - chunk.pos;
  if (cut <= 0) return chunk;
  return { channel: chunk.channel, pos: from, offset: chunk.offset + cut, data: chunk.data.subarray(cut) };
}

/**
 * Loads a job's state from its folder, or undefined when it has none. With `repair`, repairs
 * what an interrupted append can leave behind: a torn index record, or channel bytes with no
 * record (both cut off), or a record whose bytes never reached the disk (dropped, with all after
 * it). Without (output a job host may still be writing), only reads what the index names.
 */
function loadJob(dir: string, repair: boolean): JobStreams | undefined {
  // No exception for a folder not made yet (a job host's new job): building one costs more than the stat.
  if (statSync(dir, { throwIfNoEntry: false }) === undefined) return undefined;
  const job = new JobStreams(dir);
  const sizes = storedSizes(dir);
  job.stdout = sizes.stdout;
  job.stderr = sizes.stderr;
  job.records = sizes.records;
  if (repair) {
    if (sizes.indexFile > sizes.records * RECORD_BYTES) truncateFile(join(dir, 'index'), sizes.records * RECORD_BYTES);
    if (sizes.stdoutFile > job.stdout) truncateFile(join(dir, 'stdout'), job.stdout);
    if (sizes.stderrFile > job.stderr) truncateFile(join(dir, 'stderr'), job.stderr);
  }
  job.stdin = fileSize(join(dir, 'stdin'));
  const state = readState(dir);
  job.outputClosed = state.outputClosed;
  job.stdinClosed = state.stdinClosed;
  job.stdinConsumed = Math.min(state.stdinConsumed, job.stdin);
  if (job.outputClosed) job.final = state.final;
  return job;
}

/** True for a {@link StoredEnd} of byte counts (what a host said is checked, not trusted). */
function isStoredEnd(stored: StoredEnd): boolean {
  return [stored.stdout, stored.stderr, stored.records].every((n) => Number.isSafeInteger(n) && n >= 0);
}

/** What a job's index names (the last record whose bytes are all in the files), and the files' sizes. */
function storedSizes(dir: string): { stdout: number; stderr: number; records: number; stdoutFile: number; stderrFile: number; indexFile: number } {
  const job = { stdout: 0, stderr: 0 };
  const stdoutFile = fileSize(join(dir, 'stdout'));
  const stderrFile = fileSize(join(dir, 'stderr'));
  const indexFile = fileSize(join(dir, 'index'));
  let records = Math.floor(indexFile / RECORD_BYTES);
  if (records > 0) {
    const fd = openSync(join(dir, 'index'), 'r');
    try {
      for (; records > 0; records--) {
        const last = readRecord(fd, records - 1);
        const end = last.pos + last.length;
        const own = last.offset + last.length;
        const [stdout, stderr] = last.channel === 'stdout' ? [own, end - own] : [end - own, own];
        if (stdout <= stdoutFile && stderr <= stderrFile) {
          job.stdout = stdout;
          job.stderr = stderr;
          break;
        }
      }
    } finally {
      closeSync(fd);
    }
  }
  return { ...job, records, stdoutFile, stderrFile, indexFile };
}

/**
 * Bytes [from, to) of `channel` from the tail, where adopted output not yet stored is kept (the
 * tail holds every chunk past the stored end); throws if they are not there.
 */
function tailBytes(job: JobStreams, channel: OutputChannel, from: number, to: number): Buffer {
  const parts: Uint8Array[] = [];
  let at = from;
  for (let i = job.tailHead; i < job.tail.length && at < to; i++) {
    const chunk = job.tail[i]!;
    if (chunk.channel !== channel) continue;
    const end = chunk.offset + chunk.data.byteLength;
    if (end <= at) continue;
    if (chunk.offset > at) break;
    const take = chunk.data.subarray(at - chunk.offset, Math.min(chunk.data.byteLength, to - chunk.offset));
    parts.push(take);
    at += take.byteLength;
  }
  if (at < to) throw new Error(`${channel} of ${job.dir}: bytes ${at}..${to} are neither stored nor in memory`);
  return Buffer.concat(parts);
}

/** The bytes of `channel` readable from its file: all of them, but for adopted output only those stored. */
function storedChannelSize(job: JobStreams, channel: OutputChannel): number {
  if (!job.adopted || job.stored >= job.end) return job[channel];
  // The first tail chunk of the channel past the stored end starts where the file ends.
  for (let i = job.tailHead; i < job.tail.length; i++) {
    const chunk = job.tail[i]!;
    if (chunk.channel !== channel || chunk.pos + chunk.data.byteLength <= job.stored) continue;
    return chunk.offset + Math.max(0, job.stored - chunk.pos);
  }
  return job[channel];
}

/**
 * Reads `state.json`; without one, a job host's `exit.json` closes the output (see the module
 * documentation). Neither, or an unreadable one, means nothing was closed.
 */
function readState(dir: string): PersistedState {
  const state: PersistedState = { outputClosed: false, stdinClosed: false, stdinConsumed: 0 };
  let text: string;
  try {
    text = readFileSync(join(dir, 'state.json'), 'utf8');
  } catch (error) {
    if (isNotFound(error)) return readHostExit(dir, state);
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<PersistedState>;
    state.outputClosed = parsed.outputClosed === true;
    state.stdinClosed = parsed.stdinClosed === true;
    state.stdinConsumed = byteCount(parsed.stdinConsumed);
    // Absent in files written before closes recorded it (or edited): readers then read the record.
    if (parsed.final !== undefined) {
      try {
        state.final = checkFinalStatus(parsed.final);
      } catch {
        // A foreign edit, as below: the flags still count.
      }
    }
  } catch {
    // Written by rename, so a torn file means a foreign edit; treat it as absent.
  }
  return state;
}

/** The state a job host's `exit.json` in `dir` says (output closed, stdin as it was), else `state` as it is. */
function readHostExit(dir: string, state: PersistedState): PersistedState {
  let text: string;
  try {
    text = readFileSync(join(dir, 'exit.json'), 'utf8');
  } catch (error) {
    if (isNotFound(error)) return state;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as { stdin?: { consumed?: unknown; closed?: unknown } };
    state.outputClosed = true;
    state.stdinClosed = parsed.stdin?.closed === true;
    state.stdinConsumed = byteCount(parsed.stdin?.consumed);
  } catch {
    // Written by rename too: only a foreign edit is unreadable.
  }
  return state;
}

/** A stored byte count, 0 unless it is a positive safe integer. */
function byteCount(value: unknown): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : 0;
}

/** `{ final }` when the job's output was closed with how it ended, else nothing (the field stays absent). */
function withFinal(job: JobStreams): { final?: FinalStatus } {
  return job.final === undefined ? {} : { final: { ...job.final } };
}

/** Writes `state.json` atomically (write aside, then rename), making the job's folder if need be. */
function writeState(job: JobStreams): void {
  const state: PersistedState = { outputClosed: job.outputClosed, stdinClosed: job.stdinClosed, stdinConsumed: job.stdinConsumed, ...withFinal(job) };
  const path = join(job.dir, 'state.json');
  try {
    writeFileSync(`${path}.tmp`, JSON.stringify(state), { mode: 0o600 });
  } catch (error) {
    if (!isNotFound(error)) throw error;
    mkdirSync(job.dir, { recursive: true, mode: 0o700 });
    writeFileSync(`${path}.tmp`, JSON.stringify(state), { mode: 0o600 });
  }
  renameSync(`${path}.tmp`, path);
}

/** Opens (creating) file `name` of a job's folder `dir` for append and read, making the folder if need be. */
function openMaking(dir: string, name: FileName): number {
  try {
    return openSync(join(dir, name), 'a+', 0o600);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return openSync(join(dir, name), 'a+', 0o600);
  }
}

function closeFile(job: JobStreams, name: FileName): void {
  const fd = job.fds[name];
  if (fd === undefined) return;
  delete job.fds[name];
  closeSync(fd);
}

function closeFiles(job: JobStreams): void {
  for (const name of Object.keys(job.fds) as FileName[]) closeFile(job, name);
}

/**
 * Appends all of `data` to an O_APPEND descriptor whose file is `size` bytes long; on failure
 * (disk full...) cuts the file back to `size` so the next append lands where the sizes say.
 */
function appendOrUndo(fd: number, data: Uint8Array, size: number): void {
  try {
    let written = 0;
    while (written < data.byteLength) written += writeSync(fd, data, written, data.byteLength - written);
  } catch (error) {
    try {
      ftruncateSync(fd, size);
    } catch {
      // Reported below; the repair on next load handles what is left.
    }
    throw error;
  }
}

/** Reads exactly `length` bytes at `position`. */
function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(length);
  let read = 0;
  while (read < length) {
    const n = readSync(fd, buffer, read, length - read, position + read);
    if (n === 0) throw new Error(`short read: expected ${length} bytes at ${position}, file ended after ${read}`);
    read += n;
  }
  return buffer;
}

function readRecord(fd: number, index: number): IndexRecord {
  return decodeRecord(readAt(fd, index * RECORD_BYTES, RECORD_BYTES), 0);
}

function encodeRecord(buffer: Buffer, channel: OutputChannel, length: number, pos: number, offset: number): void {
  buffer.writeUInt32LE(length, 0);
  buffer.writeUInt32LE(channel === 'stdout' ? 0 : 1, 4);
  writeUint64(buffer, pos, 8);
  writeUint64(buffer, offset, 16);
}

function decodeRecord(buffer: Buffer, at: number): IndexRecord {
  return {
    length: buffer.readUInt32LE(at),
    channel: buffer[at + 4] === 0 ? 'stdout' : 'stderr',
    pos: readUint64(buffer, at + 8),
    offset: readUint64(buffer, at + 16),
  };
}

// Positions are safe integers (< 2^53), written as two 32-bit halves to avoid BigInt.
function writeUint64(buffer: Buffer, value: number, at: number): void {
  buffer.writeUInt32LE(value >>> 0, at);
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}

function readUint64(buffer: Buffer, at: number): number {
  return buffer.readUInt32LE(at) + buffer.readUInt32LE(at + 4) * 0x1_0000_0000;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (error) {
    if (isNotFound(error)) return 0;
    throw error;
  }
}

function truncateFile(path: string, size: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

