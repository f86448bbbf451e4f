/**
 * Alignment of a job's inputs by sequence number (`align: seq`): frames of several pipes are
 * joined into sets, one per sequence number, in order. Each input is read in order, so a frame
 * is known to be missing from an input once that input shows a later sequence number (or ends).
 * What then happens to the set is the gap policy:
 *
 * | policy          | a set with a missing frame                                            |
 * |-----------------|-----------------------------------------------------------------------|
 * | `wait`          | is not emitted: only complete sets are (the others counted as dropped)  |
 * | `fill-previous` | gets that input's previous frame again, flagged *gap*                  |
 * | `fill-zero`     | gets a zero frame (`0` for JSON, empty otherwise), flagged *gap*         |
 * | `skip`          | is emitted without it: `undefined` in its place, the set flagged *gap*   |
 *
 * With `fill-previous`, an input with no previous frame yet gets a zero frame. The alignment
 * waits for every input that has not ended before it decides anything, so what it emits does
 * not depend on timing. It ends when every input has ended.
 * @module
 */
import { FrameFlag, hasFlag, type Frame } from './frame.js';
import type { GapPolicy } from '@jobwire/client';

/** One input of an alignment: something that hands out frames in order, `undefined` at the end. */
export interface FrameSource {
  next(): Promise<Frame | undefined>;
}

/** A set of aligned frames. */
export interface AlignedSet {
  seq: number;
  /** One per input, in input order; `undefined` only under `skip`. Filler frames carry the gap flag. */
  frames: Array<Frame | undefined>;
  /** True when any frame of the set is a filler or missing. */
  gap: boolean;
}

/** Options of {@link alignBySeq}. */
export interface AlignOptions {
  gap: GapPolicy;
  /** The zero payload of each input (`framing.ts` `zeroPayload`). */
  zero: (input: number) => Uint8Array;
}

/** Counters of an alignment. */
export interface AlignStats {
  /** Sets emitted. */
  sets: number;
  /** Sets emitted with a filler or a hole. */
  gaps: number;
  /** Sets not emitted (`wait`). */
  dropped: number;
}

/** Joins `inputs` by sequence number; see the module comment for the policies. */
export async function* alignBySeq(inputs: readonly FrameSource[], options: AlignOptions, stats: AlignStats = { sets: 0, gaps: 0, dropped: 0 }): AsyncGenerator<AlignedSet> {
  const heads: Array<Frame | undefined> = new Array(inputs.length).fill(undefined);
  const ended: boolean[] = new Array(inputs.length).fill(false);
  const previous: Array<Frame | undefined> = new Array(inputs.length).fill(undefined);
  const fill = async (i: number): Promise<void> => {
    if (heads[i] !== undefined || ended[i]) return;
    const frame = await inputs[i]!.next();
    if (frame === undefined || hasFlag(frame, FrameFlag.END)) ended[i] = true;
    else heads[i] = frame;
  };
  for (;;) {
    await Promise.all(inputs.map((_, i) => fill(i)));
    const live = heads.filter((h): h is Frame => h !== undefined);
    if (live.length === 0) return;
    const seq = Math.min(...live.map((h) => h.seq));
    // An input whose head is later than `seq` (or that ended) misses it: each input runs in order.
    const frames: Array<Frame | undefined> = heads.map((head, i) => {
      if (head === undefined || head.seq !== seq) return undefined;
      heads[i] = undefined;
      return head;
    });
    const complete = frames.every((f) => f !== undefined);
    if (!complete && options.gap === 'wait') {
      stats.dropped++;
      frames.forEach((f, i) => {
        if (f !== undefined) previous[i] = f;
      });
      continue;
    }
    const set: AlignedSet = { seq, frames: [], gap: !complete };
    set.frames = frames.map((frame, i) => {
      if (frame !== undefined) return frame;
      if (options.gap === 'skip') return undefined;
      const from = options.gap === 'fill-previous' ? previous[i] : undefined;
      const payload = from?.payload ?? options.zero(i);
      return { seq, index: -1, epoch: from?.epoch ?? 0, flags: FrameFlag.GAP, payload, pos: -1, end: -1 };
    });
    frames.forEach((f, i) => {
      if (f !== undefined) previous[i] = f;
    });
    stats.sets++;
    if (set.gap) stats.gaps++;
    yield set;
  }
}
