/**
 * The Redis {@link StreamLog}: each job's output, stdin and sizes in Redis (see
 * `scripts/streams.ts` for the layout), live stream events over the job's pub/sub channel.
 *
 * Reads are pages (a merged-output page, or at most {@link BYTES_PAGE} bytes of one channel per
 * script call), so neither Redis nor this process ever holds a whole stream for one reader.
 *
 * Pub/sub forgets what it sent while a subscriber was disconnected. So when the subscriber
 * connection comes back, every subscribed job gets a *resync*: events rebuilt from the stored
 * state (the last output chunk, output closed, stdin acknowledged, a wake-up for stdin readers,
 * a recorded cancel), which are harmless when they repeat something and enough for attach
 * sessions and runners to read on from storage. {@link RedisStreamLog.resync} is also what a
 * worker calls now and then for the jobs it runs, as a safety net.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { BadRequestError, ConflictError, type OutputChannel, type OutputChunk } from '@jobwire/client';
import { checkBytes, checkChannel, checkChunkBytes, checkFinalStatus, checkJobId, checkPosition } from '../checks.js';
import { ListenerSet, type ListenerErrorHandler } from '../listeners.js';
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
} from '../types.js';
import { closedError, toRedisStoreError } from './errors.js';
import type { Gate } from './gate.js';
import type { Keys } from './keys.js';
import type { ScriptRunner } from './scripts/index.js';

/** Most bytes one call reads of a channel or stdin. */
const BYTES_PAGE = 4 * 1024 * 1024;
/** Most bytes one merged-output page holds (a larger `maxBytes` is cut to this). */
const OUTPUT_PAGE = 16 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const BAR = 0x7c; // '|'

/** What the log needs from its store. */
export interface RedisStreamLogSettings {
  /** Command connection. */
  redis: Redis;
  /** Pub/sub connection (used for nothing else). */
  subscriber: Redis;
  scripts: ScriptRunner;
  keys: Keys;
  gate: Gate;
  onListenerError: ListenerErrorHandler;
}

/** The Redis-backed {@link StreamLog}. */
export class RedisStreamLog implements StreamLog {
  readonly #settings: RedisStreamLogSettings;
  readonly #listeners = new Map<string, ListenerSet<StreamEvent>>();
  /** Names this log's appends, so a resent append is recognised (see `appendOutput.lua`). */
  readonly #writer = randomBytes(9).toString('base64url');
  #sequence = 0;
  #closed = false;
  #connectedOnce = false;

