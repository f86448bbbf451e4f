/**
 * `jobwire submit`: queue a job; with `--block`, wait for it and print moi's info block.
 * @module
 */
import type { Command } from 'commander';
import { isFinal } from '@jobwire/client';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { UsageError } from '../errors.js';
import { ExitCode, exitCodeForJob } from '../exit-codes.js';
import { formatDuration, formatInfoBlock, formatJson } from '../format.js';
import { isJdlCommand, loadJdl } from '../jdl.js';
import { inputFileNames, uploadInputFiles } from '../sandbox.js';
import { buildDescription, seconds, type JobOptions } from '../options.js';
import { finishSession, runSession } from '../session.js';
import { waitForJob } from '../wait.js';
import { act, examples, print } from './common.js';
import { addJobOptions, terminalSize } from './job-options.js';

interface SubmitOptions extends ConnectionOptions, Omit<JobOptions, 'command' | 'size'> {
  block?: boolean;
  timeout?: number;
  json?: boolean;
}

/** Adds `jobwire submit`. */
export function registerSubmit(program: Command): void {
  const cmd = program
    .command('submit')
    .summary('submit a job (a command, a shell line or a JavaScript function)')
    .description(
      'Submit a job and print its id. With --block, wait until it ends, print its info block and ' +
        "exit with the job's exit code. What runs is one of: --js CODE, --js-module PATH, " +
        '--cmd "SHELL LINE" (run with sh -c), or a program and its arguments after --.',
    )
    .argument('[command...]', 'program and arguments to run (put them after --), or a gLite JDL file (FILE.jdl)')
    .option('--js <code>', 'body of an async JavaScript function; `return` gives the result')
    .option('--js-module <path>', 'ES module whose export is called as the job (./x.mjs is taken from here)')
    .option('--export <name>', 'export of --js-module to call (default: default)')
    .option('--cmd <line>', 'shell command line, run with sh -c')
    .option('--block', 'wait until the job ends, print its info block, exit with its code')
    .option('--timeout <seconds>', 'with --block: stop waiting after this long (exit code 5)', seconds)
    .option('--interactive', 'keep stdin open for `jobwire attach` to write to')
    .option('--tty', 'run under a pseudo-terminal (the size of this terminal, if it is one)');
  addJobOptions(cmd, 'submit');
  cmd.option('--json', 'print the job info as JSON instead of text');
  addConnectionOptions(cmd)
    .passThroughOptions()
    .addHelpText(
      'after',
      examples(
        ['jobwire submit --js "x = 5; return x + 10" --block', 'waits, then shows "result : 15"'],
        ['jobwire submit --cmd "sleep 10; echo done"', 'prints "Submitted job id: ID" and returns at once'],
        ['jobwire submit --name build --group ci:nightly -- make -j8', 'a program with arguments, in a group'],
        ['jobwire submit --interactive -- python3 -i', 'start a REPL now, talk to it later: jobwire attach ID'],
        ['jobwire submit job.jdl', 'a gLite JDL job; JobType "Interactive" attaches at once (docs/cli.md)'],
        ['jobwire submit --block --timeout 60 --json --cmd "./check.sh"', 'JSON info; exit 5 if it runs longer than a minute'],
      ),
    )
    .action(act(submit));
}

async function submit(command: string[], opts: SubmitOptions): Promise<number> {
  if (opts.timeout !== undefined && !opts.block) throw new UsageError('--timeout goes with --block');
  const jobOptions: JobOptions = { ...opts, command };
  const size = opts.tty ? terminalSize() : undefined;
  if (size) jobOptions.size = size;
  const jdl = isJdlCommand(command) ? loadJdl(command[0]!, jobOptions) : undefined;
  const description = jdl?.description ?? buildDescription(jobOptions);
  const inputs = new Map([...(jdl?.inputs ?? []), ...inputFileNames(opts.input ?? [])]);

  const api = await connect(opts);
  await uploadInputFiles(api, description, inputs);
  if (jdl?.interactive) {
    // As glite-wms-job-submit with an Interactive JDL: submit, then open the job's console here.
    if (opts.block || opts.json) throw new UsageError('an Interactive JDL job attaches at once: give it without --block and --json');
    const attachment = await api.submitInteractiveJob(description);
    process.stderr.write(`Submitted job id: ${attachment.jobId} (attached; Ctrl-C detaches, jobwire attach ${attachment.jobId} returns)\n`);
    const end = await runSession(attachment, { jobId: attachment.jobId, stdin: true, raw: Boolean(opts.tty), resize: Boolean(opts.tty), interrupt: 'detach' });
    return finishSession(end, attachment.jobId);
  }
  const submitted = await api.submitBatchJob(description);
  if (!opts.json || !opts.block) print(opts.json ? formatJson(submitted) : `Submitted job id: ${submitted.id}`);
  if (!opts.block) return ExitCode.OK;

  const options = opts.timeout === undefined ? {} : { timeoutSeconds: opts.timeout };
  const info = await waitForJob(api, submitted.id, options);
  print(opts.json ? formatJson(info) : formatInfoBlock(info));
  if (!isFinal(info.status)) {
    process.stderr.write(`jobwire: gave up waiting for job ${info.id} after ${formatDuration((opts.timeout ?? 0) * 1000)} (it is ${info.status})\n`);
    return ExitCode.TIMEOUT;
  }
  return exitCodeForJob(info);
}
