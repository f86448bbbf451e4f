/**
 * Placement: which worker runs a waiting job, and handing it over. The decision is one atomic
 * store operation (`placeJobs`; in Redis the Lua script `jwPlaceJobs`, MARVELO's rules:
 * preferred node, then pools in priority order), which also reserves the slot; the hand-over
 * goes to the chosen worker's queue (BullMQ in Redis), which that worker consumes.
 *
 * Any server or worker may run placement passes; the store makes concurrent passes safe. A
 * quick pass (it only places) runs when a job is submitted or a worker frees a slot; a full pass
 * (which also gives wait reasons and parks jobs no live worker can take) when a worker registers
 * or leaves, and once a second (also as a safety net).
 *
 * Also here: what jobs workers can take ({@link checkWorkerJob}) and the cluster's queues.
 * @module
 */
import { BadRequestError, type JobDescription } from '@jobwire/client';
import { LocalExecutor } from '../executors/local/index.js';
import { UNLIMITED_AT_ONCE, type QueueDef } from '../executors/types.js';
import type { ClusterStore, HandOver, HandOvers, PlacedJob, Placement, PlacementPass } from '../store/cluster.js';

/** Jobs looked at per pass. */
const SCAN = 500;
/** A job placed within this many milliseconds gets no wait reason (no event for a quick start). */
const PATIENCE_MS = 1000;

/** Runs placement passes for one process, coalescing requests. */
export class Placer {
  readonly #store: ClusterStore;
  readonly #handOvers: HandOvers;
  readonly #onError: (err: unknown) => void;
  #running: Promise<void> | undefined;
  /** Another pass was asked for while one ran: 'quick' or 'full'. */
  #again: 'quick' | 'full' | undefined;
  #closed = false;
  /** The node of this process (a worker) and how it takes its own placements, if it does. */
  #local: { node: string; take: (jobs: readonly PlacedJob[]) => void } | undefined;

  constructor(store: ClusterStore, onError: (err: unknown) => void) {
    this.#store = store;
    this.#onError = onError;
    this.#handOvers = store.handOvers(onError);
  }

  /**
   * Asks for a pass soon (several requests while one runs make one more pass, full if any of
   * them was). A quick pass only places; `full` also gives wait reasons and parks the jobs no
   * live worker can take.
   */
  poke(full = false): void {
    if (this.#closed) return;
    if (this.#running) {
      if (full || this.#again === undefined) this.#again = full ? 'full' : 'quick';
      return;
    }
    this.#running = this.#passes(full)
      .catch((err: unknown) => {
        if (!this.#closed) this.#onError(err);
      })
      .finally(() => {
        this.#running = undefined;
        const again = this.#again;
        this.#again = undefined;
        if (again !== undefined && !this.#closed) this.poke(again === 'full');
      });
  }

  /** Resolves when no pass is running. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Jobs this process's passes place on `node` (its own worker) go to `take` at once instead of
   * through the node's hand-over queue: the slot is reserved by the same placement step, so
   * the queue's round trips (add, delivery, completion) would only hand them back to this
   * process. `undefined` turns it off (the worker stops taking jobs).
   */
  takeOwn(local: { node: string; take: (jobs: readonly PlacedJob[]) => void } | undefined): void {
    this.#local = local;
  }

  /** Hands jobs placed on `node` to it (again): idempotent per attempt. */
  handOver(node: string, jobs: readonly HandOver[]): Promise<void> {
    return this.#handOvers.add(node, jobs);
  }

  /** Forgets a node's hand-over queue and what it held (the node is gone, or starts afresh). */
  dropNodeQueue(node: string): Promise<void> {
    return this.#handOvers.drop(node);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.idle().catch(() => undefined);
    await this.#handOvers.close();
  }

  /** A quick pass's settings, for a store step that runs one itself (`finishRunAndPlace`). */
  quickPass(): PlacementPass {
    return { scan: SCAN, patienceMs: PATIENCE_MS, unlimitedSlots: UNLIMITED_AT_ONCE, quick: true };
  }

  /**
   * Hands over what a pass run elsewhere (`finishRunAndPlace`) placed, as a pass of this placer
   * would; asks for another pass when that one said more jobs wait than it looked at.
   */
  placed(placement: Placement): void {
    if (this.#closed || placement.placed.length === 0) return;
    this.#distribute(placement.placed).catch((err: unknown) => {
      if (!this.#closed) this.#onError(err);
    });
    if (placement.more) this.poke();
  }

  async #passes(full: boolean): Promise<void> {
    // The first pass as asked; the passes that follow only place, and run only after a pass that
    // placed jobs and looked at as many as it may with room left (more jobs than that wait): one
    // pass places every job that fits among those it looked at, and what frees room or adds a
    // job meanwhile asks for a pass of its own.
    for (let quick = !full; ; quick = true) {
      const { placed, more } = await this.#store.placeJobs({ ...this.quickPass(), quick });
      if (placed.length === 0 || this.#closed) return;
      await this.#distribute(placed);
      if (!more) return;
    }
  }

  /** Jobs placed on this process's own node go to it at once; the others to their node's queue. */
  async #distribute(placed: readonly PlacedJob[]): Promise<void> {
    const local = this.#local;
    const own = placed.filter((job) => job.node === local?.node);
    if (own.length > 0) local!.take(own);
    const byNode = new Map<string, HandOver[]>();
    for (const { jobId, node, attempt } of placed) {
      if (node === local?.node) continue;
      let list = byNode.get(node);
      if (!list) byNode.set(node, (list = []));
      list.push({ jobId, attempt });
    }
    await Promise.all([...byNode].map(([node, jobs]) => this.handOver(node, jobs)));
  }
}

/** Checks submissions as the workers' local executors would. */
const LOCAL = new LocalExecutor({ multiSlots: 1 });

/**
 * What a worker's local executor refuses, plus: no named executor (a worker chooses where its
 * jobs run), retries only for batch jobs (an interactive
 * job's input went to the process that was lost, so it cannot start over). Throws a
 * BadRequestError naming the field.
 */
export function checkWorkerJob(description: JobDescription): void {
  if (description.executor !== undefined && description.executor !== 'local') {
    throw new BadRequestError(`no executor named "${description.executor}": in distributed mode each worker runs its jobs where its --executor says; leave "executor" out (or use pools)`, { code: 'invalid_description', field: 'executor' });
  }
  LOCAL.check(description);
  if ((description.retries ?? 0) > 0 && description.interactive === true) {
    throw new BadRequestError('retries are for batch jobs: an interactive job cannot be started again', { code: 'unsupported', field: 'retries' });
  }
}

/**
 * The queues of a cluster, as the workers' local executors name them, with the cluster's limits:
 * `single` runs one job per live worker, `multi` one per slot of every live worker, `unlimited`
 * has none.
 */
export async function clusterQueues(store: ClusterStore): Promise<QueueDef[]> {
  const { workers, slots } = await store.liveCapacity();
  return [
    { name: 'single', limit: workers },
    { name: 'multi', limit: slots },
    { name: 'unlimited', limit: null },
  ];
}
