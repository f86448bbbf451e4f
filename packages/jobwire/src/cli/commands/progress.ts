/**
 * `jobwire progress`: run inside a job to set its progress message.
 * @module
 */
import type { Command } from 'commander';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { UsageError } from '../errors.js';
import { act, examples } from './common.js';

interface ProgressOptions extends ConnectionOptions {
  job?: string;
}

/** Adds `jobwire progress`. */
export function registerProgress(program: Command): void {
  addConnectionOptions(
    program
      .command('progress')
      .summary("set a job's progress message (run it inside the job)")
      .description(
        "Set the progress message of the job this runs in, shown by `jobwire status` and the dashboard. " +
          'Inside a job, JOBWIRE_URL, JOBWIRE_JOB_ID and JOBWIRE_JOB_TOKEN say where and which; outside ' +
          "one, give --job ID and a token of the job's owner.",
      )
      .argument('<message...>', 'the message (several words are joined with spaces)')
      .option('--job <id>', 'job id (default: $JOBWIRE_JOB_ID)'),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire progress "step 2 of 5: aligning"', 'from a job script'],
        ['for f in *.fa; do jobwire progress "$f"; ./align "$f"; done', 'one message per input'],
      ),
    )
    .action(
      act(async (words: string[], opts: ProgressOptions, cmd: Command) => {
        const jobId = opts.job ?? process.env.JOBWIRE_JOB_ID;
        if (!jobId) throw new UsageError('not inside a job: JOBWIRE_JOB_ID is not set (pass --job ID)');
        // The job's own token unless --token was typed: it may set this job's progress and nothing else.
        const token = cmd.getOptionValueSource('token') === 'cli' ? opts.token : (process.env.JOBWIRE_JOB_TOKEN ?? opts.token);
        const api = await connect({ ...opts, token });
        await api.setProgress(jobId, words.join(' '));
      }),
    );
}
