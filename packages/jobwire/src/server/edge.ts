/**
 * Answers for requests that never reach a route: a target fastify cannot decode, a path segment
 * longer than any id, bytes node's HTTP parser rejects (headers over the limit, garbage), a
 * `CONNECT`. Each gets the API's error shape (`{"error":{"code","message"}}`), and — wherever
 * the request could be read at all — a 401 before anything else, so a caller without a token
 * learns nothing about the server from a malformed request.
 * @module
 */
import { STATUS_CODES, ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BadRequestError, JobwireError, NotFoundError, TimeoutError, UnauthorizedError, type WhoAmI } from '@jobwire/client';
import { tokenOf, toJobwireError } from './routes.js';

/** What the edge needs of the token book. */
export interface TokenLookup {
  lookup(token: string | undefined): WhoAmI | undefined;
}

/** The user whose token `req` carries (header or `access_token`), if any. */
export function userOf(tokens: TokenLookup, req: Pick<IncomingMessage, 'headers' | 'url'>): WhoAmI | undefined {
  return tokens.lookup(tokenOf(req.headers, req.url ?? ''));
}

/** The 401 of a request without a valid token. */
export function unauthorized(req: Pick<IncomingMessage, 'headers' | 'url'>): UnauthorizedError {
  return new UnauthorizedError(tokenOf(req.headers, req.url ?? '') ? 'invalid token' : 'missing token: send "Authorization: Bearer TOKEN"');
}

/**
 * A complete HTTP/1.1 error response, written by hand for a request node's parser refused: there
 * is no request to answer through a `ServerResponse` then (node's documentation for
 * `clientError` says to write to the socket). The reason phrase is node's own for the status.
 */
export function rawErrorResponse(err: JobwireError, headers: Record<string, string> = {}): string {
  const body = JSON.stringify({ error: err.toJSON() });
  const lines = [
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** Options of {@link refuseSocket}. */
export interface RefuseOptions {
  /** The request refused, when node parsed one (an upgrade, a CONNECT); without it the answer is written by hand. */
  req?: IncomingMessage;
  /** More response headers. @defaultValue {} */
  headers?: Record<string, string>;
}

/**
 * Answers `err` on a socket that no `ServerResponse` serves — a refused WebSocket upgrade or
 * CONNECT (through a `ServerResponse` of its request: node writes the status line, `Date` and
 * `Connection: close`), or a request node's parser refused (by hand) — and closes it once the
 * answer is out.
 */
export function refuseSocket(socket: Duplex, err: JobwireError, options: RefuseOptions = {}): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  if (!options.req) {
    socket.end(rawErrorResponse(err, options.headers));
    return;
  }
  const body = JSON.stringify({ error: err.toJSON() });
  const res = new ServerResponse(options.req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
  });
  res.writeHead(err.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...options.headers });
  res.end(body);
}

/**
 * fastify's `frameworkErrors`: errors raised while routing, before any hook runs. A target with a
 * bad %-escape is a 400 and a path segment over `maxParamLength` (every such segment is a job id,
 * and no id is that long) a 404 — but only for a valid token; without one, 401.
 */
export function frameworkErrors(tokens: TokenLookup) {
  return (error: Error & { code?: string }, req: FastifyRequest, reply: FastifyReply): void => {
    let err: JobwireError;
    if (!userOf(tokens, req.raw)) err = unauthorized(req.raw);
    else if (error.code === 'FST_ERR_BAD_URL') err = new BadRequestError('malformed request target: a bad %-escape in the path');
    else if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') err = new NotFoundError('no such job: the id is longer than any job id');
    else err = toJobwireError(error);
    if (err.code === 'internal') req.log.error({ err: error }, 'internal error while routing');
    void reply.code(err.status).type('application/json; charset=utf-8').send(JSON.stringify({ error: err.toJSON() }));
  };
}

/**
 * fastify's `clientErrorHandler`: node's parser refused the request, so there is no request to
 * read a token from — headers over the limit (431), a timeout (408), anything else (400). An
 * error in the API's shape is the best answer there is.
 */
export function onClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const answer =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new JobwireError('headers_too_large', 'request line and headers too large (over the server limit)', { cause: err })
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new TimeoutError('the request took too long to arrive', { cause: err })
        : new BadRequestError(`malformed HTTP request${err.code ? ` (${err.code})` : ''}`, { cause: err });
  refuseSocket(socket, answer);
}

/** Answers a `CONNECT` (node hands those to a listener, or drops them without a word): 401 without a token, else 404. */
export function onConnect(tokens: TokenLookup) {
  return (req: IncomingMessage, socket: Duplex): void => {
    socket.on('error', () => socket.destroy());
    refuseSocket(socket, userOf(tokens, req) ? new NotFoundError('this server is no proxy: CONNECT is not served') : unauthorized(req), { req });
  };
}
