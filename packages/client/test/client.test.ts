import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, describe, it } from 'node:test';
import { BadRequestError, ConflictError, ConnectionError, NotFoundError, UnauthorizedError, type JobInfo, type JobStatus } from '../src/index.js';
import { Tag, decodeFrame, encodeHello } from '../src/protocol.js';
import { clientFor, freePort, json, sleepUntil, startServer, text, type TestServer } from './helpers.js';

function info(status: JobStatus, id = 'j1'): JobInfo {
  return {
    id, type: 'job', name: 'echo', group: '', owner: 'admin', status, queue: 'multi', progress: null,
    exitCode: status === 'Success' ? 0 : null, signal: null, error: null, result: null, url: null, interactive: false, tty: false,
    node: null, reason: null, createdAt: '2025-01-01T00:00:00.000Z', startedAt: null, endedAt: null,
  };
}

interface Seen {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  body: Uint8Array;
}

const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function rest(handler: (req: Seen) => { status: number; body?: unknown; raw?: Uint8Array; headers?: Record<string, string> }): Promise<{ server: TestServer; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = await startServer({
    http(req, res, body) {
      const s: Seen = { method: req.method ?? '', url: new URL(req.url ?? '/', 'http://x'), headers: req.headers, body };
      seen.push(s);
      const answer = handler(s);
      if (answer.raw) {
        res.writeHead(answer.status, { 'content-type': 'application/octet-stream', ...answer.headers });
        res.end(answer.raw);
      } else if (answer.status === 204) {
        res.writeHead(204);
        res.end();
      } else {
        json(res, answer.status, answer.body, answer.headers);
      }
    },
    connection: (s) => s.ws.send(encodeHello({ jobId: 'j1', from: 0, stdinOffset: 0, stdinClosed: false, status: 'Queued', interactive: true, tty: false })),
  });
  servers.push(server);
  return { server, seen };
}

