/**
 * Stops that end in bounded time. A server or worker of distributed mode waits for Redis on
 * every step of its stop (marking jobs Lost, leaving the registry, closing queues), and its
 * connections wait for Redis to come back rather than fail. So a stop takes an `AbortSignal`:
 * when it aborts, the handle gives up on Redis. It drops its connections (no more reconnect
 * attempts), and every step still waiting then, or started later, gets {@link SETTLE_MS} to
 * finish before it is left behind: ioredis does not fail the commands it queued for a
 * connection that is down when that connection is dropped, so waiting for them to fail could
 * take for ever. What was left undone is reported. `jobwire server` and `jobwire worker` abort it {@link GIVE_UP_AFTER_SECONDS} after the
 * signal (plus the jobs' grace period) and exit {@link STOP_TIMEOUT_SECONDS} after it at the latest.
 * @module
 */

/** A stop gives up on Redis this long after it began (plus the grace period of running jobs). */
export const GIVE_UP_AFTER_SECONDS = 7;
/** A stop ends this long after it began (plus the grace period of running jobs), whatever happens. */
export const STOP_TIMEOUT_SECONDS = 10;
/** After giving up on Redis, how long the remaining steps of a stop may still take, together. */
export const SETTLE_MS = 2000;

/** Options of a handle's `close()`. */
export interface CloseOptions {
  /**
   * When it aborts, the stop stops waiting for Redis: its connections are dropped, and what
   * still needed them is reported in {@link StopReport.unsettled} instead of waited for.
   * @defaultValue undefined (wait as long as it takes)
   */
  signal?: AbortSignal;
  /**
   * Also stop the running jobs (`jobwire server stop --jobs`): they end Lost with the stop as the
   * reason. By default the embedded backend leaves them running on the job host, for the next
   * server of the home to follow. @defaultValue false
   */
  stopJobs?: boolean;
}

/** What a stop could not finish. */
export interface StopReport {
  /** One line per step that failed or was cut short, saying what is left undone. */
  unsettled: string[];
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const CUT = Symbol('cut short');

/** The steps of one stop: runs them in order, notes which failed or were cut short. */
export class StopSteps {
  readonly #unsettled: string[] = [];
  /** Resolves {@link SETTLE_MS} after giving up on Redis; never without. */
  readonly #cut: Promise<typeof CUT>;
  #gaveUp = false;
  readonly #why: string;

  /**
   * @param onGiveUp - drops the connections to Redis; called once, when `signal` aborts.
   * @param why - why a step cut short was left undone, as the report says it (a server on the
   *   embedded store has no Redis to blame: its steps are cut only by the deadline).
   */
  constructor(signal: AbortSignal | undefined, onGiveUp: () => void, why = 'Redis did not answer') {
    this.#why = why;
    this.#cut = new Promise((resolve) => {
      const giveUp = (): void => {
        this.#gaveUp = true;
        setTimeout(() => resolve(CUT), SETTLE_MS);
        try {
          onGiveUp();
        } catch (err) {
          this.#unsettled.push(`dropping the connections to Redis: ${describe(err)}`);
        }
      };
      if (signal?.aborted) giveUp();
      else signal?.addEventListener('abort', giveUp, { once: true });
    });
  }

  /** Whether the stop gave up on Redis. */
  get gaveUp(): boolean {
    return this.#gaveUp;
  }

  /** Runs one step; its failure, or its being left behind after giving up, is noted, never thrown. */
  async run(what: string, step: () => unknown): Promise<void> {
    try {
      // Past the deadline a step still gets one turn of the event loop: enough for one that
      // needs no answer from Redis (dropping a connection, closing a socket that is gone).
      const late = this.#cut.then(() => new Promise<typeof CUT>((resolve) => setImmediate(() => resolve(CUT))));
      const outcome = await Promise.race([Promise.resolve().then(step), late]);
      if (outcome === CUT) this.#unsettled.push(`${what}: left undone (${this.#why})`);
    } catch (err) {
      this.#unsettled.push(`${what}: ${describe(err)}`);
    }
  }

  /** Notes something left undone outside any step. */
  note(line: string): void {
    this.#unsettled.push(line);
  }

  /** What is left undone so far. */
  report(): StopReport {
    return { unsettled: [...this.#unsettled] };
  }
}
