/**
 * The jobwire server: REST, WebSocket attach and events, and (embedded mode) the dispatcher
 * that runs jobs with the local executor — or (distributed mode, `redis` option) the Redis store
 * with placement on `jobwire worker` processes. All truth lives in the store.
 * @module
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { availableParallelism, hostname } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import Fastify from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { API_PREFIX } from '@jobwire/client';
import { resolveHome, type ServerRecord } from '@jobwire/client/home';
import { LocalExecutor } from '../executors/local/index.js';
import { Dispatcher } from '../jobs/dispatcher.js';
import type { RunnerContext } from '../jobs/runner.js';
import { JobService } from '../jobs/service.js';
import { openEmbeddedStore } from '../store/embedded/index.js';
import type { Store } from '../store/types.js';
import { startGrpcServer, type GrpcServerHandle, type GrpcTlsOptions } from '../grpc/server.js';
import { startAttachSession } from './attach.js';
import { registerDashboard } from './dashboard.js';
import { startEventsSession } from './events.js';
import { JSON_BODY_LIMIT, registerRoutes, tokenOf } from './routes.js';
import { TokenBook } from './tokens.js';
import { joinCluster } from '../distributed/cluster.js';
import { registerWorkersRoute } from './workers-route.js';
import { prepareHome } from '../home.js';
import { serializeError } from '../logging.js';
import { StopSteps, type CloseOptions, type StopReport } from '../stop.js';

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Address to bind. @defaultValue "127.0.0.1" */
  host?: string;
  /** Port; 0 picks a free one. @defaultValue 7700 */
  port?: number;
  /** jobwire home. @defaultValue resolveHome() */
  home?: string;
  /** Slots of the `multi` queue. @defaultValue os.availableParallelism() */
  multiSlots?: number;
  /** Seconds between SIGTERM and SIGKILL when cancelling. @defaultValue 5 */
  graceSeconds?: number;
  /** pino log level. @defaultValue "info" */
  logLevel?: string;
  /** Port of the Xenon-compatible gRPC service (docs/grpc.md); 0 picks a free one. @defaultValue undefined (no gRPC service) */
  grpcPort?: number;
  /** Address the gRPC service binds. @defaultValue "127.0.0.1" */
  grpcHost?: string;
  /** TLS for the gRPC service (file paths); with `ca`, mutual TLS. @defaultValue undefined (plaintext) */
  grpcTls?: GrpcTlsOptions;
  /** Admit token-less gRPC calls from loopback addresses as the admin user. @defaultValue false */
  grpcAllowAnonymousLoopback?: boolean;
  /**
   * Distributed mode: the Redis to keep everything in (`redis://host:port/db`). The server then
   * runs no jobs itself: `jobwire worker` processes do. @defaultValue undefined (embedded mode)
   */
  redis?: string;
  /** Distributed mode: prefix of every Redis key. @defaultValue "jobwire:" */
  redisPrefix?: string;
}

/** Options of the gRPC service, read as given (they have no defaults here). */
type GrpcOptionKeys = 'grpcPort' | 'grpcHost' | 'grpcTls' | 'grpcAllowAnonymousLoopback';
/** Options of distributed mode, read as given. */
type ClusterOptionKeys = 'redis' | 'redisPrefix';

/** A running server. */
export interface ServerHandle extends AsyncDisposable {
  /** Base URL, e.g. http://127.0.0.1:7700 */
  readonly url: string;
  /** The admin token. */
  readonly token: string;
  readonly home: string;
  /** The store (for in-process embedding and tests). */
  readonly store: Store;
  /** Port of the Xenon gRPC service, when it runs. */
  readonly grpcPort?: number;
  /**
   * Stops accepting, ends client sessions, stops running jobs (they end Lost), closes the store.
   * With `signal` (distributed mode), gives up on an unanswering Redis when it aborts; resolves
   * to what was left unsettled, which is also logged.
   */
  close(options?: CloseOptions): Promise<StopReport>;
}

