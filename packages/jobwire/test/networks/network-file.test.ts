/**
 * Network files: parsing, defaults, paths, the checks made before anything starts (each issue
 * with its field and line), and `jobwire network graph` read back as DOT and as Mermaid, of a
 * file and of a network the server knows by name.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fromDot } from 'ts-graphviz';
import { NetworkFileError, checkNetwork, loadNetworkFile, parseNetworkSpec, parseNetworkText, type NetworkIssue } from '../../src/networks/index.js';
import { cliEnv, runCli, withServer } from '../helpers.js';
import { untilNetwork } from './network-status.js';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobwire-network-'));
  writeFileSync(join(dir, 'square.mjs'), 'export function run(n) { return Number(n) ** 2; }\n');
  writeFileSync(join(dir, 'source.mjs'), 'export async function* run() { yield 1; }\nexport function setup() {}\n');
  writeFileSync(join(dir, 'holder.mjs'), 'export const job = { run(x) { return x; } };\n');
  writeFileSync(join(dir, 'throws.mjs'), 'throw new Error("broken on import");\n');
  writeFileSync(join(dir, 'norun.mjs'), 'export function setup() {}\n');
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a network file into the test folder. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const SQUARES = `name: squares
defaults: { queue: { max: 64, overflow: block }, restart: { policy: on-failure, max: 3 } }
jobs:
  numbers: { command: [seq, 1, 100000], outputs: [n] }
  square:  { js: ./square.mjs, inputs: [n], outputs: [sq], pools: [cpu] }
  sink:    { builtin: csv-sink, path: out.csv, inputs: [sq] }
pipes:
  n:  { framing: lines }
  sq: { framing: lines, queue: { max: 8, overflow: drop-oldest } }
`;

/** The issues a file is refused with (after the checks, modules imported). */
async function issuesOf(text: string, name = 'bad.yaml'): Promise<NetworkIssue[]> {
  try {
    await checkNetwork(await loadNetworkFile(file(name, text)));
  } catch (error) {
    assert.ok(error instanceof NetworkFileError, String(error));
    return error.issues;
  }
  assert.fail('the network was accepted');
}

/** Asserts that exactly one issue names `field` at `line`, with a message matching `message`. */
function hasIssue(issues: NetworkIssue[], field: string, line: number, message: RegExp): void {
  const found = issues.filter((i) => i.field === field);
  assert.equal(found.length, 1, `one issue for ${field}, got ${JSON.stringify(issues)}`);
  assert.equal(found[0]!.line, line, `line of ${field}: ${JSON.stringify(found[0])}`);
  assert.match(found[0]!.message, message);
}

