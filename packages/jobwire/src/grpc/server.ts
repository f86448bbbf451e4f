/**
 * The Xenon-compatible gRPC server: SchedulerService and FileSystemService of `xenon.proto`
 * (Xenon 3.x) on their own port, next to jobwire's HTTP API, over the same JobService. Off
 * unless asked for (`jobwire server --grpc-port PORT`); plaintext by default (meant for
 * loopback), TLS with a certificate and key, mutual TLS when also given a CA.
 * @module
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { JobService } from '../jobs/service.js';
import type { TokenBook } from '../auth/tokens.js';
import { Authenticator } from './auth.js';
import { FileSpace } from './file-space.js';
import { fileSystemService } from './filesystem-service.js';
import { loadXenonProto } from './proto.js';
import { Rpc, type GrpcLogger } from './rpc.js';
import { schedulerService } from './scheduler-service.js';

/** TLS files of the gRPC server (paths). */
export interface GrpcTlsOptions {
  /** PEM certificate chain of the server. */
  cert: string;
  /** PEM private key of the server. */
  key: string;
  /** PEM CA bundle; when given, clients must present a certificate it signed (mutual TLS). */
  ca?: string;
}

/** Options of {@link startGrpcServer}. */
export interface GrpcServerOptions {
  /** Port; 0 picks a free one. */
  port: number;
  /** Address to bind. @defaultValue "127.0.0.1" */
  host?: string;
  /** TLS; plaintext when absent. @defaultValue undefined */
  tls?: GrpcTlsOptions;
  /** Admit token-less calls from loopback addresses as the admin user. @defaultValue false */
  allowAnonymousLoopback?: boolean;
}

/** What the gRPC server uses of the jobwire server. */
export interface GrpcServerDeps {
  service: JobService;
  tokens: TokenBook;
  /** The server's work folder (outside its home): file spaces live in `<workDir>/<user>/`. */
  workDir: string;
  log: GrpcLogger;
}

/** A running gRPC server. */
export interface GrpcServerHandle {
  /** The bound port. */
  readonly port: number;
  readonly host: string;
  /** Ends every call (interactive jobs run on) and stops listening. */
  close(): Promise<void>;
}

/** Largest request message (an interactive job's stdin piece, a writeToFile buffer). */
const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/** Starts the gRPC server. */
export async function startGrpcServer(options: GrpcServerOptions, deps: GrpcServerDeps): Promise<GrpcServerHandle> {
  const host = options.host ?? '127.0.0.1';
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) throw new RangeError(`grpcPort: an integer from 0 to 65535, not ${options.port}`);
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(
        options.tls.ca ? readFileSync(options.tls.ca) : null,
        [{ cert_chain: readFileSync(options.tls.cert), private_key: readFileSync(options.tls.key) }],
        options.tls.ca !== undefined,
      )
    : grpc.ServerCredentials.createInsecure();

  const closing = new AbortController();
  const rpc = new Rpc(new Authenticator({ tokens: deps.tokens, allowAnonymousLoopback: options.allowAnonymousLoopback ?? false }), deps.log, closing.signal);
  const space = new FileSpace(deps.workDir);
  const files = fileSystemService(rpc, space);
  const scheduler = schedulerService(rpc, {
    service: deps.service,
    space,
    openFileSystem: (owner) => files.open(owner),
    closeFileSystem: (owner, id) => files.close(owner, id),
  });

  const xenon = loadXenonProto();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    // Heartbeats: idle connections are pinged, dead ones dropped, live ones never cut.
    'grpc.keepalive_time_ms': 15_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  server.addService(xenon.SchedulerService.service, scheduler);
  server.addService(xenon.FileSystemService.service, files.implementation);

  const address = host.includes(':') ? `[${host}]:${options.port}` : `${host}:${options.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (err, bound) => {
      if (!err) return resolve(bound);
      server.forceShutdown();
      reject(Object.assign(new Error(`cannot serve gRPC on ${address}: ${err.message}`, { cause: err }), { code: 'JOBWIRE_GRPC_BIND' }));
    }),
  );

  let closed: Promise<void> | undefined;
  return {
    port,
    host,
    close: () =>
      (closed ??= (async () => {
        closing.abort();
        await files.shutdown();
        // Streams (interactive jobs, waits) would hold a graceful shutdown open; they detach.
        server.forceShutdown();
      })()),
  };
}