function defaults(options: ServerOptions): Required<Omit<ServerOptions, GrpcOptionKeys | ClusterOptionKeys>> {
  return {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 7700,
    home: resolveHome(options.home),
    multiSlots: options.multiSlots ?? availableParallelism(),
    graceSeconds: options.graceSeconds ?? 5,
    logLevel: options.logLevel ?? 'info',
  };
}

/** Hides tokens in URLs: `access_token=` (browsers' WebSockets) and `token=` (the dashboard's sign-in link). */
function redactUrl(url: string): string {
  return url.replace(/([?&](?:access_)?token=)[^&#]*/g, '$1[redacted]');
}

/** Starts a server. */
export async function startServer(options: ServerOptions = {}): Promise<ServerHandle> {
  const opts = defaults(options);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new RangeError(`port: an integer from 0 to 65535, not ${opts.port}`);
  if (!Number.isInteger(opts.multiSlots) || opts.multiSlots < 1) throw new RangeError(`multiSlots: a positive integer, not ${opts.multiSlots}`);
  const home = opts.home;
  const prepared = prepareHome(home);
  const workDir = join(home, 'work');
  mkdirSync(workDir, { recursive: true });

  // Distributed mode: store, token book and placement live in Redis, and workers run the jobs,
  // so nothing running is lost when this server stops.
  let appLog: { warn(data: object, message: string): void; error(data: object, message: string): void } | undefined;
  const cluster =
    options.redis === undefined
      ? undefined
      : await joinCluster({
          url: options.redis,
          ...(options.redisPrefix !== undefined ? { prefix: options.redisPrefix } : {}),
          home,
          log: { warn: (data, message) => appLog?.warn(data, message), error: (data, message) => appLog?.error(data, message) },
        });
  const tokens = cluster?.tokens ?? new TokenBook(home);
  const store: Store = cluster?.store ?? (await openEmbeddedStore({ dir: home }));
  const lost = cluster ? [] : await store.loseRunningJobs(`the jobwire server stopped while the job was running (noticed at restart, ${new Date().toISOString()})`);

  const app = Fastify({
    bodyLimit: JSON_BODY_LIMIT,
    // Per-request lines would be noise (and carry URLs); errors are logged by the error handler.
    logController: new Fastify.LogController({ disableRequestLogging: true }),
    logger: {
      level: opts.logLevel,
      redact: ['req.headers.authorization'],
      serializers: {
        req: (req: { method: string; url: string }) => ({ method: req.method, url: redactUrl(req.url) }),
        // Errors may quote URLs, headers and raw request bytes (see logging.ts).
        err: serializeError,
      },
    },
  });
  appLog = app.log;
  if (prepared.tightenedFrom !== undefined) {
    app.log.warn({ home, was: prepared.tightenedFrom.toString(8), now: '700' }, 'the jobwire home was open to other users; made it private (mode 0700)');
  }
  const executor = cluster?.executor ?? new LocalExecutor({ multiSlots: opts.multiSlots });
  const ctx: RunnerContext = {
    store,
    executor,
    node: hostname(),
    graceMs: opts.graceSeconds * 1000,
    defaultCwd: workDir,
    serverUrl: '',
    onError: (err, jobId) => app.log.error({ err, jobId }, 'job bookkeeping failed'),
  };
  const dispatcher = cluster ? undefined : new Dispatcher(ctx, executor.queues());
  const service = new JobService({
    store,
    executor,
    onQueued: (job) => (cluster ? cluster.onQueued() : dispatcher?.poke(job.queue)),
    ...(cluster ? { queueDefs: () => cluster.queueDefs() } : {}),
  });
  registerRoutes(app, service, tokens);
  registerWorkersRoute(app, cluster ? () => cluster.workers() : undefined);
  registerDashboard(app);

  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  const refuse = (socket: Duplex, status: number, code: string, message: string): void => {
    const body = JSON.stringify({ error: { code, message } });
    socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://x');
    const who = tokens.lookup(tokenOf(req.headers, req.url ?? ''));
    if (!who) return refuse(socket, 401, 'unauthorized', 'missing or invalid token');
    const attach = new RegExp(`^${API_PREFIX}/jobs/([^/]+)/attach$`).exec(url.pathname);
    const accept = (then: (ws: WebSocket) => void): void => wss.handleUpgrade(req, socket, head, then);
    if (attach) {
      const fromText = url.searchParams.get('from') ?? '0';
      const from = Number(fromText);
      if (!/^\d+$/.test(fromText) || !Number.isSafeInteger(from)) return refuse(socket, 400, 'bad_request', 'from: a byte position (integer >= 0)');
      const id = decodeURIComponent(attach[1]!);
      service.get(who.user, id).then(
        (job) => accept((ws) => startAttachSession(ws, service, who.user, job, from)),
        () => refuse(socket, 404, 'not_found', `no job ${JSON.stringify(id)}`),
      );
      return;
    }
    if (url.pathname === `${API_PREFIX}/events`) {
      const group = url.searchParams.get('group') ?? '';
      const sinceText = url.searchParams.get('since');
      if (sinceText !== null && !/^\d+$/.test(sinceText)) return refuse(socket, 400, 'bad_request', 'since: an event id (integer >= 0)');
      accept((ws) => startEventsSession(ws, service, who.user, group, sinceText === null ? undefined : Number(sinceText)));
      return;
    }
    refuse(socket, 404, 'not_found', `no WebSocket endpoint ${url.pathname}`);
  };
  app.server.on('upgrade', onUpgrade);

  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host;
  const url = `http://${hostPart}:${port}`;
  ctx.serverUrl = url;
  const record: ServerRecord = { url, pid: process.pid, startedAt: new Date().toISOString() };
  writeFileSync(join(home, 'server.json'), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
  for (const job of lost) app.log.warn({ jobId: job.id }, 'job marked Lost: it was running when the server stopped');
  cluster?.announce(url);
  dispatcher?.poke();

  let grpc: GrpcServerHandle | undefined;
  let closing: Promise<StopReport> | undefined;
  const close = (options: CloseOptions = {}): Promise<StopReport> =>
    (closing ??= (async () => {
      // In distributed mode every step may wait for Redis; giving up drops the connections.
      const steps = new StopSteps(options.signal, () => cluster?.store.abandon());
      await steps.run('closing the gRPC service', () => grpc?.close());
      dispatcher?.stop();
      app.server.off('upgrade', onUpgrade);
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
      await steps.run('stopping the running jobs', () => dispatcher?.shutdown('the jobwire server shut down while the job was running'));
      await steps.run('answering the requests in progress', () => app.close());
      wss.close();
      await steps.run('leaving the cluster (server registry, placement queues)', () => cluster?.close());
      await steps.run('closing the store', () => store.close());
      const report = steps.report();
      if (report.unsettled.length > 0) app.log.warn({ unsettled: report.unsettled }, 'stopped without settling everything');
      try {
        const current = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as ServerRecord;
        if (current.pid === process.pid && current.url === url) rmSync(join(home, 'server.json'), { force: true });
      } catch {
        // already gone
      }
      return report;
    })());

  if (options.grpcPort !== undefined) {
    try {
      grpc = await startGrpcServer(
        {
          port: options.grpcPort,
          host: options.grpcHost ?? '127.0.0.1',
          ...(options.grpcTls ? { tls: options.grpcTls } : {}),
          allowAnonymousLoopback: options.grpcAllowAnonymousLoopback ?? false,
        },
        { service, tokens, home, log: app.log },
      );
    } catch (err) {
      await close();
      throw err;
    }
  }

  return {
    url,
    token: tokens.adminToken,
    ...(grpc ? { grpcPort: grpc.port } : {}),
    home,
    store,
    close,
    [Symbol.asyncDispose]: async () => {
      await close();
    },
  };
}
