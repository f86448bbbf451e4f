/**
 * A worker runs its jobs on the job host of its home, so a worker that is killed with -9 or
 * stopped with SIGTERM and started again (same name, same home) within its grace time finds its
 * running jobs again: they are not started twice, their output is complete and stdin goes on.
 * Real processes throughout: a server and worker processes on the test Redis.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { OutputChunk } from '@jobwire/client';
import { runs, sleepUntil } from '../helpers.js';
import { withCluster } from './cluster.js';

/** Reads chunks from `output` until what was read ends with `text`; returns what was read. */
async function readUntil(output: AsyncIterator<OutputChunk>, text: string): Promise<string> {
  let got = '';
  while (!got.endsWith(text)) {
    const next = await output.next();
    assert.equal(next.done, false, `output ended before ${JSON.stringify(text)}; got ${JSON.stringify(got)}`);
    got += Buffer.from(next.value.data).toString();
  }
  return got;
}

/** `line 1` … `line n`, one a line. */
function lines(from: number, to: number): string {
  let text = '';
  for (let i = from; i <= to; i++) text += `line ${i}\n`;
  return text;
}

describe('distributed: a worker restarted within its grace time follows its jobs again', () => {
  for (const how of ['kill -9', 'SIGTERM'] as const) {
    it(`${how} of the worker while a batch job and an interactive cat run, then a start on the same home: the batch output is complete with its exit code, the attach goes on and echoes`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'jobwire-restart-'));
      try {
        await withCluster(async (cluster) => {
          await cluster.addServer();
          // A grace time that a loaded machine's restart fits in.
          await cluster.addWorker({ name: 'keeper', slots: 2, deadAfter: 30 });
          const client = cluster.client();
          const go = join(dir, 'go');
          // Half its output, then it waits for the test (after the restart), then the other half.
          const batch = await client.submitBatchJob({
            executable: 'sh',
            arguments: ['-c', `i=1; while [ $i -le 50 ]; do echo line $i; i=$((i+1)); done; while [ ! -e '${go}' ]; do sleep 0.05; done; while [ $i -le 100 ]; do echo line $i; i=$((i+1)); done; exit 3`],
          });
          const cat = await client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited' });
          const echoes = cat.output[Symbol.asyncIterator]();
          await client.waitUntilRunning(batch.id, 20_000);
          await cat.stdin.write('before\n');
          assert.equal(await readUntil(echoes, 'before\n'), 'before\n');
          const batchPid = await cluster.jobPid(batch.id);
          const catPid = await cluster.jobPid(cat.jobId);

          if (how === 'kill -9') await cluster.killWorker('keeper');
          else assert.equal(await cluster.stopWorker('keeper'), 0, 'a clean stop exits 0');
          // Typed while no worker follows the job: kept in Redis, handed over after the restart.
          await cat.stdin.write('during\n');
          const restarted = await cluster.restartWorker('keeper');
          assert.match(restarted.log(), /took over from the previous instance/);

          for (const [id, pid] of [[batch.id, batchPid], [cat.jobId, catPid]] as const) {
            const info = await client.getJobStatus(id);
            assert.deepEqual([info.status, info.node], ['Running', 'keeper'], `job ${id} is still Running on its node`);
            assert.equal(await cluster.jobPid(id), pid, `job ${id} was not started again`);
          }
          assert.equal(await readUntil(echoes, 'during\n'), 'during\n');
          await cat.stdin.write('after\n');
          assert.equal(await readUntil(echoes, 'after\n'), 'after\n');
          await cat.stdin.end();
          const exit = await cat.exit;
          assert.deepEqual([exit.status, exit.exitCode], ['Success', 0]);

          writeFileSync(go, '');
          const done = await client.waitUntilDone(batch.id, 30_000);
          assert.deepEqual([done.status, done.exitCode], ['Failed', 3]);
          assert.equal(Buffer.from((await client.readOutput(batch.id)).data).toString(), lines(1, 100));
          // Settled through the new instance: its slots are free again.
          const report = await client.getWorkers();
          const keeper = report.items.find((w) => w.name === 'keeper');
          assert.deepEqual([keeper?.alive, keeper?.used, keeper?.unlimited], [true, 0, 0]);
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('past the grace time the job host stops the jobs, the cluster marks them Lost, and the next start on the same home finds nothing to stop', async () => {
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addWorker({ name: 'late', slots: 1, deadAfter: 2 });
      const client = cluster.client();
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo started; exec sleep 1000'] });
      await client.waitUntilRunning(job.id, 20_000);
      const pid = await cluster.jobPid(job.id);
      cluster.orphans.add(pid);
      await cluster.stopWorker('late');
      const lost = await client.waitUntilDone(job.id, 20_000);
      assert.equal(lost.status, 'Lost');
      await sleepUntil(() => !runs(pid), 10_000, 'the job host to stop the job nobody follows');
      const restarted = await cluster.restartWorker('late');
      assert.doesNotMatch(restarted.log(), /processes an earlier instance of this worker left running/);
      assert.equal((await client.getJobStatus(job.id)).status, 'Lost');
    });
  });
});
