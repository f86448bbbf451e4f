/**
 * Options that describe a job, shared by `submit` and `run`.
 * @module
 */
import type { Command } from 'commander';
import { collect, envPair, integer, placementName, poolList } from '../options.js';

/** Adds --name, --group, --queue, --env, --cwd, --input, --output-file, --max-runtime, and --node, --pool, --retries (distributed mode). */
export function addJobOptions(cmd: Command, command: 'submit' | 'run'): Command {
  const defaultName = command === 'submit' ? 'the program, the --cmd line, or "js"' : "the program's name";
  return cmd
    .option('--name <name>', `job name (default: ${defaultName})`)
    .option('--group <path>', 'group in the job tree, ":"-separated, e.g. analysis-7:step-2')
    .option('--queue <queue>', 'queue: single, multi or unlimited on the local executor (default: multi)')
    .option('--env <NAME=VALUE>', 'environment variable for the job (repeatable)', envPair)
    .option('--cwd <dir>', "job's working directory, relative to here (default: this directory; where the job's machine lacks it, the server's or worker's work folder, said on the job's stderr)")
    .option('--input <file>', "a local file uploaded into the job's working directory before it starts (repeatable)", collect)
    .option('--output-file <pattern>', "files (a glob, relative to the job's directory) kept with the job after it ends; fetch them with jobwire output ID (repeatable)", collect)
    .option('--max-runtime <minutes>', 'stop the job after this many minutes (0 = no limit)', integer(0))
    .option('--node <node>', 'distributed mode: the worker node to try first (skipped when gone or full)', placementName('node'))
    .option('--pool <pool>', 'distributed mode: a worker pool the job may run in; repeat for more, highest priority first (default: ALL)', poolList)
    .option('--retries <n>', 'distributed mode: start a batch job again this often when its worker is lost (default: 0)', integer(0, 100));
}

/** The local terminal's size, for tty jobs, when stdout is a terminal. */
export function terminalSize(stream: NodeJS.WriteStream = process.stdout): { cols: number; rows: number } | undefined {
  return stream.isTTY && stream.columns > 0 && stream.rows > 0 ? { cols: stream.columns, rows: stream.rows } : undefined;
}
