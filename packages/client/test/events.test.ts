import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ConnectionError, UnauthorizedError, type EventsServerMessage, type JobEvent, type JobInfo } from '../src/index.js';
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
});
