/**
 * REST routes (see docs/api.md). Each route authenticates, validates its input, calls the job
 * service and maps errors through one handler.
 *
 * Authentication is decided by the route a request matched, never by its target's text: a
 * target can name an API route in forms a prefix test misses (`GET http://host/v1/queues`,
 * `/%76%31/queues`). Every route needs a user's token unless it says otherwise (`config.auth`),
 * and every path under `/v1` is a route — an unknown one answers 401 without a token, 404 with.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { API_PREFIX, BadRequestError, HTTP_STATUS, JobwireError, NotFoundError, UnauthorizedError, type ErrorCode, type WhoAmI } from '@jobwire/client';
import { publicInfo, type JobService } from '../jobs/service.js';
import { sendOutput } from './output.js';
import type { TokenBook } from '../auth/tokens.js';

/**
 * Who may call a route: `user` — a user's token (the default, so a route added without thought
 * is not open); `user-or-job` — also the token of the job named by the route's `:id`;
 * `public` — anyone (the dashboard's files: code, no data).
 */
export type RouteAuth = 'user' | 'user-or-job' | 'public';

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

function intParam(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(n) || n < min || n > max) {
    throw new BadRequestError(`${name}: an integer from ${min} to ${max}`, { field: name });
  }
  return n;
}

function strParam(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new BadRequestError(`${name}: give it once, as a string`, { field: name });
  return value;
}

function oneOf<T extends string>(value: unknown, name: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !allowed.includes(value as T)) throw new BadRequestError(`${name}: one of ${allowed.join(', ')}`, { field: name });
  return value as T;
}

function checkQuery(query: unknown, allowed: string[]): Record<string, unknown> {
  const q = (query ?? {}) as Record<string, unknown>;
  const unknown = Object.keys(q).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw new BadRequestError(`unknown query parameter: ${unknown.join(', ')}`, { field: unknown[0]! });
  return q;
}

type Req = FastifyRequest<{ Params: { id: string } }>;

/** Registers the REST API on `app`. */
export function registerRoutes(app: FastifyInstance, service: JobService, tokens: TokenBook): void {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: STDIN_BODY_LIMIT }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err, req, reply) => {
    const e = toJobwireError(err);
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

  const user = (req: FastifyRequest): string => req.who!.user;
  const P = API_PREFIX;

  app.get(`${P}/whoami`, async (req) => {
    checkQuery(req.query, []);
    return req.who;
  });

  app.post(`${P}/jobs`, async (req, reply) => {
    checkQuery(req.query, []);
    const job = await service.submit(user(req), req.body);
    return reply.code(201).send(publicInfo(job));
  });

  app.get(`${P}/jobs`, async (req) => {
    const q = checkQuery(req.query, ['group', 'status', 'name', 'limit', 'cursor']);
    const group = strParam(q.group, 'group');
    const status = strParam(q.status, 'status');
    const name = strParam(q.name, 'name');
    const cursor = strParam(q.cursor, 'cursor');
    return service.list(user(req), {
      limit: intParam(q.limit, 'limit', 1, 1000, 100),
      ...(group !== undefined ? { group } : {}),
      ...(status !== undefined ? { status } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(cursor !== undefined ? { cursor } : {}),
    });
  });

  app.get(`${P}/jobs/:id`, async (req: Req) => {
    checkQuery(req.query, []);
    return publicInfo(await service.get(user(req), req.params.id));
  });

  app.post(`${P}/jobs/:id/cancel`, async (req: Req) => {
    checkQuery(req.query, []);
    return publicInfo(await service.cancel(user(req), req.params.id));
  });

  app.delete(`${P}/jobs/:id`, async (req: Req, reply) => {
    checkQuery(req.query, []);
    await service.delete(user(req), req.params.id);
    return reply.code(204).send();
  });

  app.get(`${P}/jobs/:id/output`, async (req: Req, reply) => {
    const q = checkQuery(req.query, ['stream', 'from', 'to']);
    const stream = oneOf(q.stream, 'stream', ['stdout', 'stderr'] as const, 'stdout');
    const job = await service.get(user(req), req.params.id);
    const sizes = await service.streamSizes(job.id);
    const from = intParam(q.from, 'from', 0, Number.MAX_SAFE_INTEGER, 0);
    const to = intParam(q.to, 'to', 0, Number.MAX_SAFE_INTEGER, sizes[stream]);
    if (to < from) throw new BadRequestError('to: must not be less than from', { field: 'to' });
    const range = strParam(req.headers.range, 'range');
    const ifRange = strParam(req.headers['if-range'], 'if-range');
    return sendOutput(reply, service, { jobId: job.id, channel: stream, sizes, from, to, range, ifRange, head: req.method === 'HEAD' });
  });

  app.post(`${P}/jobs/:id/stdin`, async (req: Req) => {
    const q = checkQuery(req.query, ['offset']);
    if (!Buffer.isBuffer(req.body)) throw new BadRequestError('stdin is sent as application/octet-stream');
    const offset = q.offset === undefined ? undefined : intParam(q.offset, 'offset', 0, Number.MAX_SAFE_INTEGER, 0);
    return { offset: await service.writeStdin(user(req), req.params.id, req.body, offset) };
  });

  app.post(`${P}/jobs/:id/stdin/close`, async (req: Req) => {
    checkQuery(req.query, []);
    return { offset: await service.closeStdin(user(req), req.params.id) };
  });

  app.post(`${P}/jobs/:id/progress`, { config: { auth: 'user-or-job' } }, async (req: Req) => {
    checkQuery(req.query, []);
    const body = req.body as { message?: unknown } | undefined;
    if (!body || typeof body !== 'object' || Object.keys(body).some((k) => k !== 'message')) {
      throw new BadRequestError('body: {"message": TEXT}', { field: 'message' });
    }
    const who = req.who ? { owner: req.who.user } : { jobToken: tokenOf(req.headers, req.url)! };
    return publicInfo(await service.setProgress(who, req.params.id, body.message as string));
  });

  app.get(`${P}/jobs/:id/wait`, async (req: Req) => {
    const q = checkQuery(req.query, ['for', 'timeout']);
    const until = oneOf(q.for, 'for', ['done', 'running'] as const, 'done');
    const timeout = intParam(q.timeout, 'timeout', 0, 60_000, 30_000);
    return publicInfo(await service.wait(user(req), req.params.id, until, timeout));
  });

  app.get(`${P}/groups`, async (req) => {
    const q = checkQuery(req.query, ['under']);
    return { items: await service.groups(user(req), strParam(q.under, 'under')) };
  });

  app.get(`${P}/queues`, async (req) => {
    checkQuery(req.query, []);
    return { items: await service.queues() };
  });

  // Every other path under /v1, so that it too asks for a token before saying there is nothing.
  const noRoute = async (req: FastifyRequest): Promise<never> => {
    throw new NotFoundError(`no route ${req.method} ${req.url.split('?')[0]}`);
  };
  app.all(P, noRoute);
  app.all(`${P}/*`, noRoute);
}
