/**
 * `jobwire queues` and `jobwire groups`.
 * @module
 */
import type { Command } from 'commander';
import { connect, addConnectionOptions, type ConnectionOptions } from '../connect.js';
import { formatGroups, formatJson, formatQueues } from '../format.js';
import { act, examples, print } from './common.js';

interface ListOptions extends ConnectionOptions {
  json?: boolean;
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
      .option('--json', 'a JSON array'),
  )
    .addHelpText('after', examples(['jobwire queues', 'QUEUE  LIMIT  RUNNING  QUEUED, one row per queue']))
    .action(
      act(async (opts: ListOptions) => {
        const api = await connect(opts);
        const queues = await api.getQueueStatus();
        if (opts.json) print(formatJson(queues));
        else if (queues.length > 0) print(formatQueues(queues));
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
