/**
 * Bounded fuzz suite of the REST and WebSocket API (property-based, fast-check) against a real
 * server: random and malformed targets, methods, query strings, headers and bodies sent as raw
 * bytes (fetch would normalise them), raw upgrade requests, and random frames on attach and
 * events sockets. After every batch a health request must answer.
 *
 * Properties: every answer has a documented status (docs/api.md, HTTP_STATUS) and, for an
 * error, a body `{"error":{"code","message"}}` whose code has that status; nothing is a 5xx; a
 * request without a valid token never succeeds on an API route; a request not answered 201
 * made no job; a WebSocket is closed only with a documented close code.
 *
 * The routes are those of the server's own OpenAPI document, so a new route is fuzzed as soon as
 * the server serves it. The seed is fixed and printed; JOBWIRE_FUZZ_SEED=N runs another sequence, and a failure prints
 * the seed and path that reproduce it.
 */
import assert from 'node:assert/strict';
import { STATUS_CODES } from 'node:http';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import WebSocket from 'ws';
import { HTTP_STATUS, type ErrorCode } from '@jobwire/client';
import { CloseCode } from '@jobwire/client/protocol';
import { addUser, rawRequest, withServer, type RawResponse, type TestServer } from '../helpers.js';
import {
  FRAMINGS,
  TARGET_FORMS,
  attachFrameArb,
  authArb,
  bodyArb,
  extraHeadersArb,
  idArb,
  isApiTarget,
  isTokenTarget,
  makeTarget,
  queryArb,
  routesOf,
  type BodySpec,
  type OpenApiRoutes,
  type RouteSpec,
  type Framing,
  type TargetForm,
} from './arbitraries.js';

const SEED = Number(process.env.JOBWIRE_FUZZ_SEED ?? 20_260_801);
/** Batches per property are multiplied by this (JOBWIRE_FUZZ_SCALE) for a longer hunt; `npm test` runs 1. */
const SCALE = Math.max(1, Number(process.env.JOBWIRE_FUZZ_SCALE ?? 1));
console.log(`api fuzz: seed ${SEED}, scale ${SCALE} (JOBWIRE_FUZZ_SEED=${SEED} JOBWIRE_FUZZ_SCALE=${SCALE} reproduces this run)`);

/** Codes only the SDK raises (a server never answers them) and the one that would be a bug. */
const NOT_FROM_SERVER: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['no_server', 'connection', 'internal']);
/** Error statuses a server may answer: those of HTTP_STATUS, but for the codes above. */
const ERROR_STATUSES: ReadonlySet<number> = new Set(
  Object.entries(HTTP_STATUS)
    .filter(([code]) => !NOT_FROM_SERVER.has(code as ErrorCode))
    .map(([, status]) => status),
);
/** Methods the server routes at all (fastify's); any other answers 404 whatever its path and token. */
const ROUTED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'TRACE', 'DELETE', 'OPTIONS', 'PATCH', 'PUT', 'POST', 'QUERY']);
/** Success statuses of docs/api.md. */
const SUCCESS_STATUSES: ReadonlySet<number> = new Set([200, 201, 204]);
/** Close codes a server may end an attach or events socket with: its own (protocol.ts), ws's protocol errors, and "too slow, resume". */
const CLOSE_CODES: ReadonlySet<number> = new Set([CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.PROTOCOL, CloseCode.NOT_FOUND, 1002, 1003, 1007, 1009, 1013]);

/** One generated HTTP request, kept readable for the failure report. */
interface HttpCase {
  method: string;
  target: string;
  version: string;
  host: 'own' | 'none' | 'odd';
  auth: { header?: string; valid: boolean };
  headers: [string, string][];
  body: BodySpec | undefined;
  framing: Framing;
  keepAlive: boolean;
}