describe('network file: shape and defaults', () => {
  it('reads the squares network: numbers become arguments, defaults fill in, relative paths resolve against the file', async () => {
    const loaded = await loadNetworkFile(file('squares.yaml', SQUARES));
    await checkNetwork(loaded);
    const { network } = loaded;
    assert.equal(network.name, 'squares');
    assert.deepEqual(network.jobs.numbers!.command, ['seq', '1', '100000']);
    assert.equal(network.jobs.numbers!.kind, 'executable');
    assert.deepEqual(network.jobs.square!.js, { module: join(dir, 'square.mjs') });
    assert.deepEqual(network.jobs.square!.pools, ['cpu']);
    assert.equal(network.jobs.sink!.path, join(dir, 'out.csv'));
    assert.deepEqual(network.jobs.sink!.restart, { policy: 'on-failure', max: 3 });
    assert.deepEqual(network.pipes.n!.queue, { max: 64, overflow: 'block', mode: 'fifo' });
    assert.deepEqual(network.pipes.sq!.queue, { max: 8, overflow: 'drop-oldest', mode: 'fifo' });
    assert.deepEqual(network.pipes.sq!.producers, ['square']);
    assert.deepEqual(network.pipes.sq!.consumers, ['sink']);
  });

  it('resolves a program named with a slash against the file, and leaves bare names to PATH', () => {
    const { network } = parseNetworkText('name: p\njobs:\n  a: { command: [./tool, x] }\n  b: { command: [cat] }\n', { baseDir: '/base' });
    assert.deepEqual(network.jobs.a!.command, ['/base/tool', 'x']);
    assert.deepEqual(network.jobs.b!.command, ['cat']);
  });

  it('takes a spec object (the SDK\'s NetworkSpec) through the same schema', () => {
    const { network } = parseNetworkSpec({ name: 'n', jobs: { a: { command: ['cat'], outputs: ['p'] } }, pipes: { p: { framing: 'frames' } } }, '/base');
    assert.equal(network.pipes.p!.encoding, 'json');
    assert.throws(() => parseNetworkSpec({ name: 'n', jobs: {}, extra: 1 }, '/base'), (e: NetworkFileError) => e.issues.some((i) => i.field === 'extra'));
  });

  it('refuses bad YAML with its line', async () => {
    const issues = await issuesOf('name: x\njobs:\n  a: { command: [cat]\n  b: 1\n');
    assert.equal(issues[0]!.field, '(file)');
    assert.match(issues[0]!.message, /not valid YAML/);
    assert.ok(issues[0]!.line >= 3, JSON.stringify(issues));
  });

  it('refuses a missing file without a stack', async () => {
    await assert.rejects(loadNetworkFile(join(dir, 'nope.yaml')), /cannot read the network file: no such file/);
  });

  it('names the field and line of schema errors: unknown field, bad name, wrong type, bad enum', async () => {
    const issues = await issuesOf(`name: bad name
jobs:
  a: { command: [cat], outputs: [p], colour: red }
  b: { command: cat }
  c: { builtin: csv-sinker, path: x }
pipes:
  p: { framing: lines, queue: { overflow: sometimes } }
`);
    hasIssue(issues, 'name', 1, /letters, digits/);
    hasIssue(issues, 'jobs.a.colour', 3, /unknown field/);
    hasIssue(issues, 'jobs.b.command', 4, /expected array/);
    hasIssue(issues, 'jobs.c.builtin', 5, /csv-sink/);
    hasIssue(issues, 'pipes.p.queue.overflow', 7, /block/);
  });
});

