/**
 * The jobwire server: REST, WebSocket attach and events, the dashboard and (optionally) the
 * Xenon gRPC service, over one backend (`backends/`): the embedded one by default, which runs
 * jobs here with the local executor, or the Redis one (`redis` option), which places them on
 * `jobwire worker` processes. All truth lives in the backend's store.
 * @module
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { join } from 'node:path';
import Fastify from 'fastify';
import { WebSocketServer } from 'ws';
import { resolveHome, type ServerRecord } from '@jobwire/client/home';
import { embeddedBackend, redisBackend, type BackendFactory, type BackendLog } from '../backends/index.js';
import { runsAsRoot } from '../executors/local/os-account.js';
import { emitSafely, type JobwireEventMap } from '../jobs/events.js';
import { JobService } from '../jobs/service.js';
import type { Store } from '../store/types.js';
import { startGrpcServer, type GrpcServerHandle, type GrpcTlsOptions } from '../grpc/server.js';
import { registerDashboard } from './dashboard.js';
import { frameworkErrors, onClientError, onConnect } from './edge.js';
import { JSON_BODY_LIMIT, registerRoutes } from './routes.js';
import { checkWorkDir, defaultWorkDir } from '../work-dir.js';
import { timedStore } from '../metrics.js';
import { registerMetrics } from './metrics.js';
import { useSchemas } from './openapi.js';
import { upgradeHandler } from './upgrade.js';
import { registerExecutorsRoute, registerWorkersRoute } from './workers-route.js';
import type { SshConnectionOptions } from '../executors/ssh/connection.js';
import { registerNetworksRoute } from './networks-route.js';
import { NetworkRunner } from '../networks/run.js';
import { certificateCovers, loadTls, type ServerTlsOptions } from './tls.js';

export { TlsFileError, type ServerTlsOptions } from './tls.js';
export { HomeInUseError } from './home-lock.js';
import { lockServerHome } from './home-lock.js';
import type { HostLock } from '../host/lock.js';
import { prepareHome } from '../home.js';
import { serializeError } from '../logging.js';
import { StopSteps, type CloseOptions, type StopReport } from '../stop.js';

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Address to bind. @defaultValue "127.0.0.1" */
  host?: string;
  /** Port; 0 picks a free one. @defaultValue 7700 */
  port?: number;
  /**
   * Serve REST, WebSockets and the dashboard over HTTPS with this certificate and key (file
   * paths). Bad files fail the start with a {@link TlsFileError} naming the file.
   * @defaultValue undefined (plain HTTP)
   */
  tls?: ServerTlsOptions;
  /** jobwire home. @defaultValue resolveHome() */
  home?: string;
  /**
   * Working directory of jobs that name none, and the parent of the gRPC file spaces
   * (`<workDir>/<user>/`). Never inside the home, which holds the tokens and every job's output.
   * @defaultValue a sibling of the home: `<home>-work`
   */
  workDir?: string;
  /**
   * The backend: where jobs are kept and run (`backends/`). Give either this or the shortcuts
   * `multiSlots` (embedded) and `redis`/`redisPrefix` (distributed), not both.
   * @defaultValue the embedded backend (`embeddedBackend({ multiSlots })`), or with `redis` the Redis one
   */
  backend?: BackendFactory;
  /** Slots of the `multi` queue of the embedded backend (ignored with `redis`). @defaultValue os.availableParallelism() */
  multiSlots?: number;
  /**
   * Named executors of the embedded backend besides `local`, as `NAME=URL` (see
   * docs/executors.md). @defaultValue [] (only local)
   */
  executors?: string[];
  /** How SSH executors authenticate and check host keys. @defaultValue agent, `~/.ssh/id_*`, `~/.ssh/known_hosts` */
  ssh?: SshConnectionOptions;
  /** How long a remote job's host may stay unreachable before the job ends Lost. @defaultValue 600000 (10 minutes) */
  remoteLostAfterMs?: number;
  /** Keep Slurm jobs' output and exit files in the executor's jobs folder after their end (docs/executors.md). @defaultValue false */
  keepRemoteJobFiles?: boolean;
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
  /**
   * Admit token-less gRPC calls from loopback addresses as the admin user. On a server running
   * as root that lets every account of the machine run jobs as root (logged as a warning at
   * start; docs/security.md). @defaultValue false
   */
  grpcAllowAnonymousLoopback?: boolean;
  /**
   * Distributed mode: the Redis to keep everything in (`redis://host:port/db`), a shortcut for
   * `backend: redisBackend({ url, prefix })`. The server then runs no jobs itself: `jobwire
   * worker` processes do. @defaultValue undefined (embedded mode)
   */
  redis?: string;
  /** Distributed mode: prefix of every Redis key. @defaultValue "jobwire:" */
  redisPrefix?: string;
  /**
   * Where the server's events go; pass your own to hear those of the start (`job:lost` of jobs a
   * crashed server left Running, `server:listening`). @defaultValue a new emitter (see {@link ServerHandle.events})
   */
  events?: EventEmitter<ServerEventMap>;
}

