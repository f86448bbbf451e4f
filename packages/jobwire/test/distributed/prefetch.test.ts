/**
 * Prefetch: a worker holds `multi` jobs ahead of a free slot when no worker they may go to has
 * one, says so in their wait reason, starts each the moment a slot frees, and starts none that was
 * cancelled while held. With `--prefetch 0` a job waits in the cluster's queue instead.
 * Real processes: a server and worker processes on the test Redis.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Client, JobInfo } from '@jobwire/client';
import { sleepUntil } from '../helpers.js';
import { withCluster, type TestCluster } from './cluster.js';

/** Waits until job `id` has a wait reason; resolves to its info. */
function reasonOf(client: Client, id: string): Promise<JobInfo> {
  return sleepUntil(async () => {
    const info = await client.getJobStatus(id);
    return info.reason ? info : undefined;
  }, 10_000, `a wait reason of ${id}`);
}

/** A server and a one-slot worker `name` whose slot a `sleep` job holds. */
async function busyWorker(cluster: TestCluster, name: string, prefetch: number): Promise<{ client: Client; busy: JobInfo }> {
  await cluster.addServer();
  await cluster.addWorker({ name, slots: 1, prefetch });
  const client = cluster.client();
  const busy = await client.submitBatchJob({ executable: 'sleep', arguments: ['60'] });
  return { client, busy: await client.waitUntilRunning(busy.id, 20_000) };
}

describe('distributed: prefetch', () => {
  it('holds a job ahead of a busy slot with its reason, never starts one cancelled while held, and starts the next as the slot frees', async () => {
    await withCluster(async (cluster) => {
      const { client, busy } = await busyWorker(cluster, 'solo', 2);

      const dropped = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo ran'] });
      const next = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo next'] });
      for (const job of [dropped, next]) {
        const held = await reasonOf(client, job.id);
        assert.equal(held.status, 'Queued');
        assert.match(held.reason!, /waiting for a free multi slot \(pools: ALL; held ahead by worker solo\)/);
      }
      // Room ahead is full (2): a third job waits in the cluster's queue.
      const third = await client.submitBatchJob({ executable: 'true' });
      assert.match((await reasonOf(client, third.id)).reason!, /^waiting for a free multi slot \(pools: ALL\)$/);
      assert.deepEqual((await client.getWorkers()).items.map((w) => [w.name, w.used, w.free]), [['solo', 1, 0]], 'held jobs use no slot');

      await client.cancelJob(dropped.id);
      await client.cancelJob(busy.id);
      const done = await client.waitUntilDone(next.id, 20_000);
      assert.deepEqual([done.status, done.node, done.reason], ['Success', 'solo', null]);
      assert.equal(Buffer.from((await client.readOutput(next.id)).data).toString(), 'next\n');
      assert.equal((await client.waitUntilDone(third.id, 20_000)).status, 'Success');
      const cancelled = await client.getJobStatus(dropped.id);
      assert.equal(cancelled.status, 'Cancelled');
      assert.equal(cancelled.startedAt ?? null, null, 'the job cancelled while held never started');
      assert.equal((await client.readOutput(dropped.id)).size, 0);
    });
  });

  it('behind a queue of multi jobs an unlimited job starts at once, and the queue then runs in order as the worker places it on itself', async () => {
    await withCluster(async (cluster) => {
      const { client, busy } = await busyWorker(cluster, 'solo', 1);
      // One held ahead, the others waiting in the cluster's queue: no room for a multi job anywhere.
      const queue = [];
      for (let i = 0; i < 12; i++) queue.push(await client.submitBatchJob({ executable: 'true' }));
      assert.match((await reasonOf(client, queue.at(-1)!.id)).reason!, /^waiting for a free multi slot \(pools: ALL\)$/);
      // A job of another class is not held up by them.
      const quick = await client.submitBatchJob({ executable: 'true', queueName: 'unlimited' });
      const quickDone = await client.waitUntilDone(quick.id, 20_000);
      assert.deepEqual([quickDone.status, quickDone.node], ['Success', 'solo']);
      assert.equal((await client.getJobStatus(queue.at(-1)!.id)).status, 'Queued');

      await client.cancelJob(busy.id);
      const done = [];
      for (const job of queue) done.push(await client.waitUntilDone(job.id, 20_000));
      assert.deepEqual(new Set(done.map((info) => `${info.status} ${info.node}`)), new Set(['Success solo']));
      const byStart = [...done].sort((a, b) => Date.parse(a.startedAt!) - Date.parse(b.startedAt!));
      assert.deepEqual(byStart.map((info) => info.id), queue.map((job) => job.id), 'started in the order they were submitted');
    });
  });

  it('with --prefetch 0 a job waits in the cluster queue, not on the busy worker', async () => {
    await withCluster(async (cluster) => {
      const { client, busy } = await busyWorker(cluster, 'strict', 0);
      const waiting = await client.submitBatchJob({ executable: 'true' });
      assert.match((await reasonOf(client, waiting.id)).reason!, /^waiting for a free multi slot \(pools: ALL\)$/);
      await client.cancelJob(busy.id);
      assert.equal((await client.waitUntilDone(waiting.id, 20_000)).status, 'Success');
    });
  });
});
