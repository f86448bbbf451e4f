/**
 * Hand-over of placed jobs to worker nodes, with BullMQ: one queue per node (`node-NAME`, keys
 * under `PREFIX bull:`), consumed by that node's BullMQ Worker. Placement (one Lua script)
 * decides and reserves the slot; BullMQ delivers to the one consumer, with its locks. Why not a
 * queue per pool: docs/architecture.md ("Queues, placement and BullMQ").
 * @module
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { HandOver, HandOverConsumer, HandOvers, TakeOptions } from '../cluster.js';

/** Name of the BullMQ queue of a worker node. */
export function nodeQueueName(node: string): string {
  return `node-${node}`;
}

/** What a BullMQ job of a node queue carries. */
interface HandOverData {
  jobId: string;
}

/** The queues one process hands jobs over with (opened per node on first use). */
export class BullHandOvers implements HandOvers {
  readonly #queues = new Map<string, Queue<HandOverData>>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  async add(node: string, jobs: readonly HandOver[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.#queue(node).addBulk(
      jobs.map(({ jobId, attempt }) => ({
        name: 'run',
        data: { jobId },
        // One BullMQ job per job and attempt: a repeated hand-over is ignored.
        opts: { jobId: `${jobId}.${attempt}`, removeOnComplete: true, removeOnFail: true },
      })),
    );
  }

  async drop(node: string): Promise<void> {
    const queue = this.#queue(node);
    this.#queues.delete(node);
    try {
      await queue.obliterate({ force: true });
    } finally {
      await queue.close();
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#queues.values()].map((q) => q.close()));
    this.#queues.clear();
  }

  #queue(node: string): Queue<HandOverData> {
    let queue = this.#queues.get(node);
    if (!queue) {
      queue = new Queue<HandOverData>(nodeQueueName(node), { connection: this.redis, prefix: this.prefix });
      queue.on('error', (err) => this.onError(err));
      this.#queues.set(node, queue);
    }
    return queue;
  }
}

/** Starts a BullMQ Worker on `node`'s queue; resolves once it takes jobs. */
export async function takeHandOvers(redis: Redis, prefix: string, node: string, options: TakeOptions, handle: (jobId: string) => Promise<void>): Promise<HandOverConsumer> {
  const worker = new Worker<HandOverData>(nodeQueueName(node), (job: Job<HandOverData>) => handle(job.data.jobId), {
    connection: redis,
    prefix,
    concurrency: options.concurrency,
    // Liveness is jobwire's own (heartbeats and the reaper); BullMQ's stalled-job check would
    // only move a job back to this same node's queue.
    maxStalledCount: 0,
    name: options.name,
  });
  worker.on('error', (err) => options.onError(err));
  await worker.waitUntilReady();
  return {
    close: () => worker.close(),
    disconnect: () => {
      void worker.disconnect().catch(() => undefined);
    },
  };
}