/**
 * Events of a server ({@link ServerHandle.events}): those of its backend — `job:lost`,
 * `worker:reaped`, `runner:error`, `housekeeping:error` (see {@link JobwireEventMap}) — plus its
 * lifecycle.
 */
export interface ServerEventMap extends JobwireEventMap {
  /** Serving at `url` (emitted before `startServer` resolves; the gRPC service starts after it). */
  'server:listening': [{ url: string }];
  /** `close()` began; with `stopJobs`, jobs running for this server are stopped and end Lost with `reason` (else they run on, on the job host). */
  'server:stopping': [{ reason: string }];
  /** `close()` ended; `report` lists what was left unsettled. */
  'server:stopped': [{ report: StopReport }];
}

/** Options of the gRPC service, read as given (they have no defaults here). */
type GrpcOptionKeys = 'tls' | 'grpcPort' | 'grpcHost' | 'grpcTls' | 'grpcAllowAnonymousLoopback';
/** Options that choose the backend, read as given. */
type BackendOptionKeys = 'backend' | 'multiSlots' | 'redis' | 'redisPrefix' | 'events' | 'executors' | 'ssh' | 'remoteLostAfterMs' | 'keepRemoteJobFiles';

/** A running server. */
export interface ServerHandle extends AsyncDisposable {
  /** Base URL, e.g. http://127.0.0.1:7700 */
  readonly url: string;
  /** The admin token. */
  readonly token: string;
  readonly home: string;
  /** Working directory of jobs that name none (outside the home). */
  readonly workDir: string;
  /** The store (for in-process embedding and tests). */
  readonly store: Store;
  /** The server's events: {@link ServerEventMap}. */
  readonly events: EventEmitter<ServerEventMap>;
  /** Port of the Xenon gRPC service, when it runs. */
  readonly grpcPort?: number;
  /**
   * With TLS: reads the certificate and key files again and serves them to new connections
   * (`jobwire server` does this on SIGHUP). Bad files throw a {@link TlsFileError} and the
   * certificate in use stays.
   */
  reloadTls?(): void;
  /**
   * Stops accepting, ends client sessions, closes the store. Running jobs of an embedded server
   * keep running on the home's job host for the next server, unless `stopJobs` (then they are
   * stopped and end Lost). With `signal` (distributed mode), gives up on an unanswering Redis when it aborts; resolves
   * to what was left unsettled, which is also logged.
   */
  close(options?: CloseOptions): Promise<StopReport>;
}

function defaults(options: ServerOptions): Required<Omit<ServerOptions, GrpcOptionKeys | BackendOptionKeys>> {
  const home = resolveHome(options.home);
  return {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 7700,
    home,
    workDir: options.workDir ?? defaultWorkDir(home),
    graceSeconds: options.graceSeconds ?? 5,
    logLevel: options.logLevel ?? 'info',
  };
}

/** The backend the options choose; throws a RangeError for options that contradict each other. */
function chooseBackend(options: ServerOptions): BackendFactory {
  if (options.backend !== undefined) {
    const shortcut = (['multiSlots', 'redis', 'redisPrefix', 'executors', 'ssh', 'remoteLostAfterMs', 'keepRemoteJobFiles'] as const).find((key) => options[key] !== undefined);
    if (shortcut !== undefined) throw new RangeError(`${shortcut}: give it to the backend you pass as \`backend\`, not beside it`);
    return options.backend;
  }
  // multiSlots has no meaning in distributed mode (each worker has its slots): ignored, as always.
  if (options.redis !== undefined) {
    if (options.executors !== undefined && options.executors.length > 0) throw new RangeError('executors: named executors are for embedded mode; in distributed mode give each worker --executor URL');
    return redisBackend({ url: options.redis, ...(options.redisPrefix !== undefined ? { prefix: options.redisPrefix } : {}) });
  }
  return embeddedBackend({
    ...(options.multiSlots !== undefined ? { multiSlots: options.multiSlots } : {}),
    ...(options.executors !== undefined ? { executors: options.executors } : {}),
    ...(options.ssh !== undefined ? { ssh: options.ssh } : {}),
    ...(options.remoteLostAfterMs !== undefined ? { lostAfterMs: options.remoteLostAfterMs } : {}),
    ...(options.keepRemoteJobFiles === true ? { keepRemoteJobFiles: true } : {}),
  });
}

