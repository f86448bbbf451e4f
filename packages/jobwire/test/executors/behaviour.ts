/**
 * The behaviour every command executor must show, as one suite that takes a harness factory:
 * `local-behaviour.test.ts` runs it on the local executor, `ssh-behaviour.test.ts` on an ssh
 * executor against a real sshd, `slurm-behaviour.test.ts` on the Slurm executors (`slurm:` and
 * `slurm+ssh://`). Every test runs on every executor: each has batch, interactive and tty jobs.
 *
 * The jobs run on this machine in every harness (the sshd listens on 127.0.0.1), so a test can
 * look at the job's processes and files directly.
 * @module
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BadRequestError, type JobDescription, type OutputChannel } from '@jobwire/client';
import type { Executor, ExecutorState, ProcessHandle, ProcessResult, StartSpec } from '../../src/executors/types.js';
import { FIXTURES, sleepUntil } from '../helpers.js';

/** One executor under test. */
export interface ExecutorHarness {
  executor: Executor;
  /** A folder of this machine the executor's jobs can use as working directory. */
  dir: string;
  /** Stops what the harness started. */
  dispose(): Promise<void>;
}

/** One started job and everything it reported. */
export interface Run {
  handle: ProcessHandle;
  chunks: { channel: OutputChannel; data: Buffer }[];
  states: ExecutorState[];
  done: Promise<ProcessResult>;
  /** All output of one channel (or both, in arrival order). */
  output(channel?: OutputChannel): Buffer;
  /** Resolves once the output so far contains `text`. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
}

let counter = 0;

/** A fresh job id (the ssh executor names the job's folder on the host after it). */
export function jobId(): string {
  counter += 1;
  return `t${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** The spec callbacks of a {@link Run}, for `start` and `resume` alike. */
export function recorder(id: string, description: JobDescription, dir: string, env: Record<string, string> = {}): { spec: StartSpec; run: Omit<Run, 'handle' | 'done'> } {
  const chunks: Run['chunks'] = [];
  const states: ExecutorState[] = [];
  const output = (channel?: OutputChannel): Buffer => Buffer.concat(chunks.filter((chunk) => channel === undefined || chunk.channel === channel).map((chunk) => chunk.data));
  const spec: StartSpec = {
    jobId: id,
    description,
    defaultCwd: dir,
    env,
    onOutput(channel, data) {
      chunks.push({ channel, data: Buffer.from(data) });
    },
    onProgress() {},
    onState(state) {
      states.push(state);
    },
  };
  return {
    spec,
    run: {
      chunks,
      states,
      output,
      waitForOutput: (text, timeoutMs = 20_000) => sleepUntil(() => output().toString().includes(text), timeoutMs, `output containing ${JSON.stringify(text)}`).then(() => {}),
    },
  };
}

/** Checks and starts a job on `executor`. */
export function start(executor: Executor, description: JobDescription, dir: string, env: Record<string, string> = {}): Run {
  executor.check(description);
  const { spec, run } = recorder(jobId(), description, dir, env);
  const handle = executor.start(spec);
  return { ...run, handle, done: handle.done };
}

/** True while `pid` is a live (not zombie) process of this machine. */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const TIMEOUT = { timeout: 60_000 };

/** Registers the suite for the executor `make` builds (once for the whole suite). */
export function executorBehaviour(label: string, make: () => Promise<ExecutorHarness>): void {
  describe(`executor behaviour: ${label}`, () => {
    let h: ExecutorHarness;
    let work: string;
    before(async () => {
      h = await make();
      work = fs.mkdtempSync(path.join(h.dir, 'work-'));
    });
    /** Jobs of this suite not yet ended: a test that failed half-way leaves its job to `after`. */
    const open = new Set<ProcessHandle>();
    after(async () => {
      // Stopped at once, so that a failed test cannot keep the file's process alive (an srun
      // left running holds its pipes, and the test runner waits for them).
      for (const handle of open) handle.terminate(0);
      await Promise.race([Promise.all([...open].map((handle) => handle.done)), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
      await h?.dispose();
    });
    const run = (description: JobDescription, env: Record<string, string> = {}): Run => {
      const job = start(h.executor, description, work, env);
      open.add(job.handle);
      const forget = (): boolean => open.delete(job.handle);
      job.done.then(forget, forget);
      return job;
    };

    test('a batch job’s output, exit code, environment and working directory', TIMEOUT, async () => {
      const job = run(
        { executable: 'sh', arguments: ['-c', 'echo "$GREETING $JOBWIRE_JOB_ID"; pwd; echo oops >&2; exit 3'], environment: { GREETING: "it's $HOME" }, workingDirectory: work },
        { JOBWIRE_JOB_ID: 'job-1' },
      );
      assert.deepEqual(await job.done, { exitCode: 3, signal: null });
      assert.equal(job.output('stdout').toString(), `it's $HOME job-1\n${fs.realpathSync(work)}\n`);
      assert.equal(job.output('stderr').toString(), 'oops\n');
    });

    test('a batch job’s binary output arrives byte for byte', TIMEOUT, async () => {
      const data = randomBytes(2 * 1024 * 1024);
      fs.writeFileSync(path.join(work, 'blob.bin'), data);
      const job = run({ executable: 'cat', arguments: ['blob.bin'], workingDirectory: work });
      assert.deepEqual(await job.done, { exitCode: 0, signal: null });
      assert.ok(job.output('stdout').equals(data), 'stdout differs from the file');
    });

    test('a missing program is a start error in done, not an exit code', TIMEOUT, async () => {
      const result = await run({ executable: 'jobwire-no-such-program' }).done;
      assert.equal(result.exitCode, null);
      assert.match(result.error ?? '', /cannot start "jobwire-no-such-program": ENOENT/);
    });

    test('a missing working directory is a start error naming it', TIMEOUT, async () => {
      const result = await run({ executable: 'true', workingDirectory: path.join(work, 'nowhere') }).done;
      assert.match(result.error ?? '', /working directory .*nowhere.*ENOENT/);
    });

    test('a batch job reads its stdin file and copies its output to the stdout and stderr files', TIMEOUT, async () => {
      fs.writeFileSync(path.join(work, 'in.txt'), 'line one\nline two\n');
      const job = run({ executable: 'sh', arguments: ['-c', 'cat; echo done >&2'], stdin: 'in.txt', stdout: 'out.txt', stderr: 'err.txt', workingDirectory: work });
      assert.deepEqual(await job.done, { exitCode: 0, signal: null });
      assert.equal(job.output('stdout').toString(), 'line one\nline two\n');
      assert.equal(fs.readFileSync(path.join(work, 'out.txt'), 'utf8'), 'line one\nline two\n');
      assert.equal(fs.readFileSync(path.join(work, 'err.txt'), 'utf8'), 'done\n');
    });

    test('cancel stops the job’s whole process tree', TIMEOUT, async () => {
      const job = run({ executable: 'sh', arguments: ['-c', 'sleep 300 & echo child $!; sleep 300'] });
      await job.waitForOutput('\n');
      const child = Number(/child (\d+)/.exec(job.output().toString())?.[1]);
      assert.ok(alive(child), 'the child runs before the cancel');
      job.handle.terminate(2000);
      const result = await job.done;
      assert.equal(result.signal, 'SIGTERM');
      await sleepUntil(() => !alive(child), 10_000, 'the child to end');
    });

    test('refuses an unknown queue, naming the field', () => {
      assert.throws(() => h.executor.check({ executable: 'true', queueName: 'no-such-queue' }), (err: unknown) => err instanceof BadRequestError && err.field === 'queueName');
    });

    const interactive = (name: string, body: () => Promise<void>): void => {
      test(name, TIMEOUT, body);
    };

    interactive('rot13 ping-pong: each line is answered before the next is sent', async () => {
      const job = run({ executable: process.execPath, arguments: [path.join(FIXTURES, 'rot13.mjs')], interactive: true });
      for (const word of ['hello', 'jobwire', 'over ssh']) {
        await job.handle.writeStdin(Buffer.from(`${word}\n`));
        const answer = word.replace(/[a-z]/g, (c) => String.fromCharCode(((c.charCodeAt(0) - 97 + 13) % 26) + 97));
        await job.waitForOutput(`${answer}\n`);
      }
      job.handle.closeStdin();
      assert.deepEqual(await job.done, { exitCode: 0, signal: null });
      assert.equal(job.output('stdout').toString(), 'uryyb\nwbojver\nbire ffu\n');
    });

    interactive('4 MiB of random bytes through an interactive cat arrive identical', async () => {
      const input = randomBytes(4 * 1024 * 1024);
      const job = run({ executable: 'cat', interactive: true });
      for (let at = 0; at < input.length; at += 256 * 1024) await job.handle.writeStdin(input.subarray(at, at + 256 * 1024));
      job.handle.closeStdin();
      assert.deepEqual(await job.done, { exitCode: 0, signal: null });
      assert.ok(job.output('stdout').equals(input), 'stdout differs from stdin');
    });

    interactive('cancel stops an interactive job’s whole process tree', async () => {
      const job = run({ executable: 'sh', arguments: ['-c', 'sleep 300 & echo child $!; cat'], interactive: true });
      await job.waitForOutput('\n');
      const child = Number(/child (\d+)/.exec(job.output().toString())?.[1]);
      assert.ok(alive(child), 'the child runs before the cancel');
      job.handle.terminate(2000);
      assert.equal((await job.done).signal, 'SIGTERM');
      await sleepUntil(() => !alive(child), 10_000, 'the child to end');
    });

    test('a tty job sees its size, and a resize', TIMEOUT, async () => {
      // The job prints its size at the start and again for every line typed. A resize may reach the
      // job a moment after it is made (srun passes it on from its own terminal), so empty lines are
      // typed until one is answered with the new size: the resize must arrive, not win a race.
      const script = 'stty size; while read line; do stty size; [ "$line" = q ] && exit 0; done';
      const job = run({ executable: 'sh', arguments: ['-c', script], tty: true, interactive: true, size: { cols: 100, rows: 30 } });
      await job.waitForOutput('30 100');
      job.handle.resize(132, 43);
      for (let typed = 1; !job.output().toString().includes('43 132'); typed++) {
        assert.ok(typed <= 20, 'the job never saw the new size');
        await job.handle.writeStdin(Buffer.from('\r'));
        const answers = (): number => job.output().toString().split(/\r?\n/).filter((line) => /^\d+ \d+$/.test(line.trim())).length;
        await sleepUntil(() => answers() > typed, 20_000, `an answer to line ${typed}`);
      }
      await job.handle.writeStdin(Buffer.from('q\r'));
      assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    });
  });
}