/** The raw bytes of `c`. */
function encodeHttp(c: HttpCase, host: string): Buffer {
  const lines = [`${c.method} ${c.target} ${c.version}`];
  if (c.host === 'own') lines.push(`Host: ${host}`);
  if (c.host === 'odd') lines.push('Host: a b c');
  if (c.auth.header !== undefined) lines.push(`Authorization: ${c.auth.header}`);
  if (!c.keepAlive) lines.push('Connection: close');
  for (const [name, value] of c.headers) lines.push(`${name}: ${value}`);
  let body: Buffer = Buffer.alloc(0);
  if (c.body) {
    if (c.body.type !== undefined) lines.push(`Content-Type: ${c.body.type}`);
    const data = c.body.data;
    switch (c.framing) {
      case 'length':
        lines.push(`Content-Length: ${data.length}`);
        body = data;
        break;
      case 'chunked':
        lines.push('Transfer-Encoding: chunked');
        body = Buffer.concat([data.length > 0 ? Buffer.from(`${data.length.toString(16)}\r\n`) : Buffer.alloc(0), data, data.length > 0 ? Buffer.from('\r\n') : Buffer.alloc(0), Buffer.from('0\r\n\r\n')]);
        break;
      case 'short-length':
        lines.push(`Content-Length: ${Math.floor(data.length / 2)}`);
        body = data;
        break;
      case 'length-and-chunked':
        lines.push(`Content-Length: ${data.length}`, 'Transfer-Encoding: chunked');
        body = data;
        break;
      case 'bad-length':
        lines.push('Content-Length: -1');
        body = data;
        break;
      case 'bad-chunk':
        lines.push('Transfer-Encoding: chunked');
        body = Buffer.concat([Buffer.from('zz\r\n'), data]);
        break;
      case 'none':
        body = data;
        break;
      default: {
        const never: never = c.framing;
        void never;
      }
    }
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

/** Checks one answer against the properties; `what` names the request in messages. */
function checkAnswer(res: RawResponse, opts: { method: string; validToken: boolean; apiTarget: boolean; tokenTarget?: boolean; upgrade: boolean }, what: string): void {
  const head = opts.method === 'HEAD';
  const { status } = res;
  assert.ok(status < 500, `${what}: a ${status} (${res.body.toString().slice(0, 300)})`);
  const documented = SUCCESS_STATUSES.has(status) || ERROR_STATUSES.has(status) || (opts.upgrade && status === 101);
  assert.ok(documented, `${what}: undocumented status ${status} (${res.body.toString().slice(0, 300)})`);
  assert.equal(res.reason, STATUS_CODES[status], `${what}: reason phrase`);
  if (status >= 400 && !head) {
    const error = (res.json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    assert.ok(error && typeof error.code === 'string' && typeof error.message === 'string', `${what}: error body ${JSON.stringify(res.body.toString().slice(0, 300))}`);
    assert.ok(error.code in HTTP_STATUS && !NOT_FROM_SERVER.has(error.code as ErrorCode), `${what}: error code ${error.code}`);
    assert.equal(HTTP_STATUS[error.code as ErrorCode], status, `${what}: status of code ${error.code}`);
  }
  if (!opts.validToken) {
    // A method routed nowhere (PROPFIND, SEARCH, ...) reaches no route, so no token is asked for: 404.
    if (opts.apiTarget && ROUTED_METHODS.has(opts.method)) {
      // Only what the HTTP parser refuses before a token can be read may come ahead of the 401.
      assert.ok(status === 401 || status === 400 || status === 431, `${what}: ${status} without a valid token`);
      if (status === 400 && !head) assert.match(String((res.json as { error: { message: string } }).error.message), /^malformed HTTP request/, `${what}: 400 ahead of the 401`);
    } else if (status < 300) {
      // Outside /v1 only the public routes answer without a token: the dashboard's files and the API's description.
      assert.ok(!opts.tokenTarget, `${what}: ${status} without a valid token from a route that needs one`);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', `${what}: ${status} without a token from something other than a public route`);
    }
  }
}

/** A health request: the server is up and serves its admin. */
async function assertHealthy(s: TestServer): Promise<void> {
  const res = await fetch(`${s.url}/v1/whoami`, { headers: { authorization: `Bearer ${s.token}` } });
  assert.equal(res.status, 200, 'health request');
  assert.deepEqual(await res.json(), { user: 'admin', admin: true });
}

/** A value as JSON with every long string or buffer cut short, for failure reports. */
function shorten(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'string' && v.length > 200) return `${v.slice(0, 200)}…(${v.length} chars)`;
    if (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      const bytes = Buffer.from((v as { data: number[] }).data);
      return `<${bytes.length} bytes: ${JSON.stringify(bytes.subarray(0, 100).toString('latin1'))}>`;
    }
    return v;
  });
}

