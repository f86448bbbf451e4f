/**
 * Warm function-job runners (executors/local/js-pool.ts) against real Node processes: reuse,
 * what is reset between jobs, what ends a runner, and what the user sees of an error's stack.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { JobDescription, OutputChannel } from '@jobwire/client';
import { LocalExecutor, type LocalExecutorOptions } from '../../src/executors/index.js';
import type { ProcessHandle, ProcessResult } from '../../src/executors/index.js';
import { alive, sleepUntil, withServer } from '../helpers.js';

const TIMEOUT = { timeout: 30_000 };
let tmp: string;
const executors: LocalExecutor[] = [];

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jobwire-runners-'));
});
after(() => {
  for (const executor of executors) executor.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A local executor that is closed after the tests. */
function executorWith(options: LocalExecutorOptions = {}): LocalExecutor {
  const executor = new LocalExecutor(options);
  executors.push(executor);
  return executor;
}

interface Run {
  handle: ProcessHandle;
  pid: number;
  progress: string[];
  done: Promise<ProcessResult>;
  output(channel?: OutputChannel): string;
}

/** Starts a function job (or any job) and records what it reports. */
function run(executor: LocalExecutor, description: JobDescription, env: Record<string, string> = {}): Run {
  executor.check(description);
  const chunks: { channel: OutputChannel; data: Buffer }[] = [];
  const progress: string[] = [];
  const handle = executor.start({
    jobId: 'test',
    description,
    defaultCwd: tmp,
    env,
    onOutput: (channel, data) => chunks.push({ channel, data: Buffer.from(data) }),
    onProgress: (message) => progress.push(message),
  });
  assert.ok(handle.pid !== undefined, 'the job has a pid');
  return {
    handle,
    pid: handle.pid,
    progress,
    done: handle.done,
    output: (channel) =>
      Buffer.concat(chunks.filter((chunk) => channel === undefined || chunk.channel === channel).map((chunk) => chunk.data)).toString(),
  };
}

