import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ConflictError, ConnectionError, UnauthorizedError, type EventBatch, type EventStreamState, type EventsServerMessage, type JobEvent, type JobInfo } from '../src/index.js';
import { clientFor, freePort, sleep, sleepUntil, startServer, type TestServer } from './helpers.js';

function job(id: string, status: JobInfo['status'] = 'Queued'): JobInfo {
  return {
    id, type: 'job', name: id, group: 'g', owner: 'admin', status, queue: 'multi', progress: null, exitCode: null, signal: null,
    error: null, result: null, url: null, interactive: false, tty: false, node: null, reason: null,
    createdAt: '2025-01-01T00:00:00.000Z', startedAt: null, endedAt: null,
  };
}

function event(id: number, verb: JobEvent['verb'], info: JobInfo): string {
  return JSON.stringify({ type: 'event', event: { id, verb, info } } satisfies EventsServerMessage);
}

function ready(lastEventId: number): string {
  return JSON.stringify({ type: 'ready', lastEventId } satisfies EventsServerMessage);
}

const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

describe('events', () => {
  it('delivers the snapshot, ready, live events, and resumes with since=lastEventId after a drop without gaps or doubles', async () => {
    const server = await startServer({
      connection(s) {
        if (server.sockets.length === 1) {
          s.ws.send(event(1, 'add', job('a')));
          s.ws.send(event(2, 'add', job('b')));
          s.ws.send(ready(2));
          s.ws.send(event(3, 'update', job('a', 'Running')));
          setTimeout(() => s.ws.terminate(), 30);
        } else {
          // Replays one event the client has, to check it is dropped.
          s.ws.send(event(3, 'update', job('a', 'Running')));
          s.ws.send(event(4, 'update', job('b', 'Running')));
          s.ws.send(ready(4));
          s.ws.send(event(5, 'remove', job('a', 'Success')));
        }
      },
    });
    servers.push(server);
    const stream = clientFor(server).events('g');
    await stream.ready;
    const seen: string[] = [];
    for await (const ev of stream) {
      seen.push(`${ev.id}:${ev.verb}:${ev.info.id}`);
      if (ev.id === 5) break;
    }
    assert.deepEqual(seen, ['1:add:a', '2:add:b', '3:update:a', '4:update:b', '5:remove:a']);
    assert.equal(stream.lastEventId, 5);
    assert.equal(server.sockets.length, 2);
    assert.equal(server.sockets[0]!.url.pathname, '/v1/events');
    assert.equal(server.sockets[0]!.url.searchParams.get('group'), 'g');
    assert.equal(server.sockets[0]!.url.searchParams.has('since'), false, 'the first connection asks for a snapshot');
    assert.equal(server.sockets[1]!.url.searchParams.get('since'), '3');
    await sleepUntil(() => server.sockets[1]!.ws.readyState === server.sockets[1]!.ws.CLOSED, 2000, 'break closes the socket');
  });

  it('resolves ready only after the reader has had the backlog', async () => {
    const server = await startServer({
      connection(s) {
        for (let i = 1; i <= 50; i++) s.ws.send(event(i, 'add', job(`j${i}`)));
        s.ws.send(ready(50));
        setTimeout(() => s.ws.send(event(51, 'update', job('j1', 'Running'))), 20);
      },
    });
    servers.push(server);
    const stream = clientFor(server).events();
    const seen: number[] = [];
    const reader = (async () => {
      for await (const ev of stream) {
        seen.push(ev.id);
        await sleep(0);
        if (ev.id === 51) break;
      }
    })();
    await stream.ready;
    assert.equal(seen.length, 50, 'the whole snapshot was read before ready');
    await reader;
    assert.deepEqual(seen, Array.from({ length: 51 }, (_, i) => i + 1));
  });

  it('resolves ready without a reader; the backlog waits for a later reader', async () => {
    const server = await startServer({
      connection(s) {
        s.ws.send(event(1, 'add', job('a')));
        s.ws.send(ready(1));
      },
    });
    servers.push(server);
    const stream = clientFor(server).events();
    await stream.ready;
    const it = stream[Symbol.asyncIterator]();
    assert.equal(((await it.next()).value as JobEvent).info.id, 'a');
    stream.close();
  });

  it('a reader 10,000 events behind makes the stream disconnect, and it resumes by id once the reader caught up', async () => {
    const total = 12_000;
    const server = await startServer({
      connection(s) {
        const since = Number(s.url.searchParams.get('since') ?? 0);
        if (!s.url.searchParams.has('since')) s.ws.send(ready(0));
        for (let id = since + 1; id <= total; id++) s.ws.send(event(id, 'update', job('a', 'Running')));
        if (s.url.searchParams.has('since')) s.ws.send(ready(total));
      },
    });
    servers.push(server);
    const stream = clientFor(server).events();
    await stream.ready;
    await sleepUntil(() => server.sockets[0]!.ws.readyState === server.sockets[0]!.ws.CLOSED, 5000, 'the client to disconnect');
    const ids: number[] = [];
    for await (const ev of stream) {
      ids.push(ev.id);
      if (ev.id === total) break;
    }
    assert.equal(ids.length, total);
    assert.ok(ids.every((id, i) => id === i + 1), 'every event once, in order');
    assert.equal(server.sockets.length, 2);
    assert.equal(Number(server.sockets[1]!.url.searchParams.get('since')), 10_000);
  });

  it('starts from `since` when given', async () => {
    const server = await startServer({
      connection(s) {
        s.ws.send(event(8, 'update', job('a')));
        s.ws.send(ready(8));
      },
    });
    servers.push(server);
    const stream = clientFor(server).events(undefined, { since: 7 });
    await stream.ready;
    assert.equal(server.sockets[0]!.url.searchParams.get('since'), '7');
    assert.equal(server.sockets[0]!.url.searchParams.has('group'), false);
    const it = stream[Symbol.asyncIterator]();
    assert.equal(((await it.next()).value as JobEvent).id, 8);
    assert.equal(stream.lastEventId, 8);
    stream.close();
    assert.deepEqual(await it.next(), { value: undefined, done: true });
  });

  it('close() ends the iterator; Symbol.asyncDispose closes', async () => {
    const server = await startServer({ connection: (s) => s.ws.send(ready(0)) });
    servers.push(server);
    const stream = clientFor(server).events();
    await stream.ready;
    const it = stream[Symbol.asyncIterator]();
    const pending = it.next();
    await stream[Symbol.asyncDispose]();
    assert.deepEqual(await pending, { value: undefined, done: true });
    await sleep(100);
    assert.equal(server.sockets.length, 1, 'no reconnect after close');
  });

  it('a refused first connection rejects ready and throws from the iterator with the typed error', async () => {
    const server = await startServer({});
    servers.push(server);
    const stream = clientFor(server, { token: 'nope' }).events();
    await assert.rejects(stream.ready, UnauthorizedError);
    await assert.rejects(async () => {
      for await (const _ of stream) assert.fail('no events expected');
    }, UnauthorizedError);
  });

  it('no server: ConnectionError no_server', async () => {
    const port = await freePort();
    const stream = clientFor({ url: `http://127.0.0.1:${port}` }).events();
    await assert.rejects(stream.ready, (err) => err instanceof ConnectionError && err.code === 'no_server');
  });

  it('an error message from the server ends the stream with its typed error', async () => {
    const server = await startServer({
      connection: (s) => s.ws.send(JSON.stringify({ type: 'error', code: 'bad_request', message: 'bad group' })),
    });
    servers.push(server);
    const stream = clientFor(server).events('::');
    await assert.rejects(stream.ready, (err) => err instanceof Error && err.message === 'bad group');
  });

  describe('connection state', () => {
    it('goes connecting → live → reconnecting while a dropped connection is reopened → live → closed', async () => {
      const server = await startServer({
        connection(s) {
          s.ws.send(ready(server.sockets.length));
          if (server.sockets.length === 1) setTimeout(() => s.ws.terminate(), 20);
        },
      });
      servers.push(server);
      const stream = clientFor(server).events();
      const states: EventStreamState[] = [];
      stream.onStateChange((state) => states.push(state));
      assert.equal(stream.state, 'connecting');
      await stream.ready;
      await sleepUntil(() => server.sockets.length === 2 && stream.state === 'live', 5000, 'the second connection');
      stream.close();
      assert.deepEqual(states, ['live', 'reconnecting', 'live', 'closed']);
      assert.equal(stream.state, 'closed');
      assert.equal(stream.error, undefined, 'close() is no failure');
      assert.equal(server.sockets[1]!.url.searchParams.get('since'), '1');
    });

    it('ends closed with the typed error when the token is refused, even with waitForServer', async () => {
      const server = await startServer({});
      servers.push(server);
      const stream = clientFor(server, { token: 'nope' }).events(undefined, { waitForServer: true });
      const states: EventStreamState[] = [];
      stream.onStateChange((state) => states.push(state));
      await assert.rejects(stream.ready, UnauthorizedError);
      assert.deepEqual(states, ['closed']);
      assert.ok(stream.error instanceof UnauthorizedError);
    });

    it('with waitForServer, keeps trying a server that is down (staying connecting) until it answers', async () => {
      const port = await freePort();
      const stream = clientFor({ url: `http://127.0.0.1:${port}` }).events('g', { waitForServer: true });
      let failed: unknown;
      stream.ready.catch((err: unknown) => (failed = err));
      // A few refused attempts (the first retries come after 50, 100, 200 ms).
      await sleep(400);
      assert.equal(failed, undefined, 'a server that is down does not fail the stream');
      assert.equal(stream.state, 'connecting');
      const server = await startServer({ connection: (s) => (s.ws.send(event(1, 'add', job('a'))), s.ws.send(ready(1))) }, port);
      servers.push(server);
      await stream.ready;
      assert.equal(stream.state, 'live');
      const it = stream[Symbol.asyncIterator]();
      assert.equal(((await it.next()).value as JobEvent).info.id, 'a');
      stream.close();
    });
  });

  it('reconnectNow() cuts a wait between attempts short', async () => {
    let attempts = 0;
    const server = await startServer({
      upgrade: () => (++attempts === 1 ? undefined : { status: 503, body: { error: { code: 'internal', message: 'restarting' } } }),
      connection: (s) => {
        s.ws.send(ready(0));
        setTimeout(() => s.ws.terminate(), 10);
      },
    });
    servers.push(server);
    const stream = clientFor(server).events();
    assert.equal(stream.reconnectNow(), false, 'nothing to cut short while connecting');
    await stream.ready;
    await sleepUntil(() => stream.state === 'reconnecting', 5000, 'the drop');
    // Refused attempts back off 50, 100, 200 ms …; poking keeps hitting those waits.
    let cut = 0;
    for (let i = 0; i < 2000 && cut < 5; i++) {
      if (stream.reconnectNow()) cut++;
      await sleep(1);
    }
    assert.equal(cut, 5, 'reconnectNow() found the stream waiting');
    await sleepUntil(() => attempts >= 6, 5000, 'an attempt after each cut');
    stream.close();
    assert.equal(stream.reconnectNow(), false, 'nothing to cut short once closed');
  });

  describe('batches()', () => {
    it('hands over the snapshot whole, and a connection lost half-way through a snapshot leaves none of it behind', async () => {
      const server = await startServer({
        connection(s) {
          if (server.sockets.length === 1) {
            // Two of three snapshot entries, then the connection dies.
            s.ws.send(event(3, 'add', job('a')));
            s.ws.send(event(3, 'add', job('stale')));
            setTimeout(() => s.ws.terminate(), 20);
            return;
          }
          for (const id of ['a', 'b', 'c']) s.ws.send(event(3, 'add', job(id)));
          s.ws.send(ready(3));
          s.ws.send(event(4, 'update', job('a', 'Running')));
        },
      });
      servers.push(server);
      const stream = clientFor(server).events('g', { waitForServer: true });
      const batches: EventBatch[] = [];
      for await (const batch of stream.batches()) {
        batches.push(batch);
        if (batch.events.some((e) => e.id === 4)) break;
      }
      assert.equal(server.sockets.length, 2);
      assert.equal(server.sockets[1]!.url.searchParams.has('since'), false, 'the snapshot started over');
      assert.deepEqual(
        batches.map((b) => ({ snapshot: b.snapshot, ids: b.events.map((e) => `${e.id}:${e.info.id}`) })),
        [
          { snapshot: true, ids: ['3:a', '3:b', '3:c'] },
          { snapshot: false, ids: ['4:a'] },
        ],
      );
    });

    it('without waitForServer, a snapshot cut short ends the stream with an error and none of its events', async () => {
      const server = await startServer({
        connection(s) {
          s.ws.send(event(1, 'add', job('a')));
          setTimeout(() => s.ws.terminate(), 20);
        },
      });
      servers.push(server);
      const stream = clientFor(server).events();
      const seen: JobEvent[] = [];
      await assert.rejects(async () => {
        for await (const ev of stream) seen.push(ev);
      }, ConnectionError);
      assert.deepEqual(seen, []);
      assert.equal(stream.state, 'closed');
    });

    it('groups what arrived since the last read into one batch, and resolves ready once the snapshot was taken', async () => {
      const server = await startServer({
        connection(s) {
          s.ws.send(event(0, 'add', job('a')));
          s.ws.send(ready(0));
          for (let id = 1; id <= 5; id++) s.ws.send(event(id, 'update', job('a', 'Running')));
        },
      });
      servers.push(server);
      const stream = clientFor(server).events();
      let readyAt = -1;
      let reads = 0;
      void stream.ready.then(() => (readyAt = reads));
      const it = stream.batches()[Symbol.asyncIterator]();
      const first = (await it.next()).value as EventBatch;
      reads++;
      assert.deepEqual({ snapshot: first.snapshot, ids: first.events.map((e) => e.info.id) }, { snapshot: true, ids: ['a'] });
      await sleepUntil(() => stream.lastEventId === 5, 5000, 'the live events');
      assert.equal(readyAt, -1, 'not ready before the reader came back for more');
      const second = (await it.next()).value as EventBatch;
      reads++;
      assert.deepEqual({ snapshot: second.snapshot, ids: second.events.map((e) => e.id) }, { snapshot: false, ids: [1, 2, 3, 4, 5] });
      assert.equal(readyAt, 1, 'ready resolved after the snapshot was taken, before the live batch');
      stream.close();
      assert.deepEqual(await it.next(), { value: undefined, done: true });
    });

    it('shares the one queue with for-await: a second consumer gets a ConflictError', async () => {
      const server = await startServer({ connection: (s) => s.ws.send(ready(0)) });
      servers.push(server);
      const stream = clientFor(server).events();
      stream.batches();
      assert.throws(() => stream[Symbol.asyncIterator](), ConflictError);
      stream.close();
    });
  });
});
