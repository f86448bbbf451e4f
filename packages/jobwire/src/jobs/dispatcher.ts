/**
 * The embedded dispatcher: starts Queued jobs of each queue while the queue has free slots.
 * One per embedded server (`backends/embedded.ts`); distributed mode replaces it with workers
 * that are handed jobs by placement. Shutdown is its signal aborting (see {@link DispatcherOptions}).
 * @module
 */
import { UNLIMITED_AT_ONCE, type ExecutorState, type QueueDef } from '../executors/types.js';
import type { JobRecord } from '../store/types.js';
import { runJob, type RunnerContext } from './runner.js';

/** Options of a {@link Dispatcher}. */
export interface DispatcherOptions {
  /**
   * Aborts when the server shuts down: no job starts after it, and the running ones are stopped
   * and end Lost with its reason. @defaultValue never aborts
   */
  signal?: AbortSignal;
  /** Hears the job as each run finished it (e.g. Lost at shutdown). @defaultValue none */
  onFinished?(job: JobRecord): void;
}

/** Starts queued jobs in their queues' limits. */
export class Dispatcher {
  private readonly running = new Map<string, Set<string>>();
  private readonly runs = new Set<Promise<void>>();
  private scheduled = false;
  private draining: Promise<void> | undefined;
  /** Queues that may hold Queued jobs not yet looked at; saves a query per queue per pass. */
  private readonly pending = new Set<string>();

  constructor(
    private readonly ctx: RunnerContext,
    private readonly queues: QueueDef[],
    private readonly options: DispatcherOptions = {},
  ) {
    for (const q of queues) this.running.set(q.name, new Set());
  }

  /** Whether the shutdown signal aborted: nothing starts any more. */
  private get stopped(): boolean {
    return this.options.signal?.aborted === true;
  }

  /** Jobs this dispatcher is running now, per queue. */
  runningCount(queue: string): number {
    return this.running.get(queue)?.size ?? 0;
  }

  /**
   * Looks for work soon (coalesces many calls into one pass). With a queue name, only that queue
   * may have new work; without, every queue is looked at.
   */
  poke(queue?: string): void {
    if (queue === undefined) for (const q of this.queues) this.pending.add(q.name);
    else {
      // A queue an executor offered after the start (a Slurm partition read once Slurm answered):
      // its limits are the executor's own, so none here.
      if (!this.running.has(queue)) {
        this.queues.push({ name: queue, limit: null });
        this.running.set(queue, new Set());
      }
      this.pending.add(queue);
    }
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.fill();
    });
  }

  private async fill(): Promise<void> {
    if (this.draining) {
      // A pass is under way; run one more after it so nothing queued meanwhile is missed.
      await this.draining;
      if (!this.draining) this.poke();
      return;
    }
    this.draining = this.fillOnce();
    try {
      await this.draining;
    } finally {
      this.draining = undefined;
    }
  }

  private async fillOnce(): Promise<void> {
    for (const q of this.queues) {
      const active = this.running.get(q.name)!;
      const free = q.limit === null ? UNLIMITED_AT_ONCE : q.limit - active.size;
      if (free <= 0 || !this.pending.has(q.name)) continue;
      let jobs: JobRecord[];
      const asked = free + active.size;
      try {
        jobs = await this.ctx.store.queuedJobs(q.name, asked);
      } catch (err) {
        this.ctx.onError(err, '(dispatcher)');
        continue;
      }
      // Fewer rows than asked: every Queued job of this queue is in hand, until the next submit.
      if (jobs.length < asked) this.pending.delete(q.name);
      let started = 0;
      for (const job of jobs) {
        if (started >= free || this.stopped) break;
        if (active.has(job.id)) continue;
        started++;
        this.#run(job);
      }
      if (q.limit === null && jobs.length >= asked) this.poke(q.name);
    }
  }

  /**
   * Follows a job a restart found Running (see `RunOptions.resume`): it holds a slot of its
   * queue like a job started here. Call before the first {@link poke}.
   */
  resume(job: JobRecord, state: ExecutorState): void {
    this.#run(job, state);
  }

  #run(job: JobRecord, resume?: ExecutorState): void {
    let active = this.running.get(job.queue);
    if (active === undefined) this.running.set(job.queue, (active = new Set()));
    const slots = active;
    slots.add(job.id);
    const run = runJob(this.ctx, job, { ...(this.options.signal ? { signal: this.options.signal } : {}), ...(resume !== undefined ? { resume } : {}) })
      .then((finished) => {
        if (finished) this.options.onFinished?.(finished);
      })
      .catch((err: unknown) => this.ctx.onError(err, job.id))
      .finally(() => {
        slots.delete(job.id);
        this.runs.delete(run);
        this.poke(job.queue);
      });
    this.runs.add(run);
  }

  /** Resolves when every started run has finished. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.runs]);
  }
}
