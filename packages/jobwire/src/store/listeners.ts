/**
 * Synchronous listener sets for live events. A listener that throws must not stop the others
 * nor fail the store operation that emitted (its change is committed by then), so each call is
 * isolated and its error handed to a reporter.
 * @module
 */

/** Receives errors thrown by event listeners. */
export type ListenerErrorHandler = (error: unknown) => void;

/** The default reporter: a process warning, so the bug is visible but nothing crashes. */
export function warnListenerError(error: unknown): void {
  const warning = error instanceof Error ? error : new Error(String(error));
  process.emitWarning(warning, { type: 'JobwireListenerError' });
}

/** An ordered set of listeners of one event type. */
export class ListenerSet<T> {
  readonly #listeners = new Set<(event: T) => void>();

  constructor(private readonly onError: ListenerErrorHandler) {}

  /** Number of listeners. */
  get size(): number {
    return this.#listeners.size;
  }

  /** Adds a listener; returns its remover (safe to call twice). */
  add(listener: (event: T) => void): () => void {
    // Wrapped so the same function subscribed twice gets two deliveries and two removers.
    const entry = (event: T): void => listener(event);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Calls every listener with `event`, in the order they were added. */
  emit(event: T): void {
    if (this.#listeners.size === 0) return;
    // A snapshot, like EventEmitter: a listener added while emitting starts with the next event.
    for (const listener of Array.from(this.#listeners)) {
      try {
        listener(event);
      } catch (error) {
        this.onError(error);
      }
    }
  }
}
