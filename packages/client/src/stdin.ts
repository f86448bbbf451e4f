/**
 * The stdin half of an attachment: offsets, the server's window, resend after a reconnect and
 * end-of-input. Writes go through a {@link QueuedIterator} drained by one pump, so frames leave
 * in write order and `end()` follows the last write.
 * @module
 */
import type { StdinWriter } from './api.js';
import { ConflictError } from './errors.js';
import { DEFAULT_STDIN_WINDOW, encodeClose, encodeStdin, type HelloFrame } from './protocol.js';
import { QueuedIterator } from './queued-iterator.js';
import { deferred, toBytes, type Deferred } from './util.js';

/** Largest STDIN frame body the SDK sends. */
export const MAX_STDIN_FRAME = 64 * 1024;

/** A write (bytes) or the end marker (no bytes), with the promise handed to the caller. */
interface Piece {
  bytes: Uint8Array | undefined;
  done: Deferred<void>;
}

/** Bytes sent but not yet known to be stored by the server. */
interface Sent {
  offset: number;
  data: Uint8Array;
}

/**
 * Stdin of one attachment. The owner reports the connection's life ({@link StdinChannel.connected},
 * {@link StdinChannel.disconnected}, {@link StdinChannel.ack}, {@link StdinChannel.finish}); the
 * channel sends frames through the `send` callback given at construction.
 */
export class StdinChannel implements StdinWriter {
  private readonly pieces = new QueuedIterator<Piece>();
  /** Offset of the next byte to send. */
  private sent = 0;
  /** Bytes the job has read (from STDIN_ACK). */
  private consumed = 0;
  private window = DEFAULT_STDIN_WINDOW;
  private unacked: Sent[] = [];
  private open = false;
  private greeted = false;
  private closeSent = false;
  private ending: Promise<void> | undefined;
  /** Why writes are refused from the start (not interactive, stdin closed by someone). */
  private refusal: ConflictError | undefined;
  private alreadyClosed = false;
  private failure: unknown;
  private jobEnded = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly jobId: string,
    private readonly send: (frame: Uint8Array) => void,
  ) {
    void this.pump();
  }

  /**
   * Queues `data` (strings as UTF-8). Resolves once every byte has been sent within the server's
   * window (`consumed + window`), which is the backpressure a fast writer should await.
   */
  write(data: Uint8Array | string): Promise<void> {
    const refused = this.refused();
    if (refused) return Promise.reject(refused);
    if (this.ending) return Promise.reject(new ConflictError(`stdin of job ${this.jobId} was ended: no writes after end()`));
    const done = deferred<void>();
    this.pieces.push({ bytes: toBytes(data), done });
    return done.promise;
  }

  /** Sends end-of-input once everything written before has been sent. Idempotent. */
  end(): Promise<void> {
    if (this.ending) return this.ending;
    if (this.alreadyClosed || this.jobEnded) return (this.ending = Promise.resolve());
    const refused = this.refused();
    if (refused) return Promise.reject(refused);
    const done = deferred<void>();
    this.ending = done.promise;
    this.pieces.push({ bytes: undefined, done });
    this.pieces.stop();
    return done.promise;
  }

  /** A connection greeted us: start offsets (first time) or resend what the server lacks. */
  connected(hello: HelloFrame): void {
    if (!this.greeted) {
      this.greeted = true;
      this.sent = this.consumed = hello.stdinOffset;
      if (!hello.interactive) {
        this.refusal = new ConflictError(`job ${this.jobId} is not interactive: submit it with interactive: true to write to its stdin`);
      } else if (hello.stdinClosed) {
        this.refusal = new ConflictError(`stdin of job ${this.jobId} is closed`);
        this.alreadyClosed = true;
      }
    } else {
      // The server keeps what it accepted; everything after that is sent again (it drops
      // overlaps by offset, so nothing is doubled).
      this.dropBelow(hello.stdinOffset);
      for (const piece of this.unacked) this.send(encodeStdin(piece.offset, piece.data));
      if (this.closeSent && !hello.stdinClosed) this.send(encodeClose(0));
    }
    this.open = true;
    this.wake();
  }

  /** The connection dropped; hold writes until the next one. */
  disconnected(): void {
    this.open = false;
  }

  /** A STDIN_ACK: the job has read `consumed` bytes and allows `window` more in flight. */
  ack(consumed: number, window: number): void {
    this.consumed = Math.max(this.consumed, consumed);
    this.window = window;
    this.dropBelow(this.consumed);
    this.wake();
  }

  /**
   * No more stdin: pending and later writes reject with `err`. When the job ended (`jobEnded`),
   * a pending `end()` resolves instead, since the input is over either way.
   */
  finish(err: unknown, jobEnded: boolean): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.jobEnded = jobEnded;
    this.open = false;
    this.unacked = [];
    this.pieces.stop();
    this.wake();
  }

  private refused(): unknown {
    return this.failure ?? this.refusal;
  }

  private async pump(): Promise<void> {
    for await (const piece of this.pieces) {
      try {
        if (piece.bytes) await this.sendBytes(piece.bytes);
        else await this.sendClose();
        piece.done.resolve();
      } catch (err) {
        piece.done.reject(err);
      }
    }
  }

  private async sendBytes(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.byteLength) {
      await this.until(() => this.consumed + this.window > this.sent);
      const n = Math.min(bytes.byteLength - at, MAX_STDIN_FRAME, this.consumed + this.window - this.sent);
      const data = bytes.subarray(at, at + n);
      this.unacked.push({ offset: this.sent, data });
      this.send(encodeStdin(this.sent, data));
      this.sent += n;
      at += n;
    }
  }

  private async sendClose(): Promise<void> {
    try {
      await this.until(() => true);
    } catch (err) {
      if (this.jobEnded) return;
      throw err;
    }
    this.send(encodeClose(0));
    this.closeSent = true;
  }

  /** Waits until connected and `ready()` holds; throws once the channel is finished. */
  private async until(ready: () => boolean): Promise<void> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.open && ready()) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private dropBelow(offset: number): void {
    while (this.unacked.length > 0) {
      const first = this.unacked[0]!;
      const end = first.offset + first.data.byteLength;
      if (end <= offset) {
        this.unacked.shift();
      } else {
        if (first.offset < offset) this.unacked[0] = { offset, data: first.data.subarray(offset - first.offset) };
        return;
      }
    }
  }
}
