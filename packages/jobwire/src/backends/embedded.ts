/**
 * The embedded backend (the default): one machine. The store is SQLite plus append-only files in
 * the home, the tokens are the home's `tokens.json`, and a dispatcher in this process starts the
 * jobs on the home's job host (`host/executor.ts`): the server never spawns a job itself, and its
 * jobs outlive it. At start, before anything else, the host is reached (or started, settling what
 * a dead one left) and every job the store has Running is followed again (`RunOptions.resume`);
 * only jobs no executor can find again (started by a jobwire without a job host) are stopped and
 * marked Lost (`jobs/orphans.ts`). A stop leaves the jobs running unless told to stop them.
 * @module
 */
import { hostname } from 'node:os';
import { TokenBook } from '../auth/tokens.js';
import { HostExecutor } from '../host/index.js';
import { LocalExecutor } from '../executors/local/index.js';
import { CredentialExecutors } from '../executors/credential-executors.js';
import { executorFromUrl, NamedExecutors, parseExecutorSpec, SshConnections } from '../executors/registry.js';
import type { SshConnectionOptions } from '../executors/ssh/connection.js';
import { Dispatcher } from '../jobs/dispatcher.js';
import { lostEvent } from '../jobs/events.js';
import { loseOrphans, type LostJobs } from '../jobs/orphans.js';
import { accountPolicy } from '../jobs/run-as.js';
import type { RunnerContext } from '../jobs/runner.js';
import { openEmbeddedStore } from '../store/embedded/index.js';
import { finalStatusOf, type JobRecord } from '../store/types.js';
import type { Backend, BackendFactory } from './types.js';

/** Options of {@link embeddedBackend}. */
export interface EmbeddedBackendOptions {
  /** Slots of the `multi` queue. @defaultValue os.availableParallelism() */
  multiSlots?: number;
  /**
   * Named executors besides `local`, as `NAME=URL` (`ssh://[user@]host[:port]`, ...; see
   * docs/executors.md): jobs choose one with `executor` in their description. @defaultValue [] (only local)
   */
  executors?: string[];
  /** How SSH executors authenticate and check host keys. @defaultValue OpenSSH's defaults (agent, `~/.ssh/id_*`, `~/.ssh/known_hosts`) */
  ssh?: SshConnectionOptions;
  /** How long a remote job's host may stay unreachable before the job ends Lost. @defaultValue 600000 (10 minutes) */
  lostAfterMs?: number;
  /** Keep Slurm jobs' output and exit files in the jobs folder after their end. @defaultValue false (removed once stored) */
  keepRemoteJobFiles?: boolean;
}

