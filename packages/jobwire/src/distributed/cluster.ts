/**
 * What a server needs to serve distributed mode: the Redis store, the shared token book, the
 * executor that checks submissions for the workers, placement (a pass after every submission
 * and every second) and its share of reaping dead workers. The server itself stays stateless:
 * kill it and any other server on the same Redis serves the same jobs.
 * @module
 */
import type { WorkersReport } from '@jobwire/client';
import type { QueueDef } from '../executors/types.js';
import { SharedTokenBook } from '../auth/shared-tokens.js';
import { openRedisStore, type RedisStore } from '../store/redis/index.js';
import { DistributedExecutor } from './executor.js';
import { Placer } from './placement.js';
import { checkLiveness, DEFAULT_LIVENESS, reapDeadWorkers, workersReport, type Liveness } from './registry.js';
import { announceServer } from './servers.js';

/** Where a server logs (pino's shape, as fastify's logger has it). */
export interface ClusterLog {
  warn(data: object, message: string): void;
  error(data: object, message: string): void;
}

/** Options of {@link joinCluster}. */
export interface ClusterOptions {
  /** Redis URL. */
  url: string;
  /** Key prefix. @defaultValue "jobwire:" */
  prefix?: string;
  /** The server's jobwire home (its tokens.json joins the shared token book). */
  home: string;
  log: ClusterLog;
  /** Reaping timings. @defaultValue {@link DEFAULT_LIVENESS} */
  liveness?: Partial<Liveness>;
}

/** A server's part in a cluster. */
export interface Cluster {
  readonly store: RedisStore;
  readonly tokens: SharedTokenBook;
  readonly executor: DistributedExecutor;
  /** Call after a job was queued: places it. */
  onQueued(): void;
  /** Queue limits of the cluster. */
  queueDefs(): Promise<QueueDef[]>;
  /** `GET /v1/workers`. */
  workers(): Promise<WorkersReport>;
  /** Announces the server's URL (handed to jobs by workers). */
  announce(url: string): void;
  /** Stops housekeeping, leaves the store open (the server closes it last). */
  close(): Promise<void>;
}

/** Connects a server to Redis. */
export async function joinCluster(options: ClusterOptions): Promise<Cluster> {
  const liveness = { ...DEFAULT_LIVENESS, ...options.liveness };
  checkLiveness(liveness);
  const store = await openRedisStore({ url: options.url, prefix: options.prefix ?? 'jobwire:', connectionName: 'jobwire:server' });
  const onError = (err: unknown): void => options.log.error({ err }, 'distributed-mode housekeeping failed');
  let tokens: SharedTokenBook;
  try {
    tokens = await SharedTokenBook.open(options.home, store, onError);
  } catch (err) {
    await store.close();
    throw err;
  }
  const executor = new DistributedExecutor(store);
  const placer = new Placer(store, onError);
  let unannounce: (() => Promise<void>) | undefined;

  let running: Promise<void> | undefined;
  const housekeeping = async (): Promise<void> => {
    for (const reaped of await reapDeadWorkers(store, liveness)) {
      options.log.warn({ node: reaped.name, lost: reaped.lost.map((j) => j.id), retried: reaped.retried.map((j) => j.id) }, 'worker stopped answering; its jobs were settled');
      await placer.dropNodeQueue(reaped.name);
    }
    placer.poke();
  };
  const timer = setInterval(() => {
    if (running) return;
    running = housekeeping()
      .catch(onError)
      .finally(() => {
        running = undefined;
      });
  }, liveness.reapEveryMs);
  placer.poke();

  return {
    store,
    tokens,
    executor,
    onQueued: () => placer.poke(),
    queueDefs: () => executor.queueDefs(),
    workers: () => workersReport(store),
    announce: (url) => {
      unannounce = announceServer(store, url, onError);
    },
    close: async () => {
      clearInterval(timer);
      tokens.close();
      await running;
      await unannounce?.().catch(onError);
      await placer.close();
    },
  };
}
