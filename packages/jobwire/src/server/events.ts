/**
 * The events WebSocket: moi's add / update / remove for a group subtree, as a snapshot or a
 * replay from an event id, then live. Live events that arrive while the backlog is being sent
 * are held and delivered after it, without duplicates (ids only grow).
 * @module
 */
import { inSubtree, type EventsServerMessage, type JobEvent } from '@jobwire/client';
import type { WebSocket } from 'ws';
import type { JobService } from '../jobs/service.js';
import type { StoredEvent } from '../store/types.js';
import { heartbeat } from './heartbeat.js';

/** Buffered bytes past which a subscriber is too slow: it is closed and resumes with `since`. */
const MAX_BUFFERED = 8 * 1024 * 1024;
/** Live events held while the backlog is sent. */
const MAX_HELD = 100_000;
/** Longest wait for live events to catch up with a snapshot page (they normally take a millisecond). */
const CATCH_UP_MS = 2000;

/** Serves one events subscription. */
export function startEventsSession(ws: WebSocket, service: JobService, owner: string, group: string, since: number | undefined): void {
  let lastSent = since ?? 0;
  let live = false;
  let closed = false;
  const held: JobEvent[] = [];
  /** Id of the newest event this session's listener heard (of any owner). */
  let heard = 0;
  /** Ids of the `add` events heard live, by object: those after the snapshot's id are not part of it. */
  const addedLive = new Map<string, number>();

  // Events come in bursts (a transaction's, a dispatch pass's, many submits'): the frames of one
  // turn of the event loop are written together, one system call instead of one per event.
  const socket = (ws as WebSocket & { _socket?: { cork?(): void; uncork?(): void } })._socket;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket?.uncork?.();
  };
  const send = (msg: EventsServerMessage): void => {
    if (closed) return;
    if (ws.bufferedAmount > MAX_BUFFERED) {
      ws.close(1013, 'subscriber too slow; reconnect with since=' + lastSent);
      stop();
      return;
    }
    if (!corked && socket?.cork !== undefined) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    ws.send(JSON.stringify(msg));
  };
  const sendEvent = (event: JobEvent): void => {
    if (event.id <= lastSent) return;
    lastSent = event.id;
    send({ type: 'event', event });
  };

  const off = service.onEvent((ev: StoredEvent) => {
    heard = Math.max(heard, ev.id);
    if (ev.owner !== owner || !inSubtree(ev.group, group)) return;
    const event: JobEvent = { id: ev.id, verb: ev.verb, info: ev.info };
    if (!live && ev.verb === 'add') addedLive.set(ev.info.id, ev.id);
    if (live) sendEvent(event);
    else if (held.length < MAX_HELD) held.push(event);
    else {
      ws.close(1013, 'too many events during replay; reconnect with since=' + lastSent);
      stop();
    }
  });
  const stopBeat = heartbeat(ws);
  const stop = (): void => {
    if (closed) return;
    closed = true;
    off();
    stopBeat();
  };
  ws.on('close', stop);
  ws.on('error', stop);
  ws.on('message', () => {
    // The events socket is one-way; a client message is ignored rather than fatal.
  });

  /** Resolves once the listener heard every event up to `id` (at once for a synchronous store). */
  const caughtUp = async (id: number): Promise<void> => {
    const deadline = Date.now() + CATCH_UP_MS;
    while (heard < id && !closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
  };

  const backlog = async (): Promise<void> => {
    if (since !== undefined) {
      for (;;) {
        const page = await service.events(owner, group, lastSent, 1000);
        for (const e of page) sendEvent(e);
        if (page.length < 1000 || closed) break;
      }
    } else {
      // Snapshot: every existing group and job as `add`, stamped with the current event id.
      // What was created after that id is left out: its own `add` follows live. (A store whose
      // reads are not instant, such as Redis, can list an object created meanwhile.)
      const at = await service.lastEventId();
      const created = async <T extends { id: string }>(items: T[]): Promise<T[]> => {
        const now = await service.lastEventId();
        if (now > at) await caughtUp(now);
        return items.filter((item) => (addedLive.get(item.id) ?? 0) <= at);
      };
      for (const g of await created(await service.groups(owner, group || undefined))) send({ type: 'event', event: { id: at, verb: 'add', info: g } });
      let cursor: string | undefined;
      do {
        const page = await service.list(owner, { limit: 1000, ...(group ? { group } : {}), ...(cursor ? { cursor } : {}) });
        for (const j of await created(page.items)) send({ type: 'event', event: { id: at, verb: 'add', info: j } });
        cursor = page.next;
      } while (cursor && !closed);
      lastSent = at;
    }
    for (const e of held.splice(0)) sendEvent(e);
    live = true;
    send({ type: 'ready', lastEventId: lastSent });
  };
  backlog().catch((err: unknown) => {
    send({ type: 'error', code: 'internal', message: `cannot read events: ${String(err)}` });
    ws.close(1011, 'internal error');
    stop();
  });
}
