/**
 * The executor a server uses in distributed mode: it starts nothing itself (workers do, with
 * their local executors), but it says what those can run and what the queues hold across the
 * cluster.
 * @module
 */
import { BadRequestError, JobwireError, type JobDescription } from '@jobwire/client';
import { LocalExecutor } from '../executors/local/index.js';
import type { Executor, ProcessHandle, QueueDef } from '../executors/types.js';
import type { RedisStore } from '../store/redis/index.js';

/** Submissions for jobwire workers (checked as the workers' local executors would check them). */
export class DistributedExecutor implements Executor {
  /** Adaptor name. */
  readonly name = 'worker';
  readonly #local = new LocalExecutor({ multiSlots: 1 });

  constructor(private readonly store: RedisStore) {}

  /** The local executor's queue names; limits are the cluster's, see {@link DistributedExecutor.queueDefs}. */
  queues(): QueueDef[] {
    return [
      { name: 'single', limit: null },
      { name: 'multi', limit: null },
      { name: 'unlimited', limit: null },
    ];
  }

  /**
   * Queues with the cluster's limits: `single` runs one job per live worker, `multi` one per
   * slot of every live worker, `unlimited` has none.
   */
  async queueDefs(): Promise<QueueDef[]> {
    const keys = this.store.keys;
    const names = await this.store.redis.smembers(keys.workers);
    const pipeline = this.store.redis.pipeline();
    for (const name of names) pipeline.exists(keys.alive(name)).hget(keys.worker(name), 'slots');
    const replies = (await pipeline.exec()) ?? [];
    let workers = 0;
    let slots = 0;
    names.forEach((_, i) => {
      if (replies[2 * i]?.[1] !== 1) return;
      workers += 1;
      slots += Number(replies[2 * i + 1]?.[1] ?? 0);
    });
    return [
      { name: 'single', limit: workers },
      { name: 'multi', limit: slots },
      { name: 'unlimited', limit: null },
    ];
  }

  /**
   * What the local executor refuses, plus: retries only for batch jobs (an interactive job's
   * input went to the process that was lost, so it cannot start over).
   */
  check(description: JobDescription): void {
    this.#local.check(description);
    if ((description.retries ?? 0) > 0 && description.interactive === true) {
      throw new BadRequestError('retries are for batch jobs: an interactive job cannot be started again', { code: 'unsupported', field: 'retries' });
    }
  }

  /** Never called: in distributed mode workers start jobs. */
  start(): ProcessHandle {
    throw new JobwireError('internal', 'in distributed mode jobs are started by workers, not by the server');
  }
}
