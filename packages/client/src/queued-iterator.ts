/**
 * The SDK's one streaming primitive: a queue a producer pushes into and a single consumer reads
 * with `for await`. Output chunks, events and stdin writes all travel through it.
 * @module
 */
import { ConflictError } from './errors.js';

/** Options of {@link QueuedIterator}. */
export interface QueuedIteratorOptions<T> {
  /** Weight of one item against the marks, e.g. its byte length. @defaultValue `() => 1` (count items) */
  sizeOf?: (item: T) => number;
  /** Queued weight at which the producer is asked to pause (`onPressure(true)`). @defaultValue `Infinity` (never) */
  highWater?: number;
  /** Queued weight at or below which a paused producer may resume (`onPressure(false)`). @defaultValue `highWater / 4` */
  lowWater?: number;
  /** Told when the producer should pause (`true`) and when it may resume (`false`). */
  onPressure?: (paused: boolean) => void;
  /**
   * Unread items kept at most: a push beyond it drops the oldest unread item (for streams where
   * only the latest items matter, such as status updates). @defaultValue `Infinity` (keep all)
   */
  maxItems?: number;
  /** Called once when the consumer leaves before the end (`break`, `return`), after the queue was dropped. */
  onReturn?: () => void;
  /** Called once when the consumer is through: it read the end (or the error), or it left early. */
  onEnd?: () => void;
}

interface Reader<T> {
  resolve(result: IteratorResult<T>): void;
  reject(err: unknown): void;
}

/**
 * A push queue read by one async iterator.
 *
 * - `push(item)` hands an item to a waiting reader or queues it.
 * - `stop()` ends the stream after the queued items; `stop(err)` makes the reader throw `err`
 *   once the queued items are read.
 * - A consumer that `break`s drops the queue, stops the stream and triggers `onReturn`;
 *   later pushes are ignored.
 * - With `highWater`, `onPressure(true)` tells the producer to pause when the unread weight
 *   reaches the mark and `onPressure(false)` when the reader drained it to `lowWater`.
 *
 * Iterating it a second time throws a {@link ConflictError}: items go to one consumer only.
 */
export class QueuedIterator<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private head = 0;
  private weight = 0;
  private readers: Reader<T>[] = [];
  private stopped = false;
  private error: unknown;
  private finished = false;
  private iterated = false;
  private reading = false;
  private pressured = false;
  private readonly sizeOf: (item: T) => number;
  private readonly highWater: number;
  private readonly lowWater: number;
  private readonly maxItems: number;
  private readonly onPressure: ((paused: boolean) => void) | undefined;
  private readonly onReturn: (() => void) | undefined;
  private readonly onEnd: (() => void) | undefined;

  constructor(options: QueuedIteratorOptions<T> = {}) {
    this.sizeOf = options.sizeOf ?? (() => 1);
    this.highWater = options.highWater ?? Infinity;
    this.lowWater = options.lowWater ?? this.highWater / 4;
    this.maxItems = options.maxItems ?? Infinity;
    this.onPressure = options.onPressure;
    this.onReturn = options.onReturn;
    this.onEnd = options.onEnd;
  }

  /** Items queued and not yet read. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Total weight (see `sizeOf`) of the unread items. */
  get queuedSize(): number {
    return this.weight;
  }

  /** True once `stop()` was called or the consumer left; pushes are then ignored. */
  get closed(): boolean {
    return this.stopped;
  }

  /** True once a consumer started reading (took the iterator or called `next()`). */
  get started(): boolean {
    return this.iterated || this.reading;
  }

  /** True once the consumer is through: it read the end or left early. */
  get finishedReading(): boolean {
    return this.finished;
  }

  /** True while the producer has been asked to pause. */
  get paused(): boolean {
    return this.pressured;
  }

  /**
   * Adds an item. Returns false when the item was dropped because the stream is stopped or the
   * consumer left; the producer should then stop producing.
   */
  push(item: T): boolean {
    if (this.stopped) return false;
    const reader = this.readers.shift();
    if (reader) {
      reader.resolve({ value: item, done: false });
      return true;
    }
    this.items.push(item);
    this.weight += this.sizeOf(item);
    if (this.length > this.maxItems) this.shift();
    if (!this.pressured && this.weight >= this.highWater) {
      this.pressured = true;
      this.onPressure?.(true);
    }
    return true;
  }

  /** Ends the stream once the queued items are read; with `err`, the reader then throws it. */
  stop(err?: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.error = err;
    if (this.length === 0) this.settleReaders();
  }

  /** Reads the next item (the async iterator protocol). */
  next(): Promise<IteratorResult<T>> {
    this.reading = true;
    if (this.length > 0) return Promise.resolve({ value: this.shift(), done: false });
    if (this.stopped) return this.end();
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  /** Leaves early: drops what is queued, stops the stream and calls `onReturn`. */
  return(): Promise<IteratorResult<T>> {
    this.reading = true;
    const early = !this.finished;
    this.finished = true;
    this.stopped = true;
    this.error = undefined;
    this.items = [];
    this.head = 0;
    this.weight = 0;
    this.settleReaders();
    if (this.pressured) {
      this.pressured = false;
      this.onPressure?.(false);
    }
    if (early) {
      this.onReturn?.();
      this.onEnd?.();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Returns this iterator, once; a second consumer gets a {@link ConflictError}. */
  [Symbol.asyncIterator](): this {
    if (this.iterated) throw new ConflictError('this stream has a consumer already: it can be iterated only once');
    this.iterated = true;
    return this;
  }

  private shift(): T {
    const item = this.items[this.head] as T;
    this.items[this.head] = undefined as T;
    this.head++;
    // Compact now and then so a long-lived queue does not keep a growing array of holes.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.weight -= this.sizeOf(item);
    if (this.pressured && this.weight <= this.lowWater) {
      this.pressured = false;
      this.onPressure?.(false);
    }
    return item;
  }

  private end(): Promise<IteratorResult<T>> {
    const first = !this.finished;
    this.finished = true;
    if (first) this.onEnd?.();
    if (first && this.error !== undefined) return Promise.reject(this.error);
    return Promise.resolve({ value: undefined, done: true });
  }

  private settleReaders(): void {
    const readers = this.readers;
    this.readers = [];
    for (const reader of readers) this.end().then(reader.resolve, reader.reject);
  }
}
