import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as pty from 'node-pty';
import { spawn } from 'node:child_process';
import { CLI, FIXTURES, cliEnv, removeHome, runCli, sleepUntil, startServerProcess, tempHome, withServer } from '../helpers.js';

/** Runs the CLI inside a real pseudo-terminal driven by the test. */
function inPty(args: string[], env: Record<string, string>, size = { cols: 100, rows: 30 }) {
  const term = pty.spawn(process.execPath, [CLI, ...args], { name: 'xterm-256color', ...size, env: { ...process.env, ...env } as Record<string, string> });
  let screen = '';
  term.onData((d) => (screen += d));
  const exit = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
  return {
    term,
    get screen() {
      return screen;
    },
    exit,
    waitFor: (text: string, timeoutMs = 15_000) => sleepUntil(() => screen.includes(text), timeoutMs, JSON.stringify(text) + ' on screen; screen so far: ' + JSON.stringify(screen)),
  };
}

const count = (text: string, part: string): number => text.split(part).length - 1;

describe('jobwire CLI', () => {
  it('runs the gLite test script interactively: prompts shown before answers, both answers read, nothing twice, exit 0', async () => {
    await withServer(async (s) => {
      const t = inPty(['run', '-i', '--', 'sh', join(FIXTURES, 'glite.sh')], cliEnv(s));
      await t.waitFor('Please tell me your name: ');
      assert.ok(t.screen.includes('Welcome!'));
      assert.ok(!t.screen.includes('That is all'), 'nothing runs ahead of the answer');
      t.term.write('Floki\r');
      await t.waitFor('Bye bye.');
      assert.ok(t.screen.includes('That is all, Floki.'));
      assert.ok(!t.screen.includes('Go away'), 'the second read waits for its answer');
      t.term.write('Odin\r');
      const code = await t.exit;
      assert.equal(code, 0);
      const screen = t.screen;
      assert.ok(screen.includes('Go away, Odin.'), screen);
      for (const line of ['Welcome!', 'Please tell me your name: ', 'That is all, Floki.', 'Bye bye.', 'Go away, Odin.']) {
        assert.equal(count(screen, line), 1, `${JSON.stringify(line)} printed once`);
      }
      // Each answer shows twice: once as typed (terminal echo), once in the job's reply.
      assert.equal(count(screen, 'Floki'), 2);
      assert.equal(count(screen, 'Odin'), 2);
    });
  });

  it('runs a tty job whose terminal size follows the local terminal', async () => {
    await withServer(async (s) => {
      const t = inPty(['run', '-t', '--', 'sh', '-c', 'stty size; read x; stty size'], cliEnv(s), { cols: 91, rows: 27 });
      await t.waitFor('27 91');
      t.term.resize(120, 40);
      await new Promise((r) => setTimeout(r, 300));
      t.term.write('\r');
      await t.waitFor('40 120');
      assert.equal(await t.exit, 0);
    });
  });

  it('exits with the job’s exit code', async () => {
    await withServer(async (s) => {
      const r = await runCli(['run', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], { env: cliEnv(s) });
      assert.equal(r.code, 3);
      assert.equal(r.stdout, 'out\n');
      assert.equal(r.stderr, 'err\n');
    });
  });

  it('passes local stdin EOF on to the job', async () => {
    await withServer(async (s) => {
      const r = await runCli(['run', '-i', '--', 'sh', '-c', 'cat; echo done'], { env: cliEnv(s), input: 'line one\nline two\n' });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'line one\nline two\ndone\n');
    });
  });

  it('submit --js --block prints the job id and the info block with the result', async () => {
    await withServer(async (s) => {
      const r = await runCli(['submit', '--js', 'x = 5; return x + 10', '--block'], { env: cliEnv(s) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Submitted job id: [0-9a-f-]{36}$/m);
      assert.match(r.stdout, /^status\s*: Success$/m);
      assert.match(r.stdout, /^result\s*: 15$/m);
    });
  });

  it('lists jobs oldest first, as JSON and as a summary, and shows status', async () => {
    await withServer(async (s) => {
      const env = cliEnv(s);
      const ids: string[] = [];
      for (const word of ['first', 'second']) {
        const r = await runCli(['submit', '--name', word, '--block', '--', 'echo', word], { env });
        assert.equal(r.code, 0, r.stderr);
        ids.push(/Submitted job id: (\S+)/.exec(r.stdout)![1]!);
      }
      const json = await runCli(['jobs', '--json'], { env });
      assert.equal(json.code, 0, json.stderr);
      const list = JSON.parse(json.stdout) as { id: string; status: string }[];
      assert.deepEqual(list.map((j) => j.id), ids);
      assert.ok(list.every((j) => j.status === 'Success'));
      const summary = await runCli(['jobs', '--summary'], { env });
      const lines = summary.stdout.trim().split('\n');
      assert.equal(lines.length, 2);
      assert.ok(lines[0]!.includes(ids[0]!) && lines[1]!.includes(ids[1]!));
      const status = await runCli(['status', ids[0]!], { env });
      assert.match(status.stdout, /^status\s*: Success$/m);
      assert.match(status.stdout, /^exit code\s*: 0$/m);
      const logs = await runCli(['logs', ids[1]!], { env });
      assert.equal(logs.stdout, 'second\n');
    });
  });

  it('cancels a job from the command line', async () => {
    await withServer(async (s) => {
      const env = cliEnv(s);
      const sub = await runCli(['submit', '--queue', 'unlimited', '--', 'sleep', '60'], { env });
      const id = /Submitted job id: (\S+)/.exec(sub.stdout)![1]!;
      await s.client.waitUntilRunning(id, 10_000);
      const r = await runCli(['cancel', id, '--wait'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await s.client.getJobStatus(id)).status, 'Cancelled');
    });
  });

  it('says there is no server and how to start one, with exit code 3', async () => {
    const home = tempHome();
    const r = await runCli(['jobs'], { env: { JOBWIRE_HOME: home, JOBWIRE_URL: '', JOBWIRE_TOKEN: '' } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /jobwire server/);
    const r2 = await runCli(['jobs', '--url', 'http://127.0.0.1:9', '--token', 'x'], { env: { JOBWIRE_HOME: home } });
    assert.equal(r2.code, 3);
    assert.match(r2.stderr, /no server running at http:\/\/127\.0\.0\.1:9/);
  });

  it('names the URL it lost, not the one the home records by then, when an attach cannot reconnect', async () => {
    // Before, the message was worked out again from the home: after a server killed and started on
    // another port it named the new server, which the command never tried.
    const home = tempHome();
    const first = await startServerProcess(home);
    let second: Awaited<ReturnType<typeof startServerProcess>> | undefined;
    try {
      const env = { JOBWIRE_HOME: home, JOBWIRE_URL: '', JOBWIRE_TOKEN: '' };
      const submitted = await runCli(['submit', '--json', '--cmd', 'echo ready; sleep 600'], { env });
      assert.equal(submitted.code, 0, submitted.stderr);
      const id = (JSON.parse(submitted.stdout) as { id: string }).id;
      const attach = spawn(process.execPath, [CLI, 'attach', '--no-stdin', id], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      attach.stdout.on('data', (d: Buffer) => (out += d.toString()));
      attach.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const code = new Promise<number | null>((resolve) => attach.on('close', resolve));
      await sleepUntil(() => out.includes('ready'), 30_000, 'the attach to print the job output');
      first.proc.kill('SIGKILL');
      await first.exited;
      second = await startServerProcess(home);
      assert.notEqual(second.url, first.url);
      assert.equal(await code, 3, err);
      // Nothing listens there any more: "no server running at" the URL it had.
      assert.ok(err.includes(`no server running at ${first.url}`), err);
      assert.ok(!err.includes(second.url), err);
      const cancelled = await runCli(['cancel', id], { env });
      assert.equal(cancelled.code, 0, cancelled.stderr);
    } finally {
      first.proc.kill('SIGKILL');
      second?.proc.kill('SIGTERM');
      await second?.exited;
      removeHome(home);
    }
  });

  it('reports an unknown job id on stderr with exit code 4', async () => {
    await withServer(async (s) => {
      const r = await runCli(['status', '00000000-0000-4000-8000-000000000000'], { env: cliEnv(s) });
      assert.equal(r.code, 4);
      assert.match(r.stderr, /^jobwire: /);
      assert.equal(r.stdout, '');
    });
  });

  it('prints help for every command', async () => {
    for (const cmd of ['server', 'submit', 'run', 'attach', 'status', 'jobs', 'cancel', 'logs']) {
      const r = await runCli([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd} --help`);
      assert.match(r.stdout, new RegExp(`Usage: jobwire ${cmd}`));
    }
  });
});
