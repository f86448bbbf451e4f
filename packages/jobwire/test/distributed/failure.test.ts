/**
 * Failures in distributed mode, with real processes: a worker killed with -9 (its jobs end Lost,
 * or start again per their retry policy, and the events say so), a server killed with -9 in the
 * middle of a stream (the SDK goes on through another server, missing nothing), and Redis
 * restarting under a server and a worker (both carry on by themselves).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { JobEvent, JobInfo } from '@jobwire/client';
import { concat, printedPids, reportRunning, runs, sleepUntil } from '../helpers.js';
import { startPrivateRedis } from '../redis-env.js';
import { withCluster } from './cluster.js';

/** The documented bound: a dead worker's jobs are settled within 10 s. */
const SETTLED_WITHIN_MS = 10_000;

describe('distributed: failures', () => {
  it('kill -9 of a worker mid-job: the job ends Lost within the bound, events show it, a job with retries starts again elsewhere', async () => {
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addWorker({ name: 'doomed', pools: ['first'], slots: 2 });
      const client = cluster.client();
      const events = client.events('watched');
      await events.ready;
      const seen: JobEvent[] = [];
      const collecting = (async () => {
        for await (const event of events) seen.push(event);
      })();

      const lost = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo started; exec sleep 300'], group: 'watched', pools: ['first'] });
      const dir = mkdtempSync(join(tmpdir(), 'jobwire-retry-'));
      const script = `if [ -e ${dir}/ran ]; then echo second; else touch ${dir}/ran; echo first; exec sleep 300; fi`;
      const retried = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', script], group: 'watched', retries: 1 });
      for (const job of [lost, retried]) {
        await client.waitUntilRunning(job.id, 20_000);
        await sleepUntil(async () => (await client.readOutput(job.id)).size > 0, 10_000, 'the job to print');
      }
      // Jobs outlive a killed worker (they lead their own process groups): kill them at the end.
      for (const job of [lost, retried]) cluster.orphans.add(await cluster.jobPid(job.id));
      await cluster.addWorker({ name: 'spare' });

      const killedAt = Date.now();
      await cluster.killWorker('doomed');
      const done = await client.waitUntilDone(lost.id, SETTLED_WITHIN_MS + 5_000);
      const took = Date.now() - killedAt;
      assert.equal(done.status, 'Lost');
      assert.match(done.error ?? '', /the worker doomed stopped answering/);
      assert.ok(took <= SETTLED_WITHIN_MS, `settled after ${took} ms`);
      assert.equal(Buffer.from((await client.readOutput(lost.id)).data).toString(), 'started\n', 'output up to the crash is kept');
      assert.equal((await client.readOutput(lost.id)).complete, true);

      const again = await client.waitUntilDone(retried.id, 20_000);
      assert.equal(again.status, 'Success', JSON.stringify(again));
      assert.equal(again.node, 'spare');
      assert.equal(Buffer.from((await client.readOutput(retried.id)).data).toString(), 'first\nsecond\n', 'the retry appends to the output of the lost attempt');

      await sleepUntil(() => seen.some((e) => e.info.id === retried.id && (e.info as JobInfo).status === 'Success'), 10_000, 'the events of the retry');
      events.close();
      await collecting;
      const statuses = (id: string): string[] => seen.filter((e) => e.info.id === id).map((e) => (e.info as JobInfo).status);
      assert.deepEqual(statuses(lost.id).slice(-2), ['Running', 'Lost']);
      assert.deepEqual(statuses(retried.id).slice(-4), ['Running', 'Queued', 'Running', 'Success']);
      const requeued = seen.find((e) => e.info.id === retried.id && (e.info as JobInfo).status === 'Queued' && (e.info as JobInfo).reason);
      assert.match((requeued?.info as JobInfo | undefined)?.reason ?? '', /starting it again \(attempt 2 of 2\)/);
      rmSync(dir, { recursive: true, force: true });
    });
  });

  it('the processes of a worker killed -9 are stopped (by its job host, past its follow deadline) before the next single job starts on its restarted instance', async () => {
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addWorker({ name: 'phoenix', slots: 1 });
      const client = cluster.client();
      // Leader and child ignore SIGTERM, so only the SIGKILL after the grace time stops them.
      const running = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'trap "" TERM; sleep 1000 & echo $$ $!; wait'], queueName: 'single' });
      await client.waitUntilRunning(running.id, 20_000);
      const pids = await printedPids(client, running.id);
      cluster.orphans.add(pids[0]!);
      const next = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', reportRunning(pids)], queueName: 'single' });

      await cluster.killWorker('phoenix');
      assert.equal((await client.waitUntilDone(running.id, SETTLED_WITHIN_MS + 5_000)).status, 'Lost');
      assert.equal((await client.getJobStatus(next.id)).status, 'Queued');
      await sleepUntil(() => !pids.some(runs), 10_000, 'the job host to stop the processes nobody follows');

      await cluster.addWorker({ name: 'phoenix', slots: 1 });
      assert.deepEqual(pids.filter(runs), [], 'no process of the lost job runs');
      assert.equal((await client.waitUntilDone(next.id, 20_000)).status, 'Success');
      assert.equal(Buffer.from((await client.readOutput(next.id)).data).toString(), 'checked\n', 'the next single job ran alone');
    });
  });

  it('kill -9 of a server mid-stream: the SDK goes on through another server and the output is complete', async () => {
    await withCluster(async (cluster) => {
      const a = await cluster.addServer();
      const b = await cluster.addServer();
      await cluster.addWorker({ name: 'w1' });
      const client = cluster.client(0, { fallbackUrls: [b.url] });
      const lines = 3000;
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', `i=0; while [ $i -lt ${lines} ]; do i=$((i+1)); echo "line $i"; [ $((i % 100)) -eq 0 ] && sleep 0.1; done`] });
      const att = await client.attach(job.id);
      const parts: Uint8Array[] = [];
      let killed = false;
      let next = 0;
      for await (const chunk of att.output) {
        assert.equal(chunk.pos, next, 'no gap, no overlap');
        next = chunk.pos + chunk.data.byteLength;
        parts.push(chunk.data);
        if (!killed && next > 5000) {
          killed = true;
          a.proc.kill('SIGKILL');
        }
      }
      const exit = await att.exit;
      assert.ok(killed);
      assert.deepEqual([exit.status, exit.exitCode], ['Success', 0]);
      const expected = Array.from({ length: lines }, (_, i) => `line ${i + 1}\n`).join('');
      assert.equal(concat(parts).toString(), expected);
      // Plain requests moved on too.
      assert.equal((await client.getJobStatus(job.id)).status, 'Success');
    });
  });

  it('survives a Redis restart: the server and the worker reconnect by themselves', async () => {
    // Append-only file on, so the restart keeps the data.
    const redis = await startPrivateRedis({ appendOnly: true });
    try {
      await withCluster(async (cluster) => {
        await cluster.addServer();
        await cluster.addWorker({ name: 'w1' });
        const client = cluster.client();
        const before = await client.submitBatchJob({ executable: 'echo', arguments: ['before'] });
        assert.equal((await client.waitUntilDone(before.id, 20_000)).status, 'Success');
        const during = await client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited' });
        await during.stdin.write('one\n');
        const it = during.output[Symbol.asyncIterator]();
        assert.equal(Buffer.from((await it.next()).value!.data).toString(), 'one\n');

        await redis.restart();

        await during.stdin.write('two\n');
        assert.equal(Buffer.from((await it.next()).value!.data).toString(), 'two\n');
        await during.stdin.end();
        assert.equal((await during.exit).exitCode, 0);
        const after = await client.submitBatchJob({ executable: 'echo', arguments: ['after'] });
        const done = await client.waitUntilDone(after.id, 30_000);
        assert.equal(done.status, 'Success');
        assert.equal(Buffer.from((await client.readOutput(after.id)).data).toString(), 'after\n');
      }, redis.url);
    } finally {
      await redis.stop();
    }
  });
});
