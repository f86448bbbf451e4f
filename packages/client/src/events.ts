/**
 * A subscription to a group's events over the events WebSocket (moi's add/update/remove verbs),
 * resumed by event id after a drop so the consumer misses nothing.
 * @module
 */
import type { EventStream } from './api.js';
import { BadRequestError, ConnectionError, type JobwireError, errorFromWire } from './errors.js';
import { wsUrl, type Connection } from './http.js';
import { QueuedIterator } from './queued-iterator.js';
import { closeCodeError, isRetryable, loadSocketFactory, type SocketFactory, type WireSocket } from './socket.js';
import type { EventsServerMessage, JobEvent } from './types.js';
import { BACKOFF, Sleeper, deferred, type Deferred } from './util.js';

/** Unread events at which the stream stops reading (it resumes by id later). */
export const EVENTS_HIGH_WATER = 10_000;
/** Unread events at which a suspended stream reconnects. */
export const EVENTS_LOW_WATER = 1_000;

/** What an event stream needs from its client. */
export interface EventsContext {
  connection: () => Promise<Connection>;
  /** Subtree to watch; `''` or undefined for everything of the user. */
  group?: string | undefined;
  /** Resume after this event id instead of starting with a snapshot. */
  since?: number | undefined;
}

/** Queue item marking where the backlog ends: `ready` resolves when the reader gets there. */
const READY = Symbol('ready');

/**
 * Implementation of {@link EventStream}; created by `Client.events`.
 *
 * The first connection must succeed (else the iterator throws and `ready` rejects). After that,
 * a dropped connection is retried with backoff until {@link GroupEventStream.close}, resuming with
 * `since=lastEventId`. When the consumer falls {@link EVENTS_HIGH_WATER} events behind, the
 * stream disconnects and resumes by id once it caught up, so memory stays bounded.
 */
export class GroupEventStream implements EventStream {
  private readonly queue: QueuedIterator<JobEvent | typeof READY>;
  private readonly readyDeferred = deferred<void>();
  readonly ready: Promise<void> = this.readyDeferred.promise;
  private last: number;
  /** True once ids mean "resume here": after a `ready`, or from the start when `since` was given. */
  private resumable: boolean;
  private everReady = false;
  private closed = false;
  private socket: WireSocket | undefined;
  private gen = 0;
  private suspended: Deferred<void> | undefined;
  private readonly sleeper = new Sleeper();

  constructor(private readonly ctx: EventsContext) {
    this.last = ctx.since ?? 0;
    this.resumable = ctx.since !== undefined;
    this.ready.catch(() => undefined);
    this.queue = new QueuedIterator<JobEvent | typeof READY>({
      highWater: EVENTS_HIGH_WATER,
      lowWater: EVENTS_LOW_WATER,
      onPressure: (paused) => (paused ? this.suspend() : this.unsuspend()),
      // A consumer that breaks out of `for await` is done with the stream.
      onReturn: () => this.close(),
    });
    void this.run();
  }

  /** Id of the last event received; pass it as `since` to resume. */
  get lastEventId(): number {
    return this.last;
  }

  /** The events, in order (one consumer; breaking out of the loop closes the stream). */
  [Symbol.asyncIterator](): AsyncIterator<JobEvent> {
    const queue = this.queue[Symbol.asyncIterator]();
    return {
      next: async () => {
        for (;;) {
          const r = await queue.next();
          if (r.done || r.value !== READY) return r as IteratorResult<JobEvent>;
          this.readyDeferred.resolve();
        }
      },
      return: () => queue.return() as Promise<IteratorResult<JobEvent>>,
    };
  }

