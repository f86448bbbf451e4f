/**
 * Routes with zod schemas, and the OpenAPI 3.1 document made from them at `GET /api/openapi.json`.
 *
 * fastify-type-provider-zod validates each request part with the route's zod schema (its
 * errors reach the API's error handler, routes.ts) and, through @fastify/swagger, turns the same
 * schemas into the document: every route added after {@link useSchemas} is in it, with its
 * methods (HEAD too), parameters, bodies and answers, unless it says `schema.hide` (only the
 * `/v1` catch-all does). Who may call a route comes from its `config.auth`, so the document's
 * `security` cannot disagree with the server's.
 *
 * The document is public: it describes the shape of the API — what docs/api.md says in prose and
 * the source says anyway — and no data, so tools that read it (client generators, API
 * browsers) need no token. It names the API's version (`v1`), not the server's release, so it
 * does not tell a caller which jobwire runs.
 *
 * Answers are not checked against their schemas at run time: a server that answers a little
 * more than the document says is better than one that answers 500. The tests check them
 * instead (test/server/openapi.test.ts).
 * @module
 */
import swagger, { type SwaggerTransform, type SwaggerTransformObject } from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject, validatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { API_PREFIX } from '@jobwire/client';
import type { RouteAuth } from './routes.js';
import { errorAnswers } from './schemas.js';

/** Where the document is served. */
export const OPENAPI_PATH = '/api/openapi.json';

/**
 * The OpenAPI path of a fastify route URL: `:id` becomes `{id}` and a trailing wildcard `{path}`
 * (@fastify/swagger would write `{*}`, which is no parameter name a client generator takes).
 */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{path}');
}

/** The route's schema as @fastify/swagger should see it: zod made JSON Schema, and `security` from `config.auth`. */
const transform: SwaggerTransform = (document) => {
  const { schema, url } = jsonSchemaTransform(document);
  const auth: RouteAuth = (document.route.config as { auth?: RouteAuth } | undefined)?.auth ?? 'user';
  const security = auth === 'public' ? { security: [] } : {};
  const admin = auth === 'admin' ? { description: [schema.description, 'Needs an admin token.'].filter(Boolean).join(' ') } : {};
  return { schema: { ...schema, ...security, ...admin }, url: openApiPath(url) };
};

/** The names of the component schemas `value` refers to. */
function refsIn(value: unknown): string[] {
  return [...JSON.stringify(value).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
}

/**
 * The document with the named zod schemas as components. The provider gives each one an input
 * and an output form (`JobInfoInput`, `JobInfo`); only those the routes use, directly or through
 * another schema, are kept.
 */
const transformObject: SwaggerTransformObject = (document) => {
  const doc = jsonSchemaTransformObject(document) as { components?: { schemas?: Record<string, unknown> }; paths?: unknown };
  const schemas = doc.components?.schemas;
  if (!schemas) return doc as ReturnType<SwaggerTransformObject>;
  const used = new Set<string>();
  const pending = refsIn(doc.paths);
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (used.has(name)) continue;
    used.add(name);
    pending.push(...refsIn(schemas[name]));
  }
  doc.components!.schemas = Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name)));
  return doc as ReturnType<SwaggerTransformObject>;
};

/**
 * Sets the zod compilers on `app` and starts recording its routes for the OpenAPI document,
 * which it serves at {@link OPENAPI_PATH}. Call it before adding routes: only routes added
 * afterwards are recorded.
 */
export async function useSchemas(app: FastifyInstance): Promise<void> {
  app.setValidatorCompiler(validatorCompiler);
  // Answers go out as they are: their schemas document them (see the module comment).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'jobwire',
        version: API_PREFIX.slice(1),
        description:
          'Jobs you talk to while they run: submit, follow, read output, write stdin, attach over WebSocket. ' +
          'Every route needs a bearer token unless it says otherwise; errors are `{"error":{"code","message","field"?}}`. ' +
          'See docs/api.md for the WebSocket frames and the details.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A jobwire token (`jobwire token create USER`).' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'jobs', description: 'Submit, follow and talk to jobs.' },
        { name: 'groups', description: 'The job tree.' },
        { name: 'events', description: 'Live changes of the job tree.' },
        { name: 'queues', description: 'Queues and workers.' },
        { name: 'users', description: 'Tokens.' },
        { name: 'operations', description: 'The API description and metrics.' },
        { name: 'dashboard', description: 'The web page (no data, no token).' },
      ],
    },
    exposeHeadRoutes: true,
    transform,
    transformObject,
  });

  app.get(
    OPENAPI_PATH,
    {
      config: { auth: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'This document (OpenAPI 3.1)',
        response: { 200: z.looseObject({ openapi: z.string() }).describe('The OpenAPI document'), ...errorAnswers },
      },
    },
    async (_req, reply) => reply.header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(app.swagger()),
  );
}
