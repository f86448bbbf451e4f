/**
 * Subscriptions over the network take a moment to become active, but callers do what they do
 * with a local store: subscribe, then read the current state, and rely on hearing every change
 * after the read. The gate makes that hold: while a subscription is being set up, operations
 * of the same store wait for it, so any read issued after `subscribe()` runs in Redis after the
 * subscription is active — whatever changed before is in the read, whatever changes after is
 * delivered.
 *
 * Operations that do not have to wait run at once, in call order (no extra tick), so
 * un-awaited appends keep their order; operations that wait run in call order too.
 * @module
 */

/** Holds operations back while subscriptions are being set up. */
export class Gate {
  #pending: Promise<void> | undefined;

  /** Makes later operations wait until `setup` settled (its failure does not block them). */
  hold(setup: Promise<unknown>): void {
    const settled = setup.then(
      () => undefined,
      () => undefined,
    );
    const gate = this.#pending ? Promise.all([this.#pending, settled]).then(() => undefined) : settled;
    this.#pending = gate;
    // Registered before any waiting operation, so it runs first once the gate opens.
    void gate.then(() => {
      if (this.#pending === gate) this.#pending = undefined;
    });
  }

  /** Runs `operation` now, or once the subscriptions set up so far are active. */
  run<T>(operation: () => Promise<T>): Promise<T> {
    const pending = this.#pending;
    return pending ? pending.then(operation) : operation();
  }
}
