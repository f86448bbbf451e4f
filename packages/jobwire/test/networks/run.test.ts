/**
 * `jobwire network run` end to end: a real server, real processes, the CLI as a user runs it.
 * Networks of executable jobs, wired through pipes by the server; named pipes for jobs with
 * several inputs and outputs; refusals that start nothing; a failing job that ends the network.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, cliEnv, runCli, sleepUntil, withServer, type TestServer } from '../helpers.js';
import { untilNetwork } from './network-status.js';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobwire-network-run-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The stream folders of network `name`'s pipes, cursors and claims in a home's embedded store (`net.NAME.…`). */
function networkStreams(home: string, name: string): string[] {
  const found: string[] = [];
  const walk = (folder: string, depth: number): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      if (entry.name.startsWith(`net.${name}.`)) found.push(entry.name);
      else if (depth < 3) walk(join(folder, entry.name), depth + 1);
    }
  };
  walk(home, 0);
  return found.sort();
}

/** The jobs of a network's group, by name. */
async function groupJobs(s: TestServer, network: string): Promise<Map<string, string>> {
  const page = await s.client.getJobs({ group: `networks:${network}` });
  return new Map(page.items.map((job) => [job.name, job.status]));
}

describe('jobwire network run (executable jobs)', () => {
  it('runs the squares network: the sink receives exactly 1..N squared, in order, and the jobs are a group', async () => {
    const N = 3000;
    const out = join(dir, 'squares.out');
    const network = file(
      'squares.yaml',
      `name: squares
jobs:
  numbers: { command: [seq, 1, ${N}], outputs: [n] }
  square:  { command: [awk, '{ print $1 * $1; fflush() }'], inputs: [n], outputs: [sq] }
  sink:    { command: [sh, -c, 'cat > "$1"', sh, ${JSON.stringify(out)}], inputs: [sq] }
pipes:
  n:  { framing: lines, queue: { max: 16 } }
  sq: { framing: lines, queue: { max: 8 } }
`,
    );
    await withServer(async (s) => {
      const result = await runCli(['network', 'run', network, '--block', '--json'], { env: cliEnv(s), timeoutMs: 120_000 });
      assert.equal(result.code, 0, result.stderr + result.stdout);
      const status = JSON.parse(result.stdout) as { state: string; pipes: Array<{ name: string; frames: number; dropped: number }> };
      assert.equal(status.state, 'done');
      assert.deepEqual(
        status.pipes.map((p) => [p.name, p.frames, p.dropped]),
        [
          ['n', N, 0],
          ['sq', N, 0],
        ],
      );
      const expected = Array.from({ length: N }, (_, i) => `${(i + 1) ** 2}\n`).join('');
      assert.equal(readFileSync(out, 'utf8'), expected);
      assert.deepEqual(
        await groupJobs(s, 'squares'),
        new Map([
          ['numbers', 'Success'],
          ['square', 'Success'],
          ['sink', 'Success'],
        ]),
      );
    });
  });

  it('gives a job with two inputs and two outputs named pipes through {in.NAME} and {out.NAME}', async () => {
    const [x, y] = [join(dir, 'x.out'), join(dir, 'y.out')];
    const network = file(
      'fifos.yaml',
      `name: fifos
jobs:
  left:  { command: [seq, 1, 400], outputs: [a] }
  right: { command: [seq, 1001, 1400], outputs: [b] }
  join:  { command: [sh, -c, 'paste -d, "$1" "$2" | tee "$3" | sed "s/^/y:/" > "$4"', sh, '{in.a}', '{in.b}', '{out.x}', '{out.y}'], inputs: [a, b], outputs: [x, y] }
  sinkx: { command: [sh, -c, 'cat > "$1"', sh, ${JSON.stringify(x)}], inputs: [x] }
  sinky: { command: [sh, -c, 'cat > "$1"', sh, ${JSON.stringify(y)}], inputs: [y] }
pipes: { a: {}, b: {}, x: {}, y: {} }
`,
    );
    await withServer(async (s) => {
      const result = await runCli(['network', 'run', network, '--block'], { env: cliEnv(s), timeoutMs: 120_000 });
      assert.equal(result.code, 0, result.stderr + result.stdout);
      assert.match(result.stdout, /network fifos \(done, group networks:fifos\)/);
      const pairs = Array.from({ length: 400 }, (_, i) => `${i + 1},${i + 1001}`);
      assert.equal(readFileSync(x, 'utf8'), pairs.map((p) => `${p}\n`).join(''));
      assert.equal(readFileSync(y, 'utf8'), pairs.map((p) => `y:${p}\n`).join(''));
    });
  });

  it('refuses a bad file with its lines, starting nothing', async () => {
    const bad = file('bad-run.yaml', 'name: bad\njobs:\n  a: { command: [cat], inputs: [ghost] }\n');
    await withServer(async (s) => {
      const refused = await runCli(['network', 'run', bad], { env: cliEnv(s) });
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /bad-run\.yaml:3:33: jobs\.a\.inputs\.0: unknown pipe "ghost"/);
      assert.equal((await groupJobs(s, 'bad')).size, 0);
    });
  });

  it('refuses a network whose later job the server cannot run, naming that job, with no job left behind', async () => {
    // The file is good; the second job's environment holds a NUL byte, which only the job
    // description's check refuses. Before, the first job was queued (and then cancelled) first.
    await withServer(async (s) => {
      const res = await fetch(`${s.url}/v1/networks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          spec: {
            name: 'halfbad',
            jobs: {
              a: { command: ['sh', '-c', 'echo hi; sleep 60'], outputs: ['p'] },
              b: { command: ['cat'], inputs: ['p'], environment: { A: 'x\u0000' } },
            },
            pipes: { p: { framing: 'lines' } },
          },
          baseDir: dir,
        }),
      });
      const body = (await res.json()) as { error: { code: string; field: string; message: string } };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.error.code, 'invalid_description');
      assert.equal(body.error.field, 'jobs.b.environment.A');
      assert.match(body.error.message, /NUL byte/);
      assert.equal((await groupJobs(s, 'halfbad')).size, 0, 'no job of the refused network');
      assert.deepEqual(networkStreams(s.home, 'halfbad'), []);
    });
  });

  it('refuses to start a network of a name that is running, and starts it again once it ended', async () => {
    await withServer(async (s) => {
      const spec = { name: 'again', jobs: { wait: { command: ['sleep', '60'] } } };
      const first = await s.client.runNetwork(spec, { baseDir: dir });
      assert.equal(first.state, 'running');
      await assert.rejects(s.client.runNetwork(spec, { baseDir: dir }), (e: Error & { code?: string }) => e.code === 'conflict' && /network again is running/.test(e.message));
      await s.client.cancelJob(first.jobs[0]!.id);
      await s.client.waitUntilDone(first.jobs[0]!.id, 30_000);
      const second = await s.client.runNetwork({ name: 'again', jobs: { quick: { command: ['true'] } } }, { baseDir: dir });
      assert.notEqual(second.run, first.run, 'a new run, on fresh pipes');
      assert.equal((await s.client.networkStatus('again')).run, second.run);
      await assert.rejects(s.client.networkStatus('never'), (e: Error & { code?: string }) => e.code === 'not_found');
    });
  });

  it('a tap ends when its network is stopped (open before the stop, or after it) or fails: every frame stored, then a ConflictError saying so; the CLI prints them and exits 1', async () => {
    const spec = { name: 'retapped', jobs: { numbers: { command: ['sh', '-c', 'seq 1 3; exec sleep 600'], outputs: ['n'] }, sink: { command: ['sh', '-c', 'exec cat > /dev/null'], inputs: ['n'] } }, pipes: { n: {} } };
    await withServer(async (s) => {
      /** Taps pipe n of `network`, resolving to how the tap ended. */
      const tap = async (network: string, seen: string[]): Promise<unknown> => {
        try {
          for await (const frame of s.client.tapPipe(network, 'n')) seen.push(String(frame.value));
          return 'ended';
        } catch (err) {
          return err;
        }
      };
      /** `jobwire network tap NETWORK n`: its exit code, stdout and stderr once it ends. */
      const cliTap = (network: string) => {
        const cli = spawn(process.execPath, [CLI, 'network', 'tap', network, 'n'], { env: { ...process.env, ...cliEnv(s) }, stdio: ['ignore', 'pipe', 'pipe'] });
        const out = { stdout: '', stderr: '' };
        cli.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
        cli.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
        return { out, exit: (once(cli, 'close') as Promise<[number | null]>).then(([code]) => ({ code, ...out })) };
      };
      const stoppedMessage = 'network retapped was stopped before pipe n ended: every frame it holds was sent, no more will come';

      await s.client.runNetwork(spec, { baseDir: dir });
      await untilNetwork(s.client, 'retapped', (st) => st.pipes[0]!.frames === 3);
      // Open while the network runs: both taps have the stored frames and wait for more.
      const values: string[] = [];
      const tapped = tap('retapped', values);
      const cli = cliTap('retapped');
      await sleepUntil(() => values.length === 3 && cli.out.stdout === '1\n2\n3\n', 10_000, `both taps to have the stored frames (CLI: ${JSON.stringify(cli.out)})`);
      const stopped = await runCli(['network', 'stop', 'retapped'], { env: cliEnv(s) });
      assert.equal(stopped.code, 0, stopped.stderr);
      const cut = (await tapped) as Error & { code?: string };
      assert.equal(cut.name, 'ConflictError', String(cut));
      assert.equal(cut.message, stoppedMessage);
      assert.deepEqual(values, ['1', '2', '3']);
      assert.deepEqual(await cli.exit, { code: 1, stdout: '1\n2\n3\n', stderr: `jobwire: ${stoppedMessage}\n` });
      assert.equal((await s.client.networkStatus('retapped')).state, 'stopped');

      // Opened after the stop: the frames, then the same end at once.
      const after: string[] = [];
      const late = (await tap('retapped', after)) as Error & { code?: string };
      assert.deepEqual(after, ['1', '2', '3']);
      assert.equal(late.message, stoppedMessage);
      assert.deepEqual(await cliTap('retapped').exit, { code: 1, stdout: '1\n2\n3\n', stderr: `jobwire: ${stoppedMessage}\n` });

      // A network that failed leaves its pipes as they are too.
      await s.client.runNetwork(
        { name: 'broken', jobs: { numbers: { command: ['sh', '-c', 'seq 1 3; exit 3'], outputs: ['n'], restart: { policy: 'never' } }, sink: { command: ['sh', '-c', 'exec sleep 600'], inputs: ['n'] } }, pipes: { n: {} } },
        { baseDir: dir },
      );
      await untilNetwork(s.client, 'broken', (st) => st.state === 'failed');
      const broken: string[] = [];
      const failed = (await tap('broken', broken)) as Error & { code?: string };
      assert.deepEqual(broken, ['1', '2', '3']);
      assert.equal(failed.name, 'ConflictError', String(failed));
      assert.equal(failed.message, 'network broken failed before pipe n ended: every frame it holds was sent, no more will come');

      // A pipe that ended is no cut: its tap ends plainly.
      await s.client.runNetwork({ name: 'whole', jobs: { numbers: { command: ['seq', '1', '3'], outputs: ['n'] }, sink: { command: ['sh', '-c', 'exec cat > /dev/null'], inputs: ['n'] } }, pipes: { n: {} } }, { baseDir: dir });
      await untilNetwork(s.client, 'whole', (st) => st.state === 'done');
      const whole: string[] = [];
      assert.equal(await tap('whole', whole), 'ended');
      assert.deepEqual(whole, ['1', '2', '3']);
    });
  });

  it('a tap still behind when its stopped network is started again ends with a ConflictError naming both runs, and one behind when it is removed with a NotFoundError', async () => {
    // Frames of about 1 KiB, 32 MiB in all: far more than the connection holds, so a tap whose
    // reader stops reading stays behind, its server side waiting to send.
    const FRAMES = 30_000;
    const spec = {
      name: 'behind',
      jobs: { numbers: { command: ['sh', '-c', `yes "$(printf %01000d 0)" | head -n ${FRAMES}; exec sleep 600`], outputs: ['n'] }, sink: { command: ['sh', '-c', 'exec cat > /dev/null'], inputs: ['n'] } },
      pipes: { n: {} },
    };
    await withServer(async (s) => {
      /** Opens a tap and takes its first frame; then reads the rest when called: how many frames it took in all, and how it ended. */
      const openTap = async (): Promise<() => Promise<{ frames: number; end: Error & { code?: string } }>> => {
        const it = s.client.tapPipe('behind', 'n')[Symbol.asyncIterator]();
        assert.equal((await it.next()).done, false);
        return async () => {
          let frames = 1;
          try {
            while (!(await it.next()).done) frames++;
          } catch (err) {
            return { frames, end: err as Error };
          }
          return { frames, end: new Error('the tap ended as if the pipe had ended') };
        };
      };
      const runUntilStopped = async (): Promise<string> => {
        const { run } = await s.client.runNetwork(spec, { baseDir: dir });
        await untilNetwork(s.client, 'behind', (st) => st.pipes[0]!.frames === FRAMES, 120_000);
        await s.client.stopNetwork('behind');
        await untilNetwork(s.client, 'behind', (st) => st.state === 'stopped');
        return run;
      };

      const first = await runUntilStopped();
      // The tap has its first frame and reads no more while the new run replaces the one it follows.
      const rest = await openTap();
      const second = (await s.client.runNetwork(spec, { baseDir: dir })).run;
      const replaced = await rest();
      assert.ok(replaced.frames < FRAMES, `the tap was behind (${replaced.frames} frames)`);
      assert.equal(replaced.end.name, 'ConflictError', String(replaced.end));
      assert.equal(replaced.end.message, `network behind was started again: run ${second} replaced run ${first}, whose pipes are removed; tap again to follow the new run`);

      await untilNetwork(s.client, 'behind', (st) => st.pipes[0]!.frames === FRAMES, 120_000);
      await s.client.stopNetwork('behind');
      await untilNetwork(s.client, 'behind', (st) => st.state === 'stopped');
      const restAgain = await openTap();
      await s.client.removeNetwork('behind');
      const removed = await restAgain();
      assert.ok(removed.frames < FRAMES, `the tap was behind (${removed.frames} frames)`);
      assert.equal(removed.end.name, 'NotFoundError', String(removed.end));
      assert.equal(removed.end.message, 'network behind was removed, with its pipes');
    });
  });

  it('jobwire network rm: refused while the network runs (nothing removed); once stopped, removes its record and its pipes\' streams, keeps its jobs; a new run removes the ended run\'s streams', async () => {
    const network = file(
      'removed.yaml',
      `name: removed
jobs:
  numbers: { command: [sh, -c, 'seq 1 20; exec sleep 600'], outputs: [n] }
  sink:    { command: [cat], inputs: [n] }
pipes: { n: {} }
`,
    );
    await withServer(async (s) => {
      // An earlier run of the same name, ended: the next run replaces its record and its streams.
      const earlier = await s.client.runNetwork({ name: 'removed', jobs: { numbers: { command: ['seq', '1', '5'], outputs: ['n'] }, sink: { command: ['cat'], inputs: ['n'] } }, pipes: { n: {} } }, { baseDir: dir });
      await untilNetwork(s.client, 'removed', (st) => st.state === 'done');
      assert.ok(networkStreams(s.home, 'removed').some((name) => name.startsWith(`net.removed.${earlier.run}.`)), 'the earlier run\'s pipe is stored');

      const started = await runCli(['network', 'run', network, '--json'], { env: cliEnv(s), timeoutMs: 60_000 });
      assert.equal(started.code, 0, started.stderr + started.stdout);
      await untilNetwork(s.client, 'removed', (st) => st.pipes[0]!.frames === 20);
      const streams = networkStreams(s.home, 'removed');
      assert.ok(streams.every((name) => !name.startsWith(`net.removed.${earlier.run}.`)), `the earlier run's streams are gone: ${streams.join(' ')}`);
      assert.ok(streams.some((name) => name.endsWith('.n')), `the pipe's stream is stored: ${streams.join(' ')}`);

      const refused = await runCli(['network', 'rm', 'removed'], { env: cliEnv(s) });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /network removed is running: stop it/);
      assert.deepEqual(networkStreams(s.home, 'removed'), streams, 'nothing removed');
      assert.equal((await s.client.networkStatus('removed')).state, 'running');

      const stop = await runCli(['network', 'stop', 'removed'], { env: cliEnv(s) });
      assert.equal(stop.code, 0, stop.stderr);
      await untilNetwork(s.client, 'removed', (st) => st.state === 'stopped');
      const removed = await runCli(['network', 'rm', 'removed'], { env: cliEnv(s) });
      assert.equal(removed.code, 0, removed.stderr + removed.stdout);
      assert.match(removed.stdout, /^removed network removed \(run [0-9a-f]+, \d+ streams\)/);
      assert.deepEqual(networkStreams(s.home, 'removed'), [], 'the pipes\' and cursors\' streams are gone');
      await assert.rejects(s.client.networkStatus('removed'), (e: Error & { code?: string }) => e.code === 'not_found');
      assert.ok(!(await s.client.networks()).some((n) => n.name === 'removed'), 'no longer listed');
      assert.deepEqual([...(await groupJobs(s, 'removed')).keys()].sort(), ['numbers', 'sink'], 'the jobs stay, as ended jobs');

      const again = await runCli(['network', 'rm', 'removed'], { env: cliEnv(s) });
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /no network "removed"/);
    });
  });

  it('ends the network when a job fails past its restarts: the others are cancelled and --block exits 1', async () => {
    const network = file(
      'failing.yaml',
      `name: failing
jobs:
  numbers: { command: [seq, 1, 200000], outputs: [n] }
  broken:  { command: [sh, -c, 'read first; echo "got $first" >&2; exit 3'], inputs: [n], outputs: [m] }
  sink:    { command: [cat], inputs: [m] }
pipes: { n: { queue: { max: 4 } }, m: {} }
`,
    );
    await withServer(async (s) => {
      const result = await runCli(['network', 'run', network, '--block', '--json'], { env: cliEnv(s), timeoutMs: 120_000 });
      assert.equal(result.code, 1, result.stderr + result.stdout);
      const status = JSON.parse(result.stdout) as { state: string; jobs: Array<{ name: string; status: string; exitCode: number | null; restarts: number }> };
      assert.equal(status.state, 'failed');
      const byName = new Map(status.jobs.map((j) => [j.name, j]));
      assert.equal(byName.get('broken')!.status, 'Failed');
      assert.equal(byName.get('broken')!.exitCode, 3);
      assert.equal(byName.get('broken')!.restarts, 3, 'restarted as its default policy says (on-failure, 3), then the network failed');
      // The others were cancelled, or had ended by themselves: none is left running or waiting.
      for (const name of ['numbers', 'sink']) assert.ok(['Cancelled', 'Success'].includes(byName.get(name)!.status), `${name}: ${byName.get(name)!.status}`);
      assert.equal(byName.get('sink')!.status, 'Cancelled', 'the sink never got an end: it was cancelled');
    });
  });
});
