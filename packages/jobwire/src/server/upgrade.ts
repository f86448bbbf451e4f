/**
 * WebSocket upgrades: attach (`/v1/jobs/:id/attach`) and events (`/v1/events`). A request is
 * authenticated before anything of it is parsed, then its target, query (by the schemas that
 * describe these endpoints in the OpenAPI document, schemas.ts) and handshake headers are
 * checked, and every refusal is an HTTP error in the API's shape — nothing a client sends can
 * throw out of here.
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket, WebSocketServer } from 'ws';
import { API_PREFIX, BadRequestError, JobwireError, NotFoundError } from '@jobwire/client';
import type { JobService } from '../jobs/service.js';
import { startAttachSession } from './attach.js';
import { refuseSocket, unauthorized, userOf, type TokenLookup } from './edge.js';
import { startEventsSession } from './events.js';
import { toJobwireError } from './routes.js';
import { attachQuery, eventsQuery, parseQuery } from './schemas.js';

/** What {@link upgradeHandler} works with. */
export interface UpgradeContext {
  tokens: TokenLookup;
  service: JobService;
  /** A `noServer` WebSocket server that completes accepted handshakes. */
  wss: WebSocketServer;
  log: FastifyBaseLogger;
}

/** A request target split into its raw (still %-encoded) path and its query. */
interface Target {
  path: string;
  query: URLSearchParams;
}

/**
 * Splits a request target. Origin-form (`/path?query`) is taken as it is — the path is matched
 * undecoded, as the routes' patterns are written — and absolute-form (`http://host/path`, which
 * HTTP/1.1 servers must accept) by the URL parser, which may refuse it.
 */
function parseTarget(target: string): Target | undefined {
  if (target.startsWith('/') && !target.startsWith('//')) {
    const q = target.indexOf('?');
    return q < 0 ? { path: target, query: new URLSearchParams() } : { path: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) };
  }
  if (!/^(?:https?|wss?):\/\//i.test(target)) return undefined;
  try {
    const url = new URL(target);
    return { path: url.pathname, query: url.searchParams };
  } catch {
    return undefined;
  }
}

const ATTACH = new RegExp(`^${API_PREFIX}/jobs/([^/]+)/attach$`);
const EVENTS = `${API_PREFIX}/events`;

/** The server's `upgrade` listener. */
export function upgradeHandler(ctx: UpgradeContext): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { tokens, service, wss, log } = ctx;

  /** Hands a checked request to `ws`, which refuses (through `wsClientError`) a bad handshake. */
  const accept = (req: IncomingMessage, socket: Duplex, head: Buffer, then: (ws: WebSocket) => void): void => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      try {
        then(ws);
      } catch (err) {
        log.error({ err }, 'cannot start a WebSocket session');
        ws.close(1011, 'internal error');
      }
    });
  };

  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const who = userOf(tokens, req);
    if (!who) throw unauthorized(req);
    const target = parseTarget(req.url ?? '');
    if (!target) throw new BadRequestError('malformed request target');
    const attach = ATTACH.exec(target.path);
    if (attach) {
      const from = parseQuery(attachQuery, target.query).from ?? 0;
      let id: string;
      try {
        id = decodeURIComponent(attach[1]!);
      } catch (cause) {
        throw new BadRequestError('malformed job id: a bad %-escape', { cause });
      }
      const job = await service.get(who.user, id);
      accept(req, socket, head, (ws) => startAttachSession(ws, socket, service, who.user, job, from));
      return;
    }
    if (target.path === EVENTS) {
      const { group, since } = parseQuery(eventsQuery, target.query);
      accept(req, socket, head, (ws) => startEventsSession(ws, service, who.user, group ?? '', since));
      return;
    }
    throw new NotFoundError(`no WebSocket endpoint ${target.path}`);
  };

  // ws's own refusals (wrong method, missing or bad Sec-WebSocket-* headers) would answer in
  // plain text; this listener makes them errors in the API's shape.
  wss.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
    refuseSocket(socket, new BadRequestError(`bad WebSocket handshake: ${err.message}`), { req, headers: { 'sec-websocket-version': '13' } });
  });

  return (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    upgrade(req, socket, head).catch((err: unknown) => {
      const e = err instanceof JobwireError ? err : toJobwireError(err);
      if (e.code === 'internal') log.error({ err }, 'internal error in a WebSocket upgrade');
      refuseSocket(socket, e, { req });
    });
  };
}
