/**
 * `jobwire run` and `jobwire attach`: a job's output on this terminal as it happens, this
 * terminal's input to the job, and the job's exit code as the CLI's.
 * @module
 */
import type { Command } from 'commander';
import { isFinal, type Attachment } from '@jobwire/client';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { isJdlCommand, loadJdl } from '../jdl.js';
import { inputFileNames, uploadInputFiles } from '../sandbox.js';
import { buildDescription, integer, type JobOptions } from '../options.js';
import { noticeWhileQueued } from '../queued.js';
import { finishSession, runSession } from '../session.js';
import { act, examples } from './common.js';
import { addJobOptions, terminalSize } from './job-options.js';

interface RunOptions extends ConnectionOptions, Pick<JobOptions, 'name' | 'group' | 'queue' | 'env' | 'cwd' | 'maxRuntime' | 'node' | 'pool' | 'retries' | 'input' | 'outputFile'> {
  interactive?: boolean;
  tty?: boolean;
}

interface AttachOptions extends ConnectionOptions {
  from?: number;
  stdin: boolean;
}

const TERMINAL_HELP = `
Terminal:
  Output is written as it arrives, stdout to stdout and stderr to stderr, in the order the job
  wrote it. With -i, what you type (or pipe in) goes to the job, and end of input (Ctrl-D) closes
  the job's stdin. With -t the job gets a pseudo-terminal of this terminal's size, and this
  terminal is put in raw mode, so every key (Ctrl-C too) goes to the job. In raw mode, type ~. at
  the start of a line to detach (~~ sends one ~). While the job waits in its queue, stderr says
  so, and Ctrl-C cancels it even in raw mode (no program is there yet to get the key). When stdin
  is not a terminal (piped input), -t is ignored, as by ssh and kubectl exec: a pseudo-terminal
  cannot pass on the end of the input.
`;

const ATTACH_TERMINAL_HELP = `
Terminal:
  Output is written as it arrives, stdout to stdout and stderr to stderr, in the order the job
  wrote it. If the job is interactive (and still running), what you type (or pipe in) goes to it
  unless --no-stdin is given, and end of input (Ctrl-D) closes its stdin. If the job has a
  pseudo-terminal, this terminal is put in raw mode, so every key (Ctrl-C too) goes to the job;
  type ~. at the start of a line to detach (~~ sends one ~). While the job waits in its queue,
  stderr says so, and Ctrl-C detaches as without raw mode.
`;

/** Adds `jobwire run`. */
export function registerRun(program: Command): void {
  const cmd = program
    .command('run')
    .summary('run a command as a job, attached to this terminal')
    .description(
      "Submit a command and stay attached to it: its output appears here, and the CLI exits with the " +
        "job's exit code once it ended. While the job waits in its queue, stderr says so and why. " +
        'Ctrl-C cancels the job, queued or running (a second Ctrl-C detaches and leaves it running).',
    )
    .argument('<command...>', 'program and its arguments (put them after --), or a gLite JDL file (FILE.jdl)')
    .option('-i, --interactive', 'forward this terminal\'s input to the job')
    .option('-t, --tty', 'run the job under a pseudo-terminal (implies -i); ignored, with a note, when stdin is not a terminal');
  addJobOptions(cmd, 'run');
  addConnectionOptions(cmd)
    .passThroughOptions()
    .addHelpText(
      'after',
      TERMINAL_HELP +
        examples(
          ['jobwire run -- make -j8', 'build on the server, output here, exit with make\'s code'],
          ['jobwire run -it -- bash', 'a shell in a job (~. to detach, jobwire attach ID to return)'],
          ['gzip -c data | jobwire run -i -- wc -c', 'pipe local data into a job'],
          ['jobwire run --env N=3 --queue single -- ./step.sh', 'environment and queue'],
        ),
    )
    .action(act(run));
}

