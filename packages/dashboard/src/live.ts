/**
 * The page's subscription to the events WebSocket (`/v1/events`): a snapshot of every group and
 * job, then live add / update / remove (moi's verbs); after a drop — the server restarted, the
 * network blinked, the page fell too far behind — it reconnects with `since=lastEventId`, so
 * nothing is missed or applied twice.
 *
 * The resume logic is the SDK's (`Client.events()`), written out here because the page needs
 * three things a script does not: its connection state (to show "reconnecting"), a refused
 * token told apart from a server that is down (browsers hide the HTTP status of a refused
 * upgrade, so it asks `/v1/whoami`), and the snapshot applied in one piece, so a connection
 * lost half-way through a snapshot leaves no stale half behind.
 * @module
 */
import type { EventsServerMessage, JobEvent } from '@jobwire/client';

/** Connection states, as shown in the header. */
export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'unauthorized' | 'closed';

/** Options of {@link LiveEvents}. */
export interface LiveEventsOptions {
  /** Server base URL, e.g. `http://127.0.0.1:7700`. */
  url: string;
  token: string;
  /** Subtree to watch. @defaultValue "" (everything of the user) */
  group?: string;
  /** The snapshot, whole: replaces what the page knew. */
  onSnapshot(events: JobEvent[]): void;
  /** Live (or replayed) events, in order, batched per {@link LiveEventsOptions.batchMs}. */
  onEvents(events: JobEvent[]): void;
  onState?(state: LiveState): void;
  /** Events arriving within this many ms are handed over together (one render). @defaultValue 16 */
  batchMs?: number;
}

/** First and longest wait between reconnection attempts. */
const BACKOFF_FIRST = 250;
const BACKOFF_MAX = 5000;

/** A live events subscription; call {@link LiveEvents.close} when done. */
export class LiveEvents {
  private socket: WebSocket | undefined;
  private last: number | undefined;
  private state: LiveState = 'connecting';
  private delay = BACKOFF_FIRST;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private batch: JobEvent[] = [];
  private batchTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly options: LiveEventsOptions) {
    this.connect();
  }

  /** Id of the last event applied: where a reconnect resumes. */
  get lastEventId(): number | undefined {
    return this.last;
  }

  /** Tries at once instead of waiting out the backoff (e.g. when the tab becomes visible). */
  retryNow(): void {
    if (this.state !== 'reconnecting' || this.socket) return;
    clearTimeout(this.timer);
    this.connect();
  }

  /** Ends the subscription. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.flush();
    const socket = this.socket;
    this.socket = undefined;
    socket?.close(1000);
    this.setState('closed');
  }

  private setState(state: LiveState): void {
    if (this.state === state) return;
    this.state = state;
    this.options.onState?.(state);
  }

  private connect(): void {
    const url = new URL(this.options.url.replace(/\/+$/, '') + '/v1/events');
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.options.group) url.searchParams.set('group', this.options.group);
    if (this.last !== undefined) url.searchParams.set('since', String(this.last));
    // Browsers cannot set headers on a WebSocket: the server takes the token from the query.
    url.searchParams.set('access_token', this.options.token);
    const socket = new WebSocket(url);
    this.socket = socket;
    const snapshot = this.last === undefined ? ([] as JobEvent[]) : undefined;
    let opened = false;
    let ready = false;

    socket.addEventListener('open', () => {
      opened = true;
    });
    socket.addEventListener('message', (ev: MessageEvent) => {
      if (this.socket !== socket || typeof ev.data !== 'string') return;
      let msg: EventsServerMessage;
      try {
        msg = JSON.parse(ev.data) as EventsServerMessage;
      } catch {
        socket.close(4400);
        return;
      }
      switch (msg.type) {
        case 'event':
          if (snapshot && !ready) snapshot.push(msg.event);
          else this.push(msg.event);
          return;
        case 'ready':
          ready = true;
          this.delay = BACKOFF_FIRST;
          if (snapshot) {
            this.flush();
            this.options.onSnapshot(snapshot);
          }
          this.last = Math.max(this.last ?? 0, msg.lastEventId);
          this.setState('live');
          return;
        case 'error':
          // The server closes next; the close schedules the retry.
          return;
        default: {
          const never: never = msg;
          void never;
        }
      }
    });
    const onEnd = (): void => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      if (this.closed) return;
      this.flush();
      if (!opened) void this.checkToken();
      else this.retry();
    };
    socket.addEventListener('close', onEnd);
    socket.addEventListener('error', onEnd);
  }

  /** A refused upgrade may be a bad token or a server that is down: `/v1/whoami` tells which. */
  private async checkToken(): Promise<void> {
    try {
      const res = await fetch(this.options.url.replace(/\/+$/, '') + '/v1/whoami', { headers: { authorization: `Bearer ${this.options.token}` } });
      if (res.status === 401) {
        this.closed = true;
        this.setState('unauthorized');
        return;
      }
    } catch {
      // Down: retry below.
    }
    this.retry();
  }

  private retry(): void {
    if (this.closed) return;
    this.setState(this.last === undefined && this.state === 'connecting' ? 'connecting' : 'reconnecting');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, BACKOFF_MAX);
  }

  private push(event: JobEvent): void {
    // Replayed and live ids only grow; anything at or below what we have is a duplicate.
    if (this.last !== undefined && event.id <= this.last) return;
    this.last = event.id;
    this.batch.push(event);
    this.batchTimer ??= setTimeout(() => this.flush(), this.options.batchMs ?? 16);
  }

  private flush(): void {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    if (this.batch.length === 0) return;
    const events = this.batch;
    this.batch = [];
    this.options.onEvents(events);
  }
}
