/**
 * Pipes and frames as a library: framings, frame headers, and pipes over real streams — the
 * same behaviour on the embedded store (SQLite + files) and on the Redis stream log (the test
 * Redis, a fresh key prefix per test): order, per-consumer cursors and resume, end, reset,
 * bounded queues (block, drop-oldest, drop-newest, latest) and alignment by sequence number.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Queue } from '@jobwire/client';
import {
  Deframer,
  FrameDecoder,
  FrameFlag,
  HEADER_BYTES,
  MAX_PAYLOAD_BYTES,
  PipeReader,
  PipeWriter,
  alignBySeq,
  encodeForConsumer,
  encodeFrame,
  hasFlag,
  payloadToValue,
  valueToPayload,
  zeroPayload,
  type AlignStats,
  type Frame,
} from '../../src/networks/index.js';
import { openEmbeddedStore, openRedisStore, type Store } from '../../src/store/index.js';
import { sleepUntil } from '../helpers.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';

const text = (payload: Uint8Array): string => Buffer.from(payload).toString('utf8');
const bytes = (s: string): Uint8Array => Buffer.from(s, 'utf8');

describe('framings and frame headers', () => {
  it('cuts lines whatever the pieces, keeps a last line without newline, drops \\r', () => {
    const d = new Deframer({ framing: 'lines' });
    assert.deepEqual(d.push(bytes('one\ntw')).map(text), ['one']);
    assert.deepEqual(d.push(bytes('o\r\nthr')).map(text), ['two']);
    assert.deepEqual(d.end().map(text), ['thr']);
  });

  it('checks JSON frames and skips blank lines; refuses bad JSON naming it', () => {
    const d = new Deframer({ framing: 'frames', encoding: 'json' });
    assert.deepEqual(d.push(bytes('{"a":1}\n\n[2,3]\n')).map((p) => payloadToValue({ framing: 'frames' }, p)), [{ a: 1 }, [2, 3]]);
    assert.throws(() => d.push(bytes('{nope}\n')), /not a JSON value: \{nope\}/);
  });

  it('cuts length-prefixed binary frames across pieces and refuses an end inside one', () => {
    const pipe = { framing: 'frames', encoding: 'binary' } as const;
    const stream = Buffer.concat([encodeForConsumer(pipe, Buffer.from([0, 1, 2])), encodeForConsumer(pipe, Buffer.alloc(0)), encodeForConsumer(pipe, Buffer.from('xyz'))]);
    const d = new Deframer(pipe);
    const out = [...d.push(stream.subarray(0, 5)), ...d.push(stream.subarray(5, 9)), ...d.push(stream.subarray(9))];
    assert.deepEqual(out.map((p) => Buffer.from(p).toString('hex')), ['000102', '', Buffer.from('xyz').toString('hex')]);
    d.push(Buffer.from([0, 0, 0, 9, 1]));
    assert.throws(() => d.end(), /ended inside a binary frame/);
  });

  it('turns values into payloads and back per framing, and refuses what a framing cannot carry', () => {
    assert.deepEqual(payloadToValue({ framing: 'frames' }, valueToPayload({ framing: 'frames' }, { n: [1, 'x'] })), { n: [1, 'x'] });
    assert.equal(payloadToValue({ framing: 'lines' }, valueToPayload({ framing: 'lines' }, 42)), '42');
    assert.throws(() => valueToPayload({ framing: 'lines' }, 'a\nb'), /cannot hold a newline/);
    assert.throws(() => valueToPayload({ framing: 'frames' }, undefined), /not a JSON value/);
    assert.throws(() => valueToPayload({ framing: 'bytes' }, { a: 1 }), /carries bytes/);
    assert.equal(text(zeroPayload({ framing: 'frames', encoding: 'json' })), '0');
    assert.equal(zeroPayload({ framing: 'lines' }).byteLength, 0);
  });

  it('round-trips headers (seq, index, epoch, flags) through any split of the bytes', () => {
    const a = encodeFrame({ seq: 2 ** 40, index: 7, epoch: 3, flags: FrameFlag.RESET | FrameFlag.GAP }, bytes('hello'));
    const b = encodeFrame({ seq: 5, index: 8, epoch: 3, flags: FrameFlag.END }, new Uint8Array(0));
    const all = Buffer.concat([a, b]);
    for (let cut = 0; cut <= all.byteLength; cut++) {
      const decoder = new FrameDecoder(100);
      const frames = [...decoder.push(all.subarray(0, cut)), ...decoder.push(all.subarray(cut))];
      assert.equal(frames.length, 2);
      assert.deepEqual({ ...frames[0]!, payload: text(frames[0]!.payload) }, { seq: 2 ** 40, index: 7, epoch: 3, flags: 3, payload: 'hello', pos: 100, end: 100 + a.byteLength });
      assert.ok(hasFlag(frames[1]!, FrameFlag.END) && !hasFlag(frames[1]!, FrameFlag.GAP));
      assert.equal(frames[1]!.pos, 100 + a.byteLength);
    }
  });
});

/** A store to run pipes on, and how to open it again (as a restarted process would). */
interface Harness {
  store: Store;
  reopen(): Promise<Store>;
}

