/**
 * The local executor against real processes and real pseudo-terminals.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BadRequestError, type JobDescription, type OutputChannel } from '@jobwire/client';
import { LocalExecutor } from '../../src/executors/index.js';
import type { ProcessHandle, ProcessResult } from '../../src/executors/index.js';
import { sleepUntil } from '../helpers.js';

const TIMEOUT = { timeout: 15_000 };
const executor = new LocalExecutor();
let tmp: string;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jobwire-local-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  handle: ProcessHandle;
  chunks: { channel: OutputChannel; data: Buffer }[];
  progress: string[];
  done: Promise<ProcessResult>;
  /** All output of one channel (or both, in arrival order). */
  output(channel?: OutputChannel): Buffer;
  /** Resolves once the output so far contains `text`. */
  waitForOutput(text: string): Promise<void>;
  /** Resolves once the job has reported `count` progress messages. */
  waitForProgress(count: number): Promise<void>;
}

/** Checks and starts a job, recording everything it reports. */
function run(description: JobDescription, env: Record<string, string> = {}): Run {
  executor.check(description);
  const chunks: Run['chunks'] = [];
  const progress: string[] = [];
  const waiters: (() => void)[] = [];
  const wake = (): void => {
    for (const waiter of waiters.splice(0)) waiter();
  };
  const output = (channel?: OutputChannel): Buffer =>
    Buffer.concat(chunks.filter((chunk) => channel === undefined || chunk.channel === channel).map((chunk) => chunk.data));
  const until = (ready: () => boolean): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => (ready() ? resolve() : void waiters.push(check));
      check();
    });
  const handle = executor.start({
    jobId: 'test',
    description,
    defaultCwd: tmp,
    env,
    onOutput(channel, data) {
      chunks.push({ channel, data: Buffer.from(data) });
      wake();
    },
    onProgress(message) {
      progress.push(message);
      wake();
    },
  });
  return {
    handle,
    chunks,
    progress,
    done: handle.done,
    output,
    waitForOutput: (text) => until(() => output().toString().includes(text)),
    waitForProgress: (count) => until(() => progress.length >= count),
  };
}

