/**
 * `jobwire status` and `jobwire jobs` (moi's `job` and `userjobs`): info blocks, summary lines
 * or JSON.
 * @module
 */
import { Option, type Command } from 'commander';
import type { JobFilter, JobInfo, JobStatus, JobwireApi } from '@jobwire/client';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { formatInfoBlock, formatInfoBlocks, formatJson, formatSummaryLine, sortJobsByDate } from '../format.js';
import { integer, statusList } from '../options.js';
import { act, examples, print } from './common.js';

interface StatusOptions extends ConnectionOptions {
  json?: boolean;
}

interface JobsOptions extends ConnectionOptions {
  group?: string;
  status?: JobStatus[];
  name?: string;
  limit?: number;
  summary?: boolean;
  json?: boolean;
}

/** Largest page the server hands out. */
const PAGE_SIZE = 1000;

/** Adds `jobwire status`. */
export function registerStatus(program: Command): void {
  addConnectionOptions(
    program
      .command('status')
      .summary("show a job's info block")
      .description("Show a job's info: status, times, exit code, error, result and more, as `key : value` lines.")
      .argument('<id>', 'job id, or its first characters when they name one job')
      .option('--json', 'print the job info (with its description) as JSON'),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire status 3f2a…', 'the info block'],
        ['jobwire status --json 3f2a… | jq .result', 'the result of a function job'],
      ),
    )
    .action(
      act(async (given: string, opts: StatusOptions) => {
        const api = await connect(opts);
        const id = await api.resolveJobId(given);
        const info = await api.getJobStatus(id);
        print(opts.json ? formatJson(info) : formatInfoBlock(info));
      }),
    );
}

/** Adds `jobwire jobs`. */
export function registerJobs(program: Command): void {
  addConnectionOptions(
    program
      .command('jobs')
      .summary('list your jobs, oldest first')
      .description(
        'List your jobs, oldest first: full info blocks separated by blank lines, one summary line each ' +
          '(--summary), or a JSON array (--json).',
      )
      .option('--group <path>', 'only jobs in this group or below it')
      .option('--status <status>', 'only jobs with this status; a comma list, repeatable (Queued, Running, Success, Failed, Cancelled, Lost)', statusList)
      .option('--name <name>', 'only jobs with exactly this name')
      .option('--limit <n>', 'only the N most recent matching jobs (still listed oldest first)', integer(1))
      .addOption(new Option('--summary', 'one line per job: date, id, status, name').conflicts('json'))
      .addOption(new Option('--json', 'a JSON array of job infos').conflicts('summary')),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire jobs --summary', 'date: 2025-06-01 16:13:16.499    id: 558d…    status: Success    name: sh'],
        ['jobwire jobs --status running,queued --summary', 'what is still going on'],
        ['jobwire jobs --group ci:nightly --limit 5', 'the last five jobs of a group, in full'],
      ),
    )
    .action(
      act(async (opts: JobsOptions) => {
        const api = await connect(opts);
        const filter: JobFilter = {};
        if (opts.group !== undefined) filter.group = opts.group;
        if (opts.status !== undefined && opts.status.length > 0) filter.status = opts.status;
        if (opts.name !== undefined) filter.name = opts.name;
        const jobs = sortJobsByDate(await listJobs(api, filter, opts.limit));
        if (opts.json) print(formatJson(jobs));
        else if (jobs.length === 0) return;
        else if (opts.summary) print(jobs.map((job) => formatSummaryLine(job)).join('\n'));
        else print(formatInfoBlocks(jobs));
      }),
    );
}

/**
 * Every page of a listing (the server returns them oldest first); with `keepLast`, only the
 * newest that many, so memory stays bounded however many jobs there are.
 */
export async function listJobs(api: JobwireApi, filter: JobFilter, keepLast?: number): Promise<JobInfo[]> {
  const jobs: JobInfo[] = [];
  let cursor: string | undefined;
  const seen = new Set<string>();
  do {
    const page = await api.getJobs(cursor === undefined ? { ...filter, limit: PAGE_SIZE } : { ...filter, limit: PAGE_SIZE, cursor });
    jobs.push(...page.items);
    if (keepLast !== undefined && jobs.length > keepLast) jobs.splice(0, jobs.length - keepLast);
    cursor = page.next;
    // A cursor seen before would loop for ever; stop rather than hang.
    if (cursor !== undefined && seen.has(cursor)) break;
    if (cursor !== undefined) seen.add(cursor);
  } while (cursor !== undefined);
  return jobs;
}