  constructor(settings: RedisStreamLogSettings) {
    this.#settings = settings;
    const prefix = settings.keys.ev('');
    settings.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      const jobId = channel.toString('utf8').slice(prefix.length);
      const listeners = this.#listeners.get(jobId);
      if (listeners === undefined) return;
      let event: StreamEvent | undefined;
      try {
        event = decodeMessage(message);
      } catch (error) {
        settings.onListenerError(error);
      }
      if (event) listeners.emit(event);
    });
    settings.subscriber.on('ready', () => {
      if (!this.#connectedOnce) {
        this.#connectedOnce = true;
        return;
      }
      // Back after a disconnect: ioredis re-subscribes right after this event; a PING queued
      // behind those SUBSCRIBEs answers once they are active. Then rebuild what was missed.
      setImmediate(() => {
        settings.subscriber
          .ping()
          .then(() => Promise.all([...this.#listeners.keys()].map((id) => this.resync(id, { output: true }))))
          .catch((error: unknown) => settings.onListenerError(error));
      });
    });
  }

  /** True once the subscriber connection was up (set by the store when it opened it). */
  markConnected(): void {
    this.#connectedOnce = true;
  }

  appendOutput(jobId: string, channel: OutputChannel, data: Uint8Array): Promise<OutputChunk> {
    return this.#op(async () => {
      checkJobId(jobId);
      checkChannel(channel);
      checkBytes(data);
      // Our own copy: the caller may reuse its buffer once we return.
      const copy = Buffer.from(data);
      const sequence = ++this.#sequence;
      const [pos, offset] = await this.#settings.scripts.run<[number, number]>(
        'jwAppendOutput',
        jobId,
        channel === 'stdout' ? '1' : '2',
        copy,
        this.#writer,
        sequence,
      );
      return { channel, pos, offset, data: copy.byteLength === 0 ? EMPTY : copy };
    });
  }

  closeOutput(jobId: string, final?: FinalStatus): Promise<void> {
    return this.#op(async () => {
      checkJobId(jobId);
      const fin = final === undefined ? '' : JSON.stringify(checkFinalStatus(final));
      await this.#settings.scripts.run('jwCloseOutput', jobId, fin);
    });
  }

  readOutput(jobId: string, from: number, maxBytes: number): Promise<OutputPage> {
    return this.#op(async () => {
      checkJobId(jobId);
      checkPosition(from, 'from');
      if (typeof maxBytes !== 'number' || Number.isNaN(maxBytes)) {
        throw new BadRequestError(`maxBytes must be a number, got ${String(maxBytes)}`, { field: 'maxBytes' });
      }
      const max = Math.max(0, Math.min(Math.floor(maxBytes), OUTPUT_PAGE));
      const reply = await this.#settings.scripts.runBuffer<Array<number | Buffer>>('jwReadOutput', jobId, from, max);
      const chunks: OutputChunk[] = [];
      for (let i = 3; i < reply.length; i += 4) {
        chunks.push({
          channel: (reply[i] as Buffer).toString() === '1' ? 'stdout' : 'stderr',
          pos: reply[i + 1] as number,
          offset: reply[i + 2] as number,
          data: reply[i + 3] as Buffer,
        });
      }
      const closed = reply[1] === 1;
      return { chunks, end: reply[0] as number, closed, ...(closed ? storedFinal(reply[2] as Buffer) : {}) };
    });
  }

  readChannel(jobId: string, channel: OutputChannel, from: number, to?: number): Promise<Uint8Array> {
    return this.#op(async () => {
      checkJobId(jobId);
      checkChannel(channel);
      checkPosition(from, 'from');
      if (to !== undefined) checkPosition(to, 'to');
      const parts: Buffer[] = [];
      let at = from;
      for (;;) {
        const [data, next, size] = await this.#readBytes(jobId, channel === 'stdout' ? '1' : '2', at, to, BYTES_PAGE);
        if (data.byteLength > 0) parts.push(data);
        at = next;
        if (data.byteLength === 0 || at >= Math.min(size, to ?? size)) break;
      }
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    });
  }

  async *readChannelChunks(jobId: string, channel: OutputChannel, from: number, to?: number, options: ChannelChunksOptions = {}): AsyncGenerator<Uint8Array> {
    checkJobId(jobId);
    checkChannel(channel);
    checkPosition(from, 'from');
    if (to !== undefined) checkPosition(to, 'to');
    const chunkBytes = checkChunkBytes(options.chunkBytes ?? CHANNEL_CHUNK_BYTES, MAX_CHANNEL_CHUNK_BYTES);
    const kind = channel === 'stdout' ? '1' : '2';
    // One script call per chunk, made when the consumer asks for it; the first answer gives the
    // size that clips the range.
    let stop = to;
    for (let at = from, first = true; ; first = false) {
      const [data, next, size] = await this.#op(() => this.#readBytes(jobId, kind, at, stop, chunkBytes));
      if (first) stop = Math.min(to ?? size, size);
      if (at >= stop!) return;
      if (data.byteLength === 0) throw new ConflictError(`the ${channel} of job ${jobId} was removed while it was read (at byte ${at} of ${stop})`);
      yield data;
      at = next;
    }
  }

  appendStdin(jobId: string, offset: number, data: Uint8Array): Promise<number> {
    return this.#op(async () => {
      checkJobId(jobId);
      checkPosition(offset, 'offset');
      checkBytes(data);
      return this.#settings.scripts.run<number>('jwAppendStdin', jobId, offset, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    });
  }

  closeStdin(jobId: string): Promise<number> {
    return this.#op(async () => {
      checkJobId(jobId);
      return this.#settings.scripts.run<number>('jwCloseStdin', jobId);
    });
  }

  readStdin(jobId: string, from: number, maxBytes: number): Promise<{ data: Uint8Array; end: number; closed: boolean }> {
    return this.#op(async () => {
      checkJobId(jobId);
      checkPosition(from, 'from');
      checkPosition(maxBytes, 'maxBytes');
      const [data, , size, closed] = await this.#readBytes(jobId, 'in', from, undefined, Math.min(maxBytes, BYTES_PAGE));
      return { data, end: size, closed };
    });
  }

  ackStdin(jobId: string, consumed: number): Promise<void> {
    return this.#op(async () => {
      checkJobId(jobId);
      checkPosition(consumed, 'consumed');
      await this.#settings.scripts.run('jwAckStdin', jobId, consumed);
    });
  }

  sendControl(jobId: string, control: ControlMessage): Promise<void> {
    return this.#op(async () => {
      checkJobId(jobId);
      if (control.type === 'cancel') await this.#settings.scripts.run('jwSendControl', jobId, 'x', 0, 0);
      else if (control.type === 'output-ack') await this.#settings.scripts.run('jwSendControl', jobId, 'k', Math.floor(control.end), 0);
      else await this.#settings.scripts.run('jwSendControl', jobId, 'r', Math.floor(control.cols), Math.floor(control.rows));
    });
  }

  sizes(jobId: string): Promise<StreamSizes> {
    return this.#op(async () => {
      checkJobId(jobId);
      const [out, err, stdin, ic, iu, oc, fin] = await this.#settings.redis.hmget(this.#settings.keys.st(jobId), 'out', 'err', 'in', 'ic', 'iu', 'oc', 'fin');
      const stdout = Number(out ?? 0);
      const stderr = Number(err ?? 0);
      return {
        end: stdout + stderr,
        stdout,
        stderr,
        stdin: Number(stdin ?? 0),
        stdinClosed: ic === '1',
        stdinConsumed: Number(iu ?? 0),
        outputClosed: oc === '1',
        ...(oc === '1' ? storedFinal(fin) : {}),
      };
    });
  }

  subscribe(jobId: string, listener: (event: StreamEvent) => void): () => void {
    let listeners = this.#listeners.get(jobId);
    if (listeners === undefined) {
      listeners = new ListenerSet(this.#settings.onListenerError);
      this.#listeners.set(jobId, listeners);
      if (!this.#closed) this.#settings.gate.hold(this.#settings.subscriber.subscribe(this.#settings.keys.ev(jobId)));
    }
    const set = listeners;
    const remove = set.add(listener);
    return () => {
      remove();
      if (set.size === 0 && this.#listeners.get(jobId) === set) {
        this.#listeners.delete(jobId);
        if (!this.#closed) this.#settings.subscriber.unsubscribe(this.#settings.keys.ev(jobId)).catch(() => undefined);
      }
    };
  }

  remove(jobId: string): Promise<void> {
    return this.#op(async () => {
      checkJobId(jobId);
      const k = this.#settings.keys;
      await this.#settings.redis.unlink(k.st(jobId), k.idx(jobId), k.out(jobId), k.err(jobId), k.in(jobId));
    });
  }

  /**
   * Tells this log's listeners of a job what the stored state says, as events: a recorded
   * cancel, stdin acknowledged so far, a wake-up for stdin readers, output closed, and (with
   * `output`) the last output chunk. Used after a reconnect and as a worker's safety net.
   */
  async resync(jobId: string, options: { output: boolean }): Promise<void> {
    if (!this.#listeners.has(jobId) || this.#closed) return;
    const sizes = await this.sizes(jobId);
    const cancel = await this.#settings.redis.hget(this.#settings.keys.st(jobId), 'cancel');
    const events: StreamEvent[] = [];
    if (cancel === '1') events.push({ type: 'control', control: { type: 'cancel' } });
    events.push({ type: 'stdin-ack', consumed: sizes.stdinConsumed });
    if (sizes.stdinClosed) events.push({ type: 'stdin-closed', offset: sizes.stdin });
    else events.push({ type: 'stdin', offset: sizes.stdin, data: EMPTY });
    if (options.output && sizes.end > 0) {
      const last = await this.#settings.redis.xrevrange(this.#settings.keys.idx(jobId), '+', '-', 'COUNT', 1);
      const pos = last[0] ? Number(last[0][0].split('-')[0]) : undefined;
      if (pos !== undefined) {
        const page = await this.readOutput(jobId, pos, 1);
        if (page.chunks[0]) events.push({ type: 'output', chunk: page.chunks[0] });
      }
    }
    if (sizes.outputClosed) events.push({ type: 'output-closed', end: sizes.end, ...(sizes.final ? { final: sizes.final } : {}) });
    const listeners = this.#listeners.get(jobId);
    for (const event of events) listeners?.emit(event);
  }

  /**
   * Hands an event to this process's listeners of a job only, storing and publishing nothing: a
   * worker stopping its own runs uses it, so no record (such as a cancel flag) outlives them.
   */
  deliverLocally(jobId: string, event: StreamEvent): void {
    this.#listeners.get(jobId)?.emit(event);
  }

  /** Stops delivering events (the store closes the connections). */
  close(): void {
    this.#closed = true;
    this.#listeners.clear();
  }

  async #readBytes(jobId: string, kind: '1' | '2' | 'in', from: number, to: number | undefined, max: number): Promise<[Buffer, number, number, boolean]> {
    const [data, next, size, closed] = await this.#settings.scripts.runBuffer<[Buffer, number, number, number]>(
      'jwReadBytes',
      jobId,
      kind,
      from,
      to === undefined ? '' : to,
      max,
    );
    return [data, next, size, closed === 1];
  }

  /** Runs an operation after pending subscriptions, mapping failures to jobwire errors. */
  #op<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    return this.#settings.gate.run(operation).catch((error: unknown) => {
      throw this.#closed ? closedError() : toRedisStoreError(error);
    });
  }
}

