import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { z } from 'zod';
import { withServer, type TestServer } from '../helpers.js';

/** What the test keeps of a registered route. */
interface Route {
  methods: string[];
  url: string;
  schema: Record<string, unknown> | undefined;
  auth: string;
}

/** The parts of the document the test reads. */
interface Operation {
  parameters?: { in: string; name: string; required?: boolean }[];
  requestBody?: unknown;
  responses: Record<string, unknown>;
  security?: unknown[];
  description?: string;
}
interface Document {
  openapi: string;
  security?: unknown[];
  paths: Record<string, Record<string, Operation>>;
}

/**
 * Runs `fn` with a server, and every route the server registered, as fastify's `onRoute` hook
 * saw them: the test subscribes to fastify's `fastify.initialization` channel, which hands over
 * each new instance before any route is added.
 */
async function withRecordedServer(fn: (s: TestServer, routes: Route[]) => Promise<void>): Promise<void> {
  const routes: Route[] = [];
  const onInstance = (message: unknown): void => {
    (message as { fastify: FastifyInstance }).fastify.addHook('onRoute', (route: RouteOptions) => {
      routes.push({
        methods: typeof route.method === 'string' ? [route.method] : [...route.method],
        url: route.url,
        schema: route.schema as Record<string, unknown> | undefined,
        auth: (route.config as { auth?: string } | undefined)?.auth ?? 'user',
      });
    });
  };
  subscribe('fastify.initialization', onInstance);
  try {
    await withServer(async (s) => {
      unsubscribe('fastify.initialization', onInstance);
      await fn(s, routes);
    });
  } finally {
    unsubscribe('fastify.initialization', onInstance);
  }
}

/** The document's path of a fastify URL: `:id` is `{id}`, a trailing `*` is `{path}`. */
function documentPath(url: string): string {
  return url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{path}');
}

/** The names of a zod object schema's keys. */
function keysOf(schema: unknown): string[] {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

async function fetchDocument(s: TestServer): Promise<Document> {
  const res = await fetch(`${s.url}/api/openapi.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return (await res.json()) as Document;
}

describe('OpenAPI document', () => {
  it('is served without a token at /api/openapi.json and is valid OpenAPI 3.1', async () => {
    await withServer(async (s) => {
      const doc = await fetchDocument(s);
      assert.equal(doc.openapi, '3.1.0');
      const validator = new Validator();
      const result = await validator.validate(doc as unknown as Record<string, unknown>);
      assert.equal(validator.version, '3.1');
      assert.deepEqual(result.errors, undefined);
      assert.equal(result.valid, true);
    });
  });

  it('describes every registered route: its methods, path and query parameters, body, answers and who may call it', async () => {
    await withRecordedServer(async (s, routes) => {
      const doc = await fetchDocument(s);
      assert.ok(routes.length > 20, `only ${routes.length} routes recorded`);
      const hidden = routes.filter((r) => r.schema?.hide === true);
      // Only the /v1 catch-all (a 401 or 404 for paths no route serves) is left out.
      assert.deepEqual([...new Set(hidden.map((r) => r.url))].sort(), ['/v1', '/v1/*']);

      const described = new Set<string>();
      for (const route of routes.filter((r) => r.schema?.hide !== true)) {
        const path = documentPath(route.url);
        for (const method of route.methods) {
          const what = `${method} ${route.url}`;
          const op = doc.paths[path]?.[method.toLowerCase()];
          assert.ok(op, `${what} is not in the document`);
          described.add(`${method.toLowerCase()} ${path}`);

          const parameters = op.parameters ?? [];
          const inPath = parameters.filter((p) => p.in === 'path').map((p) => p.name);
          assert.deepEqual(inPath.sort(), [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort(), `${what}: path parameters`);
          assert.ok(parameters.filter((p) => p.in === 'path').every((p) => p.required === true), `${what}: path parameters are required`);
          const inQuery = parameters.filter((p) => p.in === 'query').map((p) => p.name);
          assert.deepEqual(inQuery.sort(), keysOf(route.schema?.querystring).sort(), `${what}: query parameters`);
          assert.equal(op.requestBody !== undefined, route.schema?.body !== undefined, `${what}: request body`);

          const answers = Object.keys((route.schema?.response as Record<string, unknown> | undefined) ?? {}).map((k) => k.toUpperCase());
          assert.ok(answers.some((k) => /^(101|2\d\d)$/.test(k)), `${what}: the route's schema names its success answer`);
          assert.deepEqual(Object.keys(op.responses).sort(), answers.sort(), `${what}: answers`);

          if (route.auth === 'public') assert.deepEqual(op.security, [], `${what}: public`);
          else assert.equal(op.security, undefined, `${what}: the document's bearer token`);
          if (route.auth === 'admin') assert.match(op.description ?? '', /admin token/, `${what}: says it needs an admin token`);
        }
      }
      assert.deepEqual(doc.security, [{ bearer: [] }]);
      // And nothing in the document that the server does not serve.
      const operations = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).filter((k) => k !== 'parameters').map((method) => `${method} ${path}`));
      assert.deepEqual(operations.filter((o) => !described.has(o)), []);
    });
  });

  it('says what the JSON answers are: each GET answer of a job, group, queue, worker, executor and user matches its documented schema exactly', async () => {
    await withRecordedServer(async (s, routes) => {
      const job = await s.client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo out'], queueName: 'unlimited', group: 'openapi:a' });
      await s.client.waitUntilDone(job.id, 20_000);
      const network = await s.client.runNetwork({ name: 'openapi', jobs: { one: { command: ['true'] } } }, { baseDir: '/' });
      const started = (routes.find((r) => r.url === '/v1/networks' && r.methods.includes('POST'))?.schema?.response as Record<string, z.ZodType>)['201']!;
      assert.deepEqual(started.parse(network), network, 'POST /v1/networks answers its documented schema');
      let checked = 0;
      for (const route of routes) {
        const answer = (route.schema?.response as Record<string, unknown> | undefined)?.['200'];
        if (!route.methods.includes('GET') || !(answer instanceof z.ZodObject) || route.schema?.hide === true) continue;
        const path = route.url.replace(':id', job.id).replace(':name', network.name);
        const res = await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${s.token}` } });
        assert.equal(res.status, 200, `GET ${path}: ${res.status}`);
        const body: unknown = await res.json();
        const parsed = answer.safeParse(body);
        assert.ok(parsed.success, `GET ${path}: ${parsed.error?.message}`);
        // A zod object drops keys it does not know: equal means nothing undocumented was sent.
        if (route.url !== '/api/openapi.json') assert.deepEqual(parsed.data, body, `GET ${path}: only documented fields`);
        checked++;
      }
      // whoami, jobs, jobs/:id, wait, jobs/:id/files, groups, queues, workers, executors, networks, networks/:name,
      // networks/:name/graph and the document itself.
      assert.equal(checked, 13);
      const submitted = (routes.find((r) => r.url === '/v1/jobs' && r.methods.includes('POST'))?.schema?.response as Record<string, z.ZodType>)['201']!;
      const answer: unknown = await s.client.submitBatchJob({ executable: 'true', queueName: 'unlimited' });
      assert.deepEqual(submitted.parse(answer), answer, 'POST /v1/jobs answers its documented schema');
    });
  });
});
