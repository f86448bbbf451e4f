/**
 * A producer's output window: how far a network job's output may run ahead of what the server
 * has turned into frames of its pipes. A job's output is stored as it comes, as any job's, so a
 * `block` pipe that stops the server reading it would not by itself stop the job. A producer
 * with a blocking pipe is therefore submitted with `outputWindow` ({@link OUTPUT_WINDOW_BYTES}):
 * its job host reads its output at most that far beyond what the server has acknowledged, and
 * the server acknowledges (`output-ack` control messages) as its pipes take the output. When a
 * pipe is full the drain stops taking, the acks stop, and once the window is used up the host
 * stops reading the job's stdout: the job blocks in its write as on a full OS pipe. `drop-*`
 * and `latest` pipes keep their producer going: they get no window.
 * @module
 */
import type { Store } from '../store/types.js';

/** Bytes of a producer's output read beyond what its pipes took before its job host stops reading. */
export const OUTPUT_WINDOW_BYTES = 256 * 1024;

/** The acknowledging side of a producer's output window. */
export class OutputWindow {
  /** End of what the server has taken of the job's output. */
  #taken = 0;
  /** The newest end acknowledged. */
  #acked = 0;
  #closed = false;
  /** Acks go out one after another, in order. */
  #sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly id: string,
    readonly max: number = OUTPUT_WINDOW_BYTES,
  ) {}

  /** The server has taken the job's output up to merged position `end`: acknowledged once it moved a quarter window. */
  taken(end: number): void {
    if (this.#closed || end <= this.#taken) return;
    this.#taken = end;
    if (end - this.#acked < this.max / 4) return;
    this.#acked = end;
    // A job that has ended (or a store that closed) needs no more acks.
    this.#sending = this.#sending.then(() => this.store.streams.sendControl(this.id, { type: 'output-ack', end })).catch(() => {});
  }

  close(): void {
    this.#closed = true;
  }
}