async function run(command: string[], opts: RunOptions): Promise<number> {
  // A pseudo-terminal has no half-close: the end of piped input can only be typed to it as
  // Ctrl-D, and one typed ahead of the program's line editor is lost (`echo ls | run -t -- bash`
  // then waits for ever). So, as ssh and kubectl exec do, -t without a terminal on stdin runs
  // the job without one (as -i), and says so.
  const tty = Boolean(opts.tty) && process.stdin.isTTY === true;
  if (opts.tty && !tty) process.stderr.write('jobwire: stdin is not a terminal, so the job gets no pseudo-terminal (-t is ignored; input is forwarded as with -i)\n');
  let interactive = Boolean(opts.interactive || opts.tty);
  const jobOptions: JobOptions = {
    ...opts,
    command,
    interactive,
    tty,
  };
  const size = tty ? terminalSize() : undefined;
  if (size) jobOptions.size = size;
  const jdl = isJdlCommand(command) ? loadJdl(command[0]!, jobOptions) : undefined;
  const description = jdl?.description ?? buildDescription(jobOptions);
  const inputs = new Map([...(jdl?.inputs ?? []), ...inputFileNames(opts.input ?? [])]);
  if (jdl?.interactive) interactive = true;

  const api = await connect(opts);
  await uploadInputFiles(api, description, inputs);
  let attachment: Attachment;
  let queue: string;
  if (interactive) {
    const job = await api.submitInteractiveJob(description);
    attachment = job;
    queue = job.info.queue;
  } else {
    const info = await api.submitBatchJob(description);
    attachment = await api.attach(info.id);
    queue = info.queue;
  }
  const id = attachment.jobId;
  const notice = noticeWhileQueued(attachment, { jobId: id, queue, api });
  const end = await runSession(attachment, {
    beforeWrite: () => notice.stop(),
    waiting: () => notice.queued,
    jobId: id,
    stdin: interactive,
    raw: tty,
    resize: tty,
    interrupt: 'cancel',
    cancel: () => api.cancelJob(id),
  });
  return finishSession(end, id);
}

/** Adds `jobwire attach`. */
export function registerAttach(program: Command): void {
  addConnectionOptions(
    program
      .command('attach')
      .summary('attach this terminal to a job')
      .description(
        "Attach to a job: its output from the start (or --from), then live; your input goes to it if it " +
          "is interactive. Exits with the job's exit code when it ends. Ctrl-C detaches (exit code 130) " +
          'and leaves the job running.',
      )
      .argument('<id>', 'job id, or its first characters when they name one job')
      .option('--from <pos>', 'replay output from this position (bytes of stdout and stderr together)', integer(0))
      .option('--no-stdin', 'do not forward input, even to an interactive job'),
  )
    .addHelpText(
      'after',
      ATTACH_TERMINAL_HELP +
        examples(
          ['jobwire attach 3f2a…', 'everything the job wrote so far, then live output until it ends'],
          ['jobwire attach --no-stdin 3f2a… > out.log', 'watch an interactive job without typing into it'],
        ),
    )
    .action(act(attach));
}

async function attach(given: string, opts: AttachOptions): Promise<number> {
  const api = await connect(opts);
  const id = await api.resolveJobId(given);
  // Also how a wrong id becomes "not found" (exit 4) before anything is attached.
  const info = await api.getJobStatus(id);
  const live = !isFinal(info.status);
  const forward = opts.stdin && info.interactive && live;
  const attachment = await api.attach(id, opts.from === undefined ? {} : { from: opts.from });
  const notice = noticeWhileQueued(attachment, { jobId: id, queue: info.queue, api });
  const end = await runSession(attachment, {
    beforeWrite: () => notice.stop(),
    waiting: () => notice.queued,
    jobId: id,
    stdin: forward,
    raw: forward && info.tty,
    resize: forward && info.tty,
    interrupt: 'detach',
  });
  return finishSession(end, id);
}