describe('Client over HTTP', () => {
  it('sends the bearer token and parses JSON', async () => {
    const { server, seen } = await rest(() => ({ status: 200, body: { user: 'admin', admin: true } }));
    assert.deepEqual(await clientFor(server).whoami(), { user: 'admin', admin: true });
    assert.equal(seen[0]!.headers.authorization, 'Bearer test-token');
    assert.equal(seen[0]!.url.pathname, '/v1/whoami');
  });

  it('keeps a path prefix of the server URL', async () => {
    const { server, seen } = await rest(() => ({ status: 200, body: { user: 'u', admin: false } }));
    await clientFor({ url: `${server.url}/jobwire/` }).whoami();
    assert.equal(seen[0]!.url.pathname, '/jobwire/v1/whoami');
  });

  it('maps connection refused to ConnectionError no_server naming the URL and `jobwire server`', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    await assert.rejects(
      clientFor({ url }).getJobStatus('j1'),
      (err) => err instanceof ConnectionError && err.code === 'no_server' && err.message.includes(url) && err.message.includes('`jobwire server`'),
    );
  });

  it('maps wire errors to their classes, keeping field', async () => {
    const answers: Record<string, { status: number; body: unknown }> = {
      '/v1/jobs/missing': { status: 404, body: { error: { code: 'not_found', message: 'no job missing' } } },
      '/v1/jobs': { status: 400, body: { error: { code: 'invalid_description', message: 'arguments must be strings', field: 'arguments.0' } } },
      '/v1/whoami': { status: 401, body: { error: { code: 'unauthorized', message: 'missing or invalid token' } } },
      '/v1/jobs/running': { status: 409, body: { error: { code: 'conflict', message: 'job is running' } } },
      '/v1/queues': { status: 502, body: 'gateway trouble' },
    };
    const { server } = await rest((req) => answers[req.url.pathname] ?? { status: 500, body: {} });
    const client = clientFor(server);
    await assert.rejects(client.getJobStatus('missing'), NotFoundError);
    await assert.rejects(client.submitBatchJob({ executable: 'x' }), (err) => err instanceof BadRequestError && err.code === 'invalid_description' && err.field === 'arguments.0');
    await assert.rejects(client.whoami(), UnauthorizedError);
    await assert.rejects(client.deleteJob('running'), ConflictError);
    await assert.rejects(client.getQueueNames(), (err) => err instanceof Error && (err as { code?: string }).code === 'internal');
  });

  it('waitUntilDone loops on /wait until the job is final', async () => {
    const statuses: JobStatus[] = ['Queued', 'Running', 'Success'];
    const { server, seen } = await rest(() => ({ status: 200, body: info(statuses.shift() ?? 'Success') }));
    const done = await clientFor(server).waitUntilDone('j1');
    assert.equal(done.status, 'Success');
    assert.equal(seen.length, 3);
    for (const s of seen) {
      assert.equal(s.url.pathname, '/v1/jobs/j1/wait');
      assert.equal(s.url.searchParams.get('for'), 'done');
      assert.equal(s.url.searchParams.get('timeout'), '60000', 'forever waits in capped slices');
    }
  });

  it('waitUntilDone with a timeout returns the current info when time runs out', async () => {
    const { server, seen } = await rest(() => ({ status: 200, body: info('Running') }));
    const started = Date.now();
    const current = await clientFor(server).waitUntilDone('j1', 50);
    assert.equal(current.status, 'Running');
    assert.ok(Number(seen[0]!.url.searchParams.get('timeout')) <= 50);
    assert.ok(Date.now() - started >= 50);
    await assert.rejects(clientFor(server).waitUntilDone('j1', -1), BadRequestError);
  });

  it('waitUntilRunning stops at Running', async () => {
    const statuses: JobStatus[] = ['Queued', 'Running'];
    const { server, seen } = await rest(() => ({ status: 200, body: info(statuses.shift() ?? 'Running') }));
    assert.equal((await clientFor(server).waitUntilRunning('j1')).status, 'Running');
    assert.equal(seen[0]!.url.searchParams.get('for'), 'running');
  });

  it('getJobStatuses fetches in parallel, in order', async () => {
    const { server } = await rest((req) => ({ status: 200, body: info('Queued', req.url.pathname.split('/').pop()) }));
    const infos = await clientFor(server).getJobStatuses(['a', 'b', 'c']);
    assert.deepEqual(infos.map((i) => i.id), ['a', 'b', 'c']);
  });

  it('getJobs sends filters as query parameters', async () => {
    const { server, seen } = await rest(() => ({ status: 200, body: { items: [info('Running')], next: 'c2' } }));
    const page = await clientFor(server).getJobs({ group: 'a:b', status: ['Running', 'Queued'], limit: 5, cursor: 'c1' });
    assert.equal(page.next, 'c2');
    const q = seen[0]!.url.searchParams;
    assert.deepEqual([q.get('group'), q.get('status'), q.get('limit'), q.get('cursor'), q.has('name')], ['a:b', 'Running,Queued', '5', 'c1', false]);
  });

  it('queues: names and status, NotFoundError for an unknown queue', async () => {
    const items = [
      { name: 'single', limit: 1, running: 0, queued: 0 },
      { name: 'multi', limit: 4, running: 1, queued: 2 },
    ];
    const { server } = await rest(() => ({ status: 200, body: { items } }));
    const client = clientFor(server);
    assert.deepEqual(await client.getQueueNames(), ['single', 'multi']);
    assert.deepEqual(await client.getQueueStatus('multi'), [items[1]]);
    await assert.rejects(client.getQueueStatus('gpu'), NotFoundError);
  });

  it('readOutput returns bytes with size and complete from the headers', async () => {
    const bytes = new Uint8Array([0, 255, 10, 13]);
    const { server, seen } = await rest(() => ({ status: 200, raw: bytes, headers: { 'x-jobwire-size': '1000', 'x-jobwire-complete': 'true' } }));
    const out = await clientFor(server).readOutput('j1', 'stderr', 10, 14);
    assert.deepEqual([...out.data], [...bytes]);
    assert.equal(out.size, 1000);
    assert.equal(out.complete, true);
    const q = seen[0]!.url.searchParams;
    assert.deepEqual([q.get('stream'), q.get('from'), q.get('to')], ['stderr', '10', '14']);
  });

  it('writeStdin posts octet-stream with the offset; closeStdin and setProgress', async () => {
    const { server, seen } = await rest((req) =>
      req.url.pathname.endsWith('/progress') ? { status: 200, body: info('Running') } : { status: 200, body: { offset: 42 } },
    );
    const client = clientFor(server);
    const buf = Buffer.from('xxhello').subarray(2); // a view into a larger (pooled) buffer
    assert.equal(await client.writeStdin('j1', buf, 37), 42);
    assert.equal(seen[0]!.headers['content-type'], 'application/octet-stream');
    assert.equal(text(seen[0]!.body), 'hello');
    assert.equal(seen[0]!.url.searchParams.get('offset'), '37');
    assert.equal(await client.closeStdin('j1'), 42);
    assert.equal(seen[1]!.url.pathname, '/v1/jobs/j1/stdin/close');
    await client.setProgress('j1', '50%');
    assert.deepEqual(JSON.parse(text(seen[2]!.body)), { message: '50%' });
  });

  it('submitInteractiveJob posts interactive: true and returns an attachment with the info', async () => {
    const { server, seen } = await rest(() => ({ status: 201, body: { ...info('Queued'), interactive: true } }));
    const job = await clientFor(server).submitInteractiveJob({ executable: 'cat' });
    assert.deepEqual(JSON.parse(text(seen[0]!.body)), { executable: 'cat', interactive: true });
    assert.equal(job.info.id, 'j1');
    assert.equal(job.jobId, 'j1');
    await job.stdin.write('hi');
    await sleepUntil(() => server.sockets[0]!.frames.length === 1, 2000, 'stdin frame');
    const frame = decodeFrame(server.sockets[0]!.frames[0]!);
    assert.equal(frame.tag, Tag.STDIN);
    job.detach();
  });

  it('checks its options', () => {
    assert.throws(() => clientFor({ url: 'http://x' }, { reconnectTimeout: -1 }), BadRequestError);
    assert.throws(() => clientFor({ url: 'not a url' }), (err) => err instanceof BadRequestError && err.field === 'url');
  });
});
