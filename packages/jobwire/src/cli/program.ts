/**
 * The `jobwire` command: builds the commander program and runs it, turning usage errors into
 * exit code 2 and every other failure into one `jobwire: MESSAGE` line and its exit code.
 * @module
 */
import { Command, CommanderError, Option } from 'commander';
import { UsageError } from './errors.js';
import { readFileSync } from 'node:fs';
import { reportError } from './errors.js';
import { EXIT_CODE_HELP, ExitCode } from './exit-codes.js';
import { registerCancel, registerDelete } from './commands/manage.js';
import { registerJobs, registerStatus } from './commands/jobs.js';
import { registerGroups, registerQueues } from './commands/listings.js';
import { registerLogs } from './commands/logs.js';
import { registerOutput } from './commands/output.js';
import { registerProgress } from './commands/progress.js';
import { registerAttach, registerRun } from './commands/run.js';
import { registerServer } from './commands/server.js';
import { registerSubmit } from './commands/submit.js';
import { registerToken } from './commands/token.js';
import { registerWorker, registerWorkers } from './commands/worker.js';

/** Version of the jobwire package (dist/src/cli → the package root). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const ROOT_HELP = `
Connection (every command that talks to a server; before or after the command's name):
  --url URL      server URL           (env JOBWIRE_URL; default: recorded in the home by the server)
  --token TOKEN  access token         (env JOBWIRE_TOKEN; default: the home's admin token)
  --home DIR     jobwire home         (env JOBWIRE_HOME; default: $XDG_DATA_HOME/jobwire or ~/.local/share/jobwire)
  --ca FILE      CA to trust (https)  (env JOBWIRE_CA; default: recorded in the home by a TLS server, else the system's)

Examples:
  $ jobwire server &
  $ jobwire submit --js "x = 5; return x + 10" --block
  $ jobwire run -- make -j8
  $ jobwire run -it -- bash
  $ jobwire jobs --summary

${EXIT_CODE_HELP}

Reference: docs/cli.md
`;

/** Commander's "error: ..." as "jobwire: ...". */
function asJobwireError(text: string): string {
  return text.replace(/^error: /, 'jobwire: ');
}

/** Connection options that may also stand before the subcommand (`jobwire --url U jobs`). */
const CONNECTION_OPTIONS = [
  ['url', '--url <url>'],
  ['token', '--token <token>'],
  ['home', '--home <dir>'],
  ['ca', '--ca <file>'],
] as const;

/**
 * Accepts the connection options before the subcommand, as ROOT_HELP documents them: each is
 * handed to the subcommand as if given after it (where it is given twice, the later one wins).
 * Commands without the option refuse it by name.
 */
function addLeadingConnectionOptions(program: Command): void {
  for (const [, flags] of CONNECTION_OPTIONS) program.addOption(new Option(flags).hideHelp());
  program.hook('preAction', (root, action) => {
    const leading = root.opts<Record<string, string | undefined>>();
    for (const [key, flags] of CONNECTION_OPTIONS) {
      const value = leading[key];
      if (value === undefined || action.getOptionValueSource(key) === 'cli') continue;
      if (!action.options.some((o) => o.attributeName() === key)) throw new UsageError(`${flags.split(' ')[0]} does not apply to "jobwire ${action.name()}"`);
      action.setOptionValueWithSource(key, value, 'cli');
    }
  });
}

/** Builds the program with every command. */
export function buildProgram(): Command {
  const program = new Command('jobwire');
  // Settings first: subcommands copy them when they are created.
  program
    .description('jobwire: a job system for work you talk to while it runs')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(asJobwireError(text)) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', ROOT_HELP);
  addLeadingConnectionOptions(program);

  registerServer(program);
  registerSubmit(program);
  registerRun(program);
  registerAttach(program);
  registerStatus(program);
  registerJobs(program);
  registerLogs(program);
  registerOutput(program);
  registerCancel(program);
  registerDelete(program);
  registerQueues(program);
  registerGroups(program);
  registerProgress(program);
  registerToken(program);
  registerWorker(program);
  registerWorkers(program);
  return program;
}

/** Runs the CLI on `argv` (node's: `[node, script, ...args]`) and returns the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  process.exitCode = undefined;
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return Number(process.exitCode ?? ExitCode.OK);
  } catch (err) {
    // Help and --version end with 0; every usage error commander found with 2.
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    return reportError(err);
  }
}
