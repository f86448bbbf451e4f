/**
 * What every command shares: the action wrapper that turns a handler's result or error into
 * the exit code, and printing to stdout.
 * @module
 */
import type { Command } from 'commander';
import { connectedTarget, resolveTarget, serverListening, type ConnectionOptions } from '../connect.js';
import { CliError, isConnectionRefused, jobwireErrorCode, noServerMessage, reportError, type ServerTarget } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { GIVE_UP_AFTER_SECONDS, STOP_TIMEOUT_SECONDS, type CloseOptions, type StopReport } from '../../stop.js';
import { setLongTimeout } from '../../timers.js';

/** Writes one line (or block) to stdout. */
export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * Wraps a command handler: its returned number becomes the exit code (0 when it returns
 * nothing); an error is printed as `jobwire: MESSAGE` and becomes its exit code. Connection
 * errors name the URL the command tried.
 */
export function act<A extends unknown[]>(handler: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = (await handler(...args)) ?? 0;
    } catch (err) {
      const cmd = args[args.length - 1] as Command;
      let target: ServerTarget | undefined;
      const code = jobwireErrorCode(err);
      if (code === 'no_server' || code === 'connection' || (code === undefined && isConnectionRefused(err))) {
        // The URL the command connected to; worked out again from its options only when it never
        // got that far (the home may record another server by now).
        target = connectedTarget() ?? (await resolveTarget(cmd.opts() as ConnectionOptions).catch(() => undefined));
        // Other connection trouble is only "no server" when nothing listens there.
        if (code === 'connection' && target?.url && !(await serverListening(target.url))) {
          err = new CliError(noServerMessage(target), ExitCode.NO_SERVER, { cause: err });
        }
      }
      process.exitCode = reportError(err, target);
    }
  };
}

/** Examples for `addHelpText('after', ...)`: each line is `$ command` then what it does. */
export function examples(...lines: [command: string, what: string][]): string {
  return `\nExamples:\n${lines.map(([command, what]) => `  $ ${command}\n      ${what}`).join('\n')}\n`;
}

/** Options of {@link runUntilSignal}. */
export interface RunUntilSignalOptions {
  /**
   * Seconds the stop gives running jobs between SIGTERM and SIGKILL (0 when the process runs
   * none): the stop's time limits are counted from its end.
   */
  graceSeconds: number;
  /**
   * The stop signal, from {@link catchStopSignal} called before the command said it is ready: a
   * script that sends SIGTERM as soon as it reads "listening" must find the handler in place
   * (without one, SIGTERM kills the process on the spot, without a clean stop).
   */
  signal?: Promise<NodeJS.Signals>;
}

/** Starts listening for SIGINT and SIGTERM; the promise settles with the first one that comes. */
export function catchStopSignal(): Promise<NodeJS.Signals> {
  return new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

/**
 * Keeps a long-running command (`server`, `worker`) up until SIGINT or SIGTERM, then closes it
 * within a bounded time: after the jobs' grace period plus {@link GIVE_UP_AFTER_SECONDS} the
 * close gives up on Redis, and after the grace period plus {@link STOP_TIMEOUT_SECONDS} the
 * process exits whatever is still pending. A stop that left something unsettled says what on
 * stderr and exits 1; a second signal stops at once with exit code 1. Returns the exit code.
 */
export async function runUntilSignal(what: string, handle: { close(options?: CloseOptions): Promise<StopReport> }, options: RunUntilSignalOptions): Promise<number> {
  const signal = await (options.signal ?? catchStopSignal());
  const force = (): never => {
    process.stderr.write('jobwire: stopped without closing cleanly\n');
    process.exit(ExitCode.FAILED);
  };
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  const graceMs = options.graceSeconds * 1000;
  const limit = options.graceSeconds + STOP_TIMEOUT_SECONDS;
  process.stderr.write(`jobwire: ${signal === 'SIGINT' ? 'interrupted' : 'terminated'}; stopping the ${what} (within ${limit} s; again to stop at once)\n`);
  const giveUp = new AbortController();
  const giveUpTimer = setLongTimeout(() => giveUp.abort(), graceMs + GIVE_UP_AFTER_SECONDS * 1000);
  // Unref'd: it must not keep a finished process alive, only end one that does not finish.
  setLongTimeout(
    () => {
      process.stderr.write(`jobwire: the ${what} did not stop within ${limit} s; exiting anyway\n`);
      process.exit(ExitCode.FAILED);
    },
    graceMs + STOP_TIMEOUT_SECONDS * 1000,
    { unref: true },
  );
  const report = await handle.close({ signal: giveUp.signal });
  giveUpTimer.clear();
  process.removeListener('SIGINT', force);
  process.removeListener('SIGTERM', force);
  if (report.unsettled.length === 0) return ExitCode.OK;
  process.stderr.write(`jobwire: stopped the ${what} without settling everything:\n${report.unsettled.map((line) => `  - ${line}\n`).join('')}`);
  // What gave up on Redis may leave handles behind; the stop is over.
  process.exit(ExitCode.FAILED);
}
