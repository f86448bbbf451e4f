import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConflictError, ConnectionError, QueuedIterator } from '../src/index.js';

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('QueuedIterator', () => {
  it('yields pushed items in order and ends after stop()', async () => {
    const q = new QueuedIterator<number>();
    q.push(1);
    q.push(2);
    setTimeout(() => {
      q.push(3);
      q.stop();
    }, 5);
    assert.deepEqual(await drain(q), [1, 2, 3]);
  });

  it('with maxItems keeps only the latest unread items, dropping the oldest', async () => {
    const q = new QueuedIterator<number>({ maxItems: 2 });
    for (let i = 1; i <= 5; i++) q.push(i);
    assert.equal(q.length, 2);
    q.stop();
    assert.deepEqual(await drain(q), [4, 5]);
  });

  it('hands an item straight to a waiting reader', async () => {
    const q = new QueuedIterator<string>();
    const next = q.next();
    q.push('a');
    assert.deepEqual(await next, { value: 'a', done: false });
    assert.equal(q.length, 0);
  });

  it('delivers queued items before the error given to stop(err), then ends', async () => {
    const q = new QueuedIterator<number>();
    q.push(1);
    q.push(2);
    const err = new ConnectionError('lost');
    q.stop(err);
    const seen: number[] = [];
    await assert.rejects(async () => {
      for await (const x of q) seen.push(x);
    }, err);
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(await q.next(), { value: undefined, done: true });
  });

  it('rejects a reader that is waiting when stop(err) comes', async () => {
    const q = new QueuedIterator<number>();
    const next = q.next();
    q.stop(new ConnectionError('gone'));
    await assert.rejects(next, ConnectionError);
  });

  it('ignores pushes after stop()', async () => {
    const q = new QueuedIterator<number>();
    q.stop();
    assert.equal(q.push(1), false);
    assert.deepEqual(await drain(q), []);
  });

  it('is safe when the consumer breaks: drops the queue, calls onReturn once, refuses later pushes', async () => {
    let returned = 0;
    const q = new QueuedIterator<number>({ onReturn: () => returned++ });
    for (let i = 0; i < 10; i++) q.push(i);
    const seen: number[] = [];
    for await (const x of q) {
      seen.push(x);
      if (x === 2) break;
    }
    assert.deepEqual(seen, [0, 1, 2]);
    assert.equal(returned, 1);
    assert.equal(q.length, 0);
    assert.equal(q.closed, true);
    assert.equal(q.push(99), false);
    assert.deepEqual(await q.next(), { value: undefined, done: true });
  });

  it('does not call onReturn when the stream ended normally', async () => {
    let returned = 0;
    const q = new QueuedIterator<number>({ onReturn: () => returned++ });
    q.push(1);
    q.stop();
    assert.deepEqual(await drain(q), [1]);
    assert.equal(returned, 0);
  });

  it('has a single consumer: iterating twice throws ConflictError', () => {
    const q = new QueuedIterator<number>();
    q[Symbol.asyncIterator]();
    assert.throws(() => q[Symbol.asyncIterator](), ConflictError);
  });

  it('asks the producer to pause at the high-water mark and to resume at the low-water mark', async () => {
    const calls: boolean[] = [];
    const q = new QueuedIterator<Uint8Array>({
      sizeOf: (b) => b.byteLength,
      highWater: 100,
      lowWater: 30,
      onPressure: (paused) => calls.push(paused),
    });
    for (let i = 0; i < 5; i++) q.push(new Uint8Array(25));
    assert.equal(q.queuedSize, 125);
    assert.deepEqual(calls, [true], 'paused once when 100 bytes were reached');
    assert.equal(q.paused, true);
    await q.next();
    await q.next();
    await q.next();
    assert.deepEqual(calls, [true], 'still above the low-water mark at 50');
    await q.next();
    assert.deepEqual(calls, [true, false], 'resumed at 25 <= 30');
    assert.equal(q.paused, false);
  });

  it('releases the producer when a paused consumer breaks', async () => {
    const calls: boolean[] = [];
    const q = new QueuedIterator<number>({ highWater: 3, onPressure: (p) => calls.push(p) });
    for (let i = 0; i < 5; i++) q.push(i);
    for await (const _ of q) break;
    assert.deepEqual(calls, [true, false]);
  });

  it('serves readers that call next() concurrently in order', async () => {
    const q = new QueuedIterator<number>();
    const a = q.next();
    const b = q.next();
    q.push(1);
    q.push(2);
    assert.deepEqual([await a, await b], [{ value: 1, done: false }, { value: 2, done: false }]);
  });

  it('keeps order across many items (compaction)', async () => {
    const q = new QueuedIterator<number>();
    for (let i = 0; i < 5000; i++) q.push(i);
    q.stop();
    const all = await drain(q);
    assert.equal(all.length, 5000);
    assert.ok(all.every((x, i) => x === i));
  });
});
