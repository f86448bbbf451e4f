/**
 * What every command shares: the action wrapper that turns a handler's result or error into
 * the exit code, and printing to stdout.
 * @module
 */
import type { Command } from 'commander';
import { resolveTarget, serverListening, type ConnectionOptions } from '../connect.js';
import { CliError, isConnectionRefused, jobwireErrorCode, noServerMessage, reportError, type ServerTarget } from '../errors.js';
import { ExitCode } from '../exit-codes.js';

/** Writes one line (or block) to stdout. */
export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * Wraps a command handler: its returned number becomes the exit code (0 when it returns
 * nothing); an error is printed as `jobwire: MESSAGE` and becomes its exit code. Connection
 * errors name the URL the command tried, worked out again from its options.
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
        target = await resolveTarget(cmd.opts() as ConnectionOptions).catch(() => undefined);
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

/**
 * Keeps a long-running command (`server`, `worker`) up until SIGINT or SIGTERM, then closes it;
 * a second signal stops at once with exit code 1. Returns the command's exit code.
 */
export async function runUntilSignal(what: string, handle: { close(): Promise<void> }): Promise<number> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const force = (): never => {
    process.stderr.write('jobwire: stopped without closing cleanly\n');
    process.exit(ExitCode.FAILED);
  };
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  process.stderr.write(`jobwire: ${signal === 'SIGINT' ? 'interrupted' : 'terminated'}; stopping the ${what} (again to stop at once)\n`);
  await handle.close();
  process.removeListener('SIGINT', force);
  process.removeListener('SIGTERM', force);
  return ExitCode.OK;
}
