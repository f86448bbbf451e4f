/**
 * The Redis store: the shared store and stream-log behaviour against a real Redis (a fresh key
 * prefix per test), plus what only this implementation promises.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { openRedisStore, type RedisClusterStore } from '../../src/store/index.js';
import { dropWorker } from '../../src/distributed/registry.js';
import { decodeMessage } from '../../src/store/redis/redis-stream-log.js';
import { sleepUntil } from '../helpers.js';
import type { StreamEvent } from '../../src/store/types.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';
import { newJob, nextTime, storeBehaviour, streamLogBehaviour, type HarnessFactory } from './store-behaviour.js';

/** Harnesses on a fresh key prefix; listener errors are swallowed. */
const redis: HarnessFactory = async () => {
  const prefix = freshPrefix();
  return {
    open: () => openRedisStore({ url: REDIS_URL, prefix, onListenerError: () => {} }),
    dispose: () => dropPrefix(prefix),
  };
};

storeBehaviour('redis store', redis);
streamLogBehaviour('redis stream log', redis);

async function withRedisStore(body: (store: RedisClusterStore, prefix: string) => Promise<void>): Promise<void> {
  const prefix = freshPrefix();
  const store = await openRedisStore({ url: REDIS_URL, prefix, onListenerError: () => {} });
  try {
    await body(store, prefix);
  } finally {
    await store.close();
    await dropPrefix(prefix);
  }
}

