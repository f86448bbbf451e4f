/**
 * `jobwire output`: fetch the files a job kept (its `--output-file` patterns, a JDL file's
 * OutputSandbox) into a folder, as glite-wms-job-output did.
 * @module
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { CliError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatJson } from '../format.js';
import { fetchOutputFiles } from '../sandbox.js';
import { act, examples, print } from './common.js';

interface OutputOptions extends ConnectionOptions {
  dir?: string;
  json?: boolean;
}

/** Adds `jobwire output`. */
export function registerOutput(program: Command): void {
  addConnectionOptions(
    program
      .command('output')
      .summary("fetch the files a job kept (its output files, a JDL job's OutputSandbox)")
      .description("Write the files a job kept after it ended (--output-file patterns, a JDL file's OutputSandbox) into a folder, one line per file written.")
      .argument('<id>', 'job id, or its first characters when they name one job')
      .option('--dir <dir>', 'folder to write them into (default: ./ID, made when missing)')
      .option('--json', 'print the paths written as a JSON array'),
  )
    .addHelpText('after', examples(['jobwire output 3f2a', 'writes the kept files to ./3f2a…/'], ['jobwire output --dir results 3f2a', 'into ./results/']))
    .action(
      act(async (given: string, opts: OutputOptions) => {
        const api = await connect(opts);
        const id = await api.resolveJobId(given);
        const dir = resolve(opts.dir ?? id);
        const written = await fetchOutputFiles(api, id, dir);
        if (written.length === 0) throw new CliError(`job ${id} kept no output files (give --output-file PATTERN at submit)`, ExitCode.FAILED);
        if (opts.json) print(formatJson(written));
        else for (const file of written) print(file);
      }),
    );
}