describe('network file: checks before anything starts', () => {
  it('refuses an unknown pipe, a pipe with no producer and a pipe with two', async () => {
    const issues = await issuesOf(`name: pipes
jobs:
  a: { command: [cat], outputs: [p] }
  b: { command: [cat], outputs: [p] }
  c: { command: [cat], inputs: [p, ghost] }
  d: { command: [cat], inputs: [q] }
pipes:
  p: {}
  q: {}
`);
    hasIssue(issues, 'jobs.c.inputs.1', 5, /unknown pipe "ghost"/);
    hasIssue(issues, 'jobs.b.outputs.0', 4, /two producers \(a and b\)/);
    hasIssue(issues, 'pipes.q', 9, /no producer/);
    hasIssue(issues, 'jobs.c.inputs', 5, /one input through stdin/);
  });

  it('refuses a cycle of blocking pipes, and accepts it once one pipe drops', async () => {
    const cycle = (overflow: string): string => `name: loop
jobs:
  a: { command: [cat], inputs: [back], outputs: [forth] }
  b: { command: [cat], inputs: [forth], outputs: [back] }
pipes:
  forth: {}
  back: { queue: { overflow: ${overflow} } }
`;
    const issues = await issuesOf(cycle('block'));
    assert.equal(issues.length, 1, JSON.stringify(issues));
    assert.match(issues[0]!.message, /cycle a → b → a \(pipes forth, back\) could deadlock/);
    assert.equal(issues[0]!.line, 6);
    await checkNetwork(await loadNetworkFile(file('loop.yaml', cycle('drop-oldest'))));
  });

  it('refuses a self-loop', async () => {
    const issues = await issuesOf('name: self\njobs:\n  a: { command: [cat], inputs: [p], outputs: [p] }\npipes:\n  p: {}\n');
    assert.match(issues.find((i) => i.field === 'pipes.p')!.message, /cycle a → a/);
  });

  it('refuses executables whose several pipes are not all named in the command, and placeholders of pipes they do not have', async () => {
    const issues = await issuesOf(`name: exe
jobs:
  src: { command: [cat], outputs: [x, y] }
  ok: { command: [paste, '{in.x}', '{in.y}'], inputs: [x, y], outputs: [z] }
  wrong: { command: [tool, '--in={in.z}', '--out={out.nope}'], inputs: [z] }
pipes: { x: {}, y: {}, z: {} }
`);
    hasIssue(issues, 'jobs.src.outputs', 3, /one output through stdout; .* \(not named: x, y\)/);
    hasIssue(issues, 'jobs.wrong.command.2', 5, /\{out.nope\} names no pipe/);
    assert.ok(!issues.some((i) => i.field.startsWith('jobs.ok')), JSON.stringify(issues));
  });

  it('refuses builtins with wrong framing, wrong pipe counts, missing or foreign fields', async () => {
    const issues = await issuesOf(`name: builtins
jobs:
  clock: { builtin: clock, outputs: [raw] }
  sink: { builtin: csv-sink, inputs: [raw], path: out.csv, interval: 5 }
  fwd: { builtin: forward, inputs: [t], outputs: [u] }
  tick: { builtin: clock, interval: 10, outputs: [t] }
  use: { command: [cat], inputs: [u] }
  both: { command: [cat], js: ./square.mjs }
  log: { builtin: logging, path: usage.csv, interval: 5 }
pipes:
  raw: { framing: bytes }
  t: { framing: frames }
  u: { framing: lines }
`);
    hasIssue(issues, 'jobs.clock.builtin', 3, /needs "interval"/);
    hasIssue(issues, 'jobs.clock.outputs.0', 3, /needs pipes framed as frames \(json\) or lines; pipe "raw" is framed as bytes/);
    hasIssue(issues, 'jobs.sink.inputs.0', 4, /framed as bytes/);
    hasIssue(issues, 'jobs.sink.interval', 4, /takes no "interval"/);
    hasIssue(issues, 'jobs.fwd.outputs.0', 5, /copies frames as they are: pipe "u" is framed as lines, its input "t" as frames \(json\)/);
    hasIssue(issues, 'jobs.both.js', 8, /give only one of "command", "js" and "builtin"/);
    hasIssue(issues, 'jobs.log.interval', 9, /builtin logging samples at most every 100 ms \(interval 5\)/);
  });

  it('imports js modules in a child process: missing module, import error, no run, a source that is not a generator, a missing export', async () => {
    const issues = await issuesOf(`name: modules
jobs:
  gone: { js: ./missing.mjs, outputs: [a] }
  broken: { js: ./throws.mjs, outputs: [b] }
  norun: { js: ./norun.mjs, inputs: [a], outputs: [c] }
  notsource: { js: ./square.mjs, outputs: [d] }
  noexport: { js: ./holder.mjs, export: other, inputs: [b] }
  good: { js: ./holder.mjs, export: job, inputs: [c] }
  source: { js: ./source.mjs, outputs: [e] }
  sink: { js: ./square.mjs, inputs: [d, e], align: { by: seq, gap: fill-zero } }
pipes: { a: {}, b: {}, c: {}, d: {}, e: {} }
`);
    hasIssue(issues, 'jobs.gone.js', 3, /module not found: .*missing\.mjs/);
    hasIssue(issues, 'jobs.broken.js', 4, /cannot import .*throws\.mjs: Error: broken on import/);
    hasIssue(issues, 'jobs.norun.js', 5, /exports no "run"/);
    hasIssue(issues, 'jobs.notsource.js', 6, /is a source: "run" .* must be a generator/);
    hasIssue(issues, 'jobs.noexport.js', 7, /has no export "other"/);
    assert.equal(issues.length, 5, JSON.stringify(issues));
  });
});

