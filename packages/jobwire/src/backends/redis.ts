/**
 * The Redis backend (distributed mode): the store and a shared token book live in Redis, and
 * `jobwire worker` processes run the jobs, so nothing running is lost when this server stops —
 * kill it and any other server on the same Redis serves the same jobs. A server does placement
 * (a pass after every submission and every second) and its share of reaping dead workers.
 *
 * The Redis store (with ioredis and BullMQ) is loaded when the backend opens, never before: an
 * embedded server never loads them.
 * @module
 */
import { SharedTokenBook } from '../auth/shared-tokens.js';
import { Housekeeping, reapedEvent, reportReaped } from '../distributed/housekeeping.js';
import { checkWorkerJob, clusterQueues, Placer } from '../distributed/placement.js';
import { checkLiveness, DEFAULT_LIVENESS, workersReport, type Liveness } from '../distributed/registry.js';
import { announceServer } from '../distributed/servers.js';
import { lostEvent } from '../jobs/events.js';
import { openRedisStore } from '../store/index.js';
import type { Backend, BackendFactory } from './types.js';

/** Options of {@link redisBackend}. */
export interface RedisBackendOptions {
  /** Redis URL (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS). */
  url: string;
  /** Prefix of every Redis key. @defaultValue "jobwire:" */
  prefix?: string;
  /** Reaping timings. @defaultValue {@link DEFAULT_LIVENESS} */
  liveness?: Partial<Liveness>;
}

/** The Redis backend; throws a RangeError for bad liveness timings at once. */
export function redisBackend(options: RedisBackendOptions): BackendFactory {
  const liveness = { ...DEFAULT_LIVENESS, ...options.liveness };
  checkLiveness(liveness);
  return async (context): Promise<Backend> => {
    const { log, emit } = context;
    const store = await openRedisStore({ url: options.url, prefix: options.prefix ?? 'jobwire:', connectionName: 'jobwire:server' });
    const onError = (err: unknown): void => {
      log.error({ err }, 'distributed-mode housekeeping failed');
      emit('housekeeping:error', { error: err });
    };
    let tokens: SharedTokenBook;
    try {
      tokens = await SharedTokenBook.open(context.home, store, onError);
    } catch (err) {
      await store.close();
      throw err;
    }
    const placer = new Placer(store, onError);
    const housekeeping = new Housekeeping({
      store,
      placer,
      liveness,
      onReaped: (reaped) => {
        reportReaped(log, reaped);
        emit('worker:reaped', reapedEvent(reaped));
        for (const job of reaped.lost) emit('job:lost', lostEvent(job));
      },
      onError,
    });
    placer.poke(true);
    let unannounce: (() => Promise<void>) | undefined;
    return {
      adaptor: 'worker',
      store,
      tokens,
      check: checkWorkerJob,
      // Workers look the owner up in the shared token book: make sure the owner's token is there.
      admit: () => tokens.shareFile(),
      queued: () => placer.poke(),
      queues: () => clusterQueues(store),
      workers: () => workersReport(store),
      // Workers hand the announced URL to their jobs.
      serve: (address) => {
        unannounce ??= announceServer(store, address.url, onError);
      },
      // This server runs no jobs.
      drain: async () => {},
      close: async (steps) => {
        await steps.run('leaving the cluster (server registry, placement queues)', async () => {
          const pass = housekeeping.stop();
          tokens.close();
          await pass;
          await unannounce?.().catch(onError);
          await placer.close();
        });
        await steps.run('closing the store', () => store.close());
      },
      abandon: () => store.abandon(),
    };
  };
}