/** True while `pid` is a live (not zombie) process. */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('command jobs on pipes', () => {
  test('passes a command’s output, exit code, environment and working directory', TIMEOUT, async () => {
    const job = run(
      { executable: 'sh', arguments: ['-c', 'echo "$GREETING $JOBWIRE_JOB_ID"; pwd; exit 3'], environment: { GREETING: 'hello' } },
      { JOBWIRE_JOB_ID: 'job-1' },
    );
    assert.equal(typeof job.handle.pid, 'number');
    const result = await job.done;
    assert.deepEqual(result, { exitCode: 3, signal: null });
    assert.equal(job.output('stdout').toString(), `hello job-1\n${fs.realpathSync(tmp)}\n`);
    assert.equal(job.output('stderr').length, 0);
  });

  test('16 MiB of random bytes through an interactive cat arrive identical', TIMEOUT, async () => {
    const input = randomBytes(16 * 1024 * 1024);
    const job = run({ executable: 'cat', interactive: true });
    for (let at = 0; at < input.length; at += 256 * 1024) {
      await job.handle.writeStdin(input.subarray(at, at + 256 * 1024));
    }
    job.handle.closeStdin();
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    assert.ok(job.output('stdout').equals(input), 'stdout differs from stdin');
  });

  test('keeps stdout and stderr in the order they arrived', TIMEOUT, async () => {
    const script = 'for i in 1 2 3 4; do echo out$i; sleep 0.03; echo err$i >&2; sleep 0.03; done';
    const job = run({ executable: 'sh', arguments: ['-c', script] });
    await job.done;
    const seen = job.chunks.map((chunk) => `${chunk.channel}:${chunk.data.toString().trim()}`);
    assert.deepEqual(seen, ['stdout:out1', 'stderr:err1', 'stdout:out2', 'stderr:err2', 'stdout:out3', 'stderr:err3', 'stdout:out4', 'stderr:err4']);
  });

  test('reports a missing executable in done instead of throwing', TIMEOUT, async () => {
    const job = run({ executable: 'jobwire-no-such-program' });
    const result = await job.done;
    assert.equal(result.exitCode, null);
    assert.equal(result.signal, null);
    assert.match(result.error ?? '', /^cannot start "jobwire-no-such-program": ENOENT/);
    assert.equal(job.handle.pid, undefined);
    job.handle.terminate(10); // a no-op, and no throw
  });

  test('reports a missing working directory in done', TIMEOUT, async () => {
    const result = await run({ executable: 'true', workingDirectory: path.join(tmp, 'nowhere') }).done;
    assert.match(result.error ?? '', /cannot start "true": working directory .*nowhere.*ENOENT/);
  });

  test('a batch job reads EOF on stdin at once', TIMEOUT, async () => {
    const job = run({ executable: 'cat' });
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    assert.equal(job.output().length, 0);
    await job.handle.writeStdin(Buffer.from('dropped')); // resolves, writes nothing
  });

  test('a batch job reads its stdin file, relative to the working directory', TIMEOUT, async () => {
    const content = randomBytes(300_000);
    fs.mkdirSync(path.join(tmp, 'work'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'work', 'in.bin'), content);
    const job = run({ executable: 'cat', stdin: 'in.bin', workingDirectory: 'work' });
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    assert.ok(job.output('stdout').equals(content));
  });

  test('a missing stdin file is reported and nothing runs', TIMEOUT, async () => {
    const result = await run({ executable: 'sh', arguments: ['-c', 'touch ran'], stdin: 'missing.txt' }).done;
    assert.match(result.error ?? '', /cannot open stdin file ".*missing\.txt": ENOENT/);
    assert.equal(fs.existsSync(path.join(tmp, 'ran')), false);
  });

  test('copies stdout and stderr into the files the description names', TIMEOUT, async () => {
    const job = run({ executable: 'sh', arguments: ['-c', 'echo out; echo err >&2; echo more'], stdout: 'out.txt', stderr: 'err.txt' });
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    assert.equal(fs.readFileSync(path.join(tmp, 'out.txt'), 'utf8'), 'out\nmore\n');
    assert.equal(fs.readFileSync(path.join(tmp, 'err.txt'), 'utf8'), 'err\n');
    assert.equal(job.output('stdout').toString(), 'out\nmore\n');
  });

  test('writing to a job that has exited neither throws nor crashes', TIMEOUT, async () => {
    const job = run({ executable: 'sh', arguments: ['-c', 'exit 0'], interactive: true });
    const writes = [job.handle.writeStdin(randomBytes(1024 * 1024)), job.handle.writeStdin(randomBytes(1024 * 1024))];
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    await Promise.all(writes);
    await job.handle.writeStdin(Buffer.from('late'));
    job.handle.closeStdin();
  });
});

describe('stopping jobs', () => {
  test('terminate kills the whole process tree', TIMEOUT, async () => {
    const job = run({ executable: 'sh', arguments: ['-c', 'sleep 100 & echo $!; sleep 100 & echo $!; wait'] });
    await sleepUntil(() => job.output().toString().split('\n').length >= 3, 3000, 'three lines of output');
    const children = job.output().toString().trim().split('\n').map(Number);
    assert.equal(children.length, 2);
    assert.ok(children.every(alive));
    job.handle.terminate(5000);
    const result = await job.done;
    assert.deepEqual(result, { exitCode: null, signal: 'SIGTERM' });
    await sleepUntil(() => !children.some(alive), 3000, 'the children to be gone');
  });

  test('a job that ignores SIGTERM is killed with SIGKILL after the grace period', TIMEOUT, async () => {
    const job = run({ executable: 'sh', arguments: ['-c', 'trap "" TERM; echo ready; sleep 100; echo survived'] });
    await job.waitForOutput('ready');
    const started = Date.now();
    job.handle.terminate(300);
    const result = await job.done;
    assert.deepEqual(result, { exitCode: null, signal: 'SIGKILL' });
    assert.ok(Date.now() - started >= 250, 'killed before the grace period ran out');
    assert.equal(job.output().toString(), 'ready\n');
  });
});

