/**
 * Placement across real worker processes (MARVELO's rules): pools, pool priority, preferred
 * node, and jobs no worker can take.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Client, JobDescription, JobInfo } from '@jobwire/client';
import { TEST_BACKEND, cliEnv, runCli, sleepUntil, withServer } from '../helpers.js';
import { withCluster } from './cluster.js';

/** Runs a quick job and returns its final info. */
async function runOn(client: Client, description: JobDescription): Promise<JobInfo> {
  const job = await client.submitBatchJob({ executable: 'true', ...description });
  const done = await client.waitUntilDone(job.id, 20_000);
  assert.equal(done.status, 'Success', JSON.stringify(done));
  return done;
}

/** Submits a job that keeps a slot busy and waits until it runs. */
async function occupy(client: Client, description: JobDescription): Promise<JobInfo> {
  const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['60'], ...description });
  return client.waitUntilRunning(job.id, 20_000);
}

describe('distributed placement', () => {
  it('puts jobs only where their pools allow, in priority order, and prefers a free preferred node', async () => {
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addWorker({ name: 'cpu-1', pools: ['cpu'], slots: 1 });
      await cluster.addWorker({ name: 'gpu-1', pools: ['gpu'], slots: 1 });
      const client = cluster.client();

      for (let i = 0; i < 3; i++) {
        assert.equal((await runOn(client, { pools: ['gpu'] })).node, 'gpu-1');
        assert.equal((await runOn(client, { pools: ['cpu'] })).node, 'cpu-1');
      }
      // Priority: the first pool while it has room...
      assert.equal((await runOn(client, { pools: ['cpu', 'gpu'] })).node, 'cpu-1');
      assert.equal((await runOn(client, { pools: ['gpu', 'cpu'] })).node, 'gpu-1');
      // ...the preferred node when it is free, whatever the pools say...
      assert.equal((await runOn(client, { node: 'gpu-1', pools: ['cpu', 'gpu'] })).node, 'gpu-1');
      assert.equal((await runOn(client, { node: 'cpu-1' })).node, 'cpu-1');

      // ...and the next pool (or any worker of ALL) when the first is full.
      const busy = await occupy(client, { pools: ['cpu'] });
      assert.equal(busy.node, 'cpu-1');
      assert.equal((await runOn(client, { pools: ['cpu', 'gpu'] })).node, 'gpu-1');
      assert.equal((await runOn(client, { node: 'cpu-1' })).node, 'gpu-1', 'a full preferred node is skipped');

      // A job whose only pool is full waits, and says why once it waited a moment: held ahead by
      // the busy worker (its prefetch), or in the cluster's queue once that is full too.
      const waiting = await client.submitBatchJob({ executable: 'true', pools: ['cpu'] });
      const queued = await sleepUntil(async () => {
        const info = await client.getJobStatus(waiting.id);
        return info.reason ? info : undefined;
      }, 10_000, 'a wait reason');
      assert.equal(queued.status, 'Queued');
      assert.match(queued.reason!, /waiting for a free multi slot \(pools: cpu(; held ahead by worker cpu-1)?\)/);
      await client.cancelJob(busy.id);
      const done = await client.waitUntilDone(waiting.id, 20_000);
      assert.equal(done.status, 'Success');
      assert.equal(done.node, 'cpu-1');
      assert.equal(done.reason, null, 'a started job no longer waits');
    });
  });

  it('keeps a job no live worker can take Queued with the reason, and starts it when a worker of its pool registers', async () => {
    await withCluster(async (cluster) => {
      const server = await cluster.addServer();
      await cluster.addWorker({ name: 'plain-1' });
      const client = cluster.client();
      const job = await client.submitBatchJob({ executable: 'true', pools: ['fpga'], node: 'fpga-9' });
      const queued = await sleepUntil(async () => {
        const info = await client.getJobStatus(job.id);
        return info.reason ? info : undefined;
      }, 10_000, 'a reason');
      assert.equal(queued.status, 'Queued');
      assert.match(queued.reason!, /no live worker can take this job \(pools: fpga; preferred node: fpga-9\)/);
      const status = await runCli(['status', job.id], { env: cliEnv(server) });
      assert.match(status.stdout, /^reason\s*: no live worker can take this job/m);

      await cluster.addWorker({ name: 'fpga-1', pools: ['fpga'] });
      const done = await client.waitUntilDone(job.id, 20_000);
      assert.equal(done.status, 'Success');
      assert.equal(done.node, 'fpga-1');
    });
  });

  it('lists workers, their load and the pools with jobwire workers; jobwire status names the node', async () => {
    await withCluster(async (cluster) => {
      const server = await cluster.addServer();
      await cluster.addWorker({ name: 'big', pools: ['gpu', 'cpu'], slots: 3 });
      await cluster.addWorker({ name: 'small', slots: 1 });
      const client = cluster.client();
      const busy = await occupy(client, { node: 'big' });
      const waiting = await client.submitBatchJob({ executable: 'true', pools: ['nowhere'] });
      await sleepUntil(async () => (await client.getJobStatus(waiting.id)).reason !== null, 10_000, 'the job to be parked');

      const json = await runCli(['workers', '--json'], { env: cliEnv(server) });
      assert.equal(json.code, 0, json.stderr);
      const report = JSON.parse(json.stdout) as { mode: string; items: Array<{ name: string; pools: string[]; slots: number; used: number; free: number; alive: boolean }>; pools: Array<{ name: string; workers: number; slots: number; used: number; queued: number }> };
      assert.equal(report.mode, 'distributed');
      assert.deepEqual(
        report.items.map((w) => [w.name, w.pools, w.slots, w.used, w.free, w.alive]),
        [
          ['big', ['ALL', 'gpu', 'cpu'], 3, 1, 2, true],
          ['small', ['ALL'], 1, 0, 1, true],
        ],
      );
      assert.deepEqual(report.pools.find((p) => p.name === 'ALL'), { name: 'ALL', workers: 2, slots: 4, used: 1, queued: 0 });
      assert.deepEqual(report.pools.find((p) => p.name === 'nowhere'), { name: 'nowhere', workers: 0, slots: 0, used: 0, queued: 1 });

      const table = await runCli(['workers'], { env: cliEnv(server) });
      assert.match(table.stdout, /^NODE\s+POOLS\s+SLOTS\s+USED\s+FREE/m);
      assert.match(table.stdout, /^big\s+ALL,gpu,cpu\s+3\s+1\s+2/m);

      const status = await runCli(['status', busy.id], { env: cliEnv(server) });
      assert.match(status.stdout, /^node\s*: big$/m);
      const queues = await client.getQueueStatus();
      assert.deepEqual(
        queues.map((q) => [q.name, q.limit]),
        [
          ['single', 2],
          ['multi', 4],
          ['unlimited', null],
        ],
      );
      await client.cancelJob(busy.id);
      await client.cancelJob(waiting.id);
    });
  });
});

describe('jobwire workers on an embedded server', () => {
  it('says it has no workers, and the worker commands print their help', async () => {
    await withServer(async (s) => {
      const report = await s.client.getWorkers();
      if (TEST_BACKEND === 'embedded') assert.deepEqual(report, { mode: 'embedded', items: [], pools: [] });
      const r = await runCli(['workers'], { env: cliEnv(s) });
      assert.equal(r.code, 0, r.stderr);
      if (TEST_BACKEND === 'embedded') assert.match(r.stdout, /embedded mode/);
    });
    for (const cmd of ['worker', 'workers']) {
      const r = await runCli([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`Usage: jobwire ${cmd}`));
    }
    const noRedis = await runCli(['worker', '--name', 'x']);
    assert.equal(noRedis.code, 2, 'a worker needs --redis');
    assert.match(noRedis.stderr, /--redis/);
  });
});