/** The embedded backend; throws a RangeError for a bad option at once. */
export function embeddedBackend(options: EmbeddedBackendOptions = {}): BackendFactory {
  const { multiSlots } = options;
  if (multiSlots !== undefined && (!Number.isInteger(multiSlots) || multiSlots < 1)) throw new RangeError(`multiSlots: a positive integer, not ${multiSlots}`);
  // Bad names and URLs fail the start, before anything opens.
  const named = (options.executors ?? []).map(parseExecutorSpec);
  return async (context): Promise<Backend> => {
    const { log, emit } = context;
    const connections = new SshConnections(options.ssh);
    const factoryContext = { ssh: options.ssh ?? {}, sshConnection: (target: Parameters<SshConnections['get']>[0]) => connections.get(target), ...(options.lostAfterMs !== undefined ? { lostAfterMs: options.lostAfterMs } : {}), ...(options.keepRemoteJobFiles === true ? { keepRemoteJobFiles: true } : {}) };
    // Local jobs run in the job host (it outlives this server); named executors run theirs elsewhere.
    const host = new HostExecutor({
      home: context.home,
      local: new LocalExecutor(multiSlots !== undefined ? { multiSlots } : {}),
      graceMs: context.graceMs,
      onError: (err, jobId) => log.warn({ err, jobId }, 'job host'),
    });
    const executor = new NamedExecutors(
      host,
      named.map(({ name, url }) => ({ name, url, executor: executorFromUrl(url, factoryContext) })),
    );
    // Xenon schedulers' executors with their own credential, made again before their jobs are followed.
    let credentials: CredentialExecutors;
    try {
      credentials = new CredentialExecutors(context.home, executor, factoryContext);
    } catch (err) {
      executor.close();
      connections.close();
      throw err;
    }
    const tokens = new TokenBook(context.home);
    const store = await openEmbeddedStore({ dir: context.home });
    // Before anything starts: the host (which settles what a dead one left), then the jobs left Running.
    let orphans: LostJobs;
    const resumable: Array<{ job: JobRecord; state: Record<string, unknown> }> = [];
    try {
      await host.connect();
      const stateless: JobRecord[] = [];
      const lostWithHost: JobRecord[] = [];
      for (const job of await store.runningJobs()) {
        const state = await store.executorState(job.id);
        if (state === undefined) {
          stateless.push(job);
          continue;
        }
        // A named executor's job (ssh, Slurm) is found again by its executor when it is resumed.
        if (executor.executorFor(job.description) !== host) {
          resumable.push({ job, state });
          continue;
        }
        // Jobs whose host died are settled now, before anything is served (and reported as lost then).
        const recovery = await host.recover(job.id, job.process);
        if (recovery.kind === 'lost') {
          const finished = await store.finishJob(job.id, { status: 'Lost', error: recovery.reason, endedAt: new Date().toISOString() });
          if (finished !== undefined) {
            await store.streams.closeOutput(job.id, finalStatusOf(finished));
            lostWithHost.push(finished);
          }
        } else {
          resumable.push({ job, state });
        }
      }
      orphans = await loseOrphans(store, stateless, `the jobwire server stopped while the job was running (noticed at restart, ${new Date().toISOString()})`, context.graceMs);
      orphans.lost.push(...lostWithHost);
    } catch (err) {
      connections.close();
      await host.close();
      await store.close();
      throw err;
    }
    /** Whether a stop leaves the jobs running (the default) or stops them too. */
    let keepJobs = true;
    const ctx: RunnerContext = {
      store,
      executor,
      keepRunning: () => keepJobs,
      node: hostname(),
      graceMs: context.graceMs,
      defaultCwd: context.workDir,
      serverUrl: '',
      // Jobs wait Queued while Slurm holds them; the dispatcher here is the only one taking Queued jobs.
      queuedInExecutor: true,
      onError: (err, jobId) => {
        log.error({ err, jobId }, 'job bookkeeping failed');
        emit('runner:error', { error: err, jobId });
      },
    };
    const started = Date.now();
    // The jobs run here, so a root server maps users to OS accounts (run-as.ts), refusing at
    // submit what it would refuse at start.
    const accountFor = accountPolicy((user) => tokens.user(user));
    ctx.accountFor = accountFor;
    const dispatcher = new Dispatcher(ctx, executor.queues(), {
      signal: context.signal,
      onFinished: (job) => {
        if (job.status === 'Lost') emit('job:lost', lostEvent(job));
      },
    });
    // Followed again at once (their output, stdin and end), before the first request is served.
    for (const { job, state } of resumable) dispatcher.resume(job, state);
    if (resumable.length > 0) log.warn({ jobs: resumable.length, ms: Date.now() - started }, 'jobs left running by the previous server followed again');
    let serving = false;
    // A Slurm executor's partitions come once it answers (after the start): their Queued jobs —
    // left by the last server, or waiting in Slurm when it stopped — are looked at then, not at
    // the next submit.
    executor.onQueuesChanged(() => {
      if (serving) for (const q of executor.queues()) dispatcher.poke(q.name);
    });
    return {
      adaptor: executor.name,
      store,
      tokens,
      check: (description, owner) => executor.check(description, owner),
      admit: async (owner) => {
        await accountFor(owner);
      },
      queued: (job) => dispatcher.poke(job.queue),
      queues: async () => executor.queues(),
      executors: () => executor.list(),
      ssh: { connection: (target) => connections.get(target), options: options.ssh ?? {}, credentialExecutor: (request) => credentials.executorFor(request) },
      serve: (address) => {
        ctx.serverUrl = address.url;
        if (address.caFile !== undefined) ctx.caFile = address.caFile;
        else delete ctx.caFile;
        if (serving) return;
        serving = true;
        for (const job of orphans.lost) {
          log.warn({ jobId: job.id, processes: orphans.outcomes.get(job.id) }, 'job marked Lost: it was running when the server stopped');
          emit('job:lost', lostEvent(job));
        }
        dispatcher.poke();
        // Queues an executor offered since the dispatcher was made (partitions read meanwhile).
        for (const q of executor.queues()) dispatcher.poke(q.name);
      },
      prepareStop: ({ stopJobs }) => {
        keepJobs = !stopJobs;
      },
      drain: () => dispatcher.idle(),
      close: async (steps) => {
        executor.close();
        connections.close();
        credentials.close();
        await steps.run('closing the connection to the job host', () => host.close());
        await steps.run('closing the store', () => store.close());
      },
      abandon: () => {
        executor.close();
        connections.close();
        credentials.close();
      },
    };
  };
}