type Backend = (body: (h: Harness) => Promise<void>) => Promise<void>;

const embedded: Backend = async (body) => {
  const dir = await mkdtemp(join(tmpdir(), 'jobwire-pipes-'));
  const open = (): Promise<Store> => openEmbeddedStore({ dir, onListenerError: () => {} });
  const harness = { store: await open(), reopen: async () => ((harness.store = await (await harness.store.close(), open())), harness.store) };
  try {
    await body(harness);
  } finally {
    await harness.store.close();
    await rm(dir, { recursive: true, force: true });
  }
};

const redis: Backend = async (body) => {
  const prefix = freshPrefix();
  const open = (): Promise<Store> => openRedisStore({ url: REDIS_URL, prefix, onListenerError: () => {} });
  const harness = { store: await open(), reopen: async () => ((harness.store = await (await harness.store.close(), open())), harness.store) };
  try {
    await body(harness);
  } finally {
    await harness.store.close();
    await dropPrefix(prefix);
  }
};

const queue = (over: Partial<Queue> = {}): Queue => ({ max: 64, overflow: 'block', mode: 'fifo', ...over });

/** Takes `n` frames (or all until the end when n is undefined) from a reader. */
async function take(reader: PipeReader, n?: number): Promise<Frame[]> {
  const frames: Frame[] = [];
  while (n === undefined || frames.length < n) {
    const frame = await reader.next();
    if (frame === undefined) break;
    frames.push(frame);
  }
  return frames;
}