/** Runs `property` in `batches` batches of `runs`, a health request after each. */
async function inBatches<T>(s: TestServer, arb: fc.Arbitrary<T>, check: (value: T) => Promise<void>, batches: number, runs: number, before?: () => Promise<void>): Promise<void> {
  for (let batch = 0; batch < batches * SCALE; batch++) {
    await before?.();
    await fc.assert(fc.asyncProperty(arb, check), {
      seed: SEED + batch,
      numRuns: runs,
      endOnFailure: true,
      // fast-check's own report would print every generated megabyte; this one shortens strings.
      reporter: (run) => {
        if (!run.failed) return;
        const err = run.errorInstance;
        throw new Error(
          `fuzz property failed in batch ${batch} (fast-check seed ${run.seed}, path "${run.counterexamplePath}"; JOBWIRE_FUZZ_SEED=${SEED}): ` +
            `${err instanceof Error ? err.message : String(err)}\ncounterexample: ${shorten(run.counterexample)}`,
          { cause: err },
        );
      },
    });
    await assertHealthy(s);
  }
}

/** The routes of the server's OpenAPI document. */
async function routesOfServer(s: TestServer): Promise<RouteSpec[]> {
  const res = await fetch(`${s.url}/api/openapi.json`);
  assert.equal(res.status, 200, 'the OpenAPI document');
  const routes = routesOf((await res.json()) as OpenApiRoutes);
  // Guards the generator against an empty or broken document: these must be among them.
  for (const [method, path] of [['POST', '/v1/jobs'], ['GET', '/v1/jobs/:id/output'], ['GET', '/v1/events'], ['GET', '/metrics'], ['GET', '/assets/:file']]) {
    assert.ok(routes.some((r) => r.method === method && r.path === path), `${method} ${path} in the OpenAPI document`);
  }
  return routes;
}

/** Fixture jobs (finished) of two users, and their tokens. */
/** Every `id` in a JSON value (a created job's, a batch's jobs', a network's jobs'). */
function idsIn(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) for (const v of value) idsIn(v, into);
  else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === 'id' && typeof v === 'string') into.add(v);
      else idsIn(v, into);
    }
  }
}