describe('tty jobs', () => {
  test('stty sees the requested size, and resize changes it', TIMEOUT, async () => {
    const job = run({ executable: 'sh', arguments: ['-c', 'stty size; read x; stty size'], tty: true, interactive: true, size: { cols: 100, rows: 30 } });
    await job.waitForOutput('30 100');
    job.handle.resize(120, 40);
    await job.handle.writeStdin(Buffer.from('\r'));
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    assert.match(job.output('stdout').toString(), /30 100\r\n[\s\S]*40 120\r\n/);
    assert.ok(job.chunks.every((chunk) => chunk.channel === 'stdout'));
  });

  test('a tty job gets xterm-256color and an 80x24 terminal by default', TIMEOUT, async () => {
    const job = run({ executable: 'sh', arguments: ['-c', 'echo "$TERM"; stty size; test -t 0 && echo tty'], tty: true });
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    assert.equal(job.output().toString(), 'xterm-256color\r\n24 80\r\ntty\r\n');
  });

  test('no output is lost when a tty job prints a lot and exits at once', TIMEOUT, async () => {
    const expected = execFileSync('seq', ['1', '100000']).toString().replaceAll('\n', '\r\n');
    for (let attempt = 0; attempt < 5; attempt++) {
      const job = run({ executable: 'seq', arguments: ['1', '100000'], tty: true });
      assert.deepEqual(await job.done, { exitCode: 0, signal: null });
      const output = job.output().toString();
      assert.equal(output.length, expected.length, `attempt ${attempt}: ${expected.length - output.length} bytes missing`);
      assert.equal(output, expected);
    }
  });

  test('closeStdin sends EOF through the terminal', TIMEOUT, async () => {
    const job = run({ executable: 'sh', arguments: ['-c', 'cat; echo after-eof'], tty: true, interactive: true });
    await job.handle.writeStdin(Buffer.from('line\r'));
    await job.waitForOutput('line\r\nline\r\n'); // the echo, then cat's copy
    job.handle.closeStdin();
    assert.deepEqual(await job.done, { exitCode: 0, signal: null });
    assert.match(job.output().toString(), /after-eof\r\n$/);
  });

  test('a tty job is terminated through its process group', TIMEOUT, async () => {
    const job = run({ executable: 'sh', arguments: ['-c', 'echo ready; sleep 100'], tty: true, interactive: true });
    await job.waitForOutput('ready');
    job.handle.terminate(5000);
    assert.deepEqual(await job.done, { exitCode: null, signal: 'SIGTERM' });
  });

  test('a tty job reports a missing executable in done', TIMEOUT, async () => {
    const result = await run({ executable: 'jobwire-no-such-program', tty: true }).done;
    assert.deepEqual(result, { exitCode: null, signal: null, error: 'cannot start "jobwire-no-such-program": ENOENT: no such file or directory' });
  });
});

