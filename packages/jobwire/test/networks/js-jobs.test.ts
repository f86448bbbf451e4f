/**
 * js and builtin jobs of a network, end to end: a real server, real function runners, the CLI
 * as a user runs it. The squares network of issue 12 (a js connector, the csv-sink builtin),
 * js sources and several inputs aligned by sequence number, and the builtins forward, clock and
 * interactive (lines typed by an attached user).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NetworkStatus } from '@jobwire/client';
import { cliEnv, runCli, withServer, type TestServer } from '../helpers.js';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobwire-network-js-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

type Status = NetworkStatus;

async function runBlocking(s: TestServer, network: string): Promise<Status> {
  const result = await runCli(['network', 'run', network, '--block', '--json'], { env: cliEnv(s), timeoutMs: 120_000 });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  return JSON.parse(result.stdout) as Status;
}

/** The network's status once `done` says so (or after a minute). */
async function until(s: TestServer, name: string, done: (status: Status) => boolean): Promise<Status> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await s.client.networkStatus(name);
    if (done(status) || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('network js and builtin jobs', () => {
  it('runs the squares network: numbers → square (js) → csv-sink; out.csv holds exactly 1..N squared, in order', async () => {
    const N = 5000;
    file('square.mjs', 'let calls = 0;\nexport function setup(ctx) { if (ctx.inputs[0] !== "n") throw new Error("setup got " + JSON.stringify(ctx)); }\nexport function run(n) { calls++; return Number(n) ** 2; }\nexport function finish() { console.error("calls", calls); }\n');
    const network = file(
      'squares.yaml',
      `name: squares
defaults: { queue: { max: 64, overflow: block } }
jobs:
  numbers: { command: [seq, 1, ${N}], outputs: [n] }
  square:  { js: ./square.mjs, inputs: [n], outputs: [sq] }
  sink:    { builtin: csv-sink, path: out.csv, inputs: [sq] }
pipes:
  n:  { framing: lines }
  sq: { framing: lines, queue: { max: 8 } }
`,
    );
    await withServer(async (s) => {
      const status = await runBlocking(s, network);
      assert.equal(status.state, 'done', JSON.stringify(status));
      assert.deepEqual(
        status.pipes.map((p) => [p.name, p.frames, p.dropped]),
        [
          ['n', N, 0],
          ['sq', N, 0],
        ],
      );
      const expected = Array.from({ length: N }, (_, i) => `${(i + 1) ** 2}\n`).join('');
      assert.equal(readFileSync(join(dir, 'out.csv'), 'utf8'), expected);
      // One runner for the whole stream, not one per frame: run was called N times in it.
      const square = status.jobs.find((j) => j.name === 'square')!;
      const page = await s.client.getJobs({ group: 'networks:squares' });
      const id = page.items.find((j) => j.name === 'square')!.id;
      assert.equal(square.status, 'Success');
      const stderr = Buffer.from((await s.client.readOutput(id, 'stderr')).data).toString('utf8');
      assert.match(stderr, new RegExp(`calls ${N}\\b`));
    });
  });

  it('runs a js generator source, and a js job with two inputs aligned by seq and two outputs; forward copies to each output; csv-sink writes columns', async () => {
    file('pairs.mjs', 'export async function* run() { for (let i = 1; i <= 50; i++) yield [{ i, half: i / 2 }, String(i)]; }\n');
    file('join.mjs', 'export const job = { run(obj, text) { return [{ i: obj.i, text, sum: obj.i + Number(text) }, undefined]; } };\n');
    const network = file(
      'aligned.yaml',
      `name: aligned
jobs:
  src:   { js: ./pairs.mjs, outputs: [objs, texts] }
  join:  { js: ./join.mjs, export: job, inputs: [objs, texts], outputs: [joined, unused], align: seq }
  fwd:   { builtin: forward, inputs: [joined], outputs: [a, b] }
  csv:   { builtin: csv-sink, path: joined.csv, columns: [i, text, sum], inputs: [a] }
  raw:   { builtin: csv-sink, path: raw.csv, inputs: [b] }
  drop:  { builtin: csv-sink, path: unused.csv, inputs: [unused] }
pipes:
  objs:   { framing: frames }
  texts:  { framing: lines }
  joined: { framing: frames }
  unused: { framing: frames }
  a:      { framing: frames }
  b:      { framing: frames }
`,
    );
    await withServer(async (s) => {
      const status = await runBlocking(s, network);
      assert.equal(status.state, 'done', JSON.stringify(status));
      const rows = Array.from({ length: 50 }, (_, k) => `${k + 1},${k + 1},${2 * (k + 1)}\n`).join('');
      assert.equal(readFileSync(join(dir, 'joined.csv'), 'utf8'), `i,text,sum\n${rows}`);
      // Without columns an object gives all its fields.
      assert.equal(readFileSync(join(dir, 'raw.csv'), 'utf8'), rows);
      assert.equal(readFileSync(join(dir, 'unused.csv'), 'utf8'), '');
      assert.equal(status.pipes.find((p) => p.name === 'unused')!.frames, 0);
    });
  });

  it('a one-input js job gets lines, JSON frames and bytes as they were sent, a line holding a newline and a JSON string starting with "=" too', async () => {
    // Sets of a one-input job travel in the pipe's own encoding; a payload with a newline goes as JSON.
    file('mixed.mjs', 'export async function* run() { for (let i = 0; i < 40; i++) yield [i === 3 ? new TextEncoder().encode("a\\nb") : `l ${i} ünï "q" \\\\ =`, i % 2 ? { i, s: "x y", u: "ünï" } : i === 4 ? "=4 0 x" : null, new Uint8Array([0, 10, 255, i])]; }\n');
    for (const kind of ['l', 'j', 'b']) {
      file(`rec-${kind}.mjs`, `import { appendFileSync } from "node:fs";\nexport function run(v) { appendFileSync(new URL("./rec-${kind}.out", import.meta.url), JSON.stringify(v instanceof Uint8Array ? [...v] : v) + "\\n"); }\n`);
    }
    const network = file(
      'mixed.yaml',
      `name: mixed
jobs:
  src: { js: ./mixed.mjs, outputs: [l, j, b] }
  rl:  { js: ./rec-l.mjs, inputs: [l] }
  rj:  { js: ./rec-j.mjs, inputs: [j] }
  rb:  { js: ./rec-b.mjs, inputs: [b] }
pipes:
  l: { framing: lines }
  j: { framing: frames }
  b: { framing: bytes }
`,
    );
    await withServer(async (s) => {
      const status = await runBlocking(s, network);
      assert.equal(status.state, 'done', JSON.stringify(status));
      const lines = (kind: string): unknown[] => readFileSync(join(dir, `rec-${kind}.out`), 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as unknown);
      const range = Array.from({ length: 40 }, (_, i) => i);
      assert.deepEqual(lines('l'), range.map((i) => (i === 3 ? 'a\nb' : `l ${i} ünï "q" \\ =`)));
      assert.deepEqual(lines('j'), range.map((i) => (i % 2 ? { i, s: 'x y', u: 'ünï' } : i === 4 ? '=4 0 x' : null)));
      assert.deepEqual(lines('b'), range.map((i) => [0, 10, 255, i]));
    });
  });

  it('clock gives count frames, one per interval, in tick order', async () => {
    const network = file(
      'clock.yaml',
      `name: clock
jobs:
  tick: { builtin: clock, interval: 20, count: 10, outputs: [t] }
  sink: { builtin: csv-sink, path: ticks.csv, columns: [tick], inputs: [t] }
pipes: { t: { framing: frames } }
`,
    );
    await withServer(async (s) => {
      const status = await runBlocking(s, network);
      assert.equal(status.state, 'done', JSON.stringify(status));
      assert.equal(readFileSync(join(dir, 'ticks.csv'), 'utf8'), `tick\n${Array.from({ length: 10 }, (_, i) => `${i}\n`).join('')}`);
    });
  });

  it('interactive: lines typed by a user attached to the job enter the network', async () => {
    await withServer(async (s) => {
      const out = join(dir, 'typed.csv');
      const started = await s.client.runNetwork(
        {
          name: 'typing',
          jobs: { keys: { builtin: 'interactive', outputs: ['l'] }, sink: { builtin: 'csv-sink', path: out, inputs: ['l'] } },
          pipes: { l: { framing: 'lines' } },
        },
        { baseDir: dir },
      );
      const keys = started.jobs.find((j) => j.name === 'keys')!.id;
      const typed = await runCli(['attach', keys], { env: cliEnv(s), input: 'hello, world\nsecond line\n', timeoutMs: 60_000 });
      assert.equal(typed.code, 0, typed.stderr);
      const status = await until(s, 'typing', (st) => st.state !== 'running');
      assert.equal(status.state, 'done', JSON.stringify(status));
      assert.equal(readFileSync(out, 'utf8'), '"hello, world"\nsecond line\n');
    });
  });

  it('restarts a connector that crashes on one frame: a new epoch, the consumer sees reset, and every frame arrives once, in order (shown by a tap too)', async () => {
    file('flaky.mjs', 'let first;\nexport function setup(ctx) { first = ctx.restarts === 0; }\nexport function run(n) { if (first && n === "5") throw new Error("crash on 5"); return Number(n) * 10; }\n');
    file('record.mjs', 'import { appendFileSync } from "node:fs";\nlet ctx;\nexport function setup(c) { ctx = c; }\nexport function run(v) { appendFileSync(new URL("./recorded.out", import.meta.url), `${v}${ctx.frame.reset ? " reset" : ""}\\n`); }\n');
    const network = file(
      'restart.yaml',
      `name: restart
jobs:
  numbers: { command: [seq, 1, 20], outputs: [n] }
  flaky:   { js: ./flaky.mjs, inputs: [n], outputs: [m], restart: { policy: on-failure, max: 2 } }
  record:  { js: ./record.mjs, inputs: [m] }
pipes: { n: { queue: { max: 4 } }, m: { queue: { max: 4 } } }
`,
    );
    await withServer(async (s) => {
      const status = await runBlocking(s, network);
      assert.equal(status.state, 'done', JSON.stringify(status));
      const flaky = status.jobs.find((j) => j.name === 'flaky')!;
      assert.equal(flaky.restarts, 1);
      assert.equal(flaky.status, 'Success');
      const lines = readFileSync(join(dir, 'recorded.out'), 'utf8').trimEnd().split('\n');
      assert.deepEqual(lines, [...[1, 2, 3, 4].map((n) => `${n * 10}`), '50 reset', ...Array.from({ length: 15 }, (_, k) => `${(k + 6) * 10}`)]);
      // A tap on the pipe shows the epochs: the restarted producer's first frame flagged reset.
      const frames: Array<[unknown, number, boolean]> = [];
      for await (const frame of s.client.tapPipe('restart', 'm')) frames.push([frame.value, frame.epoch, frame.reset]);
      assert.deepEqual(frames, [...[1, 2, 3, 4].map((n): [unknown, number, boolean] => [`${n * 10}`, 0, false]), ['50', 1, true], ...Array.from({ length: 15 }, (_, k): [unknown, number, boolean] => [`${(k + 6) * 10}`, 1, false])]);
      await assert.rejects(
        (async () => {
          for await (const frame of s.client.tapPipe('restart', 'ghost')) void frame;
        })(),
        (e: Error & { code?: string }) => e.code === 'not_found' && /no pipe "ghost"/.test(e.message),
      );
      // The failed first run is a job of the group too.
      const page = await s.client.getJobs({ group: 'networks:restart' });
      assert.deepEqual(page.items.filter((j) => j.name === 'flaky').map((j) => j.status), ['Failed', 'Success']);
    });
  });

  it('network status tells per job status, frames and restarts and per pipe frames and queue; network stop cancels the jobs', async () => {
    const network = file(
      'ticking.yaml',
      `name: ticking
jobs:
  tick: { builtin: clock, interval: 20, outputs: [t] }
  fwd:  { builtin: forward, inputs: [t], outputs: [u] }
  sink: { builtin: csv-sink, path: ticking.csv, columns: [tick], inputs: [u] }
pipes: { t: { framing: frames }, u: { framing: frames } }
`,
    );
    await withServer(async (s) => {
      const started = await runCli(['network', 'run', network], { env: cliEnv(s) });
      assert.equal(started.code, 0, started.stderr);
      let status: Status;
      const deadline = Date.now() + 60_000;
      do {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const shown = await runCli(['network', 'status', 'ticking', '--json'], { env: cliEnv(s) });
        assert.equal(shown.code, 0, shown.stderr);
        status = JSON.parse(shown.stdout) as Status;
      } while ((status.jobs.find((j) => j.name === 'sink')!.framesIn < 5 || status.pipes.find((p) => p.name === 'u')!.frames < 5) && Date.now() < deadline);
      assert.equal(status.state, 'running');
      const jobs = new Map(status.jobs.map((j) => [j.name, j]));
      assert.equal(jobs.get('tick')!.framesIn, 0);
      assert.ok(jobs.get('tick')!.framesOut >= 5);
      assert.ok(jobs.get('sink')!.framesIn >= 5);
      const nodes = new Map((await s.client.getJobs({ group: 'networks:ticking' })).items.map((j) => [j.id, j.node]));
      for (const job of jobs.values()) {
        assert.equal(job.status, 'Running');
        assert.equal(job.restarts, 0);
        assert.equal(job.node, nodes.get(job.id), 'the node its job record names');
      }
      for (const pipe of status.pipes) assert.ok(pipe.lag >= 0 && pipe.lag <= 64 && pipe.dropped === 0, JSON.stringify(pipe));
      const text = await runCli(['network', 'status', 'ticking'], { env: cliEnv(s) });
      assert.match(text.stdout, /JOB\s+STATUS\s+EXIT\s+NODE\s+IN\s+OUT\s+RESTARTS\s+MOVES\s+ID/);
      assert.match(text.stdout, /PIPE\s+FRAMES\s+QUEUED\s+DROPPED/);

      const stopped = await runCli(['network', 'stop', 'ticking', '--json'], { env: cliEnv(s) });
      assert.equal(stopped.code, 0, stopped.stderr);
      const final = await until(s, 'ticking', (st) => st.state !== 'running');
      assert.equal(final.state, 'stopped');
      assert.deepEqual(final.jobs.map((j) => j.status), ['Cancelled', 'Cancelled', 'Cancelled']);
      const missing = await runCli(['network', 'stop', 'nothing'], { env: cliEnv(s) });
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /no network "nothing"/);
    });
  });

  describe('bounded queues through a running network (a fast source, a sink held until a gate file appears)', () => {
    const N = 500;
    function gatedNetwork(name: string, overflow: string): { network: string; gate: string; received: string } {
      const gate = join(dir, `${name}.gate`);
      const received = join(dir, `${name}.received`);
      file(`${name}-fast.mjs`, `export async function* run() { for (let i = 1; i <= ${N}; i++) yield i; }\n`);
      file(
        `${name}-slow.mjs`,
        `import { appendFileSync, existsSync } from "node:fs";\nexport async function run(v) {\n  while (!existsSync(${JSON.stringify(gate)})) await new Promise((r) => setTimeout(r, 20));\n  appendFileSync(${JSON.stringify(received)}, v + "\\n");\n}\n`,
      );
      const network = file(
        `${name}.yaml`,
        `name: ${name}
jobs:
  fast: { js: ./${name}-fast.mjs, outputs: [u] }
  slow: { js: ./${name}-slow.mjs, inputs: [u] }
pipes: { u: { framing: frames, queue: { max: 8, overflow: ${overflow} } } }
`,
      );
      return { network, gate, received };
    }

    it('drop-oldest: the source runs to its end while the sink holds, drops are counted, the frames that arrive are in order', async () => {
      const { network, gate, received } = gatedNetwork('dropping', 'drop-oldest');
      await withServer(async (s) => {
        const started = await runCli(['network', 'run', network], { env: cliEnv(s) });
        assert.equal(started.code, 0, started.stderr);
        const held = await until(s, 'dropping', (st) => st.jobs.find((j) => j.name === 'fast')!.status === 'Success');
        assert.equal(held.jobs.find((j) => j.name === 'fast')!.status, 'Success', 'the source was never blocked: it ended while the sink handled nothing');
        assert.equal(held.pipes[0]!.frames, N, 'every frame was stored');
        assert.ok(held.jobs.find((j) => j.name === 'slow')!.framesIn <= 8, 'the sink holds at most its queue bound');
        writeFileSync(gate, '');
        const status = await until(s, 'dropping', (st) => st.state !== 'running');
        assert.equal(status.state, 'done', JSON.stringify(status));
        const values = readFileSync(received, 'utf8').trimEnd().split('\n').map(Number);
        for (let i = 1; i < values.length; i++) assert.ok(values[i]! > values[i - 1]!, `in order: ${values[i - 1]} then ${values[i]}`);
        assert.equal(values[values.length - 1], N, 'the newest frame arrives');
        assert.ok(status.pipes[0]!.dropped > 0, 'frames were dropped');
        assert.equal(values.length + status.pipes[0]!.dropped, N, 'every frame arrived or was counted as dropped');
      });
    });

    it('block: the pipe holds at its bound while the sink holds (and the sink its window of as many), then every frame arrives, none dropped', async () => {
      const { network, gate, received } = gatedNetwork('blocking', 'block');
      await withServer(async (s) => {
        const started = await runCli(['network', 'run', network], { env: cliEnv(s) });
        assert.equal(started.code, 0, started.stderr);
        const held = await until(s, 'blocking', (st) => st.pipes[0]!.lag >= 8 && st.pipes[0]!.frames >= 16);
        assert.equal(held.pipes[0]!.lag, 8, 'the queue filled to its bound: 8 frames wait in the pipe');
        assert.equal(held.jobs.find((j) => j.name === 'slow')!.framesIn, 8, 'the sink was sent its window: the bound of sets, none handled');
        assert.equal(held.pipes[0]!.frames, 16, 'the producer is held at the bound: no frame stored past the window and the queue');
        writeFileSync(gate, '');
        const status = await until(s, 'blocking', (st) => st.state !== 'running');
        assert.equal(status.state, 'done', JSON.stringify(status));
        assert.equal(status.pipes[0]!.dropped, 0);
        assert.equal(readFileSync(received, 'utf8'), Array.from({ length: N }, (_, i) => `${i + 1}\n`).join(''));
      });
    });
  });
});
