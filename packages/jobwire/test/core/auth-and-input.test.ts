import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { NotFoundError } from '@jobwire/client';
import { withServer } from '../helpers.js';

type Call = { method: string; path: string; body?: string; type?: string };

const ID = '00000000-0000-4000-8000-000000000000';
const ENDPOINTS: Call[] = [
  { method: 'GET', path: '/v1/whoami' },
  { method: 'POST', path: '/v1/jobs', body: JSON.stringify({ executable: 'true' }), type: 'application/json' },
  { method: 'GET', path: '/v1/jobs' },
  { method: 'GET', path: `/v1/jobs/${ID}` },
  { method: 'POST', path: `/v1/jobs/${ID}/cancel` },
  { method: 'DELETE', path: `/v1/jobs/${ID}` },
  { method: 'GET', path: `/v1/jobs/${ID}/output` },
  { method: 'POST', path: `/v1/jobs/${ID}/stdin`, body: 'x', type: 'application/octet-stream' },
  { method: 'POST', path: `/v1/jobs/${ID}/stdin/close` },
  { method: 'POST', path: `/v1/jobs/${ID}/progress`, body: JSON.stringify({ message: 'hi' }), type: 'application/json' },
  { method: 'GET', path: `/v1/jobs/${ID}/wait?timeout=0` },
  { method: 'GET', path: '/v1/groups' },
  { method: 'GET', path: '/v1/queues' },
];

async function call(url: string, c: Call, token?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (c.type) headers['content-type'] = c.type;
  const res = await fetch(url + c.path, { method: c.method, headers, ...(c.body !== undefined ? { body: c.body } : {}) });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body };
}

function wsStatus(url: string, path: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.close();
    });
    ws.on('error', (err) => {
      if (!String(err).includes('Unexpected server response')) reject(err);
    });
  });
}

describe('authentication and ownership', () => {
  it('refuses every endpoint without a token and with a wrong token', async () => {
    await withServer(async ({ url }) => {
      for (const c of ENDPOINTS) {
        for (const token of [undefined, 'wrong-token']) {
          const res = await call(url, c, token);
          assert.equal(res.status, 401, `${c.method} ${c.path} with ${token ?? 'no token'}`);
          assert.equal(res.body.error.code, 'unauthorized');
        }
      }
      assert.equal(await wsStatus(url, `/v1/jobs/${ID}/attach`), 401);
      assert.equal(await wsStatus(url, `/v1/jobs/${ID}/attach`, 'wrong-token'), 401);
      assert.equal(await wsStatus(url, '/v1/events'), 401);
      assert.equal(await wsStatus(url, '/v1/events?access_token=wrong'), 401);
    });
  });

  it('keeps users apart: B cannot see, list, attach to, write to or cancel A’s job', async () => {
    await withServer(async (s) => {
      const alice = s.clientFor('alice');
      const bob = s.clientFor('bob');
      const job = await alice.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited', group: 'secret' });
      await assert.rejects(bob.getJobStatus(job.jobId), NotFoundError);
      await assert.rejects(bob.cancelJob(job.jobId), NotFoundError);
      await assert.rejects(bob.writeStdin(job.jobId, 'hi'), NotFoundError);
      await assert.rejects(bob.readOutput(job.jobId), NotFoundError);
      await assert.rejects(bob.attach(job.jobId), NotFoundError);
      assert.equal((await bob.getJobs()).items.length, 0);
      assert.equal((await bob.getGroups()).length, 0);
      const bobToken = (await import('../helpers.js')).addUser(s.home, 'bob');
      assert.equal(await wsStatus(s.url, `/v1/jobs/${job.jobId}/attach`, bobToken), 404);
      assert.equal((await alice.getJobStatus(job.jobId)).status === 'Running' || (await alice.getJobStatus(job.jobId)).status === 'Queued', true);
      await job.stdin.end();
      assert.equal((await job.exit).exitCode, 0);
      assert.equal((await alice.getJobs()).items.length, 1);
    });
  });
});

