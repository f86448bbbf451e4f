/**
 * Timers for delays that users choose (maxRuntime, grace periods, wait timeouts). Node's
 * `setTimeout` takes at most 2^31-1 ms (about 24.8 days); a longer delay is replaced by 1 ms, so a
 * job with a year of maxRuntime would be stopped at once. {@link setLongTimeout} chains timers of
 * at most that length instead, so every delay fires when it should.
 *
 * Hand-written rather than a dependency: the npm packages for this are unmaintained, CommonJS,
 * and this is a dozen lines.
 * @module
 */

/** The longest delay one `setTimeout` call honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The timer functions {@link setLongTimeout} schedules with (injectable for tests). */
export interface TimerFunctions {
  setTimeout(callback: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(timer: NodeJS.Timeout): void;
}

/** Options of {@link setLongTimeout}. */
export interface LongTimeoutOptions {
  /** Let the process exit while only this timer is pending (as `timer.unref()`). @defaultValue false */
  unref?: boolean;
  /** Where the timers come from. @defaultValue the global `setTimeout` / `clearTimeout` */
  timers?: TimerFunctions;
}

/** A pending {@link setLongTimeout}. */
export interface LongTimeout {
  /** Cancels it; harmless after it fired. */
  clear(): void;
}

const globalTimers: TimerFunctions = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer),
};

/**
 * Calls `callback` once after `ms` milliseconds, for any delay: steps of at most
 * {@link MAX_TIMER_MS} are chained until the whole delay has passed. A delay that is not a finite
 * number >= 0 is treated as 0, except `Infinity`, which never fires.
 */
export function setLongTimeout(callback: () => void, ms: number, options: LongTimeoutOptions = {}): LongTimeout {
  const timers = options.timers ?? globalTimers;
  let remaining = Number.isNaN(ms) || ms < 0 ? 0 : ms;
  let timer: NodeJS.Timeout | undefined;
  let cleared = false;
  const step = (): void => {
    if (cleared) return;
    if (remaining === Number.POSITIVE_INFINITY) return;
    const wait = Math.min(remaining, MAX_TIMER_MS);
    remaining -= wait;
    timer = timers.setTimeout(() => {
      timer = undefined;
      if (cleared) return;
      if (remaining > 0) step();
      else callback();
    }, wait);
    if (options.unref) timer.unref?.();
  };
  step();
  return {
    clear: () => {
      cleared = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      timer = undefined;
    },
  };
}
