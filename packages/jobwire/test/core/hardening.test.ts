/**
 * Hardening of the HTTP and WebSocket edge (issue 8): requests that crashed the server, skipped
 * authentication or answered outside the API's error shape. Crash tests run the server as its
 * own process, so that a crash shows as that process exiting rather than as this one dying.
 */
import assert from 'node:assert/strict';
import { STATUS_CODES } from 'node:http';
import { describe, it } from 'node:test';
import { Client, HTTP_STATUS, type ErrorCode } from '@jobwire/client';
import { rawRequest, startServerProcess, removeHome, tempHome, withServer, type RawResponse } from '../helpers.js';

/** A WebSocket upgrade request for `target`, as raw text. */
function upgradeRequest(target: string, headers: Record<string, string> = {}): string {
  const all = {
    host: 'localhost',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13',
    ...headers,
  };
  return `GET ${target} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** A plain request for `target`, as raw text. */
function plainRequest(method: string, target: string, headers: Record<string, string> = {}): string {
  const all = { host: 'localhost', connection: 'close', ...headers };
  return `${method} ${target} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** Asserts an error answer: the status, node's reason phrase, and a body in the API's shape with the code of that status. */
function assertError(res: RawResponse, status: number, code: ErrorCode, what: string): void {
  assert.equal(res.status, status, `${what}: status (body ${res.body.toString().slice(0, 200)})`);
  assert.equal(res.reason, STATUS_CODES[status], `${what}: reason phrase`);
  const body = res.json as { error?: { code?: unknown; message?: unknown } } | undefined;
  assert.equal(body?.error?.code, code, `${what}: error code in ${res.body.toString().slice(0, 200)}`);
  assert.equal(HTTP_STATUS[code], status, `${what}: the code's documented status`);
  assert.equal(typeof body?.error?.message, 'string', `${what}: error message`);
}

/** Runs `fn` against a server in its own process, with a job running on it; checks both outlive `fn`. */
async function withServerProcess(fn: (s: { url: string; token: string }) => Promise<void>): Promise<void> {
  const home = tempHome();
  const server = await startServerProcess(home);
  try {
    const client = new Client({ url: server.url, token: server.token });
    const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['300'], queueName: 'unlimited' });
    await client.waitUntilRunning(job.id, 10_000);
    await fn(server);
    assert.equal(server.proc.exitCode, null, 'the server process is still running');
    assert.equal((await client.whoami()).user, 'admin');
    assert.equal((await client.getJobStatus(job.id)).status, 'Running', 'the running job is untouched');
    await client.cancelJob(job.id);
  } finally {
    server.proc.kill('SIGTERM');
    await server.exited;
    removeHome(home);
  }
}

