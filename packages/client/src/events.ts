/**
 * A subscription to a group's events over the events WebSocket (moi's add/update/remove verbs),
 * resumed by event id after a drop so the consumer misses nothing, with its connection state in
 * view (a page shows "reconnecting" from it).
 * @module
 */
import type { EventBatch, EventStream, EventStreamState } from './api.js';
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
  /** Retry a first connection that cannot reach the server instead of failing. */
  waitForServer: boolean;
}

/** Queue item marking where the backlog ends: `ready` resolves when the reader gets there. */
const READY = Symbol('ready');

/** Queue item holding a whole snapshot, queued only once its `ready` arrived. */
class Snapshot {
  constructor(readonly events: JobEvent[]) {}
}

type Item = JobEvent | Snapshot | typeof READY;

/**
 * Implementation of {@link EventStream}; created by `Client.events`.
 *
 * The first connection must succeed (else the iterator throws and `ready` rejects), unless
 * `waitForServer` asks to retry it. After that, a dropped connection is retried with backoff
 * until {@link GroupEventStream.close}, resuming with `since=lastEventId`. When the consumer
 * falls {@link EVENTS_HIGH_WATER} events behind, the stream disconnects and resumes by id once
 * it caught up, so memory stays bounded. A snapshot is held until its `ready` and queued whole.
 */
export class GroupEventStream implements EventStream {
  private readonly queue: QueuedIterator<Item>;
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
  private current: EventStreamState = 'connecting';
  private failure: unknown;
  private readonly stateListeners = new Set<(state: EventStreamState) => void>();

  constructor(private readonly ctx: EventsContext) {
    this.last = ctx.since ?? 0;
    this.resumable = ctx.since !== undefined;
    this.ready.catch(() => undefined);
    this.queue = new QueuedIterator<Item>({
      sizeOf: (item) => (item instanceof Snapshot ? item.events.length : item === READY ? 0 : 1),
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

  /** The connection state now. */
  get state(): EventStreamState {
    return this.current;
  }

  /** What ended the stream, when a failure did. */
  get error(): unknown {
    return this.failure;
  }

  /** Calls `listener` on every state change; returns the function that stops it. */
  onStateChange(listener: (state: EventStreamState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** The events, in order (one consumer; breaking out of the loop closes the stream). */
  [Symbol.asyncIterator](): AsyncIterator<JobEvent> {
    const queue = this.queue[Symbol.asyncIterator]();
    let snapshot: JobEvent[] = [];
    let at = 0;
    return {
      next: async () => {
        for (;;) {
          if (at < snapshot.length) return { value: snapshot[at++]!, done: false };
          const r = await queue.next();
          if (r.done) return r;
          if (r.value === READY) this.readyDeferred.resolve();
          else if (r.value instanceof Snapshot) [snapshot, at] = [r.value.events, 0];
          else return { value: r.value, done: false };
        }
      },
      return: () => queue.return() as Promise<IteratorResult<JobEvent>>,
    };
  }

  /** The events in batches: the snapshot whole, then what arrived by each read (see {@link EventStream.batches}). */
  batches(): AsyncIterable<EventBatch> {
    const queue = this.queue[Symbol.asyncIterator]();
    let heldSnapshot: Snapshot | undefined;
    const iterator: AsyncIterator<EventBatch> = {
      next: async () => {
        const events: JobEvent[] = [];
        for (;;) {
          if (heldSnapshot && events.length === 0) {
            const { events: whole } = heldSnapshot;
            heldSnapshot = undefined;
            return { value: { snapshot: true, events: whole }, done: false };
          }
          // Wait only for the first item of a batch; then take what is queued already.
          if (events.length > 0 && (heldSnapshot || this.queue.length === 0)) return { value: { snapshot: false, events }, done: false };
          const r = await queue.next();
          if (r.done) return r;
          if (r.value === READY) this.readyDeferred.resolve();
          else if (r.value instanceof Snapshot) heldSnapshot = r.value;
          else events.push(r.value);
        }
      },
      return: () => queue.return() as Promise<IteratorResult<EventBatch>>,
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }

  /** Ends a wait between reconnection attempts: the stream tries again at once. Returns whether it was waiting. */
  reconnectNow(): boolean {
    if (this.closed || !this.sleeper.sleeping) return false;
    this.sleeper.cancel();
    return true;
  }

  /** Stops the stream: the iterator ends after the events already received. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shutdown();
    this.queue.stop();
    this.readyDeferred.reject(new ConnectionError('the event stream was closed before it was ready'));
    this.setState('closed');
  }

  /** Closes (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = err;
    this.shutdown();
    this.queue.stop(err);
    this.readyDeferred.reject(err);
    this.setState('closed');
  }

  private setState(state: EventStreamState): void {
    if (this.current === state) return;
    this.current = state;
    for (const listener of [...this.stateListeners]) {
      try {
        listener(state);
      } catch (err) {
        // A listener's bug must not break the stream's own bookkeeping: report it on its own.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
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
        // A first connection that fails is reported, not retried forever in silence — unless
        // the caller asked to wait for the server.
        if ((!this.everReady && !this.ctx.waitForServer) || !isRetryable(err)) {
          this.fail(err);
          return;
        }
      }
      if (this.closed || this.suspended) continue;
      if (this.everReady) this.setState('reconnecting');
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
      // Without `since` the backlog is a snapshot: held here until its `ready`, so a connection
      // lost half-way through leaves nothing of it behind.
      const snapshot: JobEvent[] | undefined = since === undefined ? [] : undefined;
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
              if (snapshot && !greeted) snapshot.push(msg.event);
              else this.onEvent(msg.event);
              return;
            case 'ready':
              greeted = true;
              this.onReady(msg.lastEventId, snapshot);
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

  private onEvent(event: JobEvent): void {
    // Replayed or live: ids increase, and what we already have is skipped.
    if (event.id <= this.last) return;
    this.last = event.id;
    this.queue.push(event);
  }

  private onReady(lastEventId: number, snapshot: JobEvent[] | undefined): void {
    if (snapshot) this.queue.push(new Snapshot(snapshot));
    this.last = Math.max(this.last, lastEventId);
    this.resumable = true;
    const first = !this.everReady;
    this.everReady = true;
    if (first) this.markReady(snapshot !== undefined);
    this.setState('live');
    if (this.queue.paused) this.suspend();
  }

  /**
   * `ready` means the backlog was delivered: with events still queued for a reader, it resolves
   * when the reader gets past them. A reader that starts within this turn of the event loop
   * counts; without one, `ready` resolves then and the backlog stays queued for a later reader.
   */
  private markReady(snapshotQueued: boolean): void {
    // A snapshot may have gone straight to a waiting reader, who has yet to go through it.
    if (this.queue.length === 0 && !snapshotQueued) {
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
