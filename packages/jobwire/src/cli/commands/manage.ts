/**
 * `jobwire cancel` and `jobwire delete`.
 * @module
 */
import type { Command } from 'commander';
import { isFinal } from '@jobwire/client';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { CliError, jobwireErrorCode } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatJson } from '../format.js';
import { seconds } from '../options.js';
import { waitForJob } from '../wait.js';
import { act, examples, print } from './common.js';

interface CancelOptions extends ConnectionOptions {
  wait?: boolean;
  timeout?: number;
  json?: boolean;
}

/** Adds `jobwire cancel`. */
export function registerCancel(program: Command): void {
  addConnectionOptions(
    program
      .command('cancel')
      .summary('cancel a job')
      .description(
        'Cancel a job. A queued job is cancelled at once; a running one gets SIGTERM, then SIGKILL after ' +
          "the server's grace period, and is Cancelled once it stopped. Cancelling a job that already " +
          'ended changes nothing.',
      )
      .argument('<id>', 'job id, or its first characters when they name one job')
      .option('--wait', 'wait until the job has stopped')
      .option('--timeout <seconds>', 'with --wait: stop waiting after this long (exit code 5)', seconds)
      .option('--json', 'print the job info as JSON'),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire cancel 3f2a…', 'ask the job to stop; returns at once'],
        ['jobwire cancel --wait 3f2a… && jobwire delete 3f2a…', 'stop it, then remove it'],
      ),
    )
    .action(
      act(async (given: string, opts: CancelOptions) => {
        if (opts.timeout !== undefined && !opts.wait) throw new CliError('--timeout goes with --wait', ExitCode.USAGE);
        const api = await connect(opts);
        const id = await api.resolveJobId(given);
        let info = await api.cancelJob(id);
        if (opts.wait && !isFinal(info.status)) {
          info = await waitForJob(api, id, { verb: 'cancelling', ...(opts.timeout === undefined ? {} : { timeoutSeconds: opts.timeout }) });
        }
        if (opts.json) print(formatJson(info));
        else if (isFinal(info.status)) print(`job ${id}: ${info.status}`);
        else print(`job ${id}: cancel requested (it is stopping)`);
        if (opts.wait && !isFinal(info.status)) {
          process.stderr.write(`jobwire: gave up waiting for job ${id} to stop (it is ${info.status})\n`);
          return ExitCode.TIMEOUT;
        }
        return ExitCode.OK;
      }),
    );
}

/** Adds `jobwire delete`. */
export function registerDelete(program: Command): void {
  addConnectionOptions(
    program
      .command('delete')
      .summary('delete a job that ended, with its output')
      .description('Delete a job that has ended, with its stored output. A job that still runs must be cancelled first.')
      .argument('<id>', 'job id, or its first characters when they name one job'),
  )
    .addHelpText('after', examples(['jobwire delete 3f2a…', 'removes the job and its output']))
    .action(
      act(async (given: string, opts: ConnectionOptions) => {
        const api = await connect(opts);
        const id = await api.resolveJobId(given);
        try {
          await api.deleteJob(id);
        } catch (err) {
          const message = (err as Error).message;
          if (jobwireErrorCode(err) === 'conflict') {
            throw new CliError(`${message}: jobwire cancel --wait ${id}`, ExitCode.FAILED, { cause: err });
          }
          throw err;
        }
        print(`deleted job ${id}`);
      }),
    );
}
