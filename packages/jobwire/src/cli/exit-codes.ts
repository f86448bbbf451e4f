/**
 * The CLI's exit codes, and how a job's end becomes the exit code of the commands that wait for
 * it (`run`, `attach`, `submit --block`). Pure: no I/O, so the tests pin every rule.
 * @module
 */
import { constants } from 'node:os';
import type { ErrorCode, ExitStatus } from '@jobwire/client';

/** Exit codes of the `jobwire` command (documented in docs/cli.md and `jobwire --help`). */
export const ExitCode = {
  /** Everything went as asked. */
  OK: 0,
  /** The operation failed (the server refused it, a conflict, a wrong token, a bug). */
  FAILED: 1,
  /** Bad usage or invalid input (unknown option, bad value, invalid job description). */
  USAGE: 2,
  /** No server could be reached. */
  NO_SERVER: 3,
  /** No such job or group (for this user). */
  NOT_FOUND: 4,
  /** A wait ran out of time (`--timeout`). */
  TIMEOUT: 5,
  /** The job failed without an exit code of its own (a function job threw, or it could not start). */
  JOB_FAILED: 1,
  /** The job was cancelled; also Ctrl-C on `attach` (the shell's code for SIGINT). */
  CANCELLED: 130,
  /** The job was lost: the worker or server died under it (sysexits' EX_TEMPFAIL). */
  LOST: 75,
} as const;

/** Shells report death by signal N as 128 + N. */
export const SIGNAL_BASE = 128;

/** Number of a signal name such as `"SIGKILL"`, or undefined when this platform does not know it. */
export function signalNumber(signal: string): number | undefined {
  const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  return (constants.signals as Record<string, number | undefined>)[name];
}

/** 128 + the signal's number; {@link ExitCode.JOB_FAILED} for a signal this platform does not know. */
export function exitCodeForSignal(signal: string): number {
  const n = signalNumber(signal);
  return n === undefined ? ExitCode.JOB_FAILED : SIGNAL_BASE + n;
}

/**
 * The exit code a waiting command ends with, given how the job ended:
 * Success → its exit code (0); Failed → its exit code, 128 + signal number when a signal
 * killed it, 1 when it has neither; Cancelled → 130; Lost → 75.
 * A job that is not final yet maps to {@link ExitCode.TIMEOUT} (the caller stopped waiting).
 */
export function exitCodeForJob(end: Pick<ExitStatus, 'status' | 'exitCode' | 'signal'>): number {
  switch (end.status) {
    case 'Success':
      return end.exitCode ?? ExitCode.OK;
    case 'Failed':
      if (end.signal) return exitCodeForSignal(end.signal);
      // A failed job that exited 0 cannot happen, but it must never look like success.
      if (end.exitCode !== null && end.exitCode !== 0) return end.exitCode;
      return ExitCode.JOB_FAILED;
    case 'Cancelled':
      return ExitCode.CANCELLED;
    case 'Lost':
      return ExitCode.LOST;
    case 'Queued':
    case 'Running':
      return ExitCode.TIMEOUT;
    default: {
      const never: never = end.status;
      return never;
    }
  }
}

/** The exit code for an error code of @jobwire/client. */
export function exitCodeForErrorCode(code: ErrorCode): number {
  switch (code) {
    case 'bad_request':
    case 'invalid_description':
    case 'unsupported':
    case 'payload_too_large':
    case 'headers_too_large':
    case 'range_not_satisfiable':
      return ExitCode.USAGE;
    case 'no_server':
    case 'connection':
      return ExitCode.NO_SERVER;
    case 'not_found':
      return ExitCode.NOT_FOUND;
    case 'timeout':
      return ExitCode.TIMEOUT;
    case 'unauthorized':
    case 'forbidden':
    case 'conflict':
    case 'protocol':
    case 'internal':
      return ExitCode.FAILED;
    default: {
      const never: never = code;
      return never;
    }
  }
}

/** The table printed by `jobwire --help` and repeated in docs/cli.md. */
export const EXIT_CODE_HELP = `Exit codes:
  0      ok
  1      the operation failed (refused by the server, conflict, wrong token)
  2      bad usage or invalid input
  3      no server running (or the connection to it was lost)
  4      no such job or group
  5      a wait timed out (--timeout)
run, attach and submit --block end with the job's code once it ended:
  N      the job exited with N
  128+N  the job was killed by signal N (137 = SIGKILL, 143 = SIGTERM)
  1      the job failed without an exit code (a function threw, or it could not start)
  130    the job was cancelled; also Ctrl-C while attached
  75     the job was lost (its worker or the server died under it)`;