describe('redis store: its own promises', () => {
  it('a blob being replaced reads as the old or the new file, never as none', async () => {
    await withRedisStore(async (store, prefix) => {
      // The reader on a connection of its own (as another server would be): on one connection
      // the commands of the two could not interleave.
      const reader = await openRedisStore({ url: REDIS_URL, prefix, onListenerError: () => {} });
      await store.blobs.write('f', 'record', [Buffer.from('0')], 1024);
      let writing = true;
      const writer = (async () => {
        for (let i = 1; i <= 300; i++) await store.blobs.write('f', 'record', [Buffer.from(String(i))], 1024);
        writing = false;
      })();
      let reads = 0;
      try {
        while (writing) {
          const bytes = await reader.blobs.read('f', 'record');
          assert.ok(bytes !== undefined, `read ${reads} found no file while it was being replaced`);
          reads++;
        }
      } finally {
        await writer;
        await reader.close();
      }
      assert.equal((await store.blobs.read('f', 'record'))?.toString(), '300');
    });
  });

  it('keeps every key under its prefix', async () => {
    await withRedisStore(async (store, prefix) => {
      const job = await store.createJob(newJob({ group: 'a:b' }));
      await store.streams.appendOutput(job.id, 'stdout', Buffer.from('x'));
      await store.streams.appendStdin(job.id, 0, Buffer.from('y'));
      const client = new Redis(REDIS_URL);
      try {
        const keys = await client.keys(`${prefix}*`);
        assert.ok(keys.length > 5);
        assert.ok(keys.every((k) => k.startsWith(prefix)));
      } finally {
        client.disconnect();
      }
    });
  });

  it('does not store an append twice when a command is resent', async () => {
    await withRedisStore(async (store) => {
      // What ioredis does after a reconnect: the same script call again, same writer and number.
      await store.scripts.run('jwAppendOutput', 'j', '1', Buffer.from('once'), 'writer-x', 1);
      const again = await store.scripts.run<[number, number]>('jwAppendOutput', 'j', '1', Buffer.from('once'), 'writer-x', 1);
      assert.deepEqual(again, [0, 0]);
      assert.equal((await store.streams.sizes('j')).stdout, 4);
    });
  });

  it('answers a resent createJob and markRunning with the job, not an error', async () => {
    await withRedisStore(async (store) => {
      const input = newJob();
      const first = await store.createJob(input);
      assert.deepEqual(await store.createJob(input), first);
      const startedAt = nextTime();
      const running = await store.markRunning(input.id, { startedAt, pid: 5, node: 'w1' });
      assert.deepEqual(await store.markRunning(input.id, { startedAt, pid: 5, node: 'w1' }), running);
      assert.equal((await store.readEvents('alice', '', 0, 100)).length, 2, 'no event for the repeats');
    });
  });

  it('a job a worker handed to its executor\'s own queue (Queued, placed, with an executor state) counts as started: dropped with the worker it is retried afresh or Lost, never placed again as it was; finishRun ends it from Queued', async () => {
    await withRedisStore(async (store) => {
      const register = () => store.registerWorker({ name: 'w1', instance: 'i1', pools: ['ALL'], slots: 4, labels: {}, host: 'h', pid: 1, startedAt: nextTime() }, 60_000);
      const handed = async (retries: number): Promise<string> => {
        const job = await store.createJob(newJob({ description: { executable: 'true', retries } }));
        const { placed } = await store.placeJobs({ scan: 100, patienceMs: 0, unlimitedSlots: 8 });
        assert.deepEqual(placed.map((p) => [p.jobId, p.node]), [[job.id, 'w1']]);
        await store.setExecutorState(job.id, { slurmJobId: '42', stdout: '/o', stderr: '/e', exit: '/x' });
        return job.id;
      };
      assert.deepEqual(await register(), { registered: true });
      const again = await handed(1);
      const lost = await handed(0);
      // Placed, and only these: a worker that takes over follows them.
      const plain = await store.createJob(newJob());
      await store.placeJobs({ scan: 100, patienceMs: 0, unlimitedSlots: 8 });
      assert.deepEqual((await store.handedToExecutor('w1')).map((j) => j.id).sort(), [again, lost].sort());

      const reaped = await dropWorker(store, 'w1', '', 'the worker w1 stopped answering', true);
      assert.deepEqual(reaped.retried.map((j) => j.id), [again]);
      assert.deepEqual(reaped.lost.map((j) => [j.id, j.status, j.error]), [[lost, 'Lost', 'the worker w1 stopped answering']]);
      const retried = await store.getJob(again);
      assert.equal(retried?.status, 'Queued');
      assert.match(retried?.reason ?? '', /; starting it again \(attempt 2 of 2\)$/);
      assert.equal(await store.executorState(again), undefined, 'the next attempt starts afresh');
      // The plain job waits again as it was; the retried one waits for its next attempt.
      assert.deepEqual((await store.placeJobs({ scan: 100, patienceMs: 0, unlimitedSlots: 8 })).placed.length, 0, 'no worker: nothing placed');

      assert.deepEqual(await register(), { registered: true });
      const { placed } = await store.placeJobs({ scan: 100, patienceMs: 0, unlimitedSlots: 8 });
      assert.deepEqual(placed.map((p) => p.jobId).sort(), [again, plain.id].sort());
      assert.equal(placed.find((p) => p.jobId === again)?.attempt, 2);
      // Ended in the executor's queue without running (sbatch refused it, say): settled from Queued, slot freed.
      await store.setExecutorState(again, { slurmJobId: '43', stdout: '/o', stderr: '/e', exit: '/x' });
      assert.equal(await store.finishRun(again, { status: 'Failed', error: 'refused', endedAt: nextTime() }, { node: 'w1', attempt: 1 }), undefined, 'not the run of another attempt');
      const failed = await store.finishRun(again, { status: 'Failed', error: 'refused', endedAt: nextTime() }, { node: 'w1', attempt: 2 });
      assert.equal(failed?.status, 'Failed');
      assert.equal((await store.workers()).find((w) => w.name === 'w1')?.load.multi, 1, 'only the plain job holds a slot');
    });
  });

  it('does not let a worker finish a job the reaper queued again after the worker last looked at it', async () => {
    await withRedisStore(async (_store, prefix) => {
      // Named apart from every other client of the shared Redis, whose writes wait too meanwhile.
      const worker = await openRedisStore({ url: REDIS_URL, prefix, connectionName: `${prefix}worker`, onListenerError: () => {} });
      const reaper = await openRedisStore({ url: REDIS_URL, prefix, connectionName: `${prefix}reaper`, onListenerError: () => {} });
      const admin = new Redis(REDIS_URL);
      try {
        const job = await worker.createJob(newJob({ description: { executable: 'sleep', arguments: ['9'], retries: 1 } }));
        assert.ok(await worker.markRunning(job.id, { startedAt: nextTime(), pid: 7, node: 'w1' }));
        // The interleaving, made certain: Redis holds back every write (reads go on) until the
        // reaper's re-queue and then the worker's finish both wait, and runs them in that order.
        // Whatever the worker reads before writing sees the job still Running on w1.
        const postponed = (name: string) => async (): Promise<boolean> => {
          const clients = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal')).split('\n');
          return clients.some((line) => line.includes(` name=${name} `) && / flags=\S*b/.test(line));
        };
        await admin.call('CLIENT', 'PAUSE', '10000', 'WRITE');
        let requeued: Promise<unknown>;
        let finished: Promise<unknown>;
        try {
          requeued = reaper.retryJob(job.id, 'the worker w1 stopped answering');
          await sleepUntil(postponed(`${prefix}reaper`), 5000, "the reaper's re-queue to wait for Redis");
          finished = worker.finishRun(job.id, { status: 'Success', exitCode: 0, endedAt: nextTime() }, { node: 'w1', attempt: 1 });
          await sleepUntil(postponed(`${prefix}worker`), 5000, "the worker's finish to wait for Redis");
        } finally {
          await admin.call('CLIENT', 'UNPAUSE');
        }
        assert.ok(await requeued);
        assert.equal(await finished, undefined, 'the stale worker finished the job');
        const now = await worker.getJob(job.id);
        assert.equal(now?.status, 'Queued');
        assert.equal(now?.endedAt, null);
      } finally {
        admin.disconnect();
        await reaper.close();
        await worker.close();
      }
    });
  });

  it('a placement pass says "more" when it looked at as many waiting jobs as it may with room left, not when it saw them all or no room is left', async () => {
    await withRedisStore(async (store) => {
      assert.deepEqual(await store.registerWorker({ name: 'w1', instance: 'i1', pools: ['ALL'], slots: 3, labels: {}, host: 'h', pid: 1, startedAt: nextTime() }, 60_000), { registered: true });
      const jobs = [];
      for (let i = 0; i < 5; i++) jobs.push((await store.createJob(newJob())).id);
      // No `unlimited` room, so that the multi slots and the one `single` slot are all the room there is.
      const pass = { scan: 2, patienceMs: 0, unlimitedSlots: 0, quick: true };
      const first = await store.placeJobs(pass);
      assert.deepEqual([first.placed.map((p) => p.jobId), first.more], [jobs.slice(0, 2), true], 'looked at 2 of 5 with room left');
      const all = await store.placeJobs({ ...pass, scan: 100 });
      assert.deepEqual([all.placed.map((p) => p.jobId), all.more], [[jobs[2]], false], 'looked at every waiting job');
      // Fill the single slot: no room is left for any class.
      const single = await store.createJob(newJob({ queue: 'single' }));
      const last = await store.placeJobs({ ...pass, scan: 100 });
      assert.deepEqual(last.placed.map((p) => p.jobId), [single.id]);
      const none = await store.placeJobs({ ...pass, scan: 1 });
      assert.deepEqual([none.placed.length, none.more], [0, false], 'no room left');
    });
  });

  it('finishRun closes the output of the run it ends, with the final status, in the same step; one that is not the run\'s any more leaves the output open', async () => {
    await withRedisStore(async (store) => {
      assert.deepEqual(await store.registerWorker({ name: 'w1', instance: 'i1', pools: ['ALL'], slots: 2, labels: {}, host: 'h', pid: 1, startedAt: nextTime() }, 60_000), { registered: true });
      const ran = await store.createJob(newJob());
      const other = await store.createJob(newJob());
      assert.equal((await store.placeJobs({ scan: 100, patienceMs: 0, unlimitedSlots: 8 })).placed.length, 2);
      for (const job of [ran, other]) assert.ok(await store.markRunning(job.id, { startedAt: nextTime(), pid: 7, node: 'w1' }));
      await store.streams.appendOutput(ran.id, 'stdout', Buffer.from('out\n'));
      await store.streams.appendOutput(ran.id, 'stderr', Buffer.from('err\n'));
      const heard: StreamEvent[] = [];
      const unsubscribe = store.streams.subscribe(ran.id, (event) => heard.push(event));
      try {
        // The subscription is active once an operation issued after it has run (see gate.ts).
        await store.streams.sizes(ran.id);
        const finished = await store.finishRun(ran.id, { status: 'Failed', exitCode: 3, error: 'exited with code 3', endedAt: nextTime() }, { node: 'w1', attempt: 1 });
        assert.equal(finished?.status, 'Failed');
        const final = { status: 'Failed', exitCode: 3, signal: null, error: 'exited with code 3', progress: null };
        const page = await store.streams.readOutput(ran.id, 0, 1024);
        assert.deepEqual([page.end, page.closed, page.final], [8, true, final]);
        await sleepUntil(async () => heard.some((event) => event.type === 'output-closed'), 5000, 'the close message');
        assert.deepEqual(heard.filter((event) => event.type === 'output-closed'), [{ type: 'output-closed', end: 8, final }]);
      } finally {
        unsubscribe();
      }
      // Not this run's (another attempt): neither finished nor closed.
      assert.equal(await store.finishRun(other.id, { status: 'Success', exitCode: 0, endedAt: nextTime() }, { node: 'w1', attempt: 2 }), undefined);
      assert.equal((await store.streams.readOutput(other.id, 0, 1024)).closed, false);
      assert.equal((await store.getJob(other.id))?.status, 'Running');
    });
  });

  it('finishRunAndPlace gives the slot it frees to the next waiting job in the same step; a stale run neither finishes nor places', async () => {
    await withRedisStore(async (store) => {
      assert.deepEqual(await store.registerWorker({ name: 'w1', instance: 'i1', pools: ['ALL'], slots: 1, labels: {}, host: 'h', pid: 1, startedAt: nextTime() }, 60_000), { registered: true });
      const pass = { scan: 100, patienceMs: 0, unlimitedSlots: 0, quick: true };
      const first = await store.createJob(newJob());
      const second = await store.createJob(newJob());
      assert.deepEqual((await store.placeJobs(pass)).placed.map((p) => p.jobId), [first.id], 'one slot');
      assert.ok(await store.markRunning(first.id, { startedAt: nextTime(), pid: 7, node: 'w1' }));
      assert.equal(await store.finishRunAndPlace(first.id, { status: 'Success', exitCode: 0, endedAt: nextTime() }, { node: 'w1', attempt: 2 }, pass), undefined, 'not the run of another attempt');
      assert.equal(await store.placedJob(second.id, 'w1'), undefined, 'a stale run places nothing');
      const done = await store.finishRunAndPlace(first.id, { status: 'Success', exitCode: 0, endedAt: nextTime() }, { node: 'w1', attempt: 1 }, pass);
      assert.equal(done?.job.status, 'Success');
      assert.equal((await store.streams.readOutput(first.id, 0, 1024)).closed, true, 'its output closed');
      assert.deepEqual([done?.placement.placed.map((p) => [p.jobId, p.node, p.slotClass]), done?.placement.more], [[[second.id, 'w1', 'multi']], false]);
      assert.equal((await store.placedJob(second.id, 'w1'))?.attempt, 1);
      assert.equal((await store.workers()).find((w) => w.name === 'w1')?.load.multi, 1, 'the slot is the second job\'s');
    });
  });

  it('decodes every kind of channel message', () => {
    assert.deepEqual(decodeMessage(Buffer.from('o212|5|a|b')), { type: 'output', chunk: { channel: 'stderr', pos: 12, offset: 5, data: Buffer.from('a|b') } });
    assert.deepEqual(decodeMessage(Buffer.from('c99')), { type: 'output-closed', end: 99 });
    assert.deepEqual(decodeMessage(Buffer.from('i3|xy')), { type: 'stdin', offset: 3, data: Buffer.from('xy') });
    assert.deepEqual(decodeMessage(Buffer.from('I7')), { type: 'stdin-closed', offset: 7 });
    assert.deepEqual(decodeMessage(Buffer.from('a4')), { type: 'stdin-ack', consumed: 4 });
    assert.deepEqual(decodeMessage(Buffer.from('r80|24')), { type: 'control', control: { type: 'resize', cols: 80, rows: 24 } });
    assert.deepEqual(decodeMessage(Buffer.from('x')), { type: 'control', control: { type: 'cancel' } });
  });

  it('shows the same jobs and events to two stores on one prefix', async () => {
    await withRedisStore(async (store, prefix) => {
      const other = await openRedisStore({ url: REDIS_URL, prefix });
      try {
        const heard: string[] = [];
        other.onEvent((event) => heard.push(`${event.verb}:${event.info.id}`));
        const streamEvents: string[] = [];
        other.streams.subscribe('shared', (event) => streamEvents.push(event.type));
        // Any call on the subscribing store returns once its subscriptions are active.
        await other.lastEventId();
        const job = await store.createJob(newJob({ id: 'shared' }));
        await store.streams.appendOutput(job.id, 'stdout', Buffer.from('hello'));
        await sleepUntil(() => heard.length === 1 && streamEvents.length === 1, 2000, 'the event and the stream event');
        assert.deepEqual(heard, ['add:shared']);
        assert.deepEqual((await other.getJob('shared'))?.id, 'shared');
        assert.equal(Buffer.from((await other.streams.readChannel('shared', 'stdout', 0))).toString(), 'hello');
      } finally {
        await other.close();
      }
    });
  });
});
