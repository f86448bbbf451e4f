/**
 * How a Slurm job's life in Slurm shows in jobwire, through a real server on the real test
 * Slurm (test/slurm-env.ts): a job Slurm holds PENDING is Queued (with Slurm's reason) until
 * Slurm starts it; a jobwire cancel while it waits takes it out of Slurm; an operator's
 * `scancel` ends a job Cancelled; Slurm's time limit ends a job Failed with TIMEOUT (the runner
 * sets no timer of its own); and a job still PENDING when the server stops is followed by the
 * next server — not submitted again — and runs once Slurm lets it. A job's files in the jobs
 * folder go once it ended and its output is stored, unless the server keeps them.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client, type JobInfo } from '@jobwire/client';
import { startServer, type ServerHandle } from '../../src/server/index.js';
import { runCli, sleepUntil } from '../helpers.js';
import { PARTITIONS, SLURM_CONF, slurmCommand, useTestSlurm, waitInSlurm, slurmJobsOf } from '../slurm-env.js';

const TIMEOUT = { timeout: 180_000 };
const home = mkdtempSync(join(tmpdir(), 'jobwire-slurm-queued-'));
const previousConf = process.env.SLURM_CONF;
let server: ServerHandle;
let client: Client;

const start = async (keepRemoteJobFiles = false): Promise<void> => {
  server = await startServer({ home, port: 0, logLevel: 'silent', graceSeconds: 1, executors: ['hpc=slurm:'], ...(keepRemoteJobFiles ? { keepRemoteJobFiles } : {}) });
  client = new Client({ url: server.url, token: server.token });
};

/** Waits until the job waits in Slurm; returns the job and its Slurm id. */
const heldInSlurm = (id: string): Promise<{ job: JobInfo; slurmId: string }> => waitInSlurm((job) => client.getJobStatus(job), id);

before(async () => {
  await useTestSlurm();
  process.env.SLURM_CONF = SLURM_CONF;
  await start();
});

after(async () => {
  await server?.close();
  if (previousConf === undefined) delete process.env.SLURM_CONF;
  else process.env.SLURM_CONF = previousConf;
  for (const dir of [home, `${home}-work`]) rmSync(dir, { recursive: true, force: true });
});

// Slurm enforces time limits on a 30 s sweep after the first whole minute: started first, checked last.
let timeLimited: string | undefined;
test('a job past its maxRuntime (checked at the end) is started', TIMEOUT, async () => {
  timeLimited = (await client.submitBatchJob({ executable: 'sleep', arguments: ['600'], executor: 'hpc', queueName: PARTITIONS.short, maxRuntime: 1, workingDirectory: home })).id;
});

test('a job Slurm holds PENDING is Queued with Slurm\'s reason, and Running once Slurm starts it', TIMEOUT, async () => {
  const submitted = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo ran'], executor: 'hpc', schedulerArguments: ['--hold'], workingDirectory: home });
  const { job, slurmId } = await heldInSlurm(submitted.id);
  assert.equal(job.status, 'Queued');
  assert.equal(job.startedAt, null);
  assert.match(job.reason ?? '', /PENDING \(JobHeldUser\)$/);
  // Still Queued a few polls later: nothing but Slurm starts it.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await client.getJobStatus(submitted.id)).status, 'Queued');
  slurmCommand('scontrol', ['release', slurmId]);
  const done = await client.waitUntilDone(submitted.id, 90_000);
  assert.equal(done.status, 'Success', done.error ?? '');
  assert.notEqual(done.startedAt, null);
  assert.equal(done.reason, null);
  assert.equal(Buffer.from((await client.readOutput(submitted.id)).data).toString(), 'ran\n');
});

test('a jobwire cancel of a job waiting in Slurm ends it Cancelled and takes it out of Slurm', TIMEOUT, async () => {
  const submitted = await client.submitBatchJob({ executable: 'true', executor: 'hpc', schedulerArguments: ['--hold'], workingDirectory: home });
  const { slurmId } = await heldInSlurm(submitted.id);
  await client.cancelJob(submitted.id);
  const done = await client.waitUntilDone(submitted.id, 30_000);
  assert.equal(done.status, 'Cancelled');
  await sleepUntil(() => slurmJobsOf(submitted.id).every((line) => !line.endsWith('PENDING')) || undefined, 30_000, `Slurm job ${slurmId} to leave the queue`);
});

