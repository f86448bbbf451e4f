/**
 * A distributed worker that feeds the real test Slurm (`jobwire worker --executor slurm:`, test/slurm-env.ts)
 * through real server and worker processes on the test Redis: a job Slurm holds PENDING is
 * Queued (placed on the worker, with Slurm's reason) until Slurm starts it, then Running; a
 * cancel while it waits ends it Cancelled and takes it out of Slurm; a worker killed with -9
 * and started again within its grace time follows the PENDING job, and a Running one, by their
 * stored Slurm ids (no second sbatch, output complete); and a worker that does not come back has such a job settled as its Running
 * jobs are (Lost, or retried: a new attempt submits it afresh), never placed again as if it had
 * not been submitted.
 *
 * Distributed mode refuses `schedulerArguments` (servers check jobs as the workers' local
 * executors would), so the workers here hold their jobs as a site's sbatch wrapper would: an
 * `sbatch` first on their PATH that runs the real one with `--hold`.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client, JobInfo } from '@jobwire/client';
import { sleepUntil } from '../helpers.js';
import { TestCluster } from '../distributed/cluster.js';
import { SLURM_CONF, slurmCommand, useTestSlurm, waitInSlurm, slurmJobsOf } from '../slurm-env.js';

const TIMEOUT = { timeout: 180_000 };
/** A folder with the holding `sbatch` wrapper, first on the workers' PATH. */
const wrappers = mkdtempSync(join(tmpdir(), 'jobwire-slurm-worker-'));
const HOLDING = { PATH: `${wrappers}:${process.env.PATH ?? '/usr/bin:/bin'}` };
const previousConf = process.env.SLURM_CONF;
let cluster: TestCluster;
let client: Client;
/** Slurm jobs this file submitted, cancelled at the end whatever happened. */
const submitted = new Set<string>();

/** Waits until the job waits in Slurm; returns the job and its Slurm id (cancelled at the end of the file). */
async function heldInSlurm(id: string): Promise<{ job: JobInfo; slurmId: string }> {
  const held = await waitInSlurm((job) => client.getJobStatus(job), id);
  submitted.add(held.slurmId);
  return held;
}

before(async () => {
  await useTestSlurm();
  // The worker processes inherit it: `slurm:` runs Slurm's commands with the worker's environment.
  process.env.SLURM_CONF = SLURM_CONF;
  const real = slurmCommand('sh', ['-c', 'command -v sbatch']).trim();
  writeFileSync(join(wrappers, 'sbatch'), `#!/bin/sh\nexec '${real}' --hold "$@"\n`);
  chmodSync(join(wrappers, 'sbatch'), 0o755);
  cluster = new TestCluster();
  await cluster.addServer();
  // A grace time a loaded machine's restart fits in.
  await cluster.addWorker({ name: 'slurmer', slots: 4, deadAfter: 30, executor: 'slurm:', env: HOLDING });
  client = cluster.client();
});

after(async () => {
  await cluster?.close();
  for (const id of submitted) {
    try {
      slurmCommand('scancel', [id]);
    } catch {
      // Ended already.
    }
  }
  if (previousConf === undefined) delete process.env.SLURM_CONF;
  else process.env.SLURM_CONF = previousConf;
  rmSync(wrappers, { recursive: true, force: true });
});

