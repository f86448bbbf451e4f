/**
 * Small internal helpers shared by the SDK's modules. Not exported from the package.
 * @module
 */

/** A promise with its settle functions outside, for state machines driven by socket events. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

/** Creates a {@link Deferred}. */
export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** True in Node (not in browsers, whatever a bundler defines). */
export function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

/**
 * UTF-8 encodes strings; copies byte arrays so a caller may reuse its buffer at once.
 * (`new Uint8Array(view)` copies even for a Node Buffer, whose `slice` would not.)
 */
export function toBytes(data: Uint8Array | string): Uint8Array<ArrayBuffer> {
  return typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data);
}

/** A sleep that can be cut short (detach, close) without leaving a timer to hold Node open. */
export class Sleeper {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | undefined;

  /** Resolves after `ms`, or at once when {@link Sleeper.cancel} is called. */
  sleep(ms: number): Promise<void> {
    this.cancel();
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(() => this.cancel(), ms);
    });
  }

  /** True while a sleep is pending. */
  get sleeping(): boolean {
    return this.wake !== undefined;
  }

  /** Ends the current sleep now. */
  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * Reconnect delays: 50 ms doubling to 2 s. Exported inside the package so attach and events
 * back off the same way.
 */
export const BACKOFF = { first: 50, max: 2000 } as const;

/** Bytes from base64 text (in Node and in browsers). */
export function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
