/**
 * Feeds a {@link JobStore} from the SDK's event stream (`Client.events`): the snapshot replaces
 * what the store held, replayed and live events are applied in batches of about one frame (one
 * render each), and the stream's connection state is reported for the header. The SDK does the
 * resuming (`since=` the last event id after a drop) and tells a refused token from a server
 * that is down; this adapter only renders, and cuts the SDK's backoff short when the tab becomes
 * visible again or the browser comes back online (background tabs run their timers late).
 * @module
 */
import { UnauthorizedError, type Client, type EventStreamState, type JobEvent } from '@jobwire/client';
import type { JobStore } from './job-store.js';

/** Connection states as the page shows them: the stream's own, with a refused token told apart. */
export type LiveState = EventStreamState | 'unauthorized';

/** Options of {@link followEvents}. */
export interface FollowOptions {
  /** Subtree to watch. @defaultValue "" (everything of the user) */
  group?: string;
  /** Told every change of the connection state. */
  onState(state: LiveState): void;
  /** Live events arriving within this many ms are applied together (one render). @defaultValue 16 */
  batchMs?: number;
}

/** Follows the events of `options.group` into `store`; returns the function that stops following. */
export function followEvents(client: Client, store: JobStore, options: FollowOptions): () => void {
  const stream = client.events(options.group ?? '', { waitForServer: true });
  const batchMs = options.batchMs ?? 16;
  let stopped = false;
  let pending: JobEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;

  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0 || stopped) return;
    const events = pending;
    pending = [];
    store.apply(events);
  };
  const report = (state: LiveState): void => {
    if (!stopped) options.onState(state);
  };

  const wake = (): void => {
    if (document.visibilityState === 'visible') stream.reconnectNow();
  };
  document.addEventListener('visibilitychange', wake);
  window.addEventListener('online', wake);

  // `closed` is reported below, once the reason (a refused token or not) is known.
  const off = stream.onStateChange((state) => {
    if (state !== 'closed') report(state);
  });
  void (async () => {
    try {
      for await (const batch of stream.batches()) {
        if (batch.snapshot) {
          pending = [];
          store.reset(batch.events);
          continue;
        }
        for (const event of batch.events) pending.push(event);
        timer ??= setTimeout(flush, batchMs);
      }
      flush();
      report('closed');
    } catch (err) {
      flush();
      report(err instanceof UnauthorizedError ? 'unauthorized' : 'closed');
    }
  })();

  return () => {
    flush();
    stopped = true;
    off();
    document.removeEventListener('visibilitychange', wake);
    window.removeEventListener('online', wake);
    stream.close();
  };
}