/** The ids of every job the owner of `token` has, all pages. */
async function jobIdsOf(s: TestServer, token: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const res = await fetch(`${s.url}/v1/jobs?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, 'listing the jobs after the fuzz');
    const page = (await res.json()) as { items: { id: string }[]; next?: string };
    ids.push(...page.items.map((j) => j.id));
    cursor = page.next;
  } while (cursor);
  return ids;
}

async function fixtures(s: TestServer): Promise<{ ids: string[]; tokens: string[] }> {
  const bob = s.clientFor('bob');
  const mine = await s.client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo out; echo err >&2'], queueName: 'unlimited', group: 'fuzz:a' });
  const theirs = await bob.submitBatchJob({ executable: 'true', queueName: 'unlimited', group: 'fuzz' });
  await s.client.waitUntilDone(mine.id, 20_000);
  await bob.waitUntilDone(theirs.id, 20_000);
  return { ids: [mine.id, theirs.id], tokens: [s.token, addUser(s.home, 'bob')] };
}

describe('API fuzz', () => {
  it('answers random HTTP requests with documented statuses and error bodies, never a 5xx, never data without a token, no job made by a refused one', async () => {
    await withServer(async (s) => {
      const { ids, tokens } = await fixtures(s);
      /** Ids in 201 answers: the only jobs the fuzz may have made. */
      const created = new Set<string>(ids);
      const routes = await routesOfServer(s);
      const host = new URL(s.url).host;
      const caseArb: fc.Arbitrary<HttpCase> = fc
        .record({
          route: fc.constantFrom(...routes),
          method: fc.oneof(
            { weight: 6, arbitrary: fc.constant('') },
            { weight: 3, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH') },
            { weight: 1, arbitrary: fc.constantFrom('get', 'G\tET', 'FOO', 'GETT', '') },
          ),
          id: idArb(ids),
          file: fc.constantFrom('index.js', 'x.css', '..', '.env', 'a/../../tokens.json', '%2e%2e%2ftokens.json'),
          form: fc.constantFrom(...TARGET_FORMS),
          version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', 'http/1.1'),
          host: fc.constantFrom('own', 'own', 'own', 'own', 'none', 'odd'),
          auth: authArb(tokens),
          headers: extraHeadersArb,
          body: bodyArb,
          framing: fc.constantFrom(...FRAMINGS),
          keepAlive: fc.boolean(),
        })
        .chain((r) =>
          queryArb(r.route.query ?? [], tokens).map((query): HttpCase => {
            const path = r.route.path.replace(':id', r.id).replace(':file', r.file);
            return {
              method: r.method === '' ? r.route.method : r.method,
              target: makeTarget(r.form, path, query, host),
              version: r.version,
              host: r.host,
              auth: r.auth,
              headers: r.headers,
              body: r.body,
              framing: r.framing,
              keepAlive: r.keepAlive,
            };
          }),
        );
      let answered = 0;
      await inBatches(
        s,
        caseArb,
        async (c) => {
          const res = await rawRequest(s.url, encodeHttp(c, host), { head: c.method === 'HEAD' });
          answered++;
          if (res.status === 201) idsIn(res.json, created);
          // A token in `access_token` counts as valid too.
          const queryToken = /[?&]access_token=([^&#]*)/.exec(c.target)?.[1];
          const validToken = c.auth.valid || (queryToken !== undefined && tokens.includes(queryToken));
          checkAnswer(
            res,
            { method: c.method, validToken, apiTarget: isApiTarget(c.target), tokenTarget: isTokenTarget(c.target, routes), upgrade: false },
            `${c.method} ${c.target.slice(0, 120)}`,
          );
        },
        8,
        250,
      );
      assert.equal(answered, 8 * 250 * SCALE);
      // A request that was not answered 201 created nothing (a refused description, batch or network).
      for (const token of tokens) {
        for (const id of await jobIdsOf(s, token)) assert.ok(created.has(id), `job ${id} exists, but no request was answered 201 with it`);
      }
    });
  });

  it('answers random WebSocket upgrade requests before the upgrade, with 101 only for a valid token, and survives garbage after it', async () => {
    await withServer(async (s) => {
      const { ids, tokens } = await fixtures(s);
      const host = new URL(s.url).host;
      const routes = await routesOfServer(s);
      const wsRoutes = routes.filter((r) => r.ws);
      assert.equal(wsRoutes.length, 2, 'the attach and events WebSockets in the OpenAPI document');
      /** Upgrade requests as a client would send them: only the query and the job vary, mostly within the rules. */
      const wellFormed = fc.record({
        route: fc.constantFrom(...wsRoutes),
        id: fc.oneof(fc.constantFrom(...ids), fc.uuid()),
        form: fc.constantFrom<TargetForm>('origin', 'origin', 'absolute'),
        method: fc.constant('GET'),
        auth: fc.constantFrom(...tokens).map((t) => ({ header: `Bearer ${t}`, valid: true })),
        key: fc.constant('dGhlIHNhbXBsZSBub25jZQ=='),
        version: fc.constant('13'),
        upgrade: fc.constant('websocket'),
        extra: fc.constant(undefined),
        after: fc.option(fc.uint8Array({ minLength: 1, maxLength: 64 }), { nil: undefined }),
        query: fc.oneof(
          fc.constant(''),
          fc.tuple(fc.constantFrom('from', 'since', 'group'), fc.oneof(fc.nat().map(String), fc.constantFrom('', 'fuzz', 'fuzz:a', '-1', '9007199254740992'))).map(([k, v]) => `${k}=${v}`),
        ),
      });
      /** Anything: each part of the request may be wrong. */
      const anyForm = fc
        .record({
          route: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...wsRoutes) }, { weight: 1, arbitrary: fc.constantFrom(...routes) }),
          id: idArb(ids),
          form: fc.constantFrom(...TARGET_FORMS),
          method: fc.constantFrom('GET', 'GET', 'GET', 'POST', 'HEAD'),
          auth: authArb(tokens),
          key: fc.constantFrom('dGhlIHNhbXBsZSBub25jZQ==', 'dGhlIHNhbXBsZSBub25jZQ==', 'short', '', undefined),
          version: fc.constantFrom('13', '13', '8', '99', 'x', undefined),
          upgrade: fc.constantFrom('websocket', 'websocket', 'WebSocket', 'h2c', ''),
          extra: fc.option(fc.tuple(fc.constantFrom('sec-websocket-protocol', 'sec-websocket-extensions', 'origin'), fc.constantFrom('a, a', ',', 'permessage-deflate; x=1', 'null', 'chat')), { nil: undefined }),
          after: fc.option(fc.uint8Array({ minLength: 1, maxLength: 64 }), { nil: undefined }),
        })
        .chain((r) => queryArb(r.route.query ?? [], tokens).map((query) => ({ ...r, query })));
      const caseArb = fc.oneof(wellFormed, anyForm).map((r) => {
        const target = makeTarget(r.form, r.route.path.replace(':id', r.id).replace(':file', 'x.js'), r.query, host);
        const lines = [`${r.method} ${target} HTTP/1.1`, `Host: ${host}`, 'Connection: Upgrade'];
        if (r.upgrade !== '') lines.push(`Upgrade: ${r.upgrade}`);
        if (r.key !== undefined) lines.push(`Sec-WebSocket-Key: ${r.key}`);
        if (r.version !== undefined) lines.push(`Sec-WebSocket-Version: ${r.version}`);
        if (r.auth.header !== undefined) lines.push(`Authorization: ${r.auth.header}`);
        if (r.extra) lines.push(`${r.extra[0]}: ${r.extra[1]}`);
        const queryToken = /[?&]access_token=([^&#]*)/.exec(target)?.[1];
        return { request: `${lines.join('\r\n')}\r\n\r\n`, target, method: r.method, validToken: r.auth.valid || (queryToken !== undefined && tokens.includes(queryToken)), after: r.after };
      });
      let upgraded = 0;
      await inBatches(
        s,
        caseArb,
        async (c) => {
          if (c.after === undefined) {
            const res = await rawRequest(s.url, c.request, { head: c.method === 'HEAD' });
            checkAnswer(
              res,
              { method: c.method, validToken: c.validToken, apiTarget: isApiTarget(c.target), tokenTarget: isTokenTarget(c.target, routes), upgrade: true },
              `upgrade ${c.method} ${c.target.slice(0, 120)}`,
            );
            if (res.status === 101) {
              assert.ok(c.validToken, `101 without a valid token: ${c.target}`);
              upgraded++;
            }
          } else {
            const status = await upgradeThenSend(s.url, c.request, Buffer.from(c.after));
            assert.ok(status === 101 || SUCCESS_STATUSES.has(status) || ERROR_STATUSES.has(status), `upgrade then garbage: status ${status}`);
            if (status === 101) upgraded++;
          }
        },
        4,
        200,
      );
      // The generator is meant to reach the sockets too, not only the refusals.
      assert.ok(upgraded > 20, `only ${upgraded} upgrades succeeded`);
    });
  });

  it('survives random frames on attach and events sockets, closing them only with documented codes', async () => {
    await withServer(async (s) => {
      const { ids, tokens } = await fixtures(s);
      const live: { plain?: string; tty?: string } = {};
      /** Keeps one running interactive job of each kind (frames may end them: EOF, ^D). */
      const ensureLive = async (): Promise<void> => {
        for (const kind of ['plain', 'tty'] as const) {
          const id = live[kind];
          if (id && (await s.client.getJobStatus(id)).status === 'Running') continue;
          const job = await s.client.submitBatchJob({ executable: 'cat', interactive: true, tty: kind === 'tty', queueName: 'unlimited', group: 'fuzz' });
          await s.client.waitUntilRunning(job.id, 20_000);
          live[kind] = job.id;
        }
      };
      const caseArb = fc.record({
        endpoint: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom('plain', 'tty').map((kind) => ({ kind: kind as 'plain' | 'tty' })) },
          { weight: 1, arbitrary: fc.constantFrom(...ids).map((id) => ({ id })) },
          { weight: 1, arbitrary: fc.uuid().map((id) => ({ id })) },
          { weight: 2, arbitrary: fc.record({ group: fc.constantFrom('', 'fuzz', 'fuzz:a', 'nope', '%', ':'), since: fc.option(fc.oneof(fc.nat(50), fc.constant(Number.MAX_SAFE_INTEGER)), { nil: undefined }) }) },
        ),
        from: fc.option(fc.oneof(fc.nat(100), fc.constant(Number.MAX_SAFE_INTEGER)), { nil: undefined }),
        // Mostly the owner of the live jobs; sometimes another user, who must not see them.
        token: fc.oneof({ weight: 4, arbitrary: fc.constant(tokens[0]!) }, { weight: 1, arbitrary: fc.constant(tokens[1]!) }),
        frames: fc.array(attachFrameArb, { minLength: 1, maxLength: 6 }),
      });
      const outcomes = new Map<string, number>();
      await inBatches(
        s,
        caseArb,
        async (c) => {
          let path: string;
          if ('group' in c.endpoint) {
            const q = new URLSearchParams();
            if (c.endpoint.group) q.set('group', c.endpoint.group);
            if (c.endpoint.since !== undefined) q.set('since', String(c.endpoint.since));
            path = `/v1/events?${q}`;
          } else {
            const id = 'kind' in c.endpoint ? live[c.endpoint.kind]! : c.endpoint.id;
            path = `/v1/jobs/${id}/attach${c.from === undefined ? '' : `?from=${c.from}`}`;
          }
          const end = await socketSession(s.url + path, c.token, c.frames);
          const outcome = end.refused ? `HTTP ${end.refused.status}` : end.closeCode !== undefined ? `close ${end.closeCode}` : 'open';
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          if (end.refused) {
            checkAnswer(end.refused, { method: 'GET', validToken: true, apiTarget: true, upgrade: true }, `socket ${path}`);
          } else if (end.closeCode !== undefined) {
            assert.ok(CLOSE_CODES.has(end.closeCode), `socket ${path}: closed with ${end.closeCode} ${end.reason ?? ''}`);
          }
        },
        10,
        50,
        ensureLive,
      );
      // The generator is meant to reach every outcome: sockets that stay open, protocol closes, refusals.
      console.log(`api fuzz: socket outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
      for (const outcome of ['open', `close ${CloseCode.PROTOCOL}`, 'HTTP 404']) assert.ok((outcomes.get(outcome) ?? 0) > 0, `no session ended ${outcome}`);
    });
  });
});