describe('warm function-job runners', () => {
  test('consecutive jobs run in the same runner process', TIMEOUT, async () => {
    const executor = executorWith();
    const first = run(executor, { js: { code: 'return process.pid' } });
    assert.equal((await first.done).result, first.pid);
    const second = run(executor, { js: { code: 'return process.pid' } });
    assert.equal(second.pid, first.pid, 'the second job got the first one’s runner');
    assert.deepEqual(await second.done, { exitCode: 0, signal: null, result: first.pid });
  });

  test('globals, working directory, environment and output do not carry over to the next job', TIMEOUT, async () => {
    const executor = executorWith();
    const dirA = fs.mkdtempSync(path.join(tmp, 'a-'));
    const dirB = fs.mkdtempSync(path.join(tmp, 'b-'));
    const first = run(
      executor,
      {
        js: { code: 'leaked = "from job 1"; globalThis.JSON = null; process.env.ADDED = "1"; process.chdir("/"); console.log("out of job 1"); console.error("err of job 1"); return [process.env.ONLY_A, process.cwd()]' },
        workingDirectory: dirA,
        environment: { ONLY_A: 'a' },
      },
    );
    assert.deepEqual((await first.done).result, ['a', '/']);
    assert.equal(first.output('stdout'), 'out of job 1\n');
    assert.equal(first.output('stderr'), 'err of job 1\n');

    const second = run(executor, {
      js: { code: 'console.log("out of job 2"); return { leaked: typeof leaked, json: typeof JSON.stringify, added: process.env.ADDED ?? null, a: process.env.ONLY_A ?? null, b: process.env.ONLY_B, cwd: process.cwd() }' },
      workingDirectory: dirB,
      environment: { ONLY_B: 'b' },
    });
    assert.equal(second.pid, first.pid, 'the same runner served both jobs');
    assert.deepEqual((await second.done).result, { leaked: 'undefined', json: 'function', added: null, a: null, b: 'b', cwd: dirB });
    assert.equal(second.output(), 'out of job 2\n');
  });

  test('stopping one job leaves a job in another runner alone', TIMEOUT, async () => {
    const executor = executorWith();
    const waits = 'await progress("started"); await new Promise((r) => signal.addEventListener("abort", r)); return "aborted"';
    const stopped = run(executor, { js: { code: waits } });
    const other = run(executor, { js: { code: 'await progress("started"); await new Promise((r) => setTimeout(r, 300)); return signal.aborted' } });
    assert.notEqual(other.pid, stopped.pid, 'jobs running at once have runners of their own');
    await sleepUntil(() => stopped.progress.length > 0, 10_000, 'the first job to start');
    stopped.handle.terminate(5000);
    assert.deepEqual(await stopped.done, { exitCode: 0, signal: null, result: 'aborted' });
    assert.deepEqual(await other.done, { exitCode: 0, signal: null, result: false });
    // A job that obeyed the abort leaves a runner that is fit to serve again.
    const next = run(executor, { js: { code: 'return signal.aborted' } });
    assert.ok([stopped.pid, other.pid].includes(next.pid), 'a runner was reused');
    assert.deepEqual((await next.done).result, false, 'the next job’s signal is its own');
  });

  test('a function that calls process.exit fails alone; the next job runs in a new runner', TIMEOUT, async () => {
    const executor = executorWith();
    const crash = run(executor, { js: { code: 'console.log("before exit"); process.exit(3)' } });
    const result = await crash.done;
    assert.equal(result.exitCode, 3);
    assert.match(result.error ?? '', /the function ended without a result \(runner exit code 3\)/);
    assert.equal(crash.output(), 'before exit\n');
    const next = run(executor, { js: { code: 'return "still working"' } });
    assert.notEqual(next.pid, crash.pid);
    assert.equal((await next.done).result, 'still working');
  });

  test('an exception thrown in a timer fails its job, and the runner is not reused', TIMEOUT, async () => {
    const executor = executorWith();
    const job = run(executor, { js: { code: 'setTimeout(() => { throw new Error("late failure") }, 10); await new Promise((r) => setTimeout(r, 60_000)); return 1' } });
    const result = await job.done;
    assert.equal(result.exitCode, 1);
    assert.match(result.error ?? '', /^Error: late failure/);
    await sleepUntil(() => !alive(job.pid), 10_000, 'the broken runner to be stopped');
    const next = run(executor, { js: { code: 'return 2' } });
    assert.notEqual(next.pid, job.pid);
    assert.equal((await next.done).result, 2);
  });

  test('a job that leaves a timer running is not followed by another job in its runner', TIMEOUT, async () => {
    const executor = executorWith();
    const leaky = run(executor, { js: { code: 'setInterval(() => console.log("tick"), 5); return "left a timer"' } });
    assert.equal((await leaky.done).result, 'left a timer');
    await sleepUntil(() => !alive(leaky.pid), 10_000, 'the leaky runner to be stopped');
    const next = run(executor, { js: { code: 'await new Promise((r) => setTimeout(r, 100)); return 1' } });
    assert.notEqual(next.pid, leaky.pid);
    await next.done;
    assert.equal(next.output(), '', 'no tick of the previous job');
  });

  test('a function that never yields after the abort is killed after the grace time; the next job runs', TIMEOUT, async () => {
    const executor = executorWith();
    const hung = run(executor, { js: { code: 'await progress("spinning"); for (;;) {}' } });
    await sleepUntil(() => hung.progress.length > 0, 10_000, 'the function to start spinning');
    hung.handle.terminate(200);
    assert.deepEqual(await hung.done, { exitCode: null, signal: 'SIGKILL' });
    assert.equal(alive(hung.pid), false, 'the hung runner is gone');
    const next = run(executor, { js: { code: 'return "fresh"' } });
    assert.notEqual(next.pid, hung.pid);
    assert.equal((await next.done).result, 'fresh');
  });

  test('progress and results stay with their own job', TIMEOUT, async () => {
    const executor = executorWith();
    const code = 'for (let i = 0; i < 5; i++) { await progress(`${args[0]} ${i}`); await new Promise((r) => setTimeout(r, 5)); } return args[0]';
    const jobs = ['red', 'green', 'blue'].map((name) => run(executor, { js: { code, args: [name] } }));
    for (const [i, name] of ['red', 'green', 'blue'].entries()) {
      assert.equal((await jobs[i]!.done).result, name);
      assert.deepEqual(jobs[i]!.progress, [0, 1, 2, 3, 4].map((n) => `${name} ${n}`));
    }
  });

  test('output that looks like the start of an end marker arrives whole', TIMEOUT, async () => {
    const executor = executorWith();
    const code = 'for (let i = 0; i < 50; i++) process.stdout.write("x\\0"); process.stdout.write("\\0jobwire-end-"); return 1';
    for (let round = 0; round < 2; round++) {
      const job = run(executor, { js: { code } });
      await job.done;
      assert.equal(job.output('stdout'), 'x\0'.repeat(50) + '\0jobwire-end-');
    }
  });

  test('10 MiB written at once arrives whole, with a runner of its own or a warm one', TIMEOUT, async () => {
    const code = 'const block = "y".repeat(65536); for (let i = 0; i < 160; i++) process.stdout.write(block); console.error("done"); return 1';
    for (const jsRunners of [0, 2]) {
      const executor = executorWith({ jsRunners });
      const pids: number[] = [];
      for (let round = 0; round < 2; round++) {
        const job = run(executor, { js: { code } });
        pids.push(job.pid);
        assert.equal((await job.done).result, 1);
        assert.equal(job.output('stdout').length, 160 * 65536, `stdout of round ${round} with jsRunners ${jsRunners}`);
        assert.equal(job.output('stderr'), 'done\n');
      }
      if (jsRunners > 0) assert.equal(pids[1], pids[0], 'output still on its way does not stop the runner from being reused');
    }
  });

  test('a job that replaces process.stdout.write does not take the next job’s output', TIMEOUT, async () => {
    const executor = executorWith();
    const first = run(executor, { js: { code: 'process.stdout.write = () => true; console.log("swallowed"); return 1' } });
    await first.done;
    assert.equal(first.output(), '');
    const second = run(executor, { js: { code: 'console.log("shown"); return 2' } });
    assert.equal(second.pid, first.pid);
    await second.done;
    assert.equal(second.output(), 'shown\n');
  });

  test('a runner serves at most jsRunnerMaxJobs jobs, and idle runners stop after jsRunnerIdleMs', TIMEOUT, async () => {
    const executor = executorWith({ jsRunnerMaxJobs: 2, jsRunnerIdleMs: 300 });
    const pids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const job = run(executor, { js: { code: 'return 1' } });
      pids.push(job.pid);
      await job.done;
    }
    assert.equal(pids[1], pids[0]);
    assert.notEqual(pids[2], pids[0]);
    await sleepUntil(() => !alive(pids[2]!), 10_000, 'the idle runner to stop');
  });

  test('with jsRunners 0, or options the pool cannot honour, every job gets a process of its own', TIMEOUT, async () => {
    const unpooled = executorWith({ jsRunners: 0 });
    const a = run(unpooled, { js: { code: 'return process.pid' } });
    await a.done;
    const b = run(unpooled, { js: { code: 'return process.pid' } });
    assert.notEqual(b.pid, a.pid);
    await b.done;

    const executor = executorWith();
    const warm = run(executor, { js: { code: 'return process.pid' } });
    await warm.done;
    const copied = run(executor, { js: { code: 'console.log("copied"); return process.pid' }, stdout: 'copy.txt' });
    assert.equal((await copied.done).result, copied.pid);
    assert.equal(fs.readFileSync(path.join(tmp, 'copy.txt'), 'utf8'), 'copied\n');
    assert.notEqual(copied.pid, warm.pid);
  });

  test('an interactive job runs in a warm runner: its process.stdin gets what is written, at the pace it reads, and is not the next job’s', TIMEOUT, async () => {
    const executor = executorWith();
    const warm = run(executor, { js: { code: 'return process.pid' } });
    await warm.done;
    const typed = run(executor, { js: { code: 'let text = ""; for await (const c of process.stdin) text += c; return [process.pid, text]' }, interactive: true });
    assert.equal(typed.pid, warm.pid, 'the interactive job got the warm runner');
    await typed.handle.writeStdin(Buffer.from('typed '));
    await typed.handle.writeStdin(Buffer.from('twice'));
    typed.handle.closeStdin();
    assert.deepEqual((await typed.done).result, [warm.pid, 'typed twice']);

    // A job that reads nothing until a gate file appears holds its writer back, as a pipe would.
    const gate = path.join(tmp, 'stdin-gate');
    const code = `const fs = await import("node:fs"); while (!fs.existsSync(${JSON.stringify(gate)})) await new Promise((r) => setTimeout(r, 20));
      let n = 0; for await (const c of process.stdin) n += c.length; return [process.pid, n]`;
    const slow = run(executor, { js: { code }, interactive: true });
    assert.equal(slow.pid, warm.pid);
    const piece = Buffer.alloc(64 * 1024, 120);
    let taken = 0;
    const writes = Array.from({ length: 16 }, () => slow.handle.writeStdin(piece).then(() => void taken++));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(taken <= 1, `${taken} writes of 64 KiB were taken by a job that reads nothing`);
    fs.writeFileSync(gate, '');
    await Promise.all(writes);
    slow.handle.closeStdin();
    assert.deepEqual((await slow.done).result, [warm.pid, 16 * piece.length]);

    // The next job in the same runner reads the runner's own stdin: empty.
    const next = run(executor, { js: { code: 'let text = ""; for await (const c of process.stdin) text += c; return [process.pid, text]' } });
    assert.deepEqual((await next.done).result, [warm.pid, '']);
  });

  test('a job with another NODE_OPTIONS runs in a runner started with them', TIMEOUT, async () => {
    const executor = executorWith();
    const plain = run(executor, { js: { code: 'return process.pid' } });
    await plain.done;
    const code = 'return [process.pid, (await import("node:v8")).getHeapStatistics().heap_size_limit]';
    const tuned = run(executor, { js: { code }, environment: { NODE_OPTIONS: '--max-old-space-size=100' } });
    const [pid, limit] = (await tuned.done).result as number[];
    assert.notEqual(pid, plain.pid);
    assert.ok(limit! < 200 * 1024 * 1024, `the heap limit ${limit} follows NODE_OPTIONS`);
  });
});

