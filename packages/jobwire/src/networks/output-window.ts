/**
 * A producer's output window: how far a network job's stored output may run ahead of what the
 * server has turned into frames of its pipes. A job's output is stored as it comes, as any job's,
 * so a `block` pipe that stops the server reading it would not stop the job: the window does.
 * Once more than {@link OutputWindow.max} bytes are stored and not yet taken, the server sends
 * the job's runner a `hold-output` control message (the job host then stops reading the job's
 * stdout, and the job blocks in its write as on a full OS pipe); once the backlog is down to
 * half, it releases it. Only producers with a blocking pipe get a window: `drop-*` and `latest`
 * pipes keep their producer going.
 * @module
 */
import type { Store, StreamEvent } from '../store/types.js';

/** Bytes of a producer's output stored and not yet framed before the server holds it. */
export const OUTPUT_WINDOW_BYTES = 256 * 1024;

export class OutputWindow {
  /** End of the job's stored output, as far as this window has heard. */
  #end = 0;
  /** End of what the server has taken from it. */
  #taken = 0;
  #held = false;
  #closed = false;
  /** Control messages go out one after another, in order. */
  #sending: Promise<void> = Promise.resolve();
  readonly #unsubscribe: () => void;

  constructor(
    private readonly store: Store,
    private readonly id: string,
    readonly max: number = OUTPUT_WINDOW_BYTES,
  ) {
    this.#unsubscribe = store.streams.subscribe(id, (event: StreamEvent) => {
      if (event.type === 'output') {
        this.#end = Math.max(this.#end, event.chunk.pos + event.chunk.data.byteLength);
        this.#check();
      } else if (event.type === 'output-closed') this.close();
    });
  }

  /** Whether the job is being held (for status and tests). */
  get held(): boolean {
    return this.#held;
  }

  /** The server has taken the job's output up to merged position `end`. */
  taken(end: number): void {
    if (end > this.#taken) this.#taken = end;
    this.#end = Math.max(this.#end, end);
    this.#check();
  }

  /** Stops watching; a job still held is released (its output goes on being stored as any job's). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    if (this.#held) this.#send(false);
    this.#held = false;
  }

  #check(): void {
    if (this.#closed) return;
    const backlog = this.#end - this.#taken;
    if (!this.#held && backlog > this.max) {
      this.#held = true;
      this.#send(true);
    } else if (this.#held && backlog <= this.max / 2) {
      this.#held = false;
      this.#send(false);
    }
  }

  #send(hold: boolean): void {
    // A job that has ended (or a store that closed) has nothing left to hold.
    this.#sending = this.#sending.then(() => this.store.streams.sendControl(this.id, { type: 'hold-output', hold })).catch(() => {});
  }
}
