/**
 * Follows a job's merged output from a cursor: replays what is stored, then follows live, and
 * hands each byte to a sink exactly once and in order. The live session (`session.ts`), which
 * every protocol that streams output uses (the WebSocket attach session, the gRPC interactive
 * call), is the sink of one of these, so the replay/live/flow-control rules live in one place.
 *
 * Memory stays bounded: the follower holds no output of its own. When the sink has no room it
 * stops; when the sink has room again it reads on from the stream log, which holds everything.
 * @module
 */
import type { OutputChunk } from '@jobwire/client';
import type { FinalStatus, StreamLog } from '../store/types.js';

/**
 * Bytes read from storage per step: one attach message's worth (`OUTPUT_MESSAGE_BYTES`), so a
 * replay from a store whose reads take a round trip each (Redis) still goes out in messages of
 * up to 1 MiB, not in one message per read.
 */
const READ_STEP = 1024 * 1024;

/** Where a follower delivers. */
export interface OutputSink {
  /** True while the sink can take another chunk now (not paused, transport not full). */
  canTake(): boolean;
  /** Takes the next chunk; it starts exactly at the previous chunk's end. */
  take(chunk: OutputChunk): void;
  /**
   * Called once, after the last byte, when the output is closed; with how the job ended when
   * the close recorded it (read with the last page, so it cannot race the close).
   */
  end(final: FinalStatus | undefined): Promise<void>;
  /** Called when storage cannot be read. */
  fail(err: unknown): void;
}

/** A cursor into a job's merged output that feeds a sink. */
export class OutputFollower {
  private pumping = false;
  private pumpAgain = false;
  private ended = false;

  constructor(
    private readonly streams: StreamLog,
    private readonly jobId: string,
    /** Merged-output position of the next byte to deliver. */
    public cursor: number,
    private readonly sink: OutputSink,
  ) {}

  /**
   * A chunk that was just appended: delivered at once when it is exactly next and the sink has
   * room (the low-latency path, no storage read), otherwise picked up by a pump from storage.
   */
  offer(chunk: OutputChunk): void {
    if (!this.pumping && chunk.pos === this.cursor && this.sink.canTake()) this.deliver(chunk);
    else if (chunk.pos + chunk.data.byteLength > this.cursor) this.pump();
  }

  /** Reads on from storage while the sink has room; ends the sink when closed output is all sent. */
  pump(): void {
    if (this.ended) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.loop()
      .catch((err: unknown) => this.sink.fail(err))
      .finally(() => {
        this.pumping = false;
        if (this.pumpAgain) {
          this.pumpAgain = false;
          this.pump();
        }
      });
  }

  private async loop(): Promise<void> {
    while (!this.ended && this.sink.canTake()) {
      this.pumpAgain = false;
      const { chunks, end, closed, final } = await this.streams.readOutput(this.jobId, this.cursor, READ_STEP);
      for (const chunk of chunks) {
        if (this.ended) return;
        this.deliver(chunk);
      }
      if (chunks.length > 0) continue;
      if (closed && this.cursor >= end) {
        this.ended = true;
        await this.sink.end(final);
      }
      return;
    }
  }

  /** Trims what the sink already has, advances the cursor, delivers the rest. */
  private deliver(chunk: OutputChunk): void {
    let { data, pos, offset } = chunk;
    if (pos + data.byteLength <= this.cursor) return;
    if (pos < this.cursor) {
      const skip = this.cursor - pos;
      data = data.subarray(skip);
      pos += skip;
      offset += skip;
    }
    this.cursor = pos + data.byteLength;
    this.sink.take({ channel: chunk.channel, pos, offset, data });
  }
}
