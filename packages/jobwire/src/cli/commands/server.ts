/**
 * `jobwire server`: starts a server in the foreground and keeps it up until SIGINT or SIGTERM;
 * `jobwire server stop [--jobs]` stops the server of a home (and, with --jobs, its jobs).
 * @module
 */
import { Option, type Command } from 'commander';
import type { ServerHandle, ServerOptions } from '../../server/index.js';
import { redactUrl } from '../../store/redis/errors.js';
import { homeOption } from '../connect.js';
import { CliError, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { integer, seconds } from '../options.js';

/** Collects a repeatable option. */
const collect = (value: string, previous: string[]): string[] => [...previous, value];
import { act, catchStopSignal, examples, print, runUntilSignal } from './common.js';

interface ServerCommandOptions {
  host: string;
  port: number;
  multiSlots?: number;
  grace: number;
  logLevel: string;
  home?: string;
  tlsCert?: string;
  tlsKey?: string;
  workDir?: string;
  grpcPort?: number;
  grpcHost: string;
  grpcCert?: string;
  grpcKey?: string;
  grpcCa?: string;
  grpcAllowAnonymousLoopback?: boolean;
  redis?: string;
  redisPrefix: string;
  executor: string[];
  sshIdentity: string[];
  sshKnownHosts?: string;
  sshPasswordFile?: string;
  keepRemoteJobFiles?: boolean;
}

/** Log levels the server accepts (pino's). */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Adds `jobwire server`. */
export function registerServer(program: Command): void {
  const server = program
    .command('server')
    .summary('start a jobwire server in the foreground')
    .description(
      'Start a jobwire server (REST and WebSocket API, dashboard; jobs run on the home\'s job host) and keep it running ' +
        'until Ctrl-C or SIGTERM. It records its URL and admin token in the jobwire home, where every ' +
        'other command finds them.',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on; 0 picks a free one', integer(0, 65535), 7700)
    .option('--multi-slots <n>', 'jobs the "multi" queue runs at once (default: the number of cores)', integer(1))
    .option('--grace <seconds>', 'seconds between SIGTERM and SIGKILL when a job is cancelled', seconds, 5)
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .addOption(homeOption())
    .option('--tls-cert <file>', 'PEM certificate chain: serve the API, WebSockets and dashboard over HTTPS (with --tls-key; SIGHUP reloads both)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--work-dir <dir>', 'working directory of jobs that name none, and the parent of the gRPC file spaces; outside the home (default: HOME-work, beside the home)')
    .option('--grpc-port <port>', 'also serve the Xenon gRPC API on this port (0 picks a free one); off unless given', integer(0, 65535))
    .option('--grpc-host <host>', 'address the Xenon gRPC API listens on', '127.0.0.1')
    .option('--grpc-cert <file>', 'PEM certificate chain: serve gRPC over TLS (with --grpc-key)')
    .option('--grpc-key <file>', 'PEM private key of --grpc-cert')
    .option('--grpc-ca <file>', 'PEM CA bundle: require client certificates signed by it (mutual TLS)')
    .option('--grpc-allow-anonymous-loopback', 'admit gRPC calls without a token from this machine, as the admin user (stock Xenon clients send none)')
    .option('--executor <NAME=URL>', 'a named executor jobs can choose with --executor NAME: ssh://[user@]host[:port], slurm: or slurm+ssh://[user@]host[:port] (repeatable; "local" is always there; docs/executors.md)', collect, [])
    .option('--ssh-identity <file>', 'private key for ssh executors (repeatable; default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa, plus ssh-agent)', collect, [])
    .option('--ssh-known-hosts <file>', 'known_hosts file host keys are checked against; an unknown or changed key is refused (default: ~/.ssh/known_hosts)')
    .option('--ssh-password-file <file>', 'file whose first line is the ssh password, tried after the keys')
    .option('--keep-remote-job-files', "keep Slurm jobs' output and exit files in the executor's jobs folder after they end (removed once stored, by default)")
    .addOption(new Option('--redis <url>', 'distributed mode: keep everything in this Redis (redis://host:port/db); `jobwire worker` processes run the jobs').env('JOBWIRE_REDIS'))
    .addOption(new Option('--redis-prefix <prefix>', 'distributed mode: prefix of every Redis key').env('JOBWIRE_REDIS_PREFIX').default('jobwire:'))
    .addHelpText(
      'after',
      examples(
        ['jobwire server', 'listen on 127.0.0.1:7700, data in the default home'],
        ['jobwire server --port 0 --home /tmp/jw', 'a throw-away server on a free port'],
        ['jobwire server --host 0.0.0.0 --multi-slots 4', 'reachable from other machines, 4 jobs at once in "multi"'],
        ['jobwire server --host 0.0.0.0 --tls-cert cert.pem --tls-key key.pem', 'HTTPS; clients elsewhere trust it with --ca cert.pem (docs/deployment.md)'],
        ['jobwire server --grpc-port 50051 --grpc-allow-anonymous-loopback', 'also serve Xenon clients (PyXenon) on this machine'],
        ['jobwire server --host 0.0.0.0 --redis redis://10.0.0.5:6379/0', 'distributed mode: one of several servers on one Redis (docs/deployment.md)'],
        ['jobwire server --executor lab=ssh://me@lab.example.org', 'jobs with --executor lab run on lab.example.org over SSH (docs/executors.md)'],
      ) +
        '\nOn a terminal it prints "sign in: URL/?token=TOKEN": open that in a browser for the dashboard. When\n' +
        'stdout is not a terminal (it then carries only the log) the link goes once to stderr instead, as\n' +
        '"jobwire: sign in (token, keep private): URL/?token=TOKEN". No log line carries a token.\n' +
        '\nJobs outlive the server: they run on the home\'s job host, and on Ctrl-C, SIGTERM or a kill -9 they\n' +
        'keep running; the next server on the home follows them again (output, stdin, end). To stop them\n' +
        'too, use `jobwire server stop --jobs`. One server per home: a second one is refused.\n' +
        '\nOn Ctrl-C or SIGTERM it stops within 10 seconds plus --grace (10 s flat with --redis): if Redis\n' +
        'does not answer, it gives up on it, lists what it left undone on stderr and exits 1; a clean\n' +
        'stop exits 0, a second signal stops at once (exit 1). See docs/deployment.md.\n',
    )
    .action(act(serve));
  server
    .command('stop')
    .summary('stop the server of a home (jobs keep running unless --jobs)')
    .description(
      'Stop the jobwire server of a home (found by its lock, identity-checked: pid, start time and boot id) with ' +
        'SIGTERM and wait until it has exited. Its jobs keep running on the job host for the next server, ' +
        'unless --jobs: then the job host stops them too (SIGTERM, SIGKILL after its grace period) and ' +
        'exits; the next server on the home marks them Lost. With --jobs and no server running, it still ' +
        'stops the jobs a server left.',
    )
    .option('--jobs', 'also stop the running jobs (and the job host)')
    .option('--timeout <seconds>', 'how long to wait for the server to exit', seconds, 60)
    .addOption(homeOption())
    .addHelpText(
      'after',
      examples(
        ['jobwire server stop', 'stop the server of the default home; its jobs keep running'],
        ['jobwire server stop --jobs --home /srv/jw', 'stop the server and every job of that home'],
      ),
    )
    .action(act(stop));
}

async function stop(opts: { jobs?: boolean; timeout: number; home?: string }): Promise<number> {
  const { resolveHome } = await import('@jobwire/client/home');
  const { runningServer } = await import('../../server/home-lock.js');
  const { stillSame } = await import('../../executors/local/process-identity.js');
  const { stopHost } = await import('../../host/index.js');
  const home = resolveHome(opts.home);
  const running = runningServer(home);
  if (running === undefined && opts.jobs !== true) throw new CliError(`no jobwire server runs on the home ${home}`, ExitCode.FAILED);
  if (running !== undefined) {
    const { holder, url } = running;
    try {
      if (stillSame(holder)) process.kill(holder.pid, 'SIGTERM');
    } catch {
      // exited meanwhile
    }
    const deadline = Date.now() + opts.timeout * 1000;
    while (stillSame(holder)) {
      if (Date.now() >= deadline) throw new CliError(`the jobwire server (pid ${holder.pid}) has not exited after ${opts.timeout} s`, ExitCode.TIMEOUT);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    print(`stopped the jobwire server (pid ${holder.pid}${url !== undefined ? `, ${url}` : ''})`);
  }
  if (opts.jobs === true) {
    const stopped = await stopHost(home);
    print(stopped ? 'stopped the job host and its jobs' : 'no job host was running');
  }
  return ExitCode.OK;
}

async function serve(opts: ServerCommandOptions): Promise<number> {
  const options: ServerOptions = {
    host: opts.host,
    port: opts.port,
    graceSeconds: opts.grace,
    logLevel: opts.logLevel,
  };
  if (opts.home !== undefined) options.home = opts.home;
  if (opts.workDir !== undefined) options.workDir = opts.workDir;
  if (opts.multiSlots !== undefined) options.multiSlots = opts.multiSlots;
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (opts.tlsCert !== undefined && opts.tlsKey !== undefined) options.tls = { cert: opts.tlsCert, key: opts.tlsKey };
  if (opts.executor.length > 0) options.executors = opts.executor;
  if (opts.keepRemoteJobFiles === true) {
    if (opts.executor.length === 0) throw new UsageError('--keep-remote-job-files is about the files of --executor NAME=slurm:... jobs; give an executor');
    options.keepRemoteJobFiles = true;
  }
  const ssh: NonNullable<ServerOptions['ssh']> = {};
  if (opts.sshIdentity.length > 0) ssh.identityFiles = opts.sshIdentity;
  if (opts.sshKnownHosts !== undefined) ssh.knownHostsFile = opts.sshKnownHosts;
  if (opts.sshPasswordFile !== undefined) ssh.passwordFile = opts.sshPasswordFile;
  if (Object.keys(ssh).length > 0) options.ssh = ssh;
  if (opts.redis !== undefined) {
    if (opts.executor.length > 0) throw new UsageError('--executor NAME=URL is for embedded mode; with --redis, give each worker --executor URL');
    if (opts.multiSlots !== undefined) throw new UsageError('--multi-slots is for embedded mode; with --redis, give each worker --slots');
    options.redis = opts.redis;
    options.redisPrefix = opts.redisPrefix;
  }
  if (opts.grpcPort !== undefined) {
    options.grpcPort = opts.grpcPort;
    options.grpcHost = opts.grpcHost;
    if (opts.grpcAllowAnonymousLoopback) options.grpcAllowAnonymousLoopback = true;
    if ((opts.grpcCert === undefined) !== (opts.grpcKey === undefined)) throw new UsageError('--grpc-cert and --grpc-key go together');
    if (opts.grpcCert !== undefined && opts.grpcKey !== undefined) options.grpcTls = { cert: opts.grpcCert, key: opts.grpcKey, ...(opts.grpcCa !== undefined ? { ca: opts.grpcCa } : {}) };
    else if (opts.grpcCa !== undefined) throw new UsageError('--grpc-ca needs --grpc-cert and --grpc-key');
  } else if (opts.grpcCert ?? opts.grpcKey ?? opts.grpcCa ?? opts.grpcAllowAnonymousLoopback) {
    throw new UsageError('the --grpc-* options need --grpc-port');
  }

  // Loaded on demand: the other commands should not pay for the server's dependencies.
  const { startServer } = await import('../../server/index.js');
  let handle: ServerHandle;
  try {
    handle = await startServer(options);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'JOBWIRE_TLS_FILE') throw new CliError(`${(err as Error).message} (check --tls-cert and --tls-key)`, ExitCode.USAGE, { cause: err });
    if (err instanceof RangeError) throw new UsageError(err.message, { cause: err });
    if ((err as { code?: unknown }).code === 'JOBWIRE_GRPC_BIND') throw new CliError(`${(err as Error).message} (pick another port with --grpc-port)`, ExitCode.FAILED, { cause: err });
    if ((err as { code?: unknown }).code === 'JOBWIRE_HOME_IN_USE') throw new CliError((err as Error).message, ExitCode.FAILED, { cause: err });
    if ((err as { code?: unknown }).code === 'JOBWIRE_GRPC_MISSING') throw new CliError(`--grpc-port: ${(err as Error).message}`, ExitCode.FAILED, { cause: err });
    if ((err as { code?: unknown }).code === 'EADDRINUSE') {
      throw new CliError(`${opts.host}:${opts.port} is in use (is a jobwire server running already? pick another port with --port)`, ExitCode.FAILED, { cause: err });
    }
    throw err;
  }
  // Before the first line that says it is up: a SIGTERM sent on reading it must stop it cleanly.
  const stopSignal = catchStopSignal();
  const url = handle.url.replace(/\/+$/, '');
  print(`jobwire server listening on ${url}${options.tls ? ' (TLS)' : ''}`);
  print(`jobwire home: ${handle.home}`);
  print(`work folder: ${handle.workDir}`);
  if (options.redis !== undefined) print(`distributed mode: Redis ${redactUrl(options.redis)}, key prefix ${options.redisPrefix ?? 'jobwire:'}; jobs run on \`jobwire worker\` processes`);
  if (handle.grpcPort !== undefined) {
    const grpcHost = opts.grpcHost.includes(':') ? `[${opts.grpcHost}]` : opts.grpcHost;
    print(`gRPC (Xenon) listening on ${grpcHost}:${handle.grpcPort}${options.grpcTls ? (options.grpcTls.ca ? ' (mutual TLS)' : ' (TLS)') : ''}`);
  }
  // The sign-in link carries the admin token. stdout also carries the JSON log lines, so when it
  // is not a terminal (redirected to a file, collected by a service manager) the link goes once
  // to stderr, marked as secret, and never into that log.
  const link = `${url}/?token=${encodeURIComponent(handle.token)}`;
  if (process.stdout.isTTY) print(`sign in: ${link}`);
  else process.stderr.write(`jobwire: sign in (token, keep private): ${link}\n`);

  // SIGHUP reloads a renewed certificate; without TLS it keeps its default meaning.
  const reload = (): void => {
    try {
      handle.reloadTls?.();
    } catch (err) {
      process.stderr.write(`jobwire: TLS reload failed, the certificate in use stays: ${(err as Error).message}\n`);
    }
  };
  if (handle.reloadTls) process.on('SIGHUP', reload);
  try {
    // In distributed mode the server runs no jobs: no grace period to wait for.
    return await runUntilSignal('server', handle, { graceSeconds: options.redis === undefined ? opts.grace : 0, signal: stopSignal });
  } finally {
    process.removeListener('SIGHUP', reload);
  }
}
