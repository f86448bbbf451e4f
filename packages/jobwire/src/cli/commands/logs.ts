/**
 * `jobwire logs`: a job's stored output, stdout to stdout and stderr to stderr, in the order it
 * was written; with -f, live until the job ends.
 * @module
 */
import { Option, type Command } from 'commander';
import { isFinal } from '@jobwire/client';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { ExitCode, exitCodeForSignal } from '../exit-codes.js';
import { runSession } from '../session.js';
import { act, examples } from './common.js';

interface LogsOptions extends ConnectionOptions {
  follow?: boolean;
  stdout?: boolean;
  stderr?: boolean;
}

/** Adds `jobwire logs`. */
export function registerLogs(program: Command): void {
  addConnectionOptions(
    program
      .command('logs')
      .summary("print a job's output")
      .description(
        "Print a job's output so far: its stdout to stdout and its stderr to stderr, in the order the job " +
          'wrote them, bytes as they are. With -f, keep following until the job ends.',
      )
      .argument('<id>', 'job id, or its first characters when they name one job')
      .option('-f, --follow', 'keep printing new output until the job ends')
      .addOption(new Option('--stdout', "only the job's stdout").conflicts('stderr'))
      .addOption(new Option('--stderr', "only the job's stderr").conflicts('stdout')),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire logs 3f2a…', 'everything so far'],
        ['jobwire logs -f 3f2a…', 'and then live until the job ends (Ctrl-C stops following)'],
        ['jobwire logs --stderr 3f2a… 2>&1 | less', 'only the error output'],
      ),
    )
    .action(act(logs));
}

async function logs(given: string, opts: LogsOptions): Promise<number> {
  const api = await connect(opts);
  const id = await api.resolveJobId(given);
  const info = await api.getJobStatus(id);
  let until: number | undefined;
  if (!opts.follow && !isFinal(info.status)) {
    // Not following a running job: print up to where its output ends now. (A final job's
    // attachment ends by itself after the last byte.)
    const [out, err] = await Promise.all([api.readOutput(id, 'stdout', 0, 0), api.readOutput(id, 'stderr', 0, 0)]);
    until = out.size + err.size;
    if (until === 0) return ExitCode.OK;
  }
  const channels = { stdout: !opts.stderr, stderr: !opts.stdout };
  const attachment = await api.attach(id);
  const end = await runSession(attachment, until === undefined ? { jobId: id, channels } : { jobId: id, channels, until });
  switch (end.kind) {
    case 'exit':
      return ExitCode.OK;
    case 'detached':
      return end.why === 'interrupt' ? ExitCode.CANCELLED : ExitCode.OK;
    case 'signal':
      return exitCodeForSignal(end.signal);
  }
}