describe('hardening: WebSocket upgrades', () => {
  const MALFORMED = ['//[', '//%', '//x:99999', 'http://[::1/x'];

  it('answers an upgrade to a malformed target with 401 without a token and 400 with one, and keeps running', async () => {
    await withServerProcess(async ({ url, token }) => {
      for (const target of MALFORMED) {
        assertError(await rawRequest(url, upgradeRequest(target)), 401, 'unauthorized', `upgrade ${target} without a token`);
        assertError(await rawRequest(url, upgradeRequest(target, bearer(token))), 400, 'bad_request', `upgrade ${target} with a token`);
      }
    });
  });

  it('answers an attach whose job id has a bad %-escape with 400, and keeps running', async () => {
    await withServerProcess(async ({ url, token }) => {
      for (const target of ['/v1/jobs/%ZZ/attach', '/v1/jobs/%/attach', '/v1/jobs/%E0%A4%A/attach']) {
        assertError(await rawRequest(url, upgradeRequest(target, bearer(token))), 400, 'bad_request', `upgrade ${target}`);
      }
    });
  });

  it('refuses a bad events query with 400 before the upgrade: since past the safe integers, twice, or unknown parameters', async () => {
    await withServer(async ({ url, token }) => {
      for (const query of ['since=99999999999999999999999', 'since=9007199254740992', 'since=-1', 'since=1.5', 'since=', 'since=1&since=2', 'group=a&group=b', 'sinse=1']) {
        const res = await rawRequest(url, upgradeRequest(`/v1/events?${query}`, bearer(token)));
        assertError(res, 400, 'bad_request', `events?${query}`);
      }
      for (const query of ['from=9007199254740992', 'from=1&from=2', 'frm=1']) {
        assertError(await rawRequest(url, upgradeRequest(`/v1/jobs/00000000-0000-4000-8000-000000000000/attach?${query}`, bearer(token))), 400, 'bad_request', `attach?${query}`);
      }
      // The largest safe id is fine: the socket opens.
      assert.equal((await rawRequest(url, upgradeRequest('/v1/events?since=9007199254740991', bearer(token)))).status, 101);
    });
  });

  it('answers a bad WebSocket handshake in the API shape rather than plain text', async () => {
    await withServer(async ({ url, token }) => {
      assertError(await rawRequest(url, upgradeRequest('/v1/events', { ...bearer(token), 'sec-websocket-key': 'short' })), 400, 'bad_request', 'bad key');
      assertError(await rawRequest(url, upgradeRequest('/v1/events', { ...bearer(token), 'sec-websocket-version': '99' })), 400, 'bad_request', 'bad version');
      assertError(await rawRequest(url, upgradeRequest('/v1/events', { ...bearer(token), upgrade: 'h2c' })), 400, 'bad_request', 'not websocket');
      assertError(await rawRequest(url, upgradeRequest('/v1/events', { 'sec-websocket-key': 'short' })), 401, 'unauthorized', 'bad key, no token');
    });
  });

  it("writes a refused upgrade with node's own response writer, as for any request: Date, Connection: close, exact length", async () => {
    await withServer(async ({ url, token }) => {
      for (const [what, request] of [
        ['no token', upgradeRequest('/v1/events')],
        ['no such endpoint', upgradeRequest('/v1/nowhere', bearer(token))],
        ['bad handshake', upgradeRequest('/v1/events', { ...bearer(token), 'sec-websocket-version': '99' })],
      ] as const) {
        const res = await rawRequest(url, request);
        assert.ok(!Number.isNaN(Date.parse(res.headers.date ?? '')), `${what}: a Date header (${JSON.stringify(res.headers)})`);
        assert.equal(res.headers.connection, 'close', what);
        assert.equal(Number(res.headers['content-length']), res.body.byteLength, what);
      }
    });
  });
});

describe('hardening: authentication by route', () => {
  const ID = '00000000-0000-4000-8000-000000000000';

  it('asks for a token on absolute-form and %-encoded targets of every API route', async () => {
    await withServer(async ({ url, token }) => {
      const host = new URL(url).host;
      const routes = ['/v1/queues', '/v1/workers', '/v1/whoami', '/v1/jobs', '/v1/groups', `/v1/jobs/${ID}`, `/v1/jobs/${ID}/output`, `/v1/jobs/${ID}/wait?timeout=0`];
      for (const path of routes) {
        for (const target of [`http://${host}${path}`, `HTTP://elsewhere${path}`, path.replace('/v1/', '/%76%31/')]) {
          assertError(await rawRequest(url, plainRequest('GET', target)), 401, 'unauthorized', `GET ${target} without a token`);
          assertError(await rawRequest(url, plainRequest('GET', target, bearer('wrong'))), 401, 'unauthorized', `GET ${target} with a wrong token`);
          const res = await rawRequest(url, plainRequest('GET', target, bearer(token)));
          assert.ok(res.status === 200 || (res.status === 404 && path.includes(ID)), `GET ${target} with the token: ${res.status} ${res.body.toString()}`);
        }
      }
      assertError(await rawRequest(url, plainRequest('POST', `http://${host}/v1/jobs`, { 'content-type': 'application/json', 'content-length': '2' }) + '{}'), 401, 'unauthorized', 'absolute-form POST');
    });
  });

  it('answers unknown paths under /v1 with 401 without a token and 404 with one, in every form and method', async () => {
    await withServer(async ({ url, token }) => {
      const host = new URL(url).host;
      for (const [method, target] of [
        ['GET', '/v1/nothing'],
        ['GET', '/v1'],
        ['PUT', '/v1/jobs'],
        ['PATCH', `/v1/jobs/${ID}`],
        ['GET', `http://${host}/v1/nothing`],
        ['DELETE', `http://${host}/v1/queues`],
      ] as const) {
        assertError(await rawRequest(url, plainRequest(method, target)), 401, 'unauthorized', `${method} ${target} without a token`);
        assertError(await rawRequest(url, plainRequest(method, target, bearer(token))), 404, 'not_found', `${method} ${target} with the token`);
      }
      // Outside /v1 there is nothing to protect: the dashboard and an honest 404.
      assert.equal((await rawRequest(url, plainRequest('GET', '/'))).status, 200);
      assertError(await rawRequest(url, plainRequest('GET', '/nothing')), 404, 'not_found', 'GET /nothing');
    });
  });
});

