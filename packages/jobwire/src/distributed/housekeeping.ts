/**
 * The housekeeping every server and worker of a cluster does, once per `liveness.reapEveryMs`:
 * look for dead workers (settling their jobs and forgetting their hand-over queues), then a
 * placement pass; a worker adds a check of its own jobs. One pass at a time: a pass still
 * running when the next is due makes that one skip.
 * @module
 */
import type { WorkerReapedEvent } from '../jobs/events.js';
import type { ClusterStore } from '../store/cluster.js';
import type { Placer } from './placement.js';
import { reapDeadWorkers, type Liveness, type ReapedWorker } from './registry.js';

/** Options of {@link Housekeeping}. */
export interface HousekeepingOptions {
  store: ClusterStore;
  placer: Placer;
  /** Reaping timings (checked by the caller: see `checkLiveness`). */
  liveness: Liveness;
  /** A dead worker was removed and its jobs settled. */
  onReaped(worker: ReapedWorker): void;
  /** A pass failed (the next one runs as usual). */
  onError(err: unknown): void;
  /** More work at the end of each pass. @defaultValue none */
  more?: () => Promise<void>;
}

/** Runs housekeeping passes until stopped. */
export class Housekeeping {
  readonly #options: HousekeepingOptions;
  readonly #timer: NodeJS.Timeout;
  #pass: Promise<void> | undefined;
  #stopped = false;

  /** Starts the passes (the first after one interval). */
  constructor(options: HousekeepingOptions) {
    this.#options = options;
    this.#timer = setInterval(() => this.#tick(), options.liveness.reapEveryMs);
  }

  /** Starts no more passes; resolves once the pass in progress, if any, has ended. */
  stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    return this.#pass ?? Promise.resolve();
  }

  #tick(): void {
    if (this.#pass || this.#stopped) return;
    this.#pass = this.#once()
      .catch((err: unknown) => this.#options.onError(err))
      .finally(() => {
        this.#pass = undefined;
      });
  }

  async #once(): Promise<void> {
    const { store, placer, liveness } = this.#options;
    for (const reaped of await reapDeadWorkers(store, liveness)) {
      this.#options.onReaped(reaped);
      await placer.dropNodeQueue(reaped.name);
    }
    placer.poke(true);
    await this.#options.more?.();
  }
}

/** Logs a reaped worker (servers and workers log it alike). */
export function reportReaped(log: { warn(data: object, message: string): void }, reaped: ReapedWorker): void {
  log.warn({ node: reaped.name, lost: reaped.lost.map((j) => j.id), retried: reaped.retried.map((j) => j.id) }, 'worker stopped answering; its jobs were settled');
}

/** The payload of `worker:reaped`. */
export function reapedEvent(reaped: ReapedWorker): WorkerReapedEvent {
  return { node: reaped.name, lost: reaped.lost.map((j) => j.id), retried: reaped.retried.map((j) => j.id) };
}