/** How a socket session ended. */
interface SessionEnd {
  /** The HTTP answer when the upgrade was refused. */
  refused?: RawResponse;
  /** The code the server closed with, when it closed. */
  closeCode?: number;
  reason?: string;
}

/**
 * Opens a WebSocket, sends `frames`, then pings: the session ends when the server closes or
 * answers the ping (it has handled everything sent before it). Fails when neither happens.
 */
function socketSession(url: string, token: string, frames: { data: Buffer | string; binary: boolean }[]): Promise<SessionEnd> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers: { authorization: `Bearer ${token}` } });
    let closedByServer: SessionEnd | undefined;
    let settled = false;
    const settle = (end: SessionEnd | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      if (end instanceof Error) reject(end);
      else resolve(end);
    };
    const timer = setTimeout(() => settle(new Error(`${url}: neither a pong nor a close within 15 s`)), 15_000);
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let json: unknown;
        try {
          json = JSON.parse(body.toString());
        } catch {
          // checked by the caller
        }
        const headers = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
        settle({ refused: { status: res.statusCode ?? 0, reason: res.statusMessage ?? '', headers, body, ...(json !== undefined ? { json } : {}) } });
      });
    });
    ws.on('open', () => {
      for (const f of frames) ws.send(f.data, { binary: f.binary });
      ws.ping();
    });
    ws.on('pong', () => settle(closedByServer ?? {}));
    ws.on('close', (code, reason) => {
      closedByServer = { closeCode: code, reason: reason.toString() };
      settle(closedByServer);
    });
    ws.on('error', (err) => {
      // After 'unexpected-response' ws reports the refusal as an error too; that is settled already.
      if (!settled && !String(err.message).includes('Unexpected server response')) settle(err);
    });
  });
}

/**
 * Sends an upgrade request; when it succeeds, writes `after` (not a valid frame, most likely)
 * and waits for the server to close. Resolves with the status of the answer.
 */
function upgradeThenSend(url: string, request: string, after: Buffer): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = '';
    let status = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`upgrade then garbage: no close within 15 s (got ${JSON.stringify(data.slice(0, 200))})`));
    }, 15_000);
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      if (status === 0 && data.includes('\r\n\r\n')) {
        status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? -1);
        if (status === 101) socket.end(after);
        else socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(status);
    });
    socket.write(request);
  });
}
