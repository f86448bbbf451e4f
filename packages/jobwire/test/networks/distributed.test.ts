/**
 * Networks in distributed mode, with real processes: `jobwire server --redis` and `jobwire
 * worker`s on the test Redis. A network's jobs are placed on workers by `node` and `pools` like
 * any job, and their pipes cross workers through the store; a worker killed with -9 under the
 * connector moves it to another worker, where it resumes exactly: the sink receives every frame
 * once, in order, and no consumer sees a reset.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client, NetworkStatus, PipeFrame } from '@jobwire/client';
import { cliEnv, runCli, sleepUntil } from '../helpers.js';
import { untilNetwork as until } from './network-status.js';
import { withCluster, type TestCluster } from '../distributed/cluster.js';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobwire-network-dist-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Runs `jobwire network run FILE` against the cluster's first server; resolves to its status. */
async function runNetwork(cluster: TestCluster, path: string, extra: string[] = []): Promise<NetworkStatus> {
  const server = cluster.servers[0]!;
  const result = await runCli(['network', 'run', path, '--json', ...extra], { env: cliEnv(server), timeoutMs: 120_000 });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  return JSON.parse(result.stdout) as NetworkStatus;
}

/** Every frame of a pipe (from the first, until it ends). */
async function tapAll(client: Client, network: string, pipe: string): Promise<PipeFrame[]> {
  const frames: PipeFrame[] = [];
  for await (const frame of client.tapPipe(network, pipe)) frames.push(frame);
  return frames;
}

