/**
 * The Slurm executor against a real one-node Slurm (test/slurm-env.ts), through the Executor
 * interface as a backend uses it: batch jobs with output and exit codes, cancel, Slurm's time
 * limit, sbatch refusing a job, interactive and tty jobs through srun, partitions as queues,
 * and a new executor instance resuming a job by its Slurm id.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BadRequestError, type JobDescription } from '@jobwire/client';
import { LocalSubmitHost, SlurmCommandError, slurmExecutor, type SlurmExecutor, type SlurmJobRecord } from '../../src/executors/slurm/index.js';
import { parseSlurmOptions, SlurmExecutor as SlurmExecutorClass } from '../../src/executors/slurm/slurm-executor.js';
import type { ExecutorState, ProcessHandle, ProcessResult, ResumeFrom, StartSpec } from '../../src/executors/types.js';
import { PARTITIONS, SLURM_ENV, slurmCommand, useTestSlurm } from '../slurm-env.js';

const work = mkdtempSync(join(tmpdir(), 'jobwire-slurm-test-'));
const host = new LocalSubmitHost({ env: SLURM_ENV });
let executor: SlurmExecutor;
let counter = 0;

/** A job started through the executor, with everything it reported. */
interface Run {
  handle: ProcessHandle;
  output: { stdout: string; stderr: string };
  states: ExecutorState[];
  /** Resolves once `predicate(output)` holds. */
  waitFor(predicate: (output: Run['output']) => boolean): Promise<void>;
}

function spec(description: JobDescription, run: Pick<Run, 'output' | 'states'>, onChange: () => void): StartSpec {
  return {
    jobId: `jw${process.pid}x${++counter}`,
    description,
    defaultCwd: work,
    env: { JOBWIRE_JOB_ID: 'test' },
    onOutput: (channel, data) => {
      run.output[channel] += data.toString('utf8');
      onChange();
    },
    onProgress: () => undefined,
    onState: (state) => run.states.push(state),
  };
}