describe('distributed: jobwire worker --executor slurm:', () => {
  test('a job Slurm holds PENDING is Queued, placed on the worker with Slurm\'s reason, and Running once Slurm starts it', TIMEOUT, async () => {
    const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo ran'] });
    const { job: held, slurmId } = await heldInSlurm(job.id);
    assert.equal(held.status, 'Queued');
    assert.equal(held.startedAt, null);
    assert.match(held.reason ?? '', new RegExp(`^queued in Slurm as job ${slurmId}: PENDING \\(JobHeldUser\\)$`));
    // Still Queued a few polls later, and it holds its slot on the worker.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await client.getJobStatus(job.id)).status, 'Queued');
    const slurmer = (await client.getWorkers()).items.find((w) => w.name === 'slurmer');
    assert.equal(slurmer?.used, 1);
    slurmCommand('scontrol', ['release', slurmId]);
    const done = await client.waitUntilDone(job.id, 90_000);
    assert.equal(done.status, 'Success', done.error ?? '');
    assert.notEqual(done.startedAt, null);
    assert.equal(done.reason, null);
    assert.equal(done.node, 'slurmer');
    assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), 'ran\n');
  });

  test('a cancel while the job waits in Slurm ends it Cancelled and takes it out of Slurm', TIMEOUT, async () => {
    const job = await client.submitBatchJob({ executable: 'true' });
    const { slurmId } = await heldInSlurm(job.id);
    await client.cancelJob(job.id);
    const done = await client.waitUntilDone(job.id, 30_000);
    assert.equal(done.status, 'Cancelled');
    await sleepUntil(() => slurmJobsOf(job.id).every((line) => !line.endsWith('PENDING')) || undefined, 30_000, `Slurm job ${slurmId} to leave the queue`);
    // Its slot on the worker is free again.
    await sleepUntil(async () => (await client.getWorkers()).items.find((w) => w.name === 'slurmer')?.used === 0 || undefined, 30_000, 'the slot to be freed');
  });

  test('a worker killed with -9 and started again within its grace time follows the PENDING job and the Running one by their Slurm ids, submitting neither again', TIMEOUT, async () => {
    const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo once'] });
    const { slurmId } = await heldInSlurm(job.id);
    // And one that runs: half its output before the kill, the rest after the restart.
    const go = join(wrappers, 'go');
    const running = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', `echo one; while [ ! -e '${go}' ]; do sleep 0.1; done; echo two; exit 4`] });
    const runningId = (await heldInSlurm(running.id)).slurmId;
    slurmCommand('scontrol', ['release', runningId]);
    await client.waitUntilRunning(running.id, 90_000);
    await sleepUntil(async () => Buffer.from((await client.readOutput(running.id)).data).toString() === 'one\n' || undefined, 60_000, 'the first half of the output');
    await cluster.killWorker('slurmer');
    const restarted = await cluster.restartWorker('slurmer');
    assert.match(restarted.log(), /took over from the previous instance/);
    // A few of the new instance's polls later: still Queued in the one Slurm job, no second sbatch.
    await new Promise((r) => setTimeout(r, 3000));
    const info = await client.getJobStatus(job.id);
    assert.equal(info.status, 'Queued');
    assert.match(info.reason ?? '', new RegExp(`^queued in Slurm as job ${slurmId}: PENDING`));
    assert.deepEqual(slurmJobsOf(job.id), [`${slurmId} PENDING`]);
    slurmCommand('scontrol', ['release', slurmId]);
    const done = await client.waitUntilDone(job.id, 90_000);
    assert.equal(done.status, 'Success', done.error ?? '');
    assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), 'once\n');
    assert.deepEqual(slurmJobsOf(job.id).map((line) => line.split(' ')[0]), [slurmId]);

    assert.deepEqual([(await client.getJobStatus(running.id)).status, (await client.getJobStatus(running.id)).node], ['Running', 'slurmer']);
    writeFileSync(go, '');
    const ended = await client.waitUntilDone(running.id, 90_000);
    assert.deepEqual([ended.status, ended.exitCode], ['Failed', 4]);
    assert.equal(Buffer.from((await client.readOutput(running.id)).data).toString(), 'one\ntwo\n');
    assert.deepEqual(slurmJobsOf(running.id).map((line) => line.split(' ')[0]), [runningId]);
  });

  test('a worker that does not come back: its jobs waiting in Slurm are settled like its Running jobs (Lost, or a new attempt that submits afresh), never placed again as they were', TIMEOUT, async () => {
    await cluster.addWorker({ name: 'shortlived', pools: ['brief'], slots: 2, deadAfter: 2, executor: 'slurm:', env: HOLDING });
    const job = await client.submitBatchJob({ executable: 'true', pools: ['brief'] });
    const retried = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo second attempt'], pools: ['brief'], retries: 1 });
    const { slurmId } = await heldInSlurm(job.id);
    const first = await heldInSlurm(retried.id);
    assert.equal((await client.getJobStatus(job.id)).node, null);
    await cluster.killWorker('shortlived');
    const lost = await client.waitUntilDone(job.id, 60_000);
    assert.equal(lost.status, 'Lost');
    assert.match(lost.error ?? '', /the worker shortlived stopped answering/);
    // Not submitted again by anyone: the one Slurm job, still held (nothing of jobwire follows it now).
    assert.deepEqual(slurmJobsOf(job.id), [`${slurmId} PENDING`]);
    // The other waits for its second attempt; a worker of its pool submits it anew (not following the old Slurm job).
    await sleepUntil(async () => /starting it again \(attempt 2 of 2\)|no live worker can take this job/.test((await client.getJobStatus(retried.id)).reason ?? '') || undefined, 60_000, 'the job to wait for its next attempt');
    assert.equal((await client.getJobStatus(retried.id)).status, 'Queued');
    await cluster.restartWorker('shortlived');
    const second = await heldInSlurm(retried.id);
    assert.notEqual(second.slurmId, first.slurmId);
    slurmCommand('scontrol', ['release', second.slurmId]);
    const done = await client.waitUntilDone(retried.id, 90_000);
    assert.equal(done.status, 'Success', done.error ?? '');
    assert.equal(Buffer.from((await client.readOutput(retried.id)).data).toString(), 'second attempt\n');
  });
});
