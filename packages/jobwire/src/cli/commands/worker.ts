/**
 * `jobwire worker` (run a worker of distributed mode in the foreground) and `jobwire workers`
 * (list the workers a server sees, with their load and the pools' queues).
 * @module
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { WorkersReport } from '@jobwire/client';
import { resolveHome } from '@jobwire/client/home';
import type { WorkerHandle, WorkerOptions } from '../../distributed/worker.js';
import { addConnectionOptions, connect, homeOption, type ConnectionOptions } from '../connect.js';
import { checkWorkDir, defaultWorkDir } from '../../work-dir.js';
import { CliError, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatJson, formatTable, formatTimestamp } from '../format.js';
import { integer, placementName, poolList, seconds } from '../options.js';
import { act, catchStopSignal, examples, print, runUntilSignal } from './common.js';

interface WorkerCommandOptions {
  redis: string;
  redisPrefix: string;
  name?: string;
  pool?: string[];
  slots?: number;
  prefetch?: number;
  label?: Record<string, string>;
  grace: number;
  url?: string;
  workDir?: string;
  logLevel: string;
  home?: string;
  executor?: string;
  sshIdentity: string[];
  sshKnownHosts?: string;
  sshPasswordFile?: string;
  stopJobs?: boolean;
  deadAfter: number;
}

/** Log levels the worker accepts (pino's). */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Collects repeated `--label KEY=VALUE`. */
function labelPair(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected KEY=VALUE.');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** `--redis URL` and `--redis-prefix P`, for the commands of distributed mode. */
export function redisOptions(cmd: Command, required: boolean): Command {
  const redis = new Option('--redis <url>', 'Redis of the cluster: redis://host:port/db').env('JOBWIRE_REDIS');
  if (required) redis.makeOptionMandatory();
  return cmd.addOption(redis).addOption(new Option('--redis-prefix <prefix>', 'prefix of every Redis key (the same for all servers and workers)').env('JOBWIRE_REDIS_PREFIX').default('jobwire:'));
}

/** Adds `jobwire worker`. */
export function registerWorker(program: Command): void {
  const cmd = program
    .command('worker')
    .summary('run a worker of distributed mode in the foreground')
    .description(
      'Run a worker: it registers in Redis with its node name, pools and slots, takes the jobs placed ' +
        'on it and runs them on this machine, on the job host of its home (which outlives the worker), ' +
        'their output and input flowing through Redis to every server. It stays up until Ctrl-C or ' +
        'SIGTERM; then it leaves its running jobs on the job host (with --executor, it stops them): ' +
        'started again with the same --name ' +
        'and --home soon enough (within --dead-after, less a heartbeat, half a second and --grace, of ' +
        'its last heartbeat: 23.5 s by default), it follows them again. A worker that does not come ' +
        'back in that time has its jobs stopped by the job host (SIGTERM, SIGKILL after --grace, at ' +
        'most half of what is left), so they are over before the cluster takes the worker for dead ' +
        '(--dead-after) and hands them on (per their retries) or marks them Lost: a job never runs ' +
        'twice at once. With --stop-jobs, a stop ends them Lost at once. A worker with --executor ' +
        'slurm: that is killed and started again with the same --name within --dead-after follows ' +
        'its Slurm jobs again by their stored Slurm ids, those still PENDING (Queued) too.',
    );
  redisOptions(cmd, true)
    .option('--name <node>', 'node name, unique among live workers (default: the host name)', placementName('node'))
    .option('--pool <pool>', 'a pool this worker serves, besides ALL (repeatable)', poolList)
    .option('--slots <n>', 'jobs of the "multi" queue run at once (default: the number of cores)', integer(1))
    .option('--prefetch <n>', '"multi" jobs it takes ahead of a free slot while no worker they may go to has one, each started the moment a slot frees (default: --slots; 0: none)', integer(0))
    .option('--executor <url>', 'run the jobs there instead of on this machine: ssh://[user@]host[:port], slurm: or slurm+ssh://[user@]host[:port] (docs/executors.md)')
    .option('--ssh-identity <file>', 'private key for --executor ssh://... (repeatable; default: ~/.ssh/id_*, plus ssh-agent)', (value: string, previous: string[]) => [...previous, value], [])
    .option('--ssh-known-hosts <file>', 'known_hosts file for --executor ssh://... (default: ~/.ssh/known_hosts)')
    .option('--ssh-password-file <file>', 'file whose first line is the ssh password, tried after the keys')
    .option('--label <KEY=VALUE>', 'a label shown by `jobwire workers` (repeatable)', labelPair)
    .option('--grace <seconds>', 'seconds between SIGTERM and SIGKILL when a job is cancelled', seconds, 5)
    .option('--stop-jobs', 'on Ctrl-C or SIGTERM, stop the running jobs (they end Lost) instead of leaving them for the next start')
    .option('--dead-after <seconds>', 'seconds without a heartbeat after which the cluster takes this worker for dead and hands on or loses its jobs; a restart within it, less --grace and 1.5 s, follows them again (at least 2; below 3.5 the job host may stop a lost worker’s job only after it was handed on)', deadAfter, 30)
    .option('--url <url>', 'server URL handed to jobs as JOBWIRE_URL (default: a live server of the cluster)')
    .option('--work-dir <dir>', 'working directory of jobs that name none; outside the home (default: HOME-work, beside the home)')
    .addOption(new Option('--log-level <level>', 'log level (logs go to stderr)').choices(LOG_LEVELS).default('info'))
    .addOption(homeOption())
    .addHelpText(
      'after',
      examples(
        ['jobwire worker --redis redis://10.0.0.5:6379/0 --name gpu1 --pool gpu --slots 4', 'a worker in pool gpu (and ALL) with 4 slots'],
        ['jobwire worker --redis redis://10.0.0.5:6379/0', 'named after this host, pool ALL, one slot per core'],
      ) +
        '\nEvery worker is in pool ALL. See docs/deployment.md for a whole cluster.\n' +
        '\nOn Ctrl-C or SIGTERM it stops within 10 seconds plus --grace: if Redis does not answer, it gives\n' +
        'up on it, lists what it left undone on stderr and exits 1; a clean stop exits 0.\n',
    )
    .action(act(work));
}

/** `--dead-after`: at least two heartbeats (1 s apart). */
function deadAfter(value: string): number {
  const n = seconds(value);
  if (n < 2) throw new InvalidArgumentError('expected a number of seconds >= 2.');
  return n;
}

async function work(opts: WorkerCommandOptions): Promise<number> {
  const options: WorkerOptions = {
    keepJobs: opts.stopJobs !== true,
    liveness: { ttlMs: Math.round(opts.deadAfter * 1000) },
    redis: opts.redis,
    prefix: opts.redisPrefix,
    pools: opts.pool ?? [],
    labels: opts.label ?? {},
    graceSeconds: opts.grace,
    logLevel: opts.logLevel,
    workDir: opts.workDir ?? defaultWorkDir(resolveHome(opts.home)),
  };
  try {
    checkWorkDir(options.workDir!, resolveHome(opts.home));
  } catch (err) {
    throw new UsageError((err as Error).message, { cause: err });
  }
  if (opts.home !== undefined) options.home = opts.home;
  if (opts.name !== undefined) options.name = opts.name;
  if (opts.slots !== undefined) options.slots = opts.slots;
  if (opts.prefetch !== undefined) options.prefetch = opts.prefetch;
  if (opts.url !== undefined) options.serverUrl = opts.url;
  if (opts.executor !== undefined) options.executor = opts.executor;
  const ssh: NonNullable<WorkerOptions['ssh']> = {};
  if (opts.sshIdentity.length > 0) ssh.identityFiles = opts.sshIdentity;
  if (opts.sshKnownHosts !== undefined) ssh.knownHostsFile = opts.sshKnownHosts;
  if (opts.sshPasswordFile !== undefined) ssh.passwordFile = opts.sshPasswordFile;
  if (Object.keys(ssh).length > 0) options.ssh = ssh;

  // Loaded on demand: the other commands should not pay for BullMQ and the executors.
  const { startWorker } = await import('../../distributed/worker.js');
  let handle: WorkerHandle;
  try {
    handle = await startWorker(options);
  } catch (err) {
    if (err instanceof RangeError) throw new CliError(err.message, ExitCode.USAGE, { cause: err });
    throw err;
  }
  // Before the line that says it is ready: a SIGTERM sent on reading it must stop it cleanly.
  const stopSignal = catchStopSignal();
  print(`jobwire worker ${handle.name} ready: pools ${['ALL', ...handle.pools].join(', ')}; ${handle.slots} slot(s)`);

  return runUntilSignal('worker', handle, { graceSeconds: opts.grace, signal: stopSignal });
}

interface WorkersOptions extends ConnectionOptions {
  json?: boolean;
}

/** The `jobwire workers` tables: workers, then pools. */
export function formatWorkers(report: WorkersReport): string {
  if (report.mode === 'embedded') return 'this server runs its jobs itself (embedded mode): it has no workers';
  const workers = formatTable(
    ['NODE', 'POOLS', 'SLOTS', 'USED', 'FREE', 'SINGLE', 'UNLIMITED', 'HEARTBEAT', 'STATE'],
    report.items.map((w) => [
      w.name,
      w.pools.join(','),
      String(w.slots),
      String(w.used),
      String(w.free),
      String(w.single),
      String(w.unlimited),
      formatTimestamp(w.heartbeatAt),
      w.alive ? 'alive' : 'dead',
    ]),
  );
  const pools = formatTable(
    ['POOL', 'WORKERS', 'SLOTS', 'USED', 'QUEUED'],
    report.pools.map((p) => [p.name, String(p.workers), String(p.slots), String(p.used), String(p.queued)]),
  );
  return `${report.items.length > 0 ? workers : 'no workers'}\n\n${pools}`;
}

/** Adds `jobwire workers`. */
export function registerWorkers(program: Command): void {
  addConnectionOptions(
    program
      .command('workers')
      .summary('list the workers of distributed mode and the pools\' queues')
      .description(
        'List the workers the server sees (node, pools, slots used and free, last heartbeat), then per ' +
          'pool the live workers, their slots and the jobs waiting that name the pool first.',
      )
      .option('--json', 'the report as JSON: {mode, items, pools}'),
  )
    .addHelpText('after', examples(['jobwire workers', 'NODE  POOLS  SLOTS  USED  FREE ..., then POOL  WORKERS  SLOTS  USED  QUEUED']))
    .action(
      act(async (opts: WorkersOptions) => {
        const api = await connect(opts);
        const report = await api.getWorkers();
        print(opts.json ? formatJson(report) : formatWorkers(report));
      }),
    );
}