describe('function jobs', () => {
  test('code "x = 5; return x + 10" gives the result 15', TIMEOUT, async () => {
    const result = await run({ js: { code: 'x = 5; return x + 10' } }).done;
    assert.deepEqual(result, { exitCode: 0, signal: null, result: 15 });
  });

  test('progress messages arrive, and console output goes to stdout', TIMEOUT, async () => {
    const job = run({ js: { code: 'await progress("one"); console.log("hi", args[0]); await progress("two"); return { ok: true }', args: ['there'] } });
    assert.deepEqual(await job.done, { exitCode: 0, signal: null, result: { ok: true } });
    assert.deepEqual(job.progress, ['one', 'two']);
    assert.equal(job.output('stdout').toString(), 'hi there\n');
  });

  test('a thrown error gives its message and stack, exit code 1', TIMEOUT, async () => {
    const result = await run({ js: { code: 'function inner() { throw new Error("boom") }\ninner()' } }).done;
    assert.equal(result.exitCode, 1);
    assert.equal(result.result, undefined);
    assert.match(result.error ?? '', /^Error: boom\n\s+at inner/);
  });

  test('a result that is not JSON is an error that says so', TIMEOUT, async () => {
    const result = await run({ js: { code: 'return 10n' } }).done;
    assert.equal(result.exitCode, 1);
    assert.match(result.error ?? '', /result cannot be serialised as JSON/);
  });

  test('terminate aborts the function’s signal and lets it finish', TIMEOUT, async () => {
    const code = 'await progress("waiting"); await new Promise((r) => signal.addEventListener("abort", r)); return "aborted: " + signal.aborted';
    const job = run({ js: { code } });
    await job.waitForProgress(1);
    const started = Date.now();
    job.handle.terminate(5000);
    assert.deepEqual(await job.done, { exitCode: 0, signal: null, result: 'aborted: true' });
    assert.ok(Date.now() - started < 4000, 'the function did not see the abort');
  });

  test('a function that ignores the abort is killed after the grace period', TIMEOUT, async () => {
    const job = run({ js: { code: 'await progress("busy"); await new Promise(() => setInterval(() => {}, 1000))' } });
    await job.waitForProgress(1);
    job.handle.terminate(200);
    assert.deepEqual(await job.done, { exitCode: null, signal: 'SIGKILL' });
  });

  test('a module export is called with args and { progress, signal }', TIMEOUT, async () => {
    fs.writeFileSync(
      path.join(tmp, 'double.mjs'),
      'export async function double(n, { progress, signal }) { await progress(`doubling ${n}`); return { twice: n * 2, aborted: signal.aborted } }\n' +
        'export default (a, b) => a + b;\n',
    );
    const named = run({ js: { module: './double.mjs', export: 'double', args: [21] } });
    assert.deepEqual(await named.done, { exitCode: 0, signal: null, result: { twice: 42, aborted: false } });
    assert.deepEqual(named.progress, ['doubling 21']);
    const byDefault = run({ js: { module: path.join(tmp, 'double.mjs'), args: [2, 3] } });
    assert.deepEqual(await byDefault.done, { exitCode: 0, signal: null, result: 5 });
    const missing = await run({ js: { module: 'double.mjs', export: 'triple' } }).done;
    assert.match(missing.error ?? '', /module "double\.mjs" has no export "triple"/);
  });

  test('a missing node binary is reported in done', TIMEOUT, async () => {
    const broken = new LocalExecutor({ nodePath: path.join(tmp, 'no-node') });
    const handle = broken.start({ jobId: 'x', description: { js: { code: 'return 1' } }, defaultCwd: tmp, env: {}, onOutput() {}, onProgress() {} });
    const result = await handle.done;
    assert.match(result.error ?? '', /cannot start the function runner .*ENOENT/);
  });
});

describe('what the local executor offers and refuses', () => {
  test('offers single, multi and unlimited queues', () => {
    assert.deepEqual(new LocalExecutor({ multiSlots: 3 }).queues(), [
      { name: 'single', limit: 1 },
      { name: 'multi', limit: 3 },
      { name: 'unlimited', limit: null },
    ]);
    assert.equal(executor.queues()[1]?.limit, os.availableParallelism());
    assert.throws(() => new LocalExecutor({ multiSlots: 0 }), RangeError);
  });

  test('accepts what it can honour', () => {
    executor.check({ executable: 'true', queueName: 'single', tasks: 1, coresPerTask: 1, schedulerArguments: [], maxMemory: 0 });
    executor.check({ executable: 'sh', tty: true, interactive: true, stdout: 'copy.txt', size: { cols: 10, rows: 5 } });
    executor.check({ js: { code: 'return 1' }, queueName: 'unlimited' });
  });

  const refused: [string, JobDescription, RegExp?][] = [
    ['tasks', { executable: 'true', tasks: 2 }],
    ['coresPerTask', { executable: 'true', coresPerTask: 4 }],
    ['schedulerArguments', { executable: 'true', schedulerArguments: ['--exclusive'] }],
    ['maxMemory', { executable: 'true', maxMemory: 1024 }],
    ['queueName', { executable: 'true', queueName: 'gpu' }, /single, multi, unlimited/],
    ['tty', { js: { code: 'return 1' }, tty: true }],
    ['stdin', { executable: 'cat', interactive: true, stdin: 'in.txt' }],
    ['stderr', { executable: 'sh', tty: true, stderr: 'err.txt' }],
    ['executable', {}],
  ];
  for (const [field, description, message] of refused) {
    test(`refuses an unsupported ${field} and names the field`, () => {
      assert.throws(
        () => executor.check(description),
        (error: unknown) =>
          error instanceof BadRequestError && error.code === 'unsupported' && error.field === field && (message === undefined || message.test(error.message)),
      );
    });
  }
});
