/**
 * What the gRPC server is started with and what it hands back — kept apart from `server.ts` (the
 * loader) and `serve.ts` (the server), which both use them, so neither imports the other's types.
 * @module
 */
import type { JobService } from '../jobs/service.js';
import type { TokenBook } from '../auth/tokens.js';
import type { GrpcLogger } from './rpc.js';
import type { CredentialRequest } from '../executors/credential-executors.js';
import type { SshConnection, SshConnectionOptions } from '../executors/ssh/connection.js';
import type { SshTarget } from '../executors/ssh/url.js';

/** TLS files of the gRPC server (paths). */
export interface GrpcTlsOptions {
  /** PEM certificate chain of the server. */
  cert: string;
  /** PEM private key of the server. */
  key: string;
  /** PEM CA bundle; when given, clients must present a certificate it signed (mutual TLS). */
  ca?: string;
}

/** Options of `startGrpcServer` (`server.ts`). */
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
  /** The backend's SSH connections (for the sftp adaptor); undefined when it has none. */
  ssh?: BackendSsh;
}

/** The SSH connections of a backend with ssh or slurm+ssh executors. */
export interface BackendSsh {
  /** The shared connection to `target` (the one its executor uses). */
  connection(target: SshTarget): SshConnection;
  /** How the server's connections authenticate and check host keys. */
  options: SshConnectionOptions;
  /**
   * The executor (its name) of a Xenon scheduler with the caller's own password or certificate
   * credential (credential-executors.ts); undefined when the backend cannot make them.
   */
  credentialExecutor?(request: CredentialRequest): string;
}

/** A running gRPC server. */
export interface GrpcServerHandle {
  /** The bound port. */
  readonly port: number;
  readonly host: string;
  /** Ends every call (interactive jobs run on) and stops listening. */
  close(): Promise<void>;
}