describe('networks in distributed mode', () => {
  it('places each job on the worker its node and pools name; pipes cross workers through the store; any server answers network status, taps its pipes and removes it once ended', async () => {
    const N = 2000;
    const out = join(dir, 'placed.csv');
    file('placed-square.mjs', 'export function run(n) { return Number(n) ** 2; }\n');
    const network = file(
      'placed.yaml',
      `name: placed
jobs:
  numbers: { command: [seq, 1, ${N}], outputs: [n], pools: [left] }
  square:  { js: ./placed-square.mjs, inputs: [n], outputs: [sq], node: mid }
  sink:    { builtin: csv-sink, path: placed.csv, inputs: [sq], pools: [right] }
pipes:
  n:  { framing: lines, queue: { max: 16 } }
  sq: { framing: lines, queue: { max: 16 } }
`,
    );
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addServer();
      await cluster.addWorker({ name: 'west', pools: ['left'] });
      await cluster.addWorker({ name: 'mid' });
      await cluster.addWorker({ name: 'east', pools: ['right'] });
      const started = await runNetwork(cluster, network);
      // The second server does not wire the network, but answers for it from the store, and
      // refuses to start it again while it runs.
      const other = cluster.client(1);
      const seen = await until(other, 'placed', (s) => s.run === started.run);
      assert.equal(seen.state, 'running');
      assert.deepEqual(await other.networkGraph('placed'), await cluster.client(0).networkGraph('placed'), 'both servers draw the same graph');
      // A tap on the server that does not wire the network: it reads the pipe from the store.
      const tapped = tapAll(other, 'placed', 'sq');
      await assert.rejects(other.removeNetwork('placed'), (err: Error & { code?: string }) => err.code === 'conflict' && /is running/.test(err.message), 'no removal while it runs');
      await assert.rejects(other.runNetwork({ name: 'placed', jobs: { x: { command: ['true'] } } }, { baseDir: dir }), (err: Error & { code?: string }) => err.code === 'conflict');
      const status = await until(other, 'placed', (s) => s.state !== 'running');
      assert.equal(status.state, 'done', JSON.stringify(status));
      assert.deepEqual(status, await cluster.client(0).networkStatus('placed'), 'both servers answer the same');
      assert.deepEqual(
        status.jobs.map((j) => [j.name, j.status, j.node]),
        [
          ['numbers', 'Success', 'west'],
          ['square', 'Success', 'mid'],
          ['sink', 'Success', 'east'],
        ],
      );
      assert.deepEqual(
        status.pipes.map((p) => [p.name, p.frames, p.dropped]),
        [
          ['n', N, 0],
          ['sq', N, 0],
        ],
      );
      assert.equal(readFileSync(out, 'utf8'), Array.from({ length: N }, (_, i) => `${(i + 1) ** 2}\n`).join(''));
      const frames = await tapped;
      assert.deepEqual(
        frames.map((f) => f.value),
        Array.from({ length: N }, (_, i) => String((i + 1) ** 2)),
        'the tap on the other server got every frame of sq, in order',
      );

      // Removed by the server that did not wire it: neither server knows it any more.
      const removed = await other.removeNetwork('placed');
      assert.equal(removed.run, started.run);
      for (const client of [other, cluster.client(0)]) {
        await assert.rejects(client.networkStatus('placed'), (err: Error & { code?: string }) => err.code === 'not_found');
        await assert.rejects(tapAll(client, 'placed', 'sq'), (err: Error & { code?: string }) => err.code === 'not_found');
        assert.ok(!(await client.networks()).some((n) => n.name === 'placed'), 'no longer listed');
      }
    });
  });

  it('network list on any server lists every server\'s networks (GET /v1/networks, SDK, CLI --json and table), and no longer one removed', async () => {
    const gate = join(dir, 'listed-gate');
    const network = file(
      'listed.yaml',
      `name: listed
jobs:
  src:  { command: [sh, -c, 'while [ ! -e "${gate}" ]; do sleep 0.1; done; seq 1 3'], outputs: [n] }
  sink: { command: [sh, -c, 'exec cat > /dev/null'], inputs: [n] }
pipes:
  n: { framing: lines }
`,
    );
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addServer();
      await cluster.addWorker({ name: 'any' });
      const started = await runNetwork(cluster, network);
      const other = cluster.client(1);
      const running = await other.networks();
      assert.deepEqual(running.map((n) => [n.name, n.run, n.state]), [['listed', started.run, 'running']], 'the server that does not wire it lists it');
      writeFileSync(gate, '');
      await until(other, 'listed', (s) => s.state !== 'running');
      const json = await runCli(['network', 'list', '--json'], { env: cliEnv(cluster.servers[1]!) });
      assert.equal(json.code, 0, json.stderr);
      assert.deepEqual((JSON.parse(json.stdout) as NetworkStatus[]).map((n) => [n.name, n.run, n.state]), [['listed', started.run, 'done']]);
      const table = await runCli(['network', 'list'], { env: cliEnv(cluster.servers[1]!) });
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, /^NAME\s+STATE\s+JOBS ENDED\s+PIPES\s+RUN\nlisted\s+done\s+2\/2\s+1\s+\S+\n$/);
      await cluster.client(0).removeNetwork('listed');
      for (const client of [other, cluster.client(0)]) assert.deepEqual(await client.networks(), [], 'removed: listed by neither server');
    });
  });

  it('a tap on a server that does not wire the network ends when the wiring server stops it: every frame stored, then a ConflictError saying so', async () => {
    const spec = { name: 'retapped', jobs: { numbers: { command: ['sh', '-c', 'seq 1 3; exec sleep 600'], outputs: ['n'] }, sink: { command: ['sh', '-c', 'exec cat > /dev/null'], inputs: ['n'] } }, pipes: { n: {} } };
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addServer();
      await cluster.addWorker({ name: 'any' });
      const wiring = cluster.client(0);
      await wiring.runNetwork(spec, { baseDir: dir });
      await until(wiring, 'retapped', (st) => st.pipes[0]!.frames === 3);
      const values: string[] = [];
      const tapped = (async () => {
        try {
          for await (const frame of cluster.client(1).tapPipe('retapped', 'n')) values.push(String(frame.value));
          return new Error('the tap ended as if the pipe had ended');
        } catch (err) {
          return err as Error;
        }
      })();
      await sleepUntil(() => values.length === 3, 10_000, 'the tap on the other server to have the stored frames');
      await wiring.stopNetwork('retapped');
      const stopped = await tapped;
      assert.deepEqual(values, ['1', '2', '3']);
      assert.equal(stopped.name, 'ConflictError', String(stopped));
      assert.equal(stopped.message, 'network retapped was stopped before pipe n ended: every frame it holds was sent, no more will come');
    });
  });

  it('kill -9 the worker running the connector mid-stream: the job moves to another worker and the sink receives every frame exactly once, in order', async () => {
    const N = 3000;
    const out = join(dir, 'moved.csv');
    // A bursty source (20 frames, then a pause) and a slow connector (2 ms a frame): each burst
    // reaches the connector as one batch of sets, which it works through one by one, so its
    // worker dies in the middle of a batch — some sets of it handled and their output stored,
    // the others not.
    file('moved-numbers.mjs', 'export async function* run() { for (let i = 1; i <= ' + N + '; i++) { yield i; if (i % 20 === 0) await new Promise((r) => setTimeout(r, 60)); } }\n');
    file('moved-square.mjs', 'export async function run(n) { await new Promise((r) => setTimeout(r, 2)); return { n, sq: n * n }; }\n');
    const network = file(
      'moved.yaml',
      `name: moved
jobs:
  numbers: { js: ./moved-numbers.mjs, outputs: [n], node: steady }
  square:  { js: ./moved-square.mjs, inputs: [n], outputs: [sq], node: doomed }
  sink:    { builtin: csv-sink, path: moved.csv, columns: [n, sq], inputs: [sq], node: steady }
pipes:
  n:  { framing: frames, queue: { max: 32 } }
  sq: { framing: frames, queue: { max: 32 } }
`,
    );
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addWorker({ name: 'steady', slots: 4, deadAfter: 2 });
      await cluster.addWorker({ name: 'doomed', slots: 2, deadAfter: 2 });
      const client = cluster.client();
      const started = await runNetwork(cluster, network);
      const first = started.jobs.find((j) => j.name === 'square')!;
      await client.waitUntilRunning(first.id, 20_000);
      // The connector's process outlives its killed worker (it leads its own process group).
      cluster.orphans.add(await cluster.jobPid(first.id));
      const tapped = tapAll(client, 'moved', 'sq');
      const before = await until(client, 'moved', (s) => s.pipes.find((p) => p.name === 'sq')!.frames >= 300);
      assert.equal(before.jobs.find((j) => j.name === 'square')!.node, 'doomed');
      assert.ok(before.pipes.find((p) => p.name === 'sq')!.frames < N / 2, 'the kill lands mid-stream');
      await cluster.killWorker('doomed');

      const done = await until(client, 'moved', (s) => s.state !== 'running', 90_000);
      assert.equal(done.state, 'done', JSON.stringify(done));
      const square = done.jobs.find((j) => j.name === 'square')!;
      assert.equal(square.status, 'Success');
      assert.notEqual(square.id, first.id, 'a new job of the group');
      assert.equal(square.node, 'steady', 'placed again on the live worker');
      assert.equal(square.moves, 1);
      assert.equal(square.restarts, 0, 'a move is no restart');
      assert.equal((await client.getJobStatus(first.id)).status, 'Lost');

      const expected = 'n,sq\n' + Array.from({ length: N }, (_, i) => `${i + 1},${(i + 1) ** 2}\n`).join('');
      assert.equal(readFileSync(out, 'utf8'), expected, 'every frame exactly once, in order');
      const frames = await tapped;
      assert.deepEqual(
        frames.map((f) => (f.value as { n: number }).n),
        Array.from({ length: N }, (_, i) => i + 1),
        'the pipe holds every frame once, in order',
      );
      assert.ok(
        frames.every((f) => f.epoch === 0 && !f.reset),
        'no consumer sees a reset',
      );
      assert.deepEqual(
        done.pipes.map((p) => [p.name, p.frames, p.dropped]),
        [
          ['n', N, 0],
          ['sq', N, 0],
        ],
      );
    });
  });

  it('kill -9 the worker running an executable connector: it moves, its output goes on in a new epoch that consumers see as a reset, nothing is doubled', async () => {
    const N = 3000;
    file('moved-exe-numbers.mjs', 'export async function* run() { for (let i = 1; i <= ' + N + '; i++) { yield String(i); if (i % 20 === 0) await new Promise((r) => setTimeout(r, 60)); } }\n');
    const network = file(
      'moved-exe.yaml',
      `name: movedexe
jobs:
  numbers: { js: ./moved-exe-numbers.mjs, outputs: [n], node: steady }
  square:  { command: [awk, '{ print $1 * $1; fflush() }'], inputs: [n], outputs: [sq], node: doomed }
  sink:    { builtin: csv-sink, path: moved-exe.csv, inputs: [sq], node: steady }
pipes:
  n:  { framing: lines, queue: { max: 32 } }
  sq: { framing: lines, queue: { max: 32 } }
`,
    );
    await withCluster(async (cluster) => {
      await cluster.addServer();
      await cluster.addWorker({ name: 'steady', slots: 4, deadAfter: 2 });
      await cluster.addWorker({ name: 'doomed', slots: 2, deadAfter: 2 });
      const client = cluster.client();
      const started = await runNetwork(cluster, network);
      const first = started.jobs.find((j) => j.name === 'square')!;
      await client.waitUntilRunning(first.id, 20_000);
      cluster.orphans.add(await cluster.jobPid(first.id));
      const tapped = tapAll(client, 'movedexe', 'sq');
      const before = await until(client, 'movedexe', (s) => s.pipes.find((p) => p.name === 'sq')!.frames >= 300);
      assert.ok(before.pipes.find((p) => p.name === 'sq')!.frames < N / 2, 'the kill lands mid-stream');
      await cluster.killWorker('doomed');

      const done = await until(client, 'movedexe', (s) => s.state !== 'running', 90_000);
      assert.equal(done.state, 'done', JSON.stringify(done));
      const square = done.jobs.find((j) => j.name === 'square')!;
      assert.deepEqual([square.status, square.node, square.moves, square.restarts], ['Success', 'steady', 1, 0]);
      const frames = await tapped;
      const resets = frames.filter((f) => f.reset);
      assert.equal(resets.length, 1, 'one reset: the seam of the move');
      assert.equal(resets[0]!.epoch, 1);
      const seam = frames.indexOf(resets[0]!);
      assert.ok(frames.slice(0, seam).every((f) => f.epoch === 0) && frames.slice(seam).every((f) => f.epoch === 1));
      const roots = frames.map((f) => Math.sqrt(Number(f.value)));
      assert.ok(roots.every(Number.isInteger), 'whole lines only');
      assert.ok(
        roots.every((n, i) => i === 0 || n > roots[i - 1]!),
        'in order, nothing doubled',
      );
      assert.equal(roots.at(-1), N, 'the moved job goes on to the end');
      // At most the frames the lost process had read ahead and not answered are missing.
      assert.ok(frames.length > N - 100 && frames.length <= N, `${frames.length} frames`);
    });
  });

  it('kill -9 the server wiring a network: another server takes it over, restarts its unfinished jobs from their committed cursors, and the sink gets every frame (at least once)', async () => {
    const N = 2000;
    const out = join(dir, 'adopted.csv');
    file('adopted-square.mjs', 'export async function run(n) { await new Promise((r) => setTimeout(r, 3)); return Number(n) ** 2; }\n');
    const network = file(
      'adopted.yaml',
      `name: adopted
jobs:
  numbers: { command: [seq, 1, ${N}], outputs: [n] }
  square:  { js: ./adopted-square.mjs, inputs: [n], outputs: [sq] }
  sink:    { builtin: csv-sink, path: adopted.csv, inputs: [sq] }
pipes:
  n:  { framing: lines, queue: { max: 4096 } }
  sq: { framing: lines, queue: { max: 16 } }
`,
    );
    await withCluster(async (cluster) => {
      const wiring = await cluster.addServer();
      await cluster.addServer();
      await cluster.addWorker({ name: 'w1', slots: 4 });
      const started = await runNetwork(cluster, network);
      const before = await until(cluster.client(0), 'adopted', (s) => s.pipes.find((p) => p.name === 'sq')!.frames >= 200 && s.jobs.find((j) => j.name === 'numbers')!.status === 'Success');
      assert.ok(before.pipes.find((p) => p.name === 'sq')!.frames < N / 2, 'the kill lands mid-stream');
      // Killed at the end should the takeover fail to cancel them.
      for (const job of before.jobs.filter((j) => j.status === 'Running')) {
        const pid = await cluster.jobPid(job.id);
        if (pid > 0) cluster.orphans.add(pid);
      }
      wiring.proc.kill('SIGKILL');
      await wiring.exited;

      const other = cluster.client(1);
      const done = await until(other, 'adopted', (s) => s.state !== 'running', 90_000);
      assert.equal(done.state, 'done', JSON.stringify(done));
      assert.equal(done.run, started.run, 'the same run, taken over');
      const jobs = new Map(done.jobs.map((j) => [j.name, j]));
      assert.equal(jobs.get('numbers')!.moves, 0, 'a job that had ended stays as it was');
      for (const name of ['square', 'sink']) {
        assert.equal(jobs.get(name)!.moves, 1, `${name} started again once`);
        assert.notEqual(jobs.get(name)!.id, started.jobs.find((j) => j.name === name)!.id);
        const unwired = (await other.getJobStatus(started.jobs.find((j) => j.name === name)!.id)).status;
        assert.ok(!['Queued', 'Running'].includes(unwired), `the unwired job was stopped (${unwired})`);
      }
      const rows = readFileSync(out, 'utf8').trim().split('\n').map((line) => Math.sqrt(Number(line)));
      const firsts = rows.filter((n, i) => rows.indexOf(n) === i);
      assert.deepEqual(firsts, Array.from({ length: N }, (_, i) => i + 1), 'every frame arrives, in order');
      // Twice at most (docs/networks.md, "When the wiring server stops"): the sink's sets sent and
      // not stored as committed (sq's max, 16: rows written again), and square's one group stored
      // and not committed (what sq, a block pipe of 16, had room for: 16 frames stored again).
      assert.ok(rows.length - N <= 16 + 16, `at most the sets in flight come twice (${rows.length - N} did)`);
      const frames = await tapAll(other, 'adopted', 'sq');
      assert.equal(frames.filter((f) => f.reset).length, 1, 'the seam is flagged: one reset');
    });
  });
});
