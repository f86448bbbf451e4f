/**
 * `jobwire queues`, `jobwire executors` and `jobwire groups`.
 * @module
 */
import type { Command } from 'commander';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { formatExecutorQueues, formatExecutors, formatGroups, formatJson, formatQueues } from '../format.js';
import { UsageError } from '../errors.js';
import { act, examples, print } from './common.js';

interface ListOptions extends ConnectionOptions {
  json?: boolean;
}

interface QueuesOptions extends ListOptions {
  executor?: string;
}

interface GroupsOptions extends ListOptions {
  under?: string;
}

/** Adds `jobwire queues`. */
export function registerQueues(program: Command): void {
  addConnectionOptions(
    program
      .command('queues')
      .summary('show the queues and how busy they are')
      .description('Show the queues: how many jobs each runs at once, how many run now and how many wait.')
      .option('--executor <name>', 'the queues one named executor offers (with their limits)')
      .option('--json', 'a JSON array'),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire queues', 'QUEUE  LIMIT  RUNNING  QUEUED, one row per queue'],
        ['jobwire queues --executor cluster', 'QUEUE  LIMIT of the executor named "cluster"'],
      ),
    )
    .action(
      act(async (opts: QueuesOptions) => {
        const api = await connect(opts);
        if (opts.executor !== undefined) {
          const executors = await api.getExecutors();
          const found = executors.find((e) => e.name === opts.executor);
          if (found === undefined) throw new UsageError(`--executor: the server has no executor named "${opts.executor}"; it has ${executors.map((e) => e.name).join(', ')}`);
          if (opts.json) print(formatJson(found.queues));
          else if (found.queues.length > 0) print(formatExecutorQueues(found));
          return;
        }
        const queues = await api.getQueueStatus();
        if (opts.json) print(formatJson(queues));
        else if (queues.length > 0) print(formatQueues(queues));
      }),
    );
}

/** Adds `jobwire executors`. */
export function registerExecutors(program: Command): void {
  addConnectionOptions(
    program
      .command('executors')
      .summary('list the named executors: where jobs can run, and whether they are reachable')
      .description(
        'List the server\'s named executors (local, and those given with `jobwire server --executor NAME=URL`): ' +
          'their URL, state (ready, idle, connected, reconnecting, failing) with the reason when not connected, and queues. ' +
          'Jobs pick one with --executor NAME (docs/executors.md).',
      )
      .option('--json', 'a JSON array'),
  )
    .addHelpText('after', examples(['jobwire executors', 'NAME  URL  STATE  QUEUES  REASON, one row per executor'], ['jobwire executors --json', 'the same as JSON']))
    .action(
      act(async (opts: ListOptions) => {
        const api = await connect(opts);
        const executors = await api.getExecutors();
        if (opts.json) print(formatJson(executors));
        else print(formatExecutors(executors));
      }),
    );
}

/** Adds `jobwire groups`. */
export function registerGroups(program: Command): void {
  addConnectionOptions(
    program
      .command('groups')
      .summary('list the groups of your job tree')
      .description('List the groups of your job tree (created when a job names them), sorted by path.')
      .option('--under <path>', 'only this group and the groups below it')
      .option('--json', 'a JSON array'),
  )
    .addHelpText(
      'after',
      examples(
        ['jobwire groups', 'every group'],
        ['jobwire groups --under analysis-7', 'analysis-7, analysis-7:step-1, ...'],
      ),
    )
    .action(
      act(async (opts: GroupsOptions) => {
        const api = await connect(opts);
        const groups = await api.getGroups(opts.under);
        if (opts.json) print(formatJson(groups));
        else if (groups.length > 0) print(formatGroups(groups));
      }),
    );
}
