/**
 * The embedded backend (the default): one machine. The store is SQLite plus append-only files in
 * the home, the tokens are the home's `tokens.json`, and a dispatcher in this process runs the
 * jobs with the local executor — so at start, before anything else, jobs a crashed server left
 * Running are stopped and marked Lost (`jobs/orphans.ts`).
 * @module
 */
import { hostname } from 'node:os';
import { TokenBook } from '../auth/tokens.js';
import { LocalExecutor } from '../executors/local/index.js';
import { executorFromUrl, NamedExecutors, parseExecutorSpec, SshConnections } from '../executors/registry.js';
import type { SshConnectionOptions } from '../executors/ssh/connection.js';
import { Dispatcher } from '../jobs/dispatcher.js';
import { lostEvent } from '../jobs/events.js';
import { loseOrphanedJobs, type LostJobs } from '../jobs/orphans.js';
import { accountPolicy } from '../jobs/run-as.js';
import type { RunnerContext } from '../jobs/runner.js';
import { openEmbeddedStore } from '../store/embedded/index.js';
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
    const factoryContext = { ssh: options.ssh ?? {}, sshConnection: (target: Parameters<SshConnections['get']>[0]) => connections.get(target), ...(options.lostAfterMs !== undefined ? { lostAfterMs: options.lostAfterMs } : {}) };
    const executor = new NamedExecutors(
      new LocalExecutor(multiSlots !== undefined ? { multiSlots } : {}),
      named.map(({ name, url }) => ({ name, url, executor: executorFromUrl(url, factoryContext) })),
    );
    const tokens = new TokenBook(context.home);
    const store = await openEmbeddedStore({ dir: context.home });
    // Before anything starts: jobs left Running by a server that died may still have processes.
    let orphans: LostJobs;
    try {
      orphans = await loseOrphanedJobs(store, `the jobwire server stopped while the job was running (noticed at restart, ${new Date().toISOString()})`, context.graceMs);
    } catch (err) {
      await store.close();
      throw err;
    }
    const ctx: RunnerContext = {
      store,
      executor,
      node: hostname(),
      graceMs: context.graceMs,
      defaultCwd: context.workDir,
      serverUrl: '',
      onError: (err, jobId) => {
        log.error({ err, jobId }, 'job bookkeeping failed');
        emit('runner:error', { error: err, jobId });
      },
    };
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
    let serving = false;
    return {
      adaptor: executor.name,
      store,
      tokens,
      check: (description) => executor.check(description),
      admit: async (owner) => {
        await accountFor(owner);
      },
      queued: (job) => dispatcher.poke(job.queue),
      queues: async () => executor.queues(),
      executors: () => executor.list(),
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
      },
      drain: () => dispatcher.idle(),
      close: async (steps) => {
        connections.close();
        await steps.run('closing the store', () => store.close());
      },
      abandon: () => connections.close(),
    };
  };
}