describe('hardening: errors before routing', () => {
  it('answers a bad %-escape and an over-long id with 401 before anything else, then in the API shape', async () => {
    await withServer(async ({ url, token }) => {
      const long = `/v1/jobs/${'a'.repeat(300)}`;
      for (const target of ['/v1/jobs/%ZZ', '/v1/jobs/%', long, `${long}/output`]) {
        assertError(await rawRequest(url, plainRequest('GET', target)), 401, 'unauthorized', `GET ${target.slice(0, 40)} without a token`);
      }
      assertError(await rawRequest(url, plainRequest('GET', '/v1/jobs/%ZZ', bearer(token))), 400, 'bad_request', 'bad escape with a token');
      assertError(await rawRequest(url, plainRequest('GET', long, bearer(token))), 404, 'not_found', 'over-long id with a token');
      assertError(await rawRequest(url, plainRequest('DELETE', `${long}`, bearer(token))), 404, 'not_found', 'DELETE of an over-long id');
    });
  });

  it('refuses a wrong token on the progress route with 401 before it reads the query or the body', async () => {
    await withServer(async ({ url, client }) => {
      const job = await client.submitBatchJob({ executable: 'true', queueName: 'unlimited' });
      const bad = '{"message": ';
      for (const target of [`/v1/jobs/${job.id}/progress`, `/v1/jobs/${job.id}/progress?x=1`]) {
        const res = await rawRequest(url, plainRequest('POST', target, { ...bearer('not-a-job-token'), 'content-type': 'application/json', 'content-length': String(bad.length) }) + bad);
        assertError(res, 401, 'unauthorized', `POST ${target} with a wrong token`);
      }
    });
  });

  it('answers what the HTTP parser refuses in the API shape: headers too large (431), garbage (400)', async () => {
    await withServer(async ({ url, token }) => {
      assertError(await rawRequest(url, plainRequest('GET', '/v1/jobs', { ...bearer(token), 'x-big': 'a'.repeat(20_000) })), 431, 'headers_too_large', 'large headers');
      assertError(await rawRequest(url, plainRequest('GET', '/v1/jobs', { authorization: `Bearer ${'a'.repeat(20_000)}` })), 431, 'headers_too_large', 'huge token');
      assertError(await rawRequest(url, 'GARBAGE\r\n\r\n'), 400, 'bad_request', 'garbage request line');
      assertError(await rawRequest(url, 'GET /v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'), 400, 'bad_request', 'smuggling headers');
      assertError(await rawRequest(url, plainRequest('GET', '/v1/whoami', { 'bad header': 'x' })), 400, 'bad_request', 'bad header name');
    });
  });

  it('answers what node would answer with an empty body in the API shape: no Host, CONNECT; and serves an unknown Expect', async () => {
    await withServer(async ({ url, token }) => {
      assertError(await rawRequest(url, `GET /v1/whoami HTTP/1.1\r\nauthorization: Bearer ${token}\r\n\r\n`), 400, 'bad_request', 'HTTP/1.1 without Host');
      assertError(await rawRequest(url, 'GET /v1/whoami HTTP/1.1\r\n\r\n'), 401, 'unauthorized', 'no Host, no token');
      assertError(await rawRequest(url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'), 401, 'unauthorized', 'CONNECT without a token');
      assertError(await rawRequest(url, `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nauthorization: Bearer ${token}\r\n\r\n`), 404, 'not_found', 'CONNECT');
      const expect = await rawRequest(url, plainRequest('GET', '/v1/whoami', { ...bearer(token), expect: 'something-else' }));
      assert.equal(expect.status, 200);
      assert.deepEqual(expect.json, { user: 'admin', admin: true });
    });
  });
});