describe('jobwire network graph', () => {
  const NET = `name: fan
jobs:
  numbers: { command: [seq, 1, 10], outputs: [n] }
  square:  { js: ./square.mjs, inputs: [n], outputs: [sq] }
  cube:    { js: ./square.mjs, inputs: [n], outputs: [cu] }
  sink-1:  { builtin: csv-sink, path: out.csv, inputs: [sq, cu], align: seq }
  spare:   { builtin: clock, interval: 100, outputs: [ticks] }
pipes:
  n:  { framing: lines }
  sq: { framing: frames, queue: { max: 8, overflow: drop-oldest } }
  cu: { framing: frames }
  ticks: { framing: frames }
`;
  /** [from, to, pipe] of every edge the drawing should have. */
  const EDGES = [
    ['numbers', 'square', 'n'],
    ['numbers', 'cube', 'n'],
    ['square', 'sink-1', 'sq'],
    ['cube', 'sink-1', 'cu'],
    ['spare', 'pipe:ticks', 'ticks'],
  ];

  it('prints DOT that parses back with every job, every pipe and the right edges', async () => {
    const result = await runCli(['network', 'graph', file('fan.yaml', NET)]);
    assert.equal(result.code, 0, result.stderr);
    const graph = fromDot(result.stdout);
    assert.equal(graph.id, 'fan');
    assert.deepEqual(graph.nodes.map((n) => n.id).sort(), ['cube', 'numbers', 'pipe:ticks', 'sink-1', 'spare', 'square']);
    const edges = graph.edges.map((e) => {
      const [from, to] = e.targets.map((t) => ('id' in t ? t.id : ''));
      // In DOT, `\n` inside a label is Graphviz's line break; the parser keeps it as written.
      return [from, to, String(e.attributes.get('label')).split('\\n')[0]];
    });
    assert.deepEqual(edges.sort(), [...EDGES].sort());
    const sq = graph.edges.find((e) => String(e.attributes.get('label')).startsWith('sq'))!;
    assert.equal(sq.attributes.get('label'), 'sq\\nframes/json, max 8, drop-oldest');
  });

  it('prints a Mermaid flowchart with every job, every pipe and the right edges (--mermaid)', async () => {
    const result = await runCli(['network', 'graph', '--mermaid', file('fan.yaml', NET)]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines[0], 'flowchart LR');
    // Nodes: `  ID<open>"NAME<br/>…"<close>`; edges: `  FROM -->|"PIPE<br/>…"| TO`.
    const names = new Map<string, string>();
    for (const line of lines) {
      const node = /^ {2}(\w+)[[(]{1,2}"([^"<]+)/.exec(line);
      if (node && !line.includes('-->')) names.set(node[1]!, node[2]!);
    }
    const edges = lines
      .map((line) => /^ {2}(\w+) -->\|"([^"<]+)<br\/>[^"]*"\| (\w+)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => [names.get(m[1]!)!, m[3]!.startsWith('p') ? `pipe:${names.get(m[3]!)}` : names.get(m[3]!)!, m[2]!]);
    assert.deepEqual([...names.values()].sort(), ['cube', 'numbers', 'sink-1', 'spare', 'square', 'ticks']);
    assert.deepEqual(edges.sort(), [...EDGES].sort());
  });

  it('refuses a bad file with each problem\'s line, exit code 2', async () => {
    const result = await runCli(['network', 'graph', file('graph-bad.yaml', 'name: g\njobs:\n  a: { command: [cat], inputs: [p] }\n')]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^jobwire: .*graph-bad\.yaml:3:33: jobs\.a\.inputs\.0: unknown pipe "p": declare it under "pipes"\n$/);
  });

  it('draws a network the server knows by its name, running and stopped, exactly as from its file (DOT and --mermaid)', async () => {
    const net = file(
      'drawn.yaml',
      `name: drawn
jobs:
  numbers: { command: [sh, -c, 'seq 1 3; exec sleep 600'], outputs: [n] }
  square:  { js: ./holder.mjs, export: job, inputs: [n], outputs: [sq] }
  sink-1:  { builtin: csv-sink, path: drawn.csv, inputs: [sq] }
  spare:   { builtin: clock, interval: 60000, outputs: [ticks] }
pipes:
  n:  { framing: lines }
  sq: { framing: frames, queue: { max: 8, overflow: drop-oldest } }
  ticks: { framing: frames }
`,
    );
    const fromFile = await runCli(['network', 'graph', net]);
    const mermaidFromFile = await runCli(['network', 'graph', '--mermaid', net]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(mermaidFromFile.code, 0, mermaidFromFile.stderr);
    // Every label the file gives is in it: how each job runs, each pipe's framing, encoding and queue.
    for (const label of ['numbers\\nsh', 'square\\njs holder.mjs#job', 'sink-1\\nbuiltin csv-sink', 'spare\\nbuiltin clock', 'sq\\nframes/json, max 8, drop-oldest', 'ticks\\nframes/json, max 64']) {
      assert.ok(fromFile.stdout.includes(label), `${label} in ${fromFile.stdout}`);
    }
    await withServer(async (s) => {
      const started = await runCli(['network', 'run', net], { env: cliEnv(s) });
      assert.equal(started.code, 0, started.stderr);
      await untilNetwork(s.client, 'drawn', (st) => st.state === 'running' && st.pipes.find((p) => p.name === 'n')!.frames === 3);
      // Run from another folder, where no file is named drawn: the name is the server's network.
      const running = await runCli(['network', 'graph', 'drawn'], { env: cliEnv(s), cwd: tmpdir() });
      assert.equal(running.code, 0, running.stderr);
      assert.equal(running.stdout, fromFile.stdout);
      const mermaid = await runCli(['network', 'graph', '--mermaid', 'drawn'], { env: cliEnv(s), cwd: tmpdir() });
      assert.equal(mermaid.code, 0, mermaid.stderr);
      assert.equal(mermaid.stdout, mermaidFromFile.stdout);

      await s.client.stopNetwork('drawn');
      await untilNetwork(s.client, 'drawn', (st) => st.state === 'stopped');
      const stopped = await runCli(['network', 'graph', 'drawn'], { env: cliEnv(s), cwd: tmpdir() });
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.equal(stopped.stdout, fromFile.stdout, 'a stopped network is drawn from its saved record, the same');
    });
  });

  it('refuses an argument that is neither a file nor a network the server knows, naming both, exit code 4 (3 when no server answers)', async () => {
    await withServer(async (s) => {
      const result = await runCli(['network', 'graph', 'nowhere'], { env: cliEnv(s), cwd: dir });
      assert.equal(result.code, 4, result.stderr);
      assert.equal(result.stdout, '');
      assert.equal(result.stderr, `jobwire: no file ${join(dir, 'nowhere')}, and ${s.url} knows no network "nowhere" (jobwire network list shows those it knows)\n`);
    });
    // No server there at all: exit code 3, the file tried named too.
    const unserved = await runCli(['network', 'graph', 'nowhere', '--url', 'http://127.0.0.1:1', '--token', 'x'], { cwd: dir });
    assert.equal(unserved.code, 3, unserved.stderr);
    assert.equal(unserved.stderr, `jobwire: no file ${join(dir, 'nowhere')}, and no server to ask for a network named "nowhere": no server running at http://127.0.0.1:1 (start one with: jobwire server)\n`);
  });

  it('explains itself in --help', async () => {
    const result = await runCli(['network', 'graph', '--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /--mermaid/);
    assert.match(result.stdout, /dot -Tsvg/);
    assert.match(result.stdout, /<file\|name>/);
  });
});
