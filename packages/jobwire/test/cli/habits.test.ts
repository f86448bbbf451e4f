/**
 * Command-line habits scripts and people rely on: progress on long waits drawn on a terminal's
 * stderr only, `--json` on every listing that parses as JSON with stdout otherwise clean, and
 * errors on stderr with the exit code docs/cli.md gives. Real CLI processes, a real server.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as pty from 'node-pty';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI, cliEnv, runCli, sleepUntil, withServer } from '../helpers.js';

/** A network whose one job waits until the file `gate` exists, then feeds a csv sink. */
function gatedNetwork(dir: string, name: string): { file: string; gate: string } {
  const gate = join(dir, 'gate');
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `name: ${name}`,
      'jobs:',
      `  numbers: { command: [sh, -c, 'while [ ! -e "${gate}" ]; do sleep 0.1; done; seq 1 3'], outputs: [n] }`,
      `  sink: { builtin: csv-sink, path: ${join(dir, 'out.csv')}, inputs: [n] }`,
      'pipes:',
      '  n: { framing: lines }',
      '',
    ].join('\n'),
  );
  return { file, gate };
}

describe('jobwire CLI habits', () => {
  it('run while its queue is full: one "queued" line on stderr naming the queue, and Ctrl-C cancels the queued job (exit 130)', async () => {
    await withServer(async (s) => {
      const env = cliEnv(s);
      const holder = await s.client.submitBatchJob({ executable: 'sleep', arguments: ['60'], queueName: 'single' });
      try {
        await sleepUntil(async () => (await s.client.getJobStatus(holder.id)).status === 'Running', 30_000, 'the sleep job to hold the slot');
        const proc = spawn(process.execPath, [CLI, 'run', '--queue', 'single', '--', 'echo', 'never'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const closed = once(proc, 'close') as Promise<[number | null]>;
        const line = await sleepUntil(() => /^jobwire: job (\S+) queued \((.*)\)\n$/.exec(stderr) ?? undefined, 30_000, `the queued line; stderr so far: ${JSON.stringify(stderr)}`);
        const id = line[1]!;
        if (process.env.JOBWIRE_TEST_BACKEND !== 'redis') assert.match(line[2]!, /^waiting for a slot in queue single: 1 of 1 running, 1 queued$/);
        else assert.match(line[2]!, /single|slot|worker/);
        assert.doesNotMatch(stderr, /\x1b|\r/, 'no spinner drawn into a pipe');
        proc.kill('SIGINT');
        const [code] = await closed;
        assert.equal(code, 130, stderr);
        assert.equal(stdout, '');
        assert.match(stderr, new RegExp(`cancelling job ${id}`));
        assert.equal((await s.client.getJobStatus(id)).status, 'Cancelled');
        assert.equal((await s.client.getJobStatus(holder.id)).status, 'Running', 'the job holding the slot is left alone');
      } finally {
        await s.client.cancelJob(holder.id);
      }
    });
  });

  it('run on a terminal while its queue is full: a spinner says queued and why, is cleared when the job starts, then the output; exit 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobwire-habits-'));
    try {
      await withServer(async (s) => {
        const gate = join(dir, 'gate');
        const holder = await s.client.submitBatchJob({ executable: 'sh', arguments: ['-c', `while [ ! -e "${gate}" ]; do sleep 0.1; done`], queueName: 'single' });
        await sleepUntil(async () => (await s.client.getJobStatus(holder.id)).status === 'Running', 30_000, 'the gated job to hold the slot');
        const term = pty.spawn(process.execPath, [CLI, 'run', '--queue', 'single', '--', 'echo', 'ran-after-wait'], { name: 'xterm-256color', cols: 160, rows: 30, env: { ...process.env, ...cliEnv(s) } as Record<string, string> });
        let screen = '';
        term.onData((d) => (screen += d));
        const exit = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
        await sleepUntil(() => /\r\x1b\[K\S job \S+ queued \(/.test(screen), 30_000, `the spinner; screen so far: ${JSON.stringify(screen)}`);
        writeFileSync(gate, '');
        assert.equal(await exit, 0, screen);
        assert.match(screen, /queued \([^)]*\)[^\n]*\r\x1b\[K(\r\n)*ran-after-wait\r\n/, `the spinner line is cleared before the output: ${JSON.stringify(screen)}`);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('run -t on a terminal while its queue is full: Ctrl-C, typed in raw mode, cancels the queued job (no program is there to get it); exit 130', async () => {
    await withServer(async (s) => {
      const holder = await s.client.submitBatchJob({ executable: 'sleep', arguments: ['60'], queueName: 'single' });
      try {
        await sleepUntil(async () => (await s.client.getJobStatus(holder.id)).status === 'Running', 30_000, 'the sleep job to hold the slot');
        const term = pty.spawn(process.execPath, [CLI, 'run', '-t', '--queue', 'single', '--', 'cat'], { name: 'xterm-256color', cols: 160, rows: 30, env: { ...process.env, ...cliEnv(s) } as Record<string, string> });
        let screen = '';
        term.onData((d) => (screen += d));
        const exit = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
        const shown = await sleepUntil(() => /\S job (\S+) queued \(/.exec(screen) ?? undefined, 30_000, `the spinner; screen so far: ${JSON.stringify(screen)}`);
        term.write('\x03');
        assert.equal(await exit, 130, screen);
        assert.match(screen, new RegExp(`cancelling job ${shown[1]}`));
        assert.equal((await s.client.getJobStatus(shown[1]!)).status, 'Cancelled');
      } finally {
        await s.client.cancelJob(holder.id);
      }
    });
  });

  it('run -t with piped stdin (echo CMD | jobwire run -t -- bash): as ssh does, no pseudo-terminal and a note on stderr; the input runs, its end ends bash, exit 0', async () => {
    await withServer(async (s) => {
      const r = await runCli(['run', '-t', '--', 'bash'], { env: cliEnv(s), input: 'echo piped-$((6*7))\n[ -t 0 ] && echo has-a-tty || echo no-tty\n', timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'piped-42\nno-tty\n');
      assert.match(r.stderr, /^jobwire: stdin is not a terminal, so the job gets no pseudo-terminal/);
    });
  });

  it('network run --block shows its progress on a terminal (state and jobs ended), clears it, then prints the status; exit 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobwire-habits-'));
    try {
      await withServer(async (s) => {
        const { file, gate } = gatedNetwork(dir, 'spinning');
        const term = pty.spawn(process.execPath, [CLI, 'network', 'run', file, '--block'], { name: 'xterm-256color', cols: 120, rows: 30, env: { ...process.env, ...cliEnv(s) } as Record<string, string> });
        let screen = '';
        term.onData((d) => (screen += d));
        const exit = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
        await sleepUntil(() => screen.includes('waiting for network spinning: running, 0 of 2 jobs ended'), 30_000, `the progress line; screen so far: ${JSON.stringify(screen)}`);
        writeFileSync(gate, '');
        assert.equal(await exit, 0, screen);
        assert.match(screen, /\r\x1b\[K(\r\n)*network spinning \(done, group networks:spinning\)/, 'the progress line is cleared before the status');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('network run --block into a pipe: no progress drawn, stderr empty, stdout only the JSON status', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobwire-habits-'));
    try {
      await withServer(async (s) => {
        const { file, gate } = gatedNetwork(dir, 'piped');
        writeFileSync(gate, '');
        assert.ok(existsSync(gate));
        const r = await runCli(['network', 'run', file, '--block', '--json'], { env: cliEnv(s), timeoutMs: 60_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        const status = JSON.parse(r.stdout) as { name: string; state: string };
        assert.equal(status.name, 'piped');
        assert.equal(status.state, 'done');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every listing takes --json: its stdout parses as JSON and stderr stays empty', async () => {
    await withServer(async (s) => {
      const env = cliEnv(s);
      const submitted = await runCli(['submit', '--group', 'habits', '--json', '--block', '--', 'true'], { env });
      assert.equal(submitted.code, 0, submitted.stderr);
      const id = (JSON.parse(submitted.stdout) as { id: string }).id;
      for (const args of [['jobs'], ['queues'], ['queues', '--executor', 'local'], ['executors'], ['groups'], ['workers'], ['token', 'list', '--home', s.home], ['status', id], ['network', 'list']]) {
        const r = await runCli([...args, '--json'], { env });
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stderr, '', args.join(' '));
        assert.doesNotThrow(() => JSON.parse(r.stdout), `${args.join(' ')} --json: ${r.stdout}`);
      }
    });
  });

  it('network list: each network with its state and jobs ended, as a table and as JSON; network tap prints a pipe\'s values (--json: its frames)', async () => {
    await withServer(async (s) => {
      const env = cliEnv(s);
      await s.client.runNetwork({ name: 'listed', jobs: { src: { command: ['seq', '1', '3'], outputs: ['n'] }, sink: { command: ['sh', '-c', 'exec cat > /dev/null'], inputs: ['n'] } }, pipes: { n: { framing: 'lines' } } }, { baseDir: s.home });
      await sleepUntil(async () => (await s.client.networkStatus('listed')).state !== 'running', 30_000, 'the network to end');
      const json = await runCli(['network', 'list', '--json'], { env });
      assert.equal(json.code, 0, json.stderr);
      const items = JSON.parse(json.stdout) as Array<{ name: string; state: string; jobs: unknown[] }>;
      assert.deepEqual(items.map((n) => [n.name, n.state, n.jobs.length]), [['listed', 'done', 2]]);
      const tapped = await runCli(['network', 'tap', 'listed', 'n'], { env });
      assert.equal(tapped.code, 0, tapped.stderr);
      assert.equal(tapped.stdout, '1\n2\n3\n', 'network tap: each value on a line, until the pipe ended');
      const tappedJson = await runCli(['network', 'tap', 'listed', 'n', '--json'], { env });
      assert.equal(tappedJson.code, 0, tappedJson.stderr);
      assert.deepEqual(tappedJson.stdout.trim().split('\n').map((line) => JSON.parse(line) as { seq: number; value: unknown }).map((f) => [f.seq, f.value]), [[0, '1'], [1, '2'], [2, '3']]);
      const table = await runCli(['network', 'ls'], { env });
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, /^NAME\s+STATE\s+JOBS ENDED\s+PIPES\s+RUN\nlisted\s+done\s+2\/2\s+1\s+\S+\n$/);
    });
  });

  it('output --json: the paths written as a JSON array, the files there, stderr empty', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobwire-habits-'));
    try {
      await withServer(async (s) => {
        const env = cliEnv(s);
        const submitted = await runCli(['submit', '--block', '--json', '--output-file', 'kept.txt', '--cmd', 'echo kept > kept.txt'], { env, cwd: dir });
        assert.equal(submitted.code, 0, submitted.stderr);
        const id = (JSON.parse(submitted.stdout) as { id: string }).id;
        const r = await runCli(['output', id, '--dir', join(dir, 'got'), '--json'], { env, cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        assert.deepEqual(JSON.parse(r.stdout), [join(dir, 'got', 'kept.txt')]);
        assert.equal(readFileSync(join(dir, 'got', 'kept.txt'), 'utf8'), 'kept\n');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad arguments: a one-line error on stderr naming the argument, nothing on stdout, exit 2', async () => {
    await withServer(async (s) => {
      const env = cliEnv(s);
      const cases: Array<[string[], string]> = [
        [['jobs', '--limit', 'abc'], '--limit'],
        [['jobs', '--limit'], '--limit'],
        [['jobs', '--bogus'], '--bogus'],
        [['jobs', '--summary', '--json'], '--summary'],
        [['--url', '127.0.0.1:7700', 'jobs'], 'http://'],
        [['submit', '--max-runtime', '-3', '--', 'true'], '--max-runtime'],
        [['submit', '--env', 'FOO', '--', 'true'], '--env'],
        [['attach', '--from', 'x', 'abc'], '--from'],
        [['cancel', '--timeout', '5', 'abc'], '--timeout'],
        [['server', '--port', '99999'], '--port'],
        [['network', 'status'], "'name'"],
        [['--url', 'http://x', 'token', 'list'], '--url'],
      ];
      for (const [args, named] of cases) {
        const r = await runCli(args, { env });
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stdout, '', args.join(' '));
        assert.ok(r.stderr.startsWith('jobwire: ') && r.stderr.includes(named), `${args.join(' ')}: ${r.stderr}`);
      }
    });
  });
});
