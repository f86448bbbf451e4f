/**
 * The Xenon-compatible gRPC server: SchedulerService and FileSystemService of `xenon.proto`
 * (Xenon 3.x) on their own port, next to jobwire's HTTP API, over the same JobService. Off
 * unless asked for (`jobwire server --grpc-port PORT`); plaintext by default (meant for
 * loopback), TLS with a certificate and key, mutual TLS when also given a CA.
 *
 * `@grpc/grpc-js` and `@grpc/proto-loader` are optional peer dependencies: this module imports
 * none of them, and loads the server (`serve.ts`) only when asked to start one, so an install
 * without them runs everything but the gRPC service.
 * @module
 */
import type { GrpcServerDeps, GrpcServerHandle, GrpcServerOptions } from './options.js';

export type { GrpcServerDeps, GrpcServerHandle, GrpcServerOptions, GrpcTlsOptions } from './options.js';

/** The optional packages the gRPC service needs, with the versions jobwire is tested with. */
export const GRPC_PACKAGES = ['@grpc/grpc-js@^1.14.0', '@grpc/proto-loader@^0.8.0'] as const;

/** The gRPC service was asked for, but its optional packages are not installed. */
export class GrpcUnavailableError extends Error {
  override name = 'GrpcUnavailableError';
  /** Stable code, for callers that do not import this class (the CLI). */
  readonly code = 'JOBWIRE_GRPC_MISSING';
  constructor(options?: ErrorOptions) {
    super(`the gRPC service needs the optional packages @grpc/grpc-js and @grpc/proto-loader: npm install ${GRPC_PACKAGES.join(' ')}`, options);
  }
}

/** True when `err` says one of the gRPC packages could not be found. */
function missingGrpcPackage(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  return e?.code === 'ERR_MODULE_NOT_FOUND' && typeof e.message === 'string' && /['"]@grpc\/(?:grpc-js|proto-loader)['"]/.test(e.message);
}

/**
 * Starts the gRPC server. Throws a RangeError for a bad port and a {@link GrpcUnavailableError}
 * when `@grpc/grpc-js` or `@grpc/proto-loader` is not installed.
 */
export async function startGrpcServer(options: GrpcServerOptions, deps: GrpcServerDeps): Promise<GrpcServerHandle> {
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) throw new RangeError(`grpcPort: an integer from 0 to 65535, not ${options.port}`);
  let serve: typeof import('./serve.js');
  try {
    serve = await import('./serve.js');
  } catch (err) {
    if (missingGrpcPackage(err)) throw new GrpcUnavailableError({ cause: err });
    throw err;
  }
  return serve.serveGrpc(options, deps);
}