describe('bad input', () => {
  it('answers malformed JSON, unknown fields, wrong types and missing fields with a 400 naming the problem', async () => {
    await withServer(async ({ url, token }) => {
      const post = (body: string) => call(url, { method: 'POST', path: '/v1/jobs', body, type: 'application/json' }, token);
      const malformed = await post('{"executable": ');
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.error.code, 'bad_request');
      assert.match(malformed.body.error.message, /JSON/);
      // Where the text breaks, not only that it does (fastify's own parser said neither).
      assert.match(malformed.body.error.message, /position 15|end of JSON input/, malformed.body.error.message);

      const poisoned = await post('{"executable": "true", "environment": {"\\u005f_proto__": "x"}}');
      assert.equal(poisoned.status, 400);
      assert.equal(poisoned.body.error.code, 'bad_request');
      assert.equal(poisoned.body.error.field, 'environment.__proto__');
      assert.match(poisoned.body.error.message, /__proto__ is refused/);
      const empty = await post('');
      assert.equal(empty.status, 400);
      assert.match(empty.body.error.message, /empty/);

      const unknown = await post(JSON.stringify({ executable: 'true', colour: 'red' }));
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error.code, 'invalid_description');
      assert.equal(unknown.body.error.field, 'colour');

      const wrongType = await post(JSON.stringify({ executable: 'true', arguments: 'not-a-list' }));
      assert.equal(wrongType.status, 400);
      assert.equal(wrongType.body.error.field, 'arguments');

      const missing = await post(JSON.stringify({ name: 'nothing to run' }));
      assert.equal(missing.status, 400);
      assert.equal(missing.body.error.field, 'executable');

      const notObject = await post('[1,2,3]');
      assert.equal(notObject.status, 400);

      const unsupported = await post(JSON.stringify({ executable: 'true', tasks: 4 }));
      assert.equal(unsupported.status, 400);
      assert.equal(unsupported.body.error.code, 'unsupported');
      assert.equal(unsupported.body.error.field, 'tasks');

      const badQueue = await post(JSON.stringify({ executable: 'true', queueName: 'gpu' }));
      assert.equal(badQueue.status, 400);
      assert.equal(badQueue.body.error.field, 'queueName');

      const tinyWindow = await post(JSON.stringify({ executable: 'true', outputWindow: 100 }));
      assert.equal(tinyWindow.status, 400);
      assert.equal(tinyWindow.body.error.code, 'invalid_description');
      assert.equal(tinyWindow.body.error.field, 'outputWindow');

      // A bad key says what is wrong with it (zod's own words were "Invalid key in record").
      const badName = await post(JSON.stringify({ executable: 'true', environment: { '1st': 'x' } }));
      assert.equal(badName.status, 400);
      assert.equal(badName.body.error.field, 'environment.1st');
      assert.equal(badName.body.error.message, 'environment: key "1st" is refused: environment variable names are letters, digits and _');
      // A key holding dots is shown whole, not as more fields.
      const dotted = await post(JSON.stringify({ executable: 'true', inputFiles: { '...a': 'not-an-upload' } }));
      assert.equal(dotted.status, 400);
      assert.match(dotted.body.error.message, /^inputFiles\["\.\.\.a"\]: /);

      const list = await call(url, { method: 'GET', path: '/v1/jobs' }, token);
      assert.equal(list.body.items.length, 0, 'nothing was created by bad input');
    });
  });

  it('refuses a NUL byte in a path, an argument or an environment value with a 400 naming the field, and queues nothing', async () => {
    await withServer(async ({ url, token }) => {
      // Such a job could never start (no process takes a NUL byte): before, it was queued and then failed.
      const cases: [Record<string, unknown>, string][] = [
        [{ executable: 'ec\u0000ho' }, 'executable'],
        [{ executable: 'echo', arguments: ['ok', 'a\u0000b'] }, 'arguments.1'],
        [{ executable: 'echo', environment: { A: 'a\u0000b' } }, 'environment.A'],
        [{ executable: 'echo', workingDirectory: '/tmp/\u0000' }, 'workingDirectory'],
        [{ executable: 'echo', stdout: 'out\u0000' }, 'stdout'],
      ];
      for (const [description, field] of cases) {
        const res = await call(url, { method: 'POST', path: '/v1/jobs', body: JSON.stringify(description), type: 'application/json' }, token);
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, 'invalid_description');
        assert.equal(res.body.error.field, field);
        assert.match(res.body.error.message, /NUL byte/);
      }
      const batch = await call(url, { method: 'POST', path: '/v1/jobs/batch', body: JSON.stringify({ jobs: [{ executable: 'true' }, { executable: 'echo', arguments: ['\u0000'] }] }), type: 'application/json' }, token);
      assert.equal(batch.status, 400);
      assert.equal(batch.body.error.field, 'jobs.1.arguments.0');
      const list = await call(url, { method: 'GET', path: '/v1/jobs' }, token);
      assert.equal(list.body.items.length, 0, 'nothing was queued');
    });
  });

  it('refuses oversized bodies with 413', async () => {
    await withServer(async ({ url, token }) => {
      const huge = JSON.stringify({ executable: 'true', arguments: ['x'.repeat(2 * 1024 * 1024)] });
      const res = await call(url, { method: 'POST', path: '/v1/jobs', body: huge, type: 'application/json' }, token);
      assert.equal(res.status, 413);
      assert.equal(res.body.error.code, 'payload_too_large');
    });
  });

  it('answers unknown job ids, bad query parameters and unknown routes with clear 4xx', async () => {
    await withServer(async ({ url, token }) => {
      const unknownJob = await call(url, { method: 'GET', path: `/v1/jobs/${ID}` }, token);
      assert.equal(unknownJob.status, 404);
      assert.equal(unknownJob.body.error.code, 'not_found');
      const badLimit = await call(url, { method: 'GET', path: '/v1/jobs?limit=abc' }, token);
      assert.equal(badLimit.status, 400);
      assert.equal(badLimit.body.error.field, 'limit');
      const badStatus = await call(url, { method: 'GET', path: '/v1/jobs?status=Sleeping' }, token);
      assert.equal(badStatus.status, 400);
      const badParam = await call(url, { method: 'GET', path: '/v1/queues?colour=red' }, token);
      assert.equal(badParam.status, 400);
      const noRoute = await call(url, { method: 'GET', path: '/v1/nothing' }, token);
      assert.equal(noRoute.status, 404);
      const badFrom = await wsStatus(url, `/v1/jobs/${ID}/attach?from=-1`, token);
      assert.equal(badFrom, 400);
      // The server is still fine.
      assert.equal((await call(url, { method: 'GET', path: '/v1/whoami' }, token)).status, 200);
    });
  });

  it('survives garbage WebSocket frames: the session ends with a protocol error, the server stays up', async () => {
    await withServer(async ({ url, token, client }) => {
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['2'], queueName: 'unlimited' });
      const code = await new Promise<number>((resolve) => {
        const ws = new WebSocket(url.replace(/^http/, 'ws') + `/v1/jobs/${job.id}/attach`, { headers: { authorization: `Bearer ${token}` } });
        ws.on('open', () => {
          ws.send(Buffer.from([0xff, 1, 2, 3]));
        });
        ws.on('close', (c) => resolve(c));
      });
      assert.equal(code, 4400);
      assert.equal((await client.whoami()).user, 'admin');
      await client.cancelJob(job.id);
    });
  });

  it('refuses to delete a running job and deletes a finished one', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['10'], queueName: 'unlimited' });
      await client.waitUntilRunning(job.id, 5000);
      await assert.rejects(client.deleteJob(job.id), /cancel it before deleting/);
      await client.cancelJob(job.id);
      await client.waitUntilDone(job.id, 10_000);
      await client.deleteJob(job.id);
      await assert.rejects(client.getJobStatus(job.id), NotFoundError);
    });
  });
});
