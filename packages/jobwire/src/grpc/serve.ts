/**
 * The gRPC server itself, behind {@link startGrpcServer} (`server.ts`): the only module, with
 * those it imports, that loads `@grpc/grpc-js` and `@grpc/proto-loader` — optional packages that
 * `server.ts` imports this module for only when a gRPC port is asked for.
 * @module
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Authenticator } from './auth.js';
import { FileSpace } from './file-space.js';
import { fileSystemService } from './filesystem-service.js';
import { loadXenonProto } from './proto.js';
import { Rpc } from './rpc.js';
import { schedulerService } from './scheduler-service.js';
import type { GrpcServerDeps, GrpcServerHandle, GrpcServerOptions } from './options.js';

/** Largest request message (an interactive job's stdin piece, a writeToFile buffer). */
const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/** Starts the gRPC server (options already checked by {@link startGrpcServer}). */
export async function serveGrpc(options: GrpcServerOptions, deps: GrpcServerDeps): Promise<GrpcServerHandle> {
  const host = options.host ?? '127.0.0.1';
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
  const ssh = deps.ssh;
  const files = fileSystemService(rpc, space, ssh !== undefined ? { executors: () => deps.service.executors(), connection: ssh.connection, options: ssh.options } : undefined);
  const scheduler = schedulerService(rpc, {
    service: deps.service,
    space,
    openFileSystem: (who) => files.open(who),
    openRemoteFileSystem: (who, executor, location) => files.openRemote(who, executor, location),
    openSftp: (who, request) => files.openSftp(who, request),
    keyFile: (who, certfile, adaptor) => files.keyFile(who, certfile, adaptor),
    credentialExecutor: ssh?.credentialExecutor,
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