test('an operator\'s scancel of a running job ends it Cancelled, saying it was not jobwire', TIMEOUT, async () => {
  const submitted = await client.submitBatchJob({ executable: 'sleep', arguments: ['300'], executor: 'hpc', workingDirectory: home });
  await client.waitUntilRunning(submitted.id, 90_000);
  const [line] = slurmJobsOf(submitted.id);
  assert.match(line ?? '', /^\d+ RUNNING$/);
  slurmCommand('scancel', [line!.split(' ')[0]!]);
  const done = await client.waitUntilDone(submitted.id, 60_000);
  assert.equal(done.status, 'Cancelled');
  assert.match(done.error ?? '', /^Slurm job \d+ was CANCELLED in Slurm, not by jobwire/);
});

test('a job still PENDING when the server stops is followed by the next one, not submitted again, with Slurm\'s reason', TIMEOUT, async () => {
  const submitted = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo once'], executor: 'hpc', schedulerArguments: ['--hold'], workingDirectory: home });
  const { slurmId } = await heldInSlurm(submitted.id);
  await server.close(); // keeps the jobs (the default)
  await start();
  assert.equal((await client.getJobStatus(submitted.id)).status, 'Queued');
  // A few of the new server's polls later: still the one Slurm job, no second sbatch.
  await new Promise((r) => setTimeout(r, 3000));
  const followed = await client.getJobStatus(submitted.id);
  assert.equal(followed.status, 'Queued');
  // The new server says why it waits, from Slurm, as the old one did.
  assert.equal(followed.reason, `queued in Slurm as job ${slurmId}: PENDING (JobHeldUser)`);
  assert.equal(followed.startedAt, null);
  assert.deepEqual(slurmJobsOf(submitted.id), [`${slurmId} PENDING`]);
  slurmCommand('scontrol', ['release', slurmId]);
  const done = await client.waitUntilDone(submitted.id, 90_000);
  assert.equal(done.status, 'Success', done.error ?? '');
  assert.equal(Buffer.from((await client.readOutput(submitted.id)).data).toString(), 'once\n');
});

/** A job's files in the default jobs folder (`~/.jobwire/slurm-jobs` of the submit host, this machine). */
const filesOf = (id: string): string[] => ['out', 'err', 'exit'].map((ext) => join(homedir(), '.jobwire', 'slurm-jobs', `${id}.${ext}`));

test('a job\'s output and exit files are removed once it ended and its output is stored; kept when configured', TIMEOUT, async () => {
  const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo kept in the store'], executor: 'hpc', workingDirectory: home });
  assert.equal((await client.waitUntilDone(job.id, 90_000)).status, 'Success');
  await sleepUntil(() => filesOf(job.id).every((f) => !existsSync(f)) || undefined, 10_000, 'the job files to go');
  assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), 'kept in the store\n');

  await server.close();
  await start(true);
  const kept = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo on disk too'], executor: 'hpc', workingDirectory: home });
  assert.equal((await client.waitUntilDone(kept.id, 90_000)).status, 'Success');
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok(filesOf(kept.id).every((f) => existsSync(f)), 'the files are kept');
  for (const f of filesOf(kept.id)) rmSync(f, { force: true });
  await server.close();
  await start();
});

test('jobwire server --keep-remote-job-files needs an executor whose files it would keep', TIMEOUT, async () => {
  const run = await runCli(['server', '--keep-remote-job-files', '--port', '0', '--home', join(home, 'unused')], { timeoutMs: 30_000 });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--keep-remote-job-files is about the files of --executor NAME=slurm:\.\.\. jobs; give an executor/);
});

test('maxRuntime is Slurm\'s --time: the job ends Failed with TIMEOUT in the reason, not by a timer of jobwire', TIMEOUT, async () => {
  assert.ok(timeLimited);
  const done = await client.waitUntilDone(timeLimited, 170_000);
  assert.equal(done.status, 'Failed');
  assert.match(done.error ?? '', /^Slurm job \d+ ended TIMEOUT, reason TimeLimit/);
});
