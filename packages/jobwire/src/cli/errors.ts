/**
 * How the CLI reports a failure: one line `jobwire: MESSAGE` on stderr and an exit code. Errors
 * the user can cause (typed errors from @jobwire/client, {@link CliError}) never show a stack.
 * @module
 */
import type { ErrorCode } from '@jobwire/client';
import { ExitCode, exitCodeForErrorCode } from './exit-codes.js';

/** An error the CLI itself raises, with the exit code it ends with. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.FAILED,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A bad option value or combination: exit code 2. */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.USAGE, options);
  }
}

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'bad_request',
  'invalid_description',
  'unsupported',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'payload_too_large',
  'headers_too_large',
  'range_not_satisfiable',
  'timeout',
  'no_server',
  'connection',
  'protocol',
  'internal',
]);

/**
 * The @jobwire/client error code of `err`, when it is one of the SDK's typed errors. Checked by
 * shape rather than `instanceof`, so an error from a second copy of the SDK still counts.
 */
export function jobwireErrorCode(err: unknown): ErrorCode | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && ERROR_CODES.has(code) && err instanceof Error) return code as ErrorCode;
  return undefined;
}

/** True when `err` (or one of its causes) is a refused or unreachable TCP connection. */
export function isConnectionRefused(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'no_server') return true;
    // undici wraps several refused connections (IPv4 and IPv6) in an AggregateError.
    if (e instanceof AggregateError && e.errors.some((inner) => isConnectionRefused(inner))) return true;
  }
  return false;
}

/** Where the CLI looked for a server, for the "no server" message. */
export interface ServerTarget {
  /** URL it tried, when it had one. */
  url?: string;
  /** jobwire home it read. */
  home: string;
}

/** Message for "nothing listens at the URL" or "no URL known at all". */
export function noServerMessage(target: ServerTarget): string {
  return target.url
    ? `no server running at ${target.url} (start one with: jobwire server)`
    : `no jobwire server found in ${target.home} (start one with: jobwire server)`;
}

/** The one line and the exit code the CLI reports for `err`. */
export interface Report {
  message: string;
  exitCode: number;
  /** Stack trace to show: only for errors nobody expected, and only with JOBWIRE_DEBUG set. */
  stack?: string;
}

/**
 * Turns any error into what the user sees. `target` (where the command tried to connect) makes
 * the no-server message name the URL.
 */
export function describeError(err: unknown, target?: ServerTarget): Report {
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  const code = jobwireErrorCode(err);
  if (code === 'no_server' || (code === undefined && isConnectionRefused(err))) {
    return {
      message: target ? noServerMessage(target) : `no server running (start one with: jobwire server)`,
      exitCode: ExitCode.NO_SERVER,
    };
  }
  if (code !== undefined) {
    const e = err as Error & { field?: string };
    let message = e.message;
    if (e.field && !message.includes(e.field)) message += ` (field: ${e.field})`;
    if (code === 'unauthorized') {
      message += ' (pass --token, set JOBWIRE_TOKEN, or create one with: jobwire token create USER)';
    }
    if (code === 'connection' && target?.url) message = `connection to ${target.url} failed: ${message}`;
    return { message, exitCode: exitCodeForErrorCode(code) };
  }
  const message = err instanceof Error ? err.message : String(err);
  const stack = err instanceof Error ? err.stack : undefined;
  return stack === undefined ? { message, exitCode: ExitCode.FAILED } : { message, exitCode: ExitCode.FAILED, stack };
}

/**
 * Prints `jobwire: MESSAGE` for `err` on stderr (plus the stack of an unexpected error when
 * JOBWIRE_DEBUG is set) and returns the exit code.
 */
export function reportError(err: unknown, target?: ServerTarget, stderr: NodeJS.WritableStream = process.stderr): number {
  const report = describeError(err, target);
  stderr.write(`jobwire: ${report.message}\n`);
  if (report.stack && process.env.JOBWIRE_DEBUG) stderr.write(`${report.stack}\n`);
  return report.exitCode;
}