/** Decodes a message of a job's channel (format in `scripts/streams.ts`). */
export function decodeMessage(message: Buffer): StreamEvent {
  const type = String.fromCharCode(message[0]!);
  const text = (from: number, to: number): number => Number(message.toString('latin1', from, to));
  switch (type) {
    case 'o': {
      const bar1 = message.indexOf(BAR, 2);
      const bar2 = message.indexOf(BAR, bar1 + 1);
      return {
        type: 'output',
        chunk: { channel: message[1] === 0x31 ? 'stdout' : 'stderr', pos: text(2, bar1), offset: text(bar1 + 1, bar2), data: message.subarray(bar2 + 1) },
      };
    }
    case 'c': {
      const bar = message.indexOf(BAR, 1);
      if (bar < 0) return { type: 'output-closed', end: text(1, message.length) };
      return { type: 'output-closed', end: text(1, bar), final: checkFinalStatus(JSON.parse(message.toString('utf8', bar + 1))) };
    }
    case 'i': {
      const bar = message.indexOf(BAR, 1);
      return { type: 'stdin', offset: text(1, bar), data: message.subarray(bar + 1) };
    }
    case 'I':
      return { type: 'stdin-closed', offset: text(1, message.length) };
    case 'a':
      return { type: 'stdin-ack', consumed: text(1, message.length) };
    case 'r': {
      const bar = message.indexOf(BAR, 1);
      return { type: 'control', control: { type: 'resize', cols: text(1, bar), rows: text(bar + 1, message.length) } };
    }
    case 'x':
      return { type: 'control', control: { type: 'cancel' } };
    case 'k':
      return { type: 'control', control: { type: 'output-ack', end: text(1, message.length) } };
    default:
      throw new Error(`unknown stream message type ${JSON.stringify(type)}`);
  }
}

/** `{ final }` from the `fin` field of `st:ID` (JSON), or nothing when there is none. */
function storedFinal(fin: string | Buffer | null | undefined): { final?: FinalStatus } {
  if (fin === null || fin === undefined || fin.length === 0) return {};
  try {
    return { final: checkFinalStatus(JSON.parse(fin.toString())) };
  } catch {
    // Not written by jwCloseOutput: as if the close had not said (readers read the record).
    return {};
  }
}