describe('stacks of errors thrown by function jobs', () => {
  test('a code job’s stack shows its own lines, not the runner’s frames', TIMEOUT, async () => {
    const executor = executorWith();
    for (const jsRunners of [undefined, 0]) {
      const ex = jsRunners === undefined ? executor : executorWith({ jsRunners });
      const result = await run(ex, { js: { code: 'const x = 1;\nfunction inner() { throw new Error("boom") }\ninner()' } }).done;
      const stack = result.error ?? '';
      assert.match(stack, /^Error: boom\n\s+at inner \(<job code>:2:26\)\n\s+at <job code>:3:1$/, stack);
      assert.doesNotMatch(stack, /js-runner/);
    }
  });

  test('a module job’s stack ends with the module’s frames', TIMEOUT, async () => {
    const executor = executorWith();
    const file = path.join(tmp, 'thrower.mjs');
    fs.writeFileSync(file, 'export default function fails() {\n  throw new TypeError("bad input");\n}\n');
    const stack = (await run(executor, { js: { module: file } }).done).error ?? '';
    assert.match(stack, /^TypeError: bad input\n\s+at fails \(file:\/\/.*thrower\.mjs:2:9\)$/, stack);
  });
});

describe('function jobs through the server', () => {
  test('the single queue runs one function job at a time', TIMEOUT, async () => {
    await withServer(async ({ client }) => {
      const log = path.join(tmp, 'single.log');
      const code = 'const fs = await import("node:fs"); fs.appendFileSync(args[0], `start ${args[1]}\\n`); await new Promise((r) => setTimeout(r, 50)); fs.appendFileSync(args[0], `end ${args[1]}\\n`); return args[1]';
      const jobs = await Promise.all([0, 1, 2, 3].map((i) => client.submitBatchJob({ js: { code, args: [log, i] }, queueName: 'single' })));
      for (const job of jobs) assert.equal((await client.waitUntilDone(job.id, 20_000)).status, 'Success');
      const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
      assert.equal(lines.length, 8);
      for (let i = 0; i < lines.length; i += 2) {
        assert.match(lines[i]!, /^start (\d)$/);
        assert.equal(lines[i + 1], lines[i]!.replace('start', 'end'), 'no job started before the previous one ended');
      }
    });
  });
});
