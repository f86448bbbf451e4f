/**
 * Slurm behind named executors, through a real server and the CLI: `--executor hpc=slurm:`
 * (Slurm's commands on this machine) and `--executor hpc2=slurm+ssh://...` (the same test
 * cluster through the test sshd as its login node): batch jobs with output and exit codes,
 * cancel, interactive `cat` through srun, partitions as `jobwire queues --executor`, executor
 * states in `jobwire executors` — and a Slurm that cannot be reached starts with the server,
 * says why, and fails its jobs with that reason while the others go on. Xenon clients reach
 * both as the `slurm` adaptor.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BadRequestError, Client } from '@jobwire/client';
import { startWorker } from '../../src/distributed/worker.js';
import { startServer, type ServerHandle } from '../../src/server/index.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';
import { cliEnv, runCli, sleepUntil } from '../helpers.js';
import { PARTITIONS, SLURM_CONF, useTestSlurm } from '../slurm-env.js';
import { freePort, startSshd, type TestSshd } from './sshd.js';
import { XenonClient, grpc, rejectsWith } from '../grpc/xenon-client.js';

const TIMEOUT = { timeout: 120_000 };

let sshd: TestSshd;
let server: ServerHandle;
let client: Client;
let env: Record<string, string>;
const home = mkdtempSync(join(tmpdir(), 'jobwire-slurm-server-'));
const previousConf = process.env.SLURM_CONF;

before(async () => {
  await useTestSlurm();
  // `slurm:` runs Slurm's commands with the server's environment; the login node gets it from sshd.
  process.env.SLURM_CONF = SLURM_CONF;
  sshd = await startSshd({ env: { SLURM_CONF } });
  const unreachable = await freePort();
  server = await startServer({
    home,
    port: 0,
    logLevel: 'silent',
    graceSeconds: 1,
    executors: ['hpc=slurm:', `hpc2=slurm+ssh://${sshd.user}@127.0.0.1:${sshd.port}`, `gone=slurm+ssh://${sshd.user}@127.0.0.1:${unreachable}`],
    ssh: { identityFiles: [sshd.identity], knownHostsFile: sshd.knownHosts, agent: false },
    grpcPort: 0,
  });
  client = new Client({ url: server.url, token: server.token });
  env = cliEnv({ url: server.url, token: server.token, home });
});

after(async () => {
  await server?.close();
  await sshd?.stop();
  if (previousConf === undefined) delete process.env.SLURM_CONF;
  else process.env.SLURM_CONF = previousConf;
  for (const dir of [home, `${home}-work`]) rmSync(dir, { recursive: true, force: true });
});

for (const name of ['hpc', 'hpc2']) {
  describe(`executor ${name} (${name === 'hpc' ? 'slurm:' : 'slurm+ssh://'})`, () => {
    test('batch jobs end Success with their output, or Failed with the exit code', TIMEOUT, async () => {
      const ok = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo "out $SLURM_JOB_PARTITION"; echo err >&2'], executor: name, workingDirectory: home });
      const failing = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo partial; exit 3'], executor: name, workingDirectory: home });
      const done = await client.waitUntilDone(ok.id, 90_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal(done.exitCode, 0);
      // No queue named: the cluster's default partition, not the server's default queue.
      assert.equal(done.queue, PARTITIONS.default);
      assert.equal(Buffer.from((await client.readOutput(ok.id)).data).toString(), `out ${PARTITIONS.default}\n`);
      assert.equal(Buffer.from((await client.readOutput(ok.id, 'stderr')).data).toString(), 'err\n');
      const failed = await client.waitUntilDone(failing.id, 90_000);
      assert.equal(failed.status, 'Failed');
      assert.equal(failed.exitCode, 3);
      assert.equal(Buffer.from((await client.readOutput(failing.id)).data).toString(), 'partial\n');
    });

    test('a job in another partition runs there; an unknown partition is refused at submit', TIMEOUT, async () => {
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo $SLURM_JOB_PARTITION'], executor: name, queueName: PARTITIONS.short, workingDirectory: home });
      const done = await client.waitUntilDone(job.id, 90_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), `${PARTITIONS.short}\n`);
      await assert.rejects(
        client.submitBatchJob({ executable: 'true', executor: name, queueName: 'nope' }),
        (err: unknown) => err instanceof BadRequestError && err.field === 'queueName' && /Slurm has no partition "nope"; its partitions are debug, short/.test(err.message),
      );
    });

    test('cancel: a running job ends Cancelled', TIMEOUT, async () => {
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['300'], executor: name, workingDirectory: home });
      await client.waitUntilRunning(job.id, 90_000);
      await client.cancelJob(job.id);
      const done = await client.waitUntilDone(job.id, 90_000);
      assert.equal(done.status, 'Cancelled');
    });

    test('the CLI: an interactive cat through srun, a batch exit code, the partitions as queues', TIMEOUT, async () => {
      const cat = await runCli(['run', '-i', '--executor', name, '--cwd', home, '--', 'cat'], { env, input: 'ping\npong\n', timeoutMs: 90_000 });
      assert.equal(cat.code, 0, cat.stderr);
      assert.equal(cat.stdout, 'ping\npong\n');
      const ran = await runCli(['run', '--executor', name, '--cwd', home, '--', 'sh', '-c', 'pwd; exit 4'], { env, timeoutMs: 90_000 });
      assert.equal(ran.code, 4, ran.stderr);
      assert.equal(ran.stdout, `${home}\n`);
      const queues = await runCli(['queues', '--executor', name], { env });
      assert.match(queues.stdout, /^QUEUE +LIMIT\ndebug +unlimited\nshort +unlimited\n$/);
    });
  });
}

describe('executor states', () => {
  test('jobwire executors: both Slurm executors connected; an unreachable one failing with why, its jobs Failed with that reason', TIMEOUT, async () => {
    const job = await client.submitBatchJob({ executable: 'true', executor: 'gone' });
    const failed = await client.waitUntilDone(job.id, 90_000);
    assert.equal(failed.status, 'Failed');
    assert.match(failed.error ?? '', /Slurm is not reachable: sinfo cannot run on .*@127\.0\.0\.1:\d+ \(cannot reach .*ECONNREFUSED/);
    await sleepUntil(async () => (await client.getExecutors()).every((e) => e.name === 'gone' || e.state !== 'idle'), 30_000, 'the executors to connect');
    const listed = await runCli(['executors', '--json'], { env });
    const executors = JSON.parse(listed.stdout) as { name: string; adaptor: string; state: string; reason?: string; queues: { name: string }[] }[];
    assert.deepEqual(
      executors.map((e) => `${e.name}:${e.adaptor}:${e.state}:${e.queues.map((q) => q.name).join(',')}`),
      ['local:local:ready:single,multi,unlimited', 'hpc:slurm:connected:debug,short', 'hpc2:slurm:connected:debug,short', 'gone:slurm:failing:'],
    );
    assert.match(executors[3]!.reason ?? '', /ECONNREFUSED/);
    const table = await runCli(['executors'], { env });
    assert.match(table.stdout, /^gone +slurm\+ssh:\/\/.* +failing +.*ECONNREFUSED/m);
    // The server and the other executors go on.
    const local = await client.submitBatchJob({ executable: 'true' });
    assert.equal((await client.waitUntilDone(local.id, 60_000)).status, 'Success');
  });
});

describe('Xenon gRPC', () => {
  test('a slurm scheduler with a certificate credential runs its jobs through the login node on a connection of its own', TIMEOUT, async () => {
    const x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
    try {
      const described = (await x.sched('getAdaptorDescriptions')).descriptions.find((d: { name: string }) => d.name === 'slurm');
      assert.deepEqual(described.supported_credentials, ['DefaultCredential', 'PasswordCredential', 'CertificateCredential']);
      // The admin may name any key file the server's account reads.
      const sched = await x.sched('create', { adaptor: 'slurm', location: `127.0.0.1:${sshd.port}`, certificate_credential: { username: sshd.user, certfile: sshd.identity } });
      assert.equal((await x.sched('getCredential', sched)).certificate_credential.certfile, sshd.identity);
      await sleepUntil(async () => (await x.sched('getQueueNames', sched)).name.length > 0, 30_000, 'the partitions, read over the credential\'s connection');
      assert.deepEqual((await x.sched('getQueueNames', sched)).name, [PARTITIONS.default, PARTITIONS.short]);
      const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'echo $SLURM_JOB_PARTITION; exit 6'], working_directory: home } });
      const status = await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 90_000 });
      assert.equal(status.exit_code, 6, status.error_message);
      const info = await client.getJobStatus(job.id);
      assert.match(info.description?.executor ?? '', /^xenon\.slurm\./);
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), `${PARTITIONS.default}\n`);
    } finally {
      x.close();
    }
  });

  test('the slurm adaptor: location local:// is slurm:, host:port the login node; queues are partitions', TIMEOUT, async () => {
    const x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
    try {
      await sleepUntil(async () => (await client.getExecutors()).filter((e) => e.name.startsWith('hpc')).every((e) => e.state === 'connected'), 30_000, 'the Slurm executors to connect');
      assert.deepEqual((await x.sched('getAdaptorNames')).name, ['local', 'slurm']);
      const described = (await x.sched('getAdaptorDescriptions')).descriptions.find((d: { name: string }) => d.name === 'slurm');
      assert.match(described.description, new RegExp(`hpc: local://, hpc2: ${sshd.user}@127\\.0\\.0\\.1:${sshd.port}, gone: `));
      assert.equal(described.uses_file_system, true);
      assert.equal(described.supports_interactive, true);

      for (const [location, executor] of [['local://', 'hpc'], [`127.0.0.1:${sshd.port}`, 'hpc2']] as const) {
        const sched = await x.sched('create', { adaptor: 'slurm', location, default_credential: {} });
        assert.equal((await x.sched('getAdaptorName', sched)).name, 'slurm');
        assert.deepEqual((await x.sched('getQueueNames', sched)).name, [PARTITIONS.default, PARTITIONS.short]);
        assert.equal((await x.sched('getDefaultQueueName', sched)).name, PARTITIONS.default);
        const job = await x.sched('submitBatchJob', { scheduler: sched, description: { executable: 'sh', arguments: ['-c', 'echo $SLURM_JOB_PARTITION; exit 5'], working_directory: home } });
        const status = await x.sched('waitUntilDone', { scheduler: sched, job, timeout: 90_000 });
        assert.equal(status.done, true);
        assert.equal(status.exit_code, 5);
        const info = await client.getJobStatus(job.id);
        assert.equal(info.description?.executor, executor);
        assert.equal(info.queue, PARTITIONS.default);
        assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), `${PARTITIONS.default}\n`);
        // The cluster's files: this machine's (file adaptor) for slurm:, the login node's over sftp for slurm+ssh.
        const fs = await x.sched('getFileSystem', sched);
        assert.equal((await x.fs('getAdaptorName', fs)).name, executor === 'hpc' ? 'file' : 'sftp');
        assert.equal((await x.fs('exists', { filesystem: fs, path: { path: home } })).value, true);
      }

      await rejectsWith(x.sched('create', { adaptor: 'slurm', location: 'elsewhere:22' }), grpc.status.FAILED_PRECONDITION, 'InvalidLocationException');
      await rejectsWith(x.sched('create', { adaptor: 'slurm', location: 'local://', password_credential: { username: 'u', password: 'p' } }), grpc.status.FAILED_PRECONDITION, 'InvalidCredentialException');
      await rejectsWith(x.sched('create', { adaptor: 'ssh', location: 'local://' }), grpc.status.NOT_FOUND, 'UnknownAdaptorException');
    } finally {
      x.close();
    }
  });
});

describe('distributed mode', () => {
  test('a worker with --executor slurm: feeds the cluster: jobs in the default queue go to the default partition', TIMEOUT, async () => {
    const prefix = freshPrefix();
    const distributed = await startServer({ home: `${home}-distributed`, port: 0, logLevel: 'silent', graceSeconds: 1, redis: REDIS_URL, redisPrefix: prefix });
    const worker = await startWorker({ redis: REDIS_URL, prefix, name: 'slurm-fed', slots: 2, graceSeconds: 1, home: `${home}-worker`, workDir: home, serverUrl: distributed.url, logLevel: 'silent', executor: 'slurm:' });
    const remote = new Client({ url: distributed.url, token: distributed.token });
    try {
      const job = await remote.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo "$SLURM_JOB_PARTITION $JOBWIRE_JOB_ID"'] });
      const done = await remote.waitUntilDone(job.id, 90_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal(Buffer.from((await remote.readOutput(job.id)).data).toString(), `${PARTITIONS.default} ${job.id}\n`);
    } finally {
      await worker.close();
      await distributed.close();
      await dropPrefix(prefix);
      for (const dir of [`${home}-distributed`, `${home}-distributed-work`, `${home}-worker`]) rmSync(dir, { recursive: true, force: true });
    }
  });
});
