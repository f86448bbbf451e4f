import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { alive, collect, sleepUntil, withServer } from '../helpers.js';

/** Pids of the children of `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('job life cycle', () => {
  it('runs a batch command to Success with its exit code and output stored', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo hello; echo oops >&2'], name: 'greet' });
      assert.equal(job.status, 'Queued');
      const done = await client.waitUntilDone(job.id, 10_000);
      assert.equal(done.status, 'Success');
      assert.equal(done.exitCode, 0);
      assert.equal(done.name, 'greet');
      assert.ok(done.startedAt && done.endedAt);
      const out = await client.readOutput(job.id, 'stdout');
      assert.equal(Buffer.from(out.data).toString(), 'hello\n');
      assert.equal(out.complete, true);
      const err = await client.readOutput(job.id, 'stderr');
      assert.equal(Buffer.from(err.data).toString(), 'oops\n');
    });
  });

  it('marks a non-zero exit as Failed and keeps the code', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'exit 7'] });
      const done = await client.waitUntilDone(job.id, 10_000);
      assert.equal(done.status, 'Failed');
      assert.equal(done.exitCode, 7);
    });
  });

  it('cancel kills the whole process tree of a running job', async () => {
    await withServer(async ({ client, server }) => {
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'sleep 300 & sleep 300 & wait'], queueName: 'unlimited' });
      await client.waitUntilRunning(job.id, 10_000);
      const record = await server.store.getJob(job.id);
      const shPid = record!.pid!;
      const kids = await sleepUntil(() => (childrenOf(shPid).length === 2 ? childrenOf(shPid) : undefined), 5000, 'two sleeps');
      await client.cancelJob(job.id);
      const done = await client.waitUntilDone(job.id, 10_000);
      assert.equal(done.status, 'Cancelled');
      await sleepUntil(() => !alive(shPid) && kids.every((k) => !alive(k)), 5000, 'the process tree to be gone');
    });
  });

  it('cancels a Queued job before it starts', async () => {
    await withServer(async ({ client }) => {
      const blocker = await client.submitBatchJob({ executable: 'sleep', arguments: ['30'], queueName: 'single' });
      const waiting = await client.submitBatchJob({ executable: 'echo', arguments: ['never'], queueName: 'single' });
      await client.waitUntilRunning(blocker.id, 10_000);
      assert.equal((await client.getJobStatus(waiting.id)).status, 'Queued');
      const cancelled = await client.cancelJob(waiting.id);
      assert.equal(cancelled.status, 'Cancelled');
      await client.cancelJob(blocker.id);
      assert.equal((await client.waitUntilDone(blocker.id, 10_000)).status, 'Cancelled');
      assert.equal((await client.getJobStatus(waiting.id)).startedAt, null);
    });
  });

  it('an attachment reports the status while the job lives: Queued behind a full queue, then Running, then ends with the exit', async () => {
    await withServer(async ({ client }) => {
      const blocker = await client.submitBatchJob({ executable: 'sleep', arguments: ['30'], queueName: 'single' });
      await client.waitUntilRunning(blocker.id, 10_000);
      const waiting = await client.submitBatchJob({ executable: 'echo', arguments: ['after'], queueName: 'single' });
      const att = await client.attach(waiting.id);
      const seen: string[] = [];
      for await (const update of att.statusUpdates) {
        seen.push(update.status);
        if (seen.length === 1) {
          assert.equal(update.status, 'Queued', 'the greeting: the job waits behind the sleep');
          await client.cancelJob(blocker.id);
        }
      }
      assert.deepEqual(seen, ['Queued', 'Running']);
      const output = await collect(att.output);
      assert.equal(Buffer.concat(output.map((c) => c.data)).toString(), 'after\n');
      assert.equal((await att.exit).status, 'Success');
    });
  });

  it('stops a job that exceeds maxRuntime', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['60'], maxRuntime: 0.01, queueName: 'unlimited' });
      const done = await client.waitUntilDone(job.id, 15_000);
      assert.equal(done.status, 'Failed');
      assert.match(done.error ?? '', /maxRuntime/);
      assert.equal(done.signal, 'SIGTERM');
    });
  });

  it('kills a job that ignores SIGTERM after the grace period', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', "trap '' TERM; echo ready; while true; do sleep 0.1; done"], queueName: 'unlimited' });
      await sleepUntil(async () => (await client.readOutput(job.id)).size > 0, 5000, 'the trap to be set');
      await client.cancelJob(job.id);
      const done = await client.waitUntilDone(job.id, 10_000);
      assert.equal(done.status, 'Cancelled');
      assert.equal(done.signal, 'SIGKILL');
    }, { graceSeconds: 1 });
  });

  it('runs a JavaScript code string and stores its result', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ js: { code: 'x = 5; return x + 10' } });
      const done = await client.waitUntilDone(job.id, 15_000);
      assert.equal(done.status, 'Success');
      assert.equal(done.result, 15);
    });
  });

  it('stores the error and stack of a function that throws', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ js: { code: 'throw new RangeError("crash and burn")' } });
      const done = await client.waitUntilDone(job.id, 15_000);
      assert.equal(done.status, 'Failed');
      assert.match(done.error ?? '', /RangeError: crash and burn/);
      assert.match(done.error ?? '', /\n\s+at /, 'the stack is kept');
    });
  });

  it('shows progress messages a function job reports', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ js: { code: 'progress("half way"); await new Promise(r => setTimeout(r, 1500)); return 1' } });
      const seen = await sleepUntil(async () => {
        const info = await client.getJobStatus(job.id);
        return info.progress === 'half way' ? info : undefined;
      }, 10_000, 'progress');
      assert.equal(seen.progress, 'half way');
      assert.equal((await client.waitUntilDone(job.id, 15_000)).status, 'Success');
    });
  });

  it('lets a command job set its own progress with jobwire progress', async () => {
    await withServer(async ({ client }) => {
      const { CLI } = await import('../helpers.js');
      const job = await client.submitBatchJob({ executable: process.execPath, arguments: [CLI, 'progress', 'step 2 of 3'] });
      const done = await client.waitUntilDone(job.id, 15_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal(done.progress, 'step 2 of 3');
    });
  });

  it('runs the single queue one job at a time', async () => {
    await withServer(async ({ client }) => {
      const a = await client.submitBatchJob({ executable: 'sleep', arguments: ['0.5'], queueName: 'single' });
      const b = await client.submitBatchJob({ executable: 'sleep', arguments: ['0.1'], queueName: 'single' });
      await client.waitUntilRunning(a.id, 5000);
      const queues = await client.getQueueStatus();
      const single = queues.find((q) => q.name === 'single')!;
      assert.equal(single.limit, 1);
      assert.equal(single.running, 1);
      assert.equal(single.queued, 1);
      const bDone = await client.waitUntilDone(b.id, 10_000);
      const aDone = await client.getJobStatus(a.id);
      assert.ok(Date.parse(bDone.startedAt!) >= Date.parse(aDone.endedAt!), 'b started after a ended');
    });
  });

  it('waitUntilDone with a timeout returns the not-done status', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['5'], queueName: 'unlimited' });
      const info = await client.waitUntilDone(job.id, 300);
      assert.ok(info.status === 'Queued' || info.status === 'Running');
      await client.cancelJob(job.id);
    });
  });

  it('lists the queues of the local executor', async () => {
    await withServer(async ({ client }) => {
      assert.deepEqual((await client.getQueueNames()).sort(), ['multi', 'single', 'unlimited']);
    });
  });
});