function pipeBehaviour(name: string, withStore: Backend): void {
  describe(`pipes on ${name}`, () => {
    it('hands every frame to every consumer in order, each with its own cursor, then the end', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'p', queue: queue({ max: 1000 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['a', 'b'], ...ident });
        const a = await PipeReader.open({ streams: store.streams, consumer: 'a', ...ident });
        for (let i = 0; i < 300; i++) await writer.write(bytes(`frame ${i}`));
        const firstOfA = await take(a, 100);
        await writer.end();
        const b = await PipeReader.open({ streams: store.streams, consumer: 'b', ...ident });
        const restOfA = await take(a);
        const allOfB = await take(b);
        const expected = Array.from({ length: 300 }, (_, i) => `frame ${i}`);
        assert.deepEqual([...firstOfA, ...restOfA].map((f) => text(f.payload)), expected);
        assert.deepEqual(allOfB.map((f) => text(f.payload)), expected, 'a late consumer replays from the start');
        assert.deepEqual(allOfB.map((f) => f.seq), expected.map((_, i) => i));
        assert.equal(await a.next(), undefined, 'the end stays the end');
        a.close();
        b.close();
      });
    });

    it('follows a producer live: a waiting consumer gets frames as they are written', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'live', queue: queue() };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', ...ident });
        const got: string[] = [];
        const consuming = (async () => {
          for await (const frame of reader) got.push(text(frame.payload));
        })();
        for (let i = 0; i < 20; i++) {
          await writer.write(bytes(String(i)));
          await sleepUntil(() => got.length === i + 1, 10_000, `frame ${i} to arrive`);
        }
        await writer.end();
        await consuming;
        assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => String(i)));
      });
    });

    it('a reader that takes nothing while thousands of frames are written gets every one in order once it reads (those past its live bound from the store)', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'idle', queue: queue({ max: 100_000 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: [], ...ident });
        const tap = await PipeReader.open({ streams: store.streams, ...ident });
        const first = tap.next();
        await writer.write(bytes('frame 0'));
        assert.equal(text((await first)!.payload), 'frame 0');
        // Frames 1 to 10000 in batches, so that many live chunks come while the tap takes nothing.
        for (let i = 1; i < 10_000; i += 100) await writer.writeBatch(Array.from({ length: 100 }, (_, k) => bytes(`frame ${i + k}`)));
        await writer.end();
        const rest = await take(tap);
        assert.deepEqual(rest.map((f) => text(f.payload)), Array.from({ length: 10_000 }, (_, i) => `frame ${i + 1}`));
        assert.deepEqual(rest.map((f) => f.index), Array.from({ length: 10_000 }, (_, i) => i + 1));
        tap.close();
      });
    });

    it('a batch holding a payload over the frame limit is refused whole: nothing of it is stored or numbered, and the next frame gets the index the batch would have started at', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'oversize', queue: queue({ max: 1000 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: [], ...ident });
        const tap = await PipeReader.open({ streams: store.streams, ...ident });
        await writer.write(bytes('before'));
        await assert.rejects(writer.writeBatch([bytes('fits'), new Uint8Array(MAX_PAYLOAD_BYTES + 1), bytes('after it')]), /at most/);
        assert.equal(writer.nextIndex, 1);
        assert.equal(writer.stats.written, 1);
        await writer.write(bytes('next'));
        await writer.end();
        const frames = await take(tap);
        assert.deepEqual(frames.map((f) => [f.index, text(f.payload)]), [
          [0, 'before'],
          [1, 'next'],
        ]);
        tap.close();
      });
    });

    it('a reader closed while it waits for a frame returns the end, and stays ended', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'closing', queue: queue() };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', ...ident });
        const waiting = reader.next();
        reader.close();
        assert.equal(await waiting, undefined);
        await writer.write(bytes('late'));
        assert.equal(await reader.next(), undefined);
        writer.close();
      });
    });

    it('resumes a consumer from its last commit after the store is opened again: nothing lost, nothing twice', async () => {
      await withStore(async (h) => {
        const ident = { network: 'net', pipe: 'r', queue: queue({ max: 1000 }) };
        let writer = await PipeWriter.open({ streams: h.store.streams, consumers: ['c'], ...ident });
        for (let i = 0; i < 50; i++) await writer.write(bytes(String(i)));
        let reader = await PipeReader.open({ streams: h.store.streams, consumer: 'c', ...ident });
        const before = await take(reader, 20);
        // Asking for the 21st commits the first 20; the 21st is taken but not yet committed.
        const uncommitted = await reader.next();
        assert.equal(text(uncommitted!.payload), '20');
        await reader.flush();
        reader.close();
        writer.close();
        const store = await h.reopen();
        reader = await PipeReader.open({ streams: store.streams, consumer: 'c', ...ident });
        writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        await writer.end();
        const after = await take(reader);
        const seen = [...before, ...after].map((f) => text(f.payload));
        assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => String(i)), 'the frame taken but not committed comes again, once');
      });
    });

    it('carries frames larger than a read page, and empty ones, byte for byte', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'big', queue: queue() };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        const big = Buffer.alloc(1024 * 1024 + 3);
        for (let i = 0; i < big.byteLength; i++) big[i] = (i * 31) & 0xff;
        await writer.write(big);
        await writer.write(new Uint8Array(0));
        await writer.write(big.subarray(0, 70_000));
        await writer.end();
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', pageBytes: 64 * 1024, ...ident });
        const frames = await take(reader);
        assert.deepEqual(frames.map((f) => f.payload.byteLength), [big.byteLength, 0, 70_000]);
        assert.ok(Buffer.from(frames[0]!.payload).equals(big));
        assert.ok(Buffer.from(frames[2]!.payload).equals(big.subarray(0, 70_000)));
      });
    });

    it('reports a failed append on the next write and at the end, instead of losing the frame', async () => {
      await withStore(async ({ store }) => {
        // A store that is closed under the producer refuses the append.
        const ident = { network: 'net', pipe: 'fail', queue: queue() };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: [], ...ident });
        await store.close();
        await writer.write(bytes('lost?'));
        await assert.rejects(writer.flush(), /closed/);
        await assert.rejects(writer.write(bytes('next')), /closed/);
        await assert.rejects(writer.end(), /closed/);
      });
    });

    it('a producer that opens the pipe again starts a new epoch: its first frame carries reset, numbering goes on', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'e', queue: queue() };
        const first = await PipeWriter.open({ streams: store.streams, consumers: [], ...ident });
        await first.write(bytes('a'));
        await first.write(bytes('b'));
        first.close();
        const second = await PipeWriter.open({ streams: store.streams, consumers: [], ...ident });
        assert.equal(second.epoch, 1);
        await second.write(bytes('c'));
        await second.write(bytes('d'));
        await second.end();
        await assert.rejects(PipeWriter.open({ streams: store.streams, consumers: [], ...ident }), /has ended/);
        const tap = await PipeReader.open({ streams: store.streams, ...ident });
        const frames = await take(tap);
        assert.deepEqual(
          frames.map((f) => [text(f.payload), f.seq, f.index, f.epoch, hasFlag(f, FrameFlag.RESET)]),
          [
            ['a', 0, 0, 0, false],
            ['b', 1, 1, 0, false],
            ['c', 2, 2, 1, true],
            ['d', 3, 3, 1, false],
          ],
        );
      });
    });

    it('block: the producer waits while its slowest consumer is max frames behind; nothing is dropped', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'b', queue: queue({ max: 4 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['fast', 'slow'], ...ident });
        for (let i = 0; i < 4; i++) assert.equal(await writer.write(bytes(String(i))), true);
        let stored = false;
        const fifth = writer.write(bytes('4')).then((ok) => (stored = ok));
        const fast = await PipeReader.open({ streams: store.streams, consumer: 'fast', ...ident });
        await take(fast, 4);
        fast.commit();
        await fast.flush();
        // The fast consumer is done with all four; the slow one has taken none: only four frames are stored.
        assert.equal((await store.streams.sizes('net.net.b')).stdout, 4 * (HEADER_BYTES + 1));
        assert.equal(stored, false, 'the producer waits for the slowest consumer');
        assert.equal(writer.stats.lag, 4);
        const slow = await PipeReader.open({ streams: store.streams, consumer: 'slow', ...ident });
        await take(slow, 2);
        slow.commit();
        await fifth;
        assert.equal(stored, true);
        await writer.end();
        const rest = await take(slow);
        assert.deepEqual(rest.map((f) => text(f.payload)), ['2', '3', '4']);
        assert.equal(writer.stats.dropped, 0);
        assert.equal(slow.stats.dropped, 0);
      });
    });

    it('block with reads told: frames a consumer took count no more against the bound; the producer goes on at half the bound; the commit alone decides where the consumer resumes', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'rd', queue: queue({ max: 4 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        assert.equal(await writer.writeBatch(['0', '1', '2', '3'].map(bytes)), 4);
        let stored = false;
        const fifth = writer.write(bytes('4')).then((ok) => (stored = ok));
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', commits: 'manual', onTake: (index) => writer.noteRead('c', index), ...ident });
        assert.equal(text((await reader.next())!.payload), '0');
        assert.equal(writer.stats.lag, 3, 'one frame taken: three wait in the pipe');
        assert.equal(writer.room, 1);
        assert.equal(stored, false, 'above the low-water mark (2): the producer still waits');
        assert.equal(text((await reader.next())!.payload), '1');
        assert.equal(await fifth, true, 'two waiting: the producer goes on');
        assert.equal(writer.stats.lag, 3);
        // Nothing committed: the frames the consumer took come again to the next reader.
        reader.close();
        const again = await PipeReader.open({ streams: store.streams, consumer: 'c', commits: 'manual', onTake: (index) => writer.noteRead('c', index), ...ident });
        const all = (await again.nextBatch(5))!;
        assert.deepEqual(all.map((f) => text(f.payload)), ['0', '1', '2', '3', '4']);
        assert.equal(writer.stats.lag, 0, 'a consumer that took all, none committed: the pipe holds nothing for it');
        again.commit(again.cursorAfter(all[4]!));
        await again.flush();
        again.close();
        writer.close();
      });
    });

    it('waitForRoom: a full block queue waits until the lag fell to half the bound, not for the first commit', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'low', queue: queue({ max: 4 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        await writer.waitForRoom();
        assert.equal(await writer.writeBatch(['0', '1', '2', '3'].map(bytes)), 4);
        let roomy = false;
        const waited = writer.waitForRoom().then(() => (roomy = true));
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', commits: 'manual', ...ident });
        const frames = (await reader.nextBatch(4))!;
        reader.commit(reader.cursorAfter(frames[0]!));
        await reader.flush();
        await sleepUntil(() => writer.stats.lag === 3, 10_000, 'the commit of one frame');
        assert.equal(writer.room, 1);
        assert.equal(roomy, false, 'one free place: still waiting');
        reader.commit(reader.cursorAfter(frames[1]!));
        await waited;
        assert.equal(roomy, true);
        assert.equal(writer.room, 2);
        reader.close();
        writer.close();
      });
    });

    it('drop-newest: the producer never waits, drops past the bound are counted, what arrives is in order', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'dn', queue: queue({ max: 5, overflow: 'drop-newest' }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        const results: boolean[] = [];
        for (let i = 0; i < 12; i++) results.push(await writer.write(bytes(String(i))));
        assert.deepEqual(results, [...Array(5).fill(true), ...Array(7).fill(false)]);
        assert.equal(writer.stats.dropped, 7);
        await writer.end();
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', ...ident });
        const frames = await take(reader);
        assert.deepEqual(frames.map((f) => text(f.payload)), ['0', '1', '2', '3', '4']);
      });
    });

    it('writes batches in as few appends as the queue allows: block waits for room, drop-newest drops what does not fit', async () => {
      await withStore(async ({ store }) => {
        const blocking = { network: 'net', pipe: 'wb', queue: queue({ max: 3 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...blocking });
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', ...blocking });
        const all = Array.from({ length: 7 }, (_, i) => bytes(String(i)));
        let stored: number | undefined;
        const batch = writer.writeBatch(all).then((n) => (stored = n));
        const got: string[] = [];
        while (got.length < 7) got.push(text((await reader.next())!.payload));
        assert.equal(await batch, 7);
        assert.equal(stored, 7);
        assert.deepEqual(got, ['0', '1', '2', '3', '4', '5', '6']);
        assert.ok(writer.stats.lag <= 3);

        const dropping = { network: 'net', pipe: 'wd', queue: queue({ max: 3, overflow: 'drop-newest' }) };
        const dropper = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...dropping });
        assert.equal(await dropper.writeBatch(all), 3);
        assert.equal(dropper.stats.dropped, 4);
        await dropper.write(bytes('after'));
        await dropper.end();
        const frames = await take(await PipeReader.open({ streams: store.streams, consumer: 'c', ...dropping }));
        assert.deepEqual(frames.map((f) => [text(f.payload), f.seq]), [['0', 0], ['1', 1], ['2', 2]], 'the later write found no room either; seq counts the drops');
        assert.equal(dropper.stats.dropped, 5);
        reader.close();
        writer.close();
      });
    });

    it('room: a block queue has its bound less the lag (0 when full, more once the consumer commits); drop-* and latest queues are never short of room', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'room', queue: queue({ max: 4 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        assert.equal(writer.room, 4);
        assert.equal(await writer.writeBatch([bytes('0'), bytes('1'), bytes('2')]), 3);
        assert.equal(writer.room, 1);
        await writer.write(bytes('3'));
        assert.equal(writer.room, 0, 'full');
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', ...ident, commits: 'manual' });
        const two = await reader.nextBatch(2);
        reader.commit(reader.cursorAfter(two![1]!));
        await reader.flush();
        await sleepUntil(() => writer.room === 2, 10_000, 'the commit of two frames to give room for two');
        for (const over of [{ overflow: 'drop-newest' as const }, { overflow: 'drop-oldest' as const }, { mode: 'latest' as const }]) {
          const other = await PipeWriter.open({ streams: store.streams, consumers: ['c'], network: 'net', pipe: `room-${over.overflow ?? over.mode}`, queue: queue({ max: 1, ...over }) });
          await other.writeBatch([bytes('a'), bytes('b')]);
          assert.equal(other.room, Number.POSITIVE_INFINITY, JSON.stringify(over));
          other.close();
        }
        reader.close();
        writer.close();
      });
    });

    it('drop-oldest: a fast producer is never blocked; a slow consumer gets the newest frames in order and counts its drops', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'do', queue: queue({ max: 8, overflow: 'drop-oldest' }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['slow'], ...ident });
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'slow', ...ident });
        const got: Frame[] = [];
        for (let i = 0; i < 1000; i++) {
          // Every write returns stored: the producer is never held back, though nobody reads.
          assert.equal(await writer.write(bytes(String(i))), true);
          if (i % 100 === 99) got.push(...(await take(reader, 1)));
        }
        await writer.end();
        got.push(...(await take(reader)));
        const seqs = got.map((f) => f.seq);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in order');
        assert.equal(new Set(seqs).size, seqs.length, 'nothing twice');
        assert.deepEqual(seqs.slice(-8), [992, 993, 994, 995, 996, 997, 998, 999], 'the newest frames arrive');
        assert.equal(reader.stats.dropped + got.length, 1000, 'every frame either arrived or was counted as dropped');
        assert.ok(reader.stats.dropped > 900);
        await reader.flush();
      });
    });

    it('latest: a consumer takes the newest frame without waiting, or nothing before the first', async () => {
      await withStore(async ({ store }) => {
        const ident = { network: 'net', pipe: 'l', queue: queue({ mode: 'latest', default: 0 }) };
        const writer = await PipeWriter.open({ streams: store.streams, consumers: ['c'], ...ident });
        const reader = await PipeReader.open({ streams: store.streams, consumer: 'c', ...ident });
        assert.equal(await reader.latest(), undefined, 'no frame yet: the caller uses the default');
        for (let i = 0; i < 200; i++) await writer.write(bytes(String(i)));
        // Nobody took anything, yet all 200 went in past the bound of 64: a latest pipe never blocks.
        assert.deepEqual(writer.stats, { written: 200, dropped: 0, lag: 200 });
        assert.equal(text((await reader.latest())!.payload), '199');
        assert.equal(text((await reader.latest())!.payload), '199', 'nothing newer: the same newest frame');
        await writer.write(bytes('200'));
        assert.equal(text((await reader.next())!.payload), '200');
        assert.equal(reader.stats.skipped, 199);
        reader.close();
        writer.close();
      });
    });

    it('aligns two pipes by seq: a frame dropped from one input becomes a filler flagged gap', async () => {
      await withStore(async ({ store }) => {
        const left = { network: 'net', pipe: 'left', queue: queue() };
        const right = { network: 'net', pipe: 'right', queue: queue() };
        const lw = await PipeWriter.open({ streams: store.streams, consumers: ['join'], ...left });
        const rw = await PipeWriter.open({ streams: store.streams, consumers: ['join'], ...right });
        for (let seq = 0; seq < 6; seq++) {
          await lw.write(valueToPayload({ framing: 'frames' }, seq * 10), { seq });
          // The right input lacks seq 2 and 3, as if its producer had dropped them.
          if (seq !== 2 && seq !== 3) await rw.write(valueToPayload({ framing: 'frames' }, seq * 100), { seq });
        }
        await lw.end();
        await rw.end();
        const run = async (gap: 'wait' | 'fill-previous' | 'fill-zero' | 'skip'): Promise<{ sets: Array<[number, unknown, unknown, boolean]>; stats: AlignStats }> => {
          const inputs = [
            await PipeReader.open({ streams: store.streams, ...left }),
            await PipeReader.open({ streams: store.streams, ...right }),
          ];
          const stats: AlignStats = { sets: 0, gaps: 0, dropped: 0 };
          const sets: Array<[number, unknown, unknown, boolean]> = [];
          for await (const set of alignBySeq(inputs, { gap, zero: () => zeroPayload({ framing: 'frames' }) }, stats)) {
            const value = (f: Frame | undefined): unknown => (f === undefined ? undefined : payloadToValue({ framing: 'frames' }, f.payload));
            sets.push([set.seq, value(set.frames[0]), value(set.frames[1]), set.frames[1] !== undefined && hasFlag(set.frames[1], FrameFlag.GAP)]);
          }
          return { sets, stats };
        };
        const previous = await run('fill-previous');
        assert.deepEqual(previous.sets, [
          [0, 0, 0, false],
          [1, 10, 100, false],
          [2, 20, 100, true],
          [3, 30, 100, true],
          [4, 40, 400, false],
          [5, 50, 500, false],
        ]);
        assert.deepEqual(previous.stats, { sets: 6, gaps: 2, dropped: 0 });
        const zero = await run('fill-zero');
        assert.deepEqual(zero.sets.slice(2, 4), [
          [2, 20, 0, true],
          [3, 30, 0, true],
        ]);
        const skip = await run('skip');
        assert.deepEqual(skip.sets.slice(2, 4), [
          [2, 20, undefined, false],
          [3, 30, undefined, false],
        ]);
        assert.equal(skip.stats.gaps, 2);
        const wait = await run('wait');
        assert.deepEqual(wait.sets.map((s) => s[0]), [0, 1, 4, 5]);
        assert.deepEqual(wait.stats, { sets: 4, gaps: 0, dropped: 2 });
      });
    });
  });
}

pipeBehaviour('the embedded store', embedded);
pipeBehaviour('the Redis stream log', redis);