  /** Stops the stream: the iterator ends after the events already received. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shutdown();
    this.queue.stop();
    this.readyDeferred.reject(new ConnectionError('the event stream was closed before it was ready'));
  }

  /** Closes (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.shutdown();
    this.queue.stop(err);
    this.readyDeferred.reject(err);
  }

  private shutdown(): void {
    this.gen++;
    this.sleeper.cancel();
    this.suspended?.resolve();
    this.suspended = undefined;
    this.socket?.close();
    this.socket = undefined;
  }

  private suspend(): void {
    // Before the first `ready` there is no id to resume from, so a snapshot is read through.
    if (!this.resumable || this.suspended || this.closed) return;
    this.suspended = deferred<void>();
    this.gen++;
    this.socket?.close();
    this.socket = undefined;
  }

  private unsuspend(): void {
    const suspended = this.suspended;
    this.suspended = undefined;
    suspended?.resolve();
  }

  private async run(): Promise<void> {
    let delay: number = BACKOFF.first;
    while (!this.closed) {
      if (this.suspended) {
        await this.suspended.promise;
        continue;
      }
      try {
        const [conn, factory] = await Promise.all([this.ctx.connection(), loadSocketFactory()]);
        if (this.closed) return;
        if (await this.serve(conn, factory)) delay = BACKOFF.first;
      } catch (err) {
        if (this.closed) return;
        // A first connection that fails is reported, not retried forever in silence.
        if (!this.everReady || !isRetryable(err)) {
          this.fail(err);
          return;
        }
      }
      if (this.closed || this.suspended) continue;
      await this.sleeper.sleep(delay);
      delay = Math.min(delay * 2, BACKOFF.max);
    }
  }

  /**
   * Runs one connection until it closes. Resolves true when it had become ready, false when we
   * closed it ourselves (suspend, close); rejects when it failed.
   */
  private serve(conn: Connection, factory: SocketFactory): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const gen = ++this.gen;
      let greeted = false;
      let verdict: JobwireError | undefined;
      const since = this.resumable ? this.last : undefined;
      const url = wsUrl(conn.url, '/events', { group: this.ctx.group || undefined, since });
      const socket = factory(url, { token: conn.token, base: conn.url, ca: conn.ca }, {
        onOpen: () => undefined,
        onMessage: (data) => {
          if (gen !== this.gen) return;
          let msg: EventsServerMessage;
          try {
            msg = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data)) as EventsServerMessage;
          } catch (err) {
            verdict ??= new BadRequestError('the events socket sent a message that is not JSON', { code: 'protocol', cause: err });
            socket.close();
            return;
          }
          switch (msg.type) {
            case 'event':
              this.onEvent(msg.event, since !== undefined || greeted);
              return;
            case 'ready':
              greeted = true;
              this.onReady(msg.lastEventId);
              return;
            case 'error':
              verdict ??= errorFromWire({ code: msg.code, message: msg.message });
              socket.close();
              return;
            default: {
              const never: never = msg;
              verdict ??= new BadRequestError(`unknown events message ${JSON.stringify(never)}`, { code: 'protocol' });
              socket.close();
            }
          }
        },
        onClose: (code, reason, error) => {
          if (gen !== this.gen) {
            resolve(false);
            return;
          }
          this.socket = undefined;
          const failure = verdict ?? closeCodeError(code, reason);
          if (failure) reject(failure);
          else if (greeted) resolve(true);
          else reject(error ?? new ConnectionError(`the events connection to ${conn.url} closed before it was ready (code ${code})`));
        },
      });
      this.socket = socket;
    });
  }

  private onEvent(event: JobEvent, ordered: boolean): void {
    if (ordered) {
      // Replayed or live: ids increase, and what we already have is skipped.
      if (event.id <= this.last) return;
      this.last = event.id;
    }
    this.queue.push(event);
  }

  private onReady(lastEventId: number): void {
    this.last = Math.max(this.last, lastEventId);
    this.resumable = true;
    const first = !this.everReady;
    this.everReady = true;
    if (first) this.markReady();
    if (this.queue.paused) this.suspend();
  }

  /**
   * `ready` means the backlog was delivered: with events still queued for a reader, it resolves
   * when the reader gets past them. A reader that starts within this turn of the event loop
   * counts; without one, `ready` resolves then and the backlog stays queued for a later reader.
   */
  private markReady(): void {
    if (this.queue.length === 0) {
      this.readyDeferred.resolve();
      return;
    }
    this.queue.push(READY);
    if (!this.queue.started) {
      setTimeout(() => {
        if (!this.queue.started) this.readyDeferred.resolve();
      }, 0);
    }
  }
}