/** Bind addresses from which the server is reached on this machine as 127.0.0.1 / ::1, or by name as localhost. */
const LOOPBACK = new Set(['127.0.0.1', '0.0.0.0', '::1', '::', 'localhost']);

/** Hides tokens in URLs: `access_token=` (browsers' WebSockets) and `token=` (the dashboard's sign-in link). */
function redactUrl(url: string): string {
  return url.replace(/([?&](?:access_)?token=)[^&#]*/g, '$1[redacted]');
}

/**
 * Starts a server. Refused with a {@link HomeInUseError} (before anything in the home changes)
 * when another server uses the same home.
 */
export async function startServer(options: ServerOptions = {}): Promise<ServerHandle> {
  const held: { lock?: HostLock } = {};
  try {
    return await startLocked(options, held);
  } catch (err) {
    held.lock?.release();
    throw err;
  }
}

/** {@link startServer}, taking the home's server lock into `held` once the options are checked. */
async function startLocked(options: ServerOptions, held: { lock?: HostLock }): Promise<ServerHandle> {
  const opts = defaults(options);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new RangeError(`port: an integer from 0 to 65535, not ${opts.port}`);
  const openBackend = chooseBackend(options);
  // Before anything is created: bad certificate files must leave nothing half-started.
  let tls = options.tls ? loadTls(options.tls) : undefined;
  const home = opts.home;
  const workDir = opts.workDir;
  checkWorkDir(workDir, home);
  const prepared = prepareHome(home);
  // Before anything in the home changes: one server per home.
  const lock = lockServerHome(home);
  held.lock = lock;
  mkdirSync(workDir, { recursive: true });

  const events = options.events ?? new EventEmitter<ServerEventMap>();
  /** Aborts when the server shuts down, with the shutdown reason: jobs running here stop and end Lost with it. */
  const shutdown = new AbortController();
  // The backend opens before the HTTP layer (which needs its token book), and logs through the
  // HTTP layer's logger once there is one.
  let appLog: BackendLog | undefined;
  const backend = await openBackend({
    home,
    workDir,
    graceMs: opts.graceSeconds * 1000,
    signal: shutdown.signal,
    log: { warn: (data, message) => appLog?.warn(data, message), error: (data, message) => appLog?.error(data, message) },
    // ServerEventMap extends the shared map, so every shared event is a server event.
    emit: (name, ...args) => emitSafely(events, name, ...(args as ServerEventMap[typeof name])),
  });
  const { tokens } = backend;
  // Store calls made on behalf of requests are timed for /metrics.
  const store = timedStore(backend.store);

  const app = Fastify({
    // Node would answer an HTTP/1.1 request without Host with a bare 400; routes.ts answers it
    // in the API's shape instead, after the token check (both for http and https servers).
    ...(tls ? { https: { cert: tls.cert, key: tls.key, requireHostHeader: false } } : {}),
    bodyLimit: JSON_BODY_LIMIT,
    // Requests that fail before routing answer in the API's error shape, 401 first (edge.ts).
    frameworkErrors: frameworkErrors(tokens),
    clientErrorHandler: onClientError,
    http: { requireHostHeader: false },
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
  const service = new JobService({ store, scheduler: backend });
  await useSchemas(app);
  registerRoutes(app, service, tokens, shutdown.signal);
  registerWorkersRoute(app, backend.workers);
  registerExecutorsRoute(app, backend.executors ?? (async () => [{ name: 'local', url: 'local:', adaptor: backend.adaptor, state: 'ready' as const, queues: (await backend.queues()).map((q) => ({ name: q.name, limit: q.limit })) }]));
  const networks = new NetworkRunner(service, store);
  registerNetworksRoute(app, networks, shutdown.signal);
  registerDashboard(app);
  registerMetrics(app, { store, queues: () => service.queues() });

  // No permessage-deflate (ws's default for servers, said here): output is the throughput, and
  // compressing it would cost both ends CPU per byte.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024, perMessageDeflate: false });
  const onUpgrade = upgradeHandler({ tokens, service, wss, log: app.log });
  app.server.on('upgrade', onUpgrade);
  app.server.on('connect', onConnect(tokens));
  // Node answers an `Expect` other than 100-continue with a bare 417 unless someone listens;
  // the expectation is ignorable (RFC 9110), so such a request is served like any other.
  app.server.on('checkExpectation', app.routing);

  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (err) {
    // Nothing was served: the jobs the backend follows are left as they are (running on the job host).
    backend.prepareStop?.({ stopJobs: false });
    shutdown.abort('the jobwire server could not listen');
    await backend.drain();
    await backend.close(new StopSteps(undefined, () => backend.abandon()));
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  let hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host;
  if (tls) {
    const bare = hostPart.replace(/^\[(.*)\]$/, '$1');
    // A certificate made for "localhost" (the common self-signed one) should work from this machine with no flags.
    if (!certificateCovers(tls.leaf, bare) && LOOPBACK.has(opts.host) && certificateCovers(tls.leaf, 'localhost')) hostPart = 'localhost';
    else if (!certificateCovers(tls.leaf, bare)) app.log.warn({ host: bare, subject: tls.leaf.subject, altNames: tls.leaf.subjectAltName }, 'the TLS certificate does not name the address clients are told to use; they will refuse it');
  }
  const url = `${tls ? 'https' : 'http'}://${hostPart}:${port}`;
  const startedAt = new Date().toISOString();
  const writeRecord = (): void => {
    const record: ServerRecord = { url, pid: process.pid, startedAt, ...(tls?.trustFile ? { ca: tls.trustFile } : {}) };
    writeFileSync(join(home, 'server.json'), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
  };
  writeRecord();
  if (options.grpcAllowAnonymousLoopback === true && options.grpcPort !== undefined && runsAsRoot()) {
    app.log.warn('--grpc-allow-anonymous-loopback on a server running as root: every account on this machine can run jobs as root through the gRPC port (docs/security.md)');
  }
  backend.serve({ url, ...(tls?.trustFile ? { caFile: tls.trustFile } : {}) });
  emitSafely(events, 'server:listening', { url });

  let grpc: GrpcServerHandle | undefined;
  let closing: Promise<StopReport> | undefined;
  const close = (options: CloseOptions = {}): Promise<StopReport> =>
    (closing ??= (async () => {
      const reason = 'the jobwire server shut down while the job was running';
      emitSafely(events, 'server:stopping', { reason });
      // A backend on Redis may wait for it at every step; giving up drops the connections.
      const steps = new StopSteps(options.signal, () => backend.abandon(), backend.workers === undefined ? 'not finished by the stop\'s deadline' : 'Redis did not answer');
      await steps.run('closing the gRPC service', () => grpc?.close());
      // No job starts any more; those running here are left to the job host (or, with stopJobs,
      // stop and end Lost with the reason).
      backend.prepareStop?.({ stopJobs: options.stopJobs === true });
      shutdown.abort(reason);
      // Networks stop wiring their jobs (which stop like any job).
      networks.close();
      app.server.off('upgrade', onUpgrade);
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
      await steps.run('stopping the running jobs', () => backend.drain());
      await steps.run('answering the requests in progress', async () => {
        // Node closes the idle keep-alive connections once, when the stop begins; one whose
        // request is answered later would stay open for the keep-alive timeout (72 s), and the
        // stop with it. So idle ones are closed every 100 ms until the server has closed.
        const reap = setInterval(() => app.server.closeIdleConnections(), 100);
        try {
          await app.close();
        } finally {
          clearInterval(reap);
        }
      });
      wss.close();
      await backend.close(steps);
      const report = steps.report();
      if (report.unsettled.length > 0) app.log.warn({ unsettled: report.unsettled }, 'stopped without settling everything');
      try {
        const current = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as ServerRecord;
        if (current.pid === process.pid && current.url === url) rmSync(join(home, 'server.json'), { force: true });
      } catch {
        // already gone
      }
      lock.release();
      emitSafely(events, 'server:stopped', { report });
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
        { service, tokens, workDir, log: app.log, ...(backend.ssh !== undefined ? { ssh: backend.ssh } : {}) },
      );
    } catch (err) {
      await close();
      throw err;
    }
  }

  const reloadTls = (): void => {
    const fresh = loadTls(options.tls!);
    (app.server as unknown as HttpsServer).setSecureContext({ cert: fresh.cert, key: fresh.key });
    const trustChanged = fresh.trustFile !== tls?.trustFile;
    tls = fresh;
    backend.serve({ url, ...(fresh.trustFile ? { caFile: fresh.trustFile } : {}) });
    if (trustChanged) writeRecord();
    app.log.info({ subject: fresh.leaf.subject, validTo: fresh.leaf.validTo }, 'TLS certificate reloaded');
  };

  return {
    url,
    token: tokens.adminToken,
    ...(grpc ? { grpcPort: grpc.port } : {}),
    ...(options.tls ? { reloadTls } : {}),
    home,
    workDir,
    store,
    events,
    close,
    [Symbol.asyncDispose]: async () => {
      await close();
    },
  };
}
