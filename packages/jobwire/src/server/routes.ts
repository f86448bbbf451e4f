/**
 * REST routes (see docs/api.md). Each route authenticates, has its input validated by fastify
 * against the zod schemas of schemas.ts (the same ones the OpenAPI document is made from), calls
 * the job service and maps errors — a failed check too — through one handler.
 *
 * Authentication is decided by the route a request matched, never by its target's text: a
 * target can name an API route in forms a prefix test misses (`GET http://host/v1/queues`,
 * `/%76%31/queues`). Every route needs a user's token unless it says otherwise (`config.auth`),
 * and every path under `/v1` is a route — an unknown one answers 401 without a token, 404 with.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { API_PREFIX, BadRequestError, HTTP_STATUS, JobwireError, NotFoundError, UnauthorizedError, type ErrorCode, type WhoAmI } from '@jobwire/client';
import { jobDescriptionSchema, type IssueLike } from '../jobs/schema.js';
import { SANDBOX_FILE_LIMIT } from '../jobs/sandbox.js';
import { MAX_BATCH_JOBS, publicInfo, type JobService } from '../jobs/service.js';
import { z } from 'zod';
import { sendOutput } from './output.js';
import {
  attachQuery,
  errorAnswers,
  eventsQuery,
  groupListSchema,
  groupsQuery,
  issueOf,
  jobInfoSchema,
  jobPageSchema,
  jobParams,
  listJobsQuery,
  noBody,
  noQuery,
  outputFileListSchema,
  outputFileQuery,
  outputQuery,
  uploadBody,
  uploadSchema,
  progressBody,
  queueListSchema,
  requestError,
  stdinBody,
  stdinOffsetSchema,
  stdinQuery,
  waitQuery,
  whoAmISchema,
  bytesSchema,
  type RequestPart,
} from './schemas.js';
import type { TokenBook } from '../auth/tokens.js';

/**
 * Who may call a route: `user` — a user's token (the default, so a route added without thought
 * is not open); `user-or-job` — also the token of the job named by the route's `:id`; `admin` —
 * an admin token (what spans every user, such as `/metrics`); `public` — anyone (the
 * dashboard's files and the API's description: code and shapes, no data).
 */
export type RouteAuth = 'user' | 'user-or-job' | 'admin' | 'public';

/** A valid token of a user who is not an admin, on an admin-only route (HTTP 403). */
export class AdminOnlyError extends JobwireError {
  override name = 'AdminOnlyError';
  constructor(message: string, options?: ErrorOptions) {
    super('forbidden', message, options);
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated user (set by the auth hook). */
    who?: WhoAmI;
  }
  interface FastifyContextConfig {
    /** Who may call the route. @defaultValue "user" */
    auth?: RouteAuth;
  }
}

/** Largest JSON body. */
export const JSON_BODY_LIMIT = 1024 * 1024;
/** Largest body of `POST /v1/jobs/batch` (up to {@link MAX_BATCH_JOBS} descriptions). */
export const BATCH_BODY_LIMIT = 16 * 1024 * 1024;
/** The body of `POST /v1/jobs/batch`. */
const batchSchema = z.strictObject({ jobs: z.array(jobDescriptionSchema).min(1).max(MAX_BATCH_JOBS) });
/** Largest stdin body. */
export const STDIN_BODY_LIMIT = 8 * 1024 * 1024;

/** Extracts a bearer token from a header or (for browsers' WebSockets) `access_token`. */
export function tokenOf(headers: Record<string, string | string[] | undefined>, url: string): string | undefined {
  const auth = headers['authorization'];
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const q = url.indexOf('?');
  if (q >= 0) {
    const t = new URLSearchParams(url.slice(q + 1)).get('access_token');
    if (t) return t;
  }
  return undefined;
}

function sendError(reply: FastifyReply, err: JobwireError): FastifyReply {
  return reply.code(err.status).type('application/json').send({ error: err.toJSON() });
}