/** Starts a job on `on` (default: the shared executor) and follows what it reports. */
function start(description: JobDescription, on: SlurmExecutor = executor): Run & { spec: StartSpec } {
  const waiters = new Set<() => void>();
  const run = { output: { stdout: '', stderr: '' }, states: [] as ExecutorState[] };
  const s = spec(description, run, () => waiters.forEach((w) => w()));
  on.check(description);
  const handle = on.start(s);
  return {
    states: run.states,
    spec: s,
    handle,
    waitFor: (predicate) =>
      new Promise((resolve) => {
        const check = (): void => {
          if (!predicate(run.output)) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
    get output() {
      return run.output;
    },
  };
}

/** The Slurm state of job `id` as scontrol reports it. */
function slurmState(id: string): string {
  return /JobState=(\S+)/.exec(slurmCommand('scontrol', ['--oneliner', 'show', 'job', id]))?.[1] ?? '?';
}

/** Waits until job `id` runs in Slurm. */
async function untilRunning(id: () => string | undefined): Promise<string> {
  for (;;) {
    const known = id();
    if (known !== undefined && slurmState(known) === 'RUNNING') return known;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Output and exit file paths of a job in `folder` (made here). */
function jobFilesIn(folder: string): { stdout: string; stderr: string; exit: string } {
  mkdirSync(folder, { recursive: true });
  return { stdout: join(folder, 'j.out'), stderr: join(folder, 'j.err'), exit: join(folder, 'j.exit') };
}

function slurmIdOf(run: Pick<Run, 'states'>): string | undefined {
  return (run.states.at(-1) as SlurmJobRecord | undefined)?.slurmJobId;
}

before(async () => {
  await useTestSlurm();
  executor = await slurmExecutor({ host, jobsFolder: join(work, 'jobs'), pollMs: 200, lostAfterMs: 5000 });
});

after(() => {
  executor?.close();
  rmSync(work, { recursive: true, force: true });
});

// Slurm enforces time limits on a 30 s sweep after the first whole minute: this job is started
// first and its test awaited last, so the other tests run meanwhile.
let timeLimited: (Run & { spec: StartSpec }) | undefined;
test('starts a job that outlives its time limit (checked at the end)', () => {
  timeLimited = start({ executable: 'sleep', arguments: ['600'], queueName: PARTITIONS.short, maxRuntime: 1 });
});

test('batch job: output of both channels and exit code 0, with its Slurm id reported', async () => {
  const run = start({ executable: 'sh', arguments: ['-c', 'echo out; echo err >&2'] });
  const result = await run.handle.done;
  assert.deepEqual(result, { exitCode: 0, signal: null });
  assert.equal(run.output.stdout, 'out\n');
  assert.equal(run.output.stderr, 'err\n');
  const id = slurmIdOf(run);
  assert.match(id ?? '', /^\d+$/);
  assert.equal(slurmState(id!), 'COMPLETED');
});

test('batch job: a failing command ends with its exit code', async () => {
  const run = start({ executable: 'sh', arguments: ['-c', 'echo before; exit 3'] });
  const result = await run.handle.done;
  assert.equal(result.exitCode, 3);
  assert.equal(result.error, undefined);
  assert.equal(run.output.stdout, 'before\n');
  assert.equal(slurmState(slurmIdOf(run)!), 'FAILED');
});

test('batch job: environment (quoted), working directory, arguments with spaces and the job name', async () => {
  const dir = mkdtempSync(join(work, 'cwd-'));
  const run = start({
    executable: 'sh',
    arguments: ['-c', 'printf "%s|%s|%s|%s\\n" "$GREETING" "$1" "$(pwd)" "$SLURM_JOB_NAME"', 'sh', "it's two words"],
    environment: { GREETING: "hello 'quoted' $HOME" },
    workingDirectory: dir,
    name: 'named-job',
  });
  assert.deepEqual(await run.handle.done, { exitCode: 0, signal: null });
  assert.equal(run.output.stdout, `hello 'quoted' $HOME|it's two words|${dir}|named-job\n`);
});

test('batch job: output arrives while the job runs, not only at its end', async () => {
  const run = start({ executable: 'sh', arguments: ['-c', 'echo first; while [ ! -e stop-file ]; do sleep 0.1; done; echo second'], workingDirectory: work });
  await run.waitFor((o) => o.stdout === 'first\n');
  slurmCommand('touch', [join(work, 'stop-file')]);
  assert.deepEqual(await run.handle.done, { exitCode: 0, signal: null });
  assert.equal(run.output.stdout, 'first\nsecond\n');
  rmSync(join(work, 'stop-file'));
});

test('cancel: terminate stops the running job in Slurm and ends it as killed by SIGTERM', async () => {
  const run = start({ executable: 'sleep', arguments: ['600'] });
  const id = await untilRunning(() => slurmIdOf(run));
  run.handle.terminate(2000);
  const result = await run.handle.done;
  assert.equal(result.signal, 'SIGTERM');
  assert.equal(result.exitCode, null);
  assert.notEqual(slurmState(id), 'RUNNING');
});

test('cancel: terminate before sbatch answered still cancels the job', async () => {
  const run = start({ executable: 'sleep', arguments: ['600'] });
  run.handle.terminate(1000);
  const result = await run.handle.done;
  assert.equal(result.signal, 'SIGTERM');
  const id = slurmIdOf(run)!;
  assert.match(slurmState(id), /CANCELLED|FAILED/);
});

test('sbatch refusing a job (time limit above the partition maximum) ends it with Slurm\'s reason', async () => {
  const run = start({ executable: 'true', queueName: PARTITIONS.short, maxRuntime: 30 });
  const result = await run.handle.done;
  assert.equal(result.exitCode, null);
  assert.match(result.error ?? '', /^sbatch refused the job on this machine: Batch job submission failed: Requested time limit is invalid/);
  assert.equal(run.states.length, 0);
});

test('sbatch refusing a job (unknown partition, past check) ends it naming the partition error', async () => {
  const run = { output: { stdout: '', stderr: '' }, states: [] as ExecutorState[] };
  const handle = executor.start(spec({ executable: 'true', queueName: 'no-such-partition' }, run, () => undefined));
  const result = await handle.done;
  assert.match(result.error ?? '', /^sbatch refused the job on this machine: invalid partition specified: no-such-partition/);
});

test('check refuses an unknown partition, function jobs and scheduler arguments that are no option', () => {
  assert.throws(() => executor.check({ executable: 'true', queueName: 'nope' }), (e: unknown) => e instanceof BadRequestError && e.field === 'queueName' && /debug, short/.test(e.message));
  assert.throws(() => executor.check({ js: { code: 'return 1' } }), (e: unknown) => e instanceof BadRequestError && e.field === 'js');
  assert.throws(() => executor.check({ executable: 'true', schedulerArguments: ['--mem=1\necho injected'] }), (e: unknown) => e instanceof BadRequestError && e.field === 'schedulerArguments');
  assert.throws(() => executor.check({ executable: 'true', environment: { 'A B': '1' } }), (e: unknown) => e instanceof BadRequestError && e.field === 'environment');
});

test('a job for another OS account (root server) is refused, not submitted as root', async () => {
  const run = { output: { stdout: '', stderr: '' }, states: [] as ExecutorState[] };
  const s = { ...spec({ executable: 'true' }, run, () => undefined), account: { name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent', shell: '/bin/sh' } };
  const result = await executor.start(s).done;
  assert.match(result.error ?? '', /cannot run a job as OS account "nobody"/);
  assert.equal(run.states.length, 0, 'nothing was submitted');
});

test('scheduler arguments become #SBATCH lines', async () => {
  const run = start({ executable: 'sh', arguments: ['-c', 'echo "$VIA_SBATCH_LINE"'], schedulerArguments: ['--export=ALL,VIA_SBATCH_LINE=yes'] });
  assert.deepEqual(await run.handle.done, { exitCode: 0, signal: null });
  assert.equal(run.output.stdout, 'yes\n');
});

test('queues are the partitions sinfo lists, the default partition first-class', () => {
  const fromSinfo = slurmCommand('sinfo', ['--noheader', '--format=%P']).split('\n').filter(Boolean).map((p) => p.replace(/\*$/, ''));
  assert.deepEqual(executor.queues().map((q) => q.name).sort(), [...new Set(fromSinfo)].sort());
  assert.ok(executor.queues().every((q) => q.limit === null));
  assert.equal(executor.defaultQueue, PARTITIONS.default);
});

test('onQueuesChanged: listeners hear once the partitions are first read, not again while they stay the same', async () => {
  const fresh = new SlurmExecutorClass(parseSlurmOptions({ host, jobsFolder: join(work, 'jobs') }));
  try {
    const heard: string[][] = [];
    fresh.onQueuesChanged(() => heard.push(fresh.queues().map((q) => q.name).sort()));
    assert.deepEqual(fresh.queues(), [], 'no partitions before Slurm answered');
    fresh.connect();
    for (let i = 0; heard.length === 0 && i < 300; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(heard, [[PARTITIONS.default, PARTITIONS.short].sort()]);
    await fresh.refreshPartitions();
    assert.equal(heard.length, 1, 'unchanged partitions are not told again');
  } finally {
    fresh.close();
  }
});

test('interactive: cat through srun --unbuffered echoes stdin', async () => {
  const run = start({ executable: 'cat', interactive: true });
  await run.handle.writeStdin(Buffer.from('ping\n'));
  await run.waitFor((o) => o.stdout === 'ping\n');
  await run.handle.writeStdin(Buffer.from('pong\n'));
  await run.waitFor((o) => o.stdout === 'ping\npong\n');
  run.handle.closeStdin();
  assert.deepEqual(await run.handle.done, { exitCode: 0, signal: null });
});

test('interactive: the exit code of the command comes back through srun', async () => {
  const run = start({ executable: 'sh', arguments: ['-c', 'read line; echo "got $line"; exit 4'], interactive: true });
  await run.handle.writeStdin(Buffer.from('x\n'));
  const result = await run.handle.done;
  assert.equal(result.exitCode, 4);
  assert.equal(run.output.stdout, 'got x\n');
});

test('tty: srun --pty gives the job a terminal of the requested size', async () => {
  const run = start({ executable: 'sh', arguments: ['-c', 'tty; stty size'], tty: true, size: { cols: 101, rows: 33 } });
  const result = await run.handle.done;
  assert.equal(result.exitCode, 0);
  assert.match(run.output.stdout, /\/dev\/pts\/\d+/);
  assert.match(run.output.stdout, /33 101/);
});

test('tty: a resize reaches the job through srun', async () => {
  const run = start({ executable: 'sh', arguments: ['-c', 'stty size; read line; stty size'], tty: true, interactive: true, size: { cols: 80, rows: 24 } });
  await run.waitFor((o) => o.stdout.includes('24 80'));
  run.handle.resize(120, 40);
  // srun passes the new size on when it gets SIGWINCH; give it a moment before asking again.
  await new Promise((r) => setTimeout(r, 500));
  await run.handle.writeStdin(Buffer.from('go\r'));
  assert.equal((await run.handle.done).exitCode, 0);
  assert.match(run.output.stdout, /24 80[\s\S]*40 120/);
});

test('interactive: cancel stops srun and the Slurm job under it', async () => {
  const run = start({ executable: 'sh', arguments: ['-c', 'echo started; exec sleep 600'], interactive: true });
  await run.waitFor((o) => o.stdout === 'started\n');
  run.handle.terminate(1000);
  const result = await run.handle.done;
  assert.notEqual(result.exitCode, 0);
  // Nothing of this job is left in Slurm once the grace time is over.
  await new Promise((r) => setTimeout(r, 1500));
  const left = slurmCommand('squeue', ['--noheader', '--format=%k']).split('\n').filter((c) => c === `jobwire:${run.spec.jobId}`);
  assert.deepEqual(left, []);
});

test('a job Slurm forgot but whose exit file is there ends with the recorded exit code and its output', async () => {
  const record: SlurmJobRecord = { slurmJobId: '987655', ...jobFilesIn(join(work, 'forgotten')) };
  writeFileSync(record.stdout, 'all of it\n');
  writeFileSync(record.stderr, '');
  writeFileSync(record.exit, '6\n');
  const run = { output: { stdout: '', stderr: '' }, states: [] as ExecutorState[] };
  const handle = await executor.resume(spec({ executable: 'true' }, run, () => undefined), record, { stdout: 4, stderr: 0 });
  assert.ok(handle);
  assert.deepEqual(await handle.done, { exitCode: 6, signal: null });
  assert.equal(run.output.stdout, 'of it\n');
});

test('resume: a new executor instance follows a job by its Slurm id, output neither lost nor repeated', async () => {
  const first = await slurmExecutor({ host, jobsFolder: join(work, 'jobs'), pollMs: 200 });
  const run = start({ executable: 'sh', arguments: ['-c', 'echo one; while [ ! -e resume-go ]; do sleep 0.1; done; echo two; exit 5'], workingDirectory: work }, first);
  await run.waitFor((o) => o.stdout === 'one\n');
  first.close(); // the old server is gone; the job runs on in Slurm
  const state = run.states.at(-1)!;
  slurmCommand('touch', [join(work, 'resume-go')]);
  const second = await slurmExecutor({ host, jobsFolder: join(work, 'jobs'), pollMs: 200 });
  try {
    const resumed = { output: { stdout: '', stderr: '' }, states: [] as ExecutorState[] };
    const from: ResumeFrom = { stdout: Buffer.byteLength(run.output.stdout), stderr: 0 };
    // The same jobwire job (its Slurm comment names it).
    const handle = await second.resume({ ...spec(run.spec.description, resumed, () => undefined), jobId: run.spec.jobId }, state, from);
    assert.ok(handle, 'the job is found again');
    const result: ProcessResult = await handle.done;
    assert.equal(result.exitCode, 5);
    assert.equal(run.output.stdout + resumed.output.stdout, 'one\ntwo\n');
  } finally {
    second.close();
    rmSync(join(work, 'resume-go'), { force: true });
  }
});

test('resume: a Slurm id Slurm never had and no exit file → undefined (the job is gone)', async () => {
  const record: SlurmJobRecord = { slurmJobId: '987654', stdout: join(work, 'none.out'), stderr: join(work, 'none.err'), exit: join(work, 'none.exit') };
  const run = { output: { stdout: '', stderr: '' }, states: [] as ExecutorState[] };
  assert.equal(await executor.resume(spec({ executable: 'true' }, run, () => undefined), record, { stdout: 0, stderr: 0 }), undefined);
});

/** Submits a held Slurm job outside jobwire (with `comment`, if given); returns its Slurm id. */
function foreignJob(comment?: string): string {
  return slurmCommand('sbatch', ['--parsable', '--hold', `--chdir=${work}`, '--output=/dev/null', ...(comment !== undefined ? [`--comment=${comment}`] : []), '--wrap=true']).trim().split(';')[0]!;
}

test('resume: a stored Slurm id that is another job\'s now (another comment, or none) is not adopted: the job ends Lost saying so, the other job is left alone', async () => {
  for (const comment of ['jobwire:someone-else', undefined]) {
    const other = foreignJob(comment);
    try {
      const record: SlurmJobRecord = { slurmJobId: other, stdout: join(work, 'reused.out'), stderr: join(work, 'reused.err'), exit: join(work, 'reused.exit') };
      const run = { output: { stdout: '', stderr: '' }, states: [] as ExecutorState[] };
      const handle = await executor.resume(spec({ executable: 'true' }, run, () => undefined), record, { stdout: 0, stderr: 0 });
      assert.ok(handle);
      handle.terminate(0);
      const result = await handle.done;
      const whose = comment === undefined ? 'a job without a comment' : `another job \\(comment "${comment}"\\)`;
      assert.match(result.lost ?? '', new RegExp(`^Slurm job ${other} is not this job any more: Slurm knows that id as ${whose}, not "jobwire:jw`));
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(slurmState(other), 'PENDING', 'the other job was not cancelled');
    } finally {
      slurmCommand('scancel', [other]);
    }
  }
});

test('a followed job whose Slurm id turns out to be another job\'s (the comment changed under it) ends Lost and is not signalled', async () => {
  const run = start({ executable: 'true', schedulerArguments: ['--hold'] });
  await sleepUntilDefined(() => slurmIdOf(run));
  const id = slurmIdOf(run)!;
  try {
    // As if the cluster had been wiped and the id given to someone else's job.
    slurmCommand('scontrol', ['update', `JobId=${id}`, 'Comment=jobwire:someone-else']);
    const result = await run.handle.done;
    assert.match(result.lost ?? '', new RegExp(`^Slurm job ${id} is not this job any more: Slurm knows that id as another job \\(comment "jobwire:someone-else"\\)`));
    run.handle.terminate(0);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(slurmState(id), 'PENDING', 'the other job was not cancelled');
  } finally {
    slurmCommand('scancel', [id]);
  }
});

test('a cancel of a job whose Slurm id was given to another job meanwhile does not signal that job', async () => {
  // Polls far apart: the cancel comes before any poll could see the change.
  const slow = await slurmExecutor({ host, jobsFolder: join(work, 'jobs'), pollMs: 600_000 });
  const reasons: Array<string | null> = [];
  const run = { output: { stdout: '', stderr: '' }, states: [] as ExecutorState[] };
  const description: JobDescription = { executable: 'true', schedulerArguments: ['--hold'] };
  const handle = slow.start({ ...spec(description, run, () => undefined), onQueued: (reason) => reasons.push(reason) });
  try {
    // The first poll (right after sbatch) has seen the job PENDING.
    await sleepUntilDefined(() => (reasons.length > 0 ? true : undefined));
    const id = slurmIdOf(run)!;
    try {
      slurmCommand('scontrol', ['update', `JobId=${id}`, 'Comment=jobwire:someone-else']);
      handle.terminate(0);
      const result = await handle.done;
      assert.match(result.lost ?? '', new RegExp(`^Slurm job ${id} is not this job any more`));
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(slurmState(id), 'PENDING', 'the other job was not cancelled');
    } finally {
      slurmCommand('scancel', [id]);
    }
  } finally {
    slow.close();
  }
});

/** Waits until `probe` gives a value. */
async function sleepUntilDefined<T>(probe: () => T | undefined): Promise<T> {
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('Slurm commands missing: a clear error naming the command', async () => {
  const bare = new LocalSubmitHost({ env: { ...SLURM_ENV, PATH: '/nonexistent' } });
  await assert.rejects(slurmExecutor({ host: bare }), (e: unknown) => e instanceof SlurmCommandError && /sinfo cannot run on this machine .*ENOENT.*installed/.test(e.message));
});

test('time limit: Slurm ends the job TIMEOUT and the error says so', { timeout: 180_000 }, async () => {
  assert.ok(timeLimited);
  const result = await timeLimited.handle.done;
  assert.equal(result.exitCode, null);
  assert.match(result.error ?? '', /Slurm job \d+ ended TIMEOUT, reason TimeLimit/);
});
