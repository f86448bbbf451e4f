/**
 * Placement: which worker runs a waiting job, and handing it over. The decision is one Lua
 * script over the registry (`jwPlaceJobs`, MARVELO's rules: preferred node, then pools in
 * priority order), which also reserves the slot; the hand-over is a BullMQ job on the chosen
 * worker's queue (`node-NAME`), which the worker's BullMQ Worker picks up.
 *
 * Any server or worker may run placement passes; the script makes concurrent passes safe. A
 * pass runs when a job is submitted, when a worker frees a slot or registers, and once a second
 * (for wait reasons and as a safety net).
 * @module
 */
import { Queue } from 'bullmq';
import type { RedisStore } from '../store/redis/index.js';

/** Name of the BullMQ queue of a worker node. */
export function nodeQueueName(node: string): string {
  return `node-${node}`;
}

/** What a BullMQ job of a node queue carries. */
export interface HandOver {
  jobId: string;
}

/** Jobs looked at per pass. */
const SCAN = 500;
/** A job placed within this many milliseconds gets no wait reason (no event for a quick start). */
const PATIENCE_MS = 1000;

/** Runs placement passes for one process, coalescing requests. */
export class Placer {
  readonly #store: RedisStore;
  readonly #queues = new Map<string, Queue<HandOver>>();
  readonly #onError: (err: unknown) => void;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(store: RedisStore, onError: (err: unknown) => void) {
    this.#store = store;
    this.#onError = onError;
  }

  /** Asks for a pass soon (several requests while one runs make one more pass). */
  poke(): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#passes()
      .catch((err: unknown) => {
        if (!this.#closed) this.#onError(err);
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#again && !this.#closed) {
          this.#again = false;
          this.poke();
        }
      });
  }

  /** Resolves when no pass is running. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Hands a job placed on `node` to it (again): idempotent per attempt. */
  async handOver(node: string, jobs: Array<{ jobId: string; attempt: string }>): Promise<void> {
    if (jobs.length === 0) return;
    await this.#queue(node).addBulk(
      jobs.map(({ jobId, attempt }) => ({
        name: 'run',
        data: { jobId },
        opts: { jobId: `${jobId}.${attempt}`, removeOnComplete: true, removeOnFail: true },
      })),
    );
  }

  /** Forgets a node's BullMQ queue and its keys (the node is gone). */
  async dropNodeQueue(node: string): Promise<void> {
    const queue = this.#queue(node);
    this.#queues.delete(node);
    try {
      await queue.obliterate({ force: true });
    } finally {
      await queue.close();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.idle().catch(() => undefined);
    await Promise.allSettled([...this.#queues.values()].map((q) => q.close()));
    this.#queues.clear();
  }

  async #passes(): Promise<void> {
    for (;;) {
      const placed = await this.#store.scripts.run<string[]>('jwPlaceJobs', SCAN, PATIENCE_MS);
      if (placed.length === 0 || this.#closed) return;
      const byNode = new Map<string, Array<{ jobId: string; attempt: string }>>();
      for (let i = 0; i < placed.length; i += 3) {
        const node = placed[i + 1]!;
        let list = byNode.get(node);
        if (!list) byNode.set(node, (list = []));
        list.push({ jobId: placed[i]!, attempt: placed[i + 2]! });
      }
      await Promise.all([...byNode].map(([node, jobs]) => this.handOver(node, jobs)));
    }
  }

  #queue(node: string): Queue<HandOver> {
    let queue = this.#queues.get(node);
    if (!queue) {
      queue = new Queue<HandOver>(nodeQueueName(node), { connection: this.#store.redis, prefix: this.#store.keys.bull });
      queue.on('error', (err) => this.#onError(err));
      this.#queues.set(node, queue);
    }
    return queue;
  }
}