/** Maps anything thrown in a route to the wire error format. */
export function toJobwireError(err: unknown): JobwireError {
  if (err instanceof JobwireError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new BadRequestError(`malformed JSON body: ${e.message ?? ''}`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BadRequestError('request body too large', { code: 'payload_too_large' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new BadRequestError(`unsupported content type: ${e.message ?? ''}`);
    default:
      break;
  }
  if (err instanceof SyntaxError || (e.statusCode === 400 && e.message)) return new BadRequestError(`malformed request: ${e.message}`);
  if (e.statusCode === 413) return new BadRequestError('request body too large', { code: 'payload_too_large' });
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code = (Object.entries(HTTP_STATUS).find(([, s]) => s === e.statusCode)?.[0] ?? 'bad_request') as ErrorCode;
    return new JobwireError(code, e.message ?? 'bad request');
  }
  return new JobwireError('internal', 'internal error', { cause: err });
}

/**
 * An object key fastify's JSON parser refuses (secure-json-parse): `__proto__` anywhere, and
 * `constructor` holding a `prototype`. The path of the first one, or undefined.
 */
function poisonedKey(value: unknown, path: string): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = poisonedKey(item, `${path}.${index}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (Object.hasOwn(value, '__proto__')) return `${path}.__proto__`;
  const ctor = (value as { constructor?: unknown }).constructor;
  if (Object.hasOwn(value, 'constructor') && ctor !== null && typeof ctor === 'object' && Object.hasOwn(ctor, 'prototype')) return `${path}.constructor.prototype`;
  for (const [key, item] of Object.entries(value)) {
    const found = poisonedKey(item, `${path}.${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Parses a JSON body as fastify's own parser does (no `__proto__`, no `constructor.prototype`),
 * but says what is wrong: JSON.parse's message (where the text breaks), or the forbidden key.
 * The key check is written here rather than left to secure-json-parse (fastify's parser) because
 * its error names no key ("Object contains forbidden prototype property"), and a refused request
 * must name what is wrong.
 */
export function parseJsonBody(text: string): unknown {
  if (text.length === 0) throw new BadRequestError("malformed JSON body: it is empty (send a JSON value, or no Content-Type 'application/json')");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BadRequestError(`malformed JSON body: ${err instanceof Error ? err.message : String(err)}`);
  }
  // Only a text that could spell such a key (plainly or with \u escapes) is walked.
  if (text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')) {
    const key = poisonedKey(value, '(body)');
    if (key !== undefined) throw new BadRequestError(`malformed JSON body: the key ${key.replace(/^\(body\)\./, '')} is refused (it could change objects' prototypes)`, { field: key.replace(/^\(body\)\./, '') });
  }
  return value;
}

/**
 * The first zod issue of a refused body, checked again: the type provider hands it over with its
 * path joined by "/" (a key holding "/" or "." cannot be told apart) and without a refused key's
 * reason. Only on the error path.
 */
function bodyIssue(req: FastifyRequest, part: string | undefined): IssueLike | undefined {
  const schema = req.routeOptions.schema?.body;
  if (part !== 'body' || !(schema instanceof z.ZodType)) return undefined;
  return schema.safeParse(req.body).error?.issues[0];
}

/** Registers the REST API on `app`. Call `useSchemas` (openapi.ts) first: the routes' schemas are zod. */
/** `stopping` aborts when the server begins to stop: long waits answer at once then. */
export function registerRoutes(app: FastifyInstance, service: JobService, tokens: TokenBook, stopping: AbortSignal): void {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: STDIN_BODY_LIMIT }, (_req, body, done) => done(null, body));
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const e = hasZodFastifySchemaValidationErrors(err)
      ? requestError(err.validationContext as RequestPart, bodyIssue(req, err.validationContext) ?? issueOf(err.validation[0]!), req.routeOptions.schema?.body === jobDescriptionSchema || req.routeOptions.schema?.body === batchSchema)
      : toJobwireError(err);
    if (e.code === 'internal') req.log.error({ err }, 'internal error');
    return sendError(reply, e);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new JobwireError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));

  app.addHook('onRequest', async (req) => {
    // Paths no route matched (outside /v1: under it, the catch-all below matches) hold no data.
    const auth: RouteAuth = req.is404 ? 'public' : (req.routeOptions.config.auth ?? 'user');
    if (auth === 'public') return;
    const token = tokenOf(req.headers, req.url);
    const who = tokens.lookup(token);
    if (who) {
      if (auth === 'admin' && !who.admin) throw new AdminOnlyError(`${req.routeOptions.url ?? 'this route'} is for admin tokens`);
      req.who = who;
      return;
    }
    // Checked here, before the body is parsed, so that a wrong job token is a 401 whatever else is wrong.
    const jobId = (req.params as { id?: unknown }).id;
    if (auth === 'user-or-job' && token && typeof jobId === 'string' && (await service.isJobToken(jobId, token))) return;
    throw new UnauthorizedError(token ? 'invalid token' : 'missing token: send "Authorization: Bearer TOKEN"');
  });
  // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (the server turns node's own check off).
  app.addHook('onRequest', async (req) => {
    if (req.raw.httpVersion === '1.1' && req.headers.host === undefined) throw new BadRequestError('missing Host header');
  });

  const api = app.withTypeProvider<ZodTypeProvider>();
  const user = (req: FastifyRequest): string => req.who!.user;
  const P = API_PREFIX;
  const jobs = ['jobs'];

  api.get(`${P}/whoami`, { schema: { tags: ['users'], summary: 'Who the token belongs to', querystring: noQuery, response: { 200: whoAmISchema, ...errorAnswers } } }, async (req) => req.who!);

  api.post(
    `${P}/jobs`,
    { schema: { tags: jobs, summary: 'Submit a job', querystring: noQuery, body: jobDescriptionSchema, response: { 201: jobInfoSchema.describe('The job, Queued'), ...errorAnswers } } },
    async (req, reply) => {
      const job = await service.submit(user(req), req.body);
      return reply.code(201).send(publicInfo(job));
    },
  );

  api.post(
    `${P}/jobs/batch`,
    {
      bodyLimit: BATCH_BODY_LIMIT,
      schema: {
        tags: jobs,
        summary: `Submit many jobs at once (1 to ${MAX_BATCH_JOBS}); all or nothing`,
        description: `Every description is checked first: one that is wrong is refused (field \`jobs.<index>...\`) and no job is queued. The jobs are queued in order, their records created in one transaction.`,
        querystring: noQuery,
        body: batchSchema,
        response: { 201: z.object({ jobs: z.array(jobInfoSchema) }).describe('The jobs, Queued, in the order given'), ...errorAnswers },
      },
    },
    async (req, reply) => {
      const created = await service.submitMany(user(req), req.body.jobs);
      return reply.code(201).send({ jobs: created.map((job) => publicInfo(job)) });
    },
  );

  api.get(
    `${P}/jobs`,
    { schema: { tags: jobs, summary: 'List jobs, oldest first', querystring: listJobsQuery, response: { 200: jobPageSchema, ...errorAnswers } } },
    async (req) => {
      const { group, status, name, limit, cursor } = req.query;
      return service.list(user(req), {
        limit,
        ...(group !== undefined ? { group } : {}),
        ...(status !== undefined ? { status } : {}),
        ...(name !== undefined ? { name } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      });
    },
  );

  api.get(
    `${P}/jobs/:id`,
    { schema: { tags: jobs, summary: 'A job, with its description', params: jobParams, querystring: noQuery, response: { 200: jobInfoSchema, ...errorAnswers } } },
    async (req) => publicInfo(await service.get(user(req), req.params.id)),
  );

  api.post(
    `${P}/jobs/:id/cancel`,
    {
      schema: {
        tags: jobs,
        summary: 'Cancel a job',
        description: 'A Queued job becomes Cancelled at once; a Running one gets SIGTERM (then SIGKILL after the grace period) and becomes Cancelled when it has stopped.',
        params: jobParams,
        querystring: noQuery,
        response: { 200: jobInfoSchema, ...errorAnswers },
      },
    },
    async (req) => publicInfo(await service.cancel(user(req), req.params.id)),
  );

  api.delete(
    `${P}/jobs/:id`,
    {
      schema: {
        tags: jobs,
        summary: 'Delete a final job and its output',
        params: jobParams,
        querystring: noQuery,
        response: { 204: noBody.describe('Deleted'), ...errorAnswers },
      },
    },
    async (req, reply) => {
      await service.delete(user(req), req.params.id);
      return reply.code(204).send(null);
    },
  );

  const bytes = (description: string) => ({ description, content: { 'application/octet-stream': { schema: bytesSchema } } });
  api.get(
    `${P}/jobs/:id/output`,
    {
      schema: {
        tags: jobs,
        summary: 'Download one output stream',
        description: 'Streamed from storage; a single HTTP range (`Range: bytes=A-B`) picks a part of what `from`/`to` selected (docs/api.md, Output downloads).',
        params: jobParams,
        querystring: outputQuery,
        response: { 200: bytes('The bytes'), 206: bytes('The range asked for'), ...errorAnswers },
      },
    },
    async (req, reply) => {
      const { stream, from } = req.query;
      const job = await service.get(user(req), req.params.id);
      const sizes = await service.streamSizes(job.id);
      const to = req.query.to ?? sizes[stream];
      if (to < from) throw new BadRequestError('to: must not be less than from', { field: 'to' });
      const range = headerOnce(req.headers.range, 'range');
      const ifRange = headerOnce(req.headers['if-range'], 'if-range');
      return sendOutput(reply, service, { jobId: job.id, channel: stream, sizes, from, to, range, ifRange, head: req.method === 'HEAD' });
    },
  );

  api.get(
    `${P}/jobs/:id/files`,
    { schema: { tags: jobs, summary: 'The output files a job kept', params: jobParams, querystring: noQuery, response: { 200: outputFileListSchema, ...errorAnswers } } },
    async (req) => ({ items: await service.outputFiles(user(req), req.params.id) }),
  );

  api.get(
    `${P}/jobs/:id/files/content`,
    {
      schema: { tags: jobs, summary: 'Download one output file a job kept', params: jobParams, querystring: outputFileQuery, response: { 200: bytes('The file'), ...errorAnswers } },
    },
    async (req, reply) => reply.type('application/octet-stream').send(await service.outputFile(user(req), req.params.id, req.query.name)),
  );

  // Uploads stream to the store: their own content parser hands the body over unread.
  app.register(async (uploads) => {
    uploads.removeContentTypeParser('application/octet-stream');
    uploads.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    uploads.withTypeProvider<ZodTypeProvider>().post(
      `${P}/uploads`,
      {
        schema: {
          tags: jobs,
          summary: "Upload a file for a job's inputFiles",
          description: `Streamed to the store, at most ${SANDBOX_FILE_LIMIT} bytes (413 beyond, nothing kept). Name the returned id in a description's \`inputFiles\`.`,
          querystring: noQuery,
          body: uploadBody,
          consumes: ['application/octet-stream'],
          response: { 201: uploadSchema, ...errorAnswers },
        },
      },
      async (req, reply) => reply.code(201).send(await service.upload(user(req), req.body as AsyncIterable<Uint8Array>)),
    );
  });

  api.post(
    `${P}/jobs/:id/stdin`,
    {
      schema: {
        tags: jobs,
        summary: "Write to an interactive job's stdin",
        params: jobParams,
        querystring: stdinQuery,
        body: stdinBody,
        consumes: ['application/octet-stream'],
        response: { 200: stdinOffsetSchema, ...errorAnswers },
      },
    },
    async (req) => ({ offset: await service.writeStdin(user(req), req.params.id, req.body, req.query.offset) }),
  );

  api.post(
    `${P}/jobs/:id/stdin/close`,
    { schema: { tags: jobs, summary: "End an interactive job's stdin", params: jobParams, querystring: noQuery, response: { 200: stdinOffsetSchema, ...errorAnswers } } },
    async (req) => ({ offset: await service.closeStdin(user(req), req.params.id) }),
  );

  api.post(
    `${P}/jobs/:id/progress`,
    {
      config: { auth: 'user-or-job' },
      schema: {
        tags: jobs,
        summary: "Set a job's progress message",
        description: "With the owner's token or the job's own `JOBWIRE_JOB_TOKEN`.",
        params: jobParams,
        querystring: noQuery,
        body: progressBody,
        response: { 200: jobInfoSchema, ...errorAnswers },
      },
    },
    async (req) => {
      const who = req.who ? { owner: req.who.user } : { jobToken: tokenOf(req.headers, req.url)! };
      return publicInfo(await service.setProgress(who, req.params.id, req.body.message));
    },
  );

  api.get(
    `${P}/jobs/:id/wait`,
    {
      schema: {
        tags: jobs,
        summary: 'Wait for a job to run or end',
        description: 'Answers as soon as the condition holds or the timeout passes; the caller checks `status`.',
        params: jobParams,
        querystring: waitQuery,
        response: { 200: jobInfoSchema, ...errorAnswers },
      },
    },
    async (req, reply) => {
      // The wait ends early when the caller goes away or the server stops (answering with the job
      // as it is then), so neither holds a waiting request, and a stop, until the timeout.
      const gone = new AbortController();
      const onClose = (): void => gone.abort();
      reply.raw.once('close', onClose);
      try {
        return publicInfo(await service.wait(user(req), req.params.id, req.query.for, req.query.timeout, AbortSignal.any([gone.signal, stopping])));
      } finally {
        reply.raw.off('close', onClose);
      }
    },
  );

  api.get(
    `${P}/groups`,
    { schema: { tags: ['groups'], summary: 'List groups', querystring: groupsQuery, response: { 200: groupListSchema, ...errorAnswers } } },
    async (req) => ({ items: await service.groups(user(req), req.query.under) }),
  );

  api.get(
    `${P}/queues`,
    { schema: { tags: ['queues'], summary: 'Queues and their load', querystring: noQuery, response: { 200: queueListSchema, ...errorAnswers } } },
    async () => ({ items: await service.queues() }),
  );

  // The WebSocket endpoints: upgrade.ts serves them (node hands upgrades to it, not to fastify).
  // These routes describe them in the OpenAPI document and answer a plain GET.
  const webSocketOnly = async (req: FastifyRequest): Promise<never> => {
    throw new BadRequestError(`${req.url.split('?')[0]} is a WebSocket endpoint: send an upgrade request (Connection: Upgrade, Upgrade: websocket)`);
  };
  const upgraded = { 101: noBody.describe('Switching to the WebSocket protocol (docs/api.md)'), ...errorAnswers };
  api.get(
    `${P}/jobs/:id/attach`,
    {
      exposeHeadRoute: false,
      schema: {
        tags: jobs,
        summary: 'Attach to a job (WebSocket)',
        description: "Binary frames: the job's output from `from` on, then live; stdin, resize and flow control the other way (docs/api.md).",
        params: jobParams,
        querystring: attachQuery,
        response: upgraded,
      },
    },
    webSocketOnly,
  );
  api.get(
    `${P}/events`,
    {
      exposeHeadRoute: false,
      schema: {
        tags: ['events'],
        summary: 'Follow the job tree (WebSocket)',
        description: 'JSON text frames: add / update / remove of jobs and groups, as a snapshot or a replay from `since`, then live (docs/api.md).',
        querystring: eventsQuery,
        response: upgraded,
      },
    },
    webSocketOnly,
  );

  // Every other path under /v1, so that it too asks for a token before saying there is nothing.
  const noRoute = async (req: FastifyRequest): Promise<never> => {
    throw new NotFoundError(`no route ${req.method} ${req.url.split('?')[0]}`);
  };
  app.all(P, { schema: { hide: true } }, noRoute);
  app.all(`${P}/*`, { schema: { hide: true } }, noRoute);
}

/** A request header that must come at most once. */
function headerOnce(value: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(value)) throw new BadRequestError(`${name}: give it once, as a string`, { field: name });
  return value;
}
