/**
 * Restart-safe wiring in embedded mode, with real server processes: the server wiring a network
 * is killed with -9 mid-stream, and the next server started on the same home answers the
 * network's status and takes it over once the saved status is stale; the sink receives every
 * frame, in order (at most the sets in flight twice).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, type NetworkStatus } from '@jobwire/client';
import { cliEnv, removeHome, runCli, startServerProcess, tempHome, type ServerProcess } from '../helpers.js';
import { untilNetwork as until } from './network-status.js';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobwire-network-takeover-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('network wiring across a server restart (embedded)', () => {
  it('kill -9 of the wiring server: the next server on the same home takes the network over, and the sink gets every frame, in order', async () => {
    const N = 1500;
    const out = join(dir, 'out.csv');
    writeFileSync(join(dir, 'square.mjs'), 'export async function run(n) { await new Promise((r) => setTimeout(r, 4)); return Number(n) ** 2; }\n');
    const path = join(dir, 'net.yaml');
    writeFileSync(
      path,
      `name: restarted
jobs:
  numbers: { command: [seq, 1, ${N}], outputs: [n] }
  square:  { js: ./square.mjs, inputs: [n], outputs: [sq] }
  sink:    { builtin: csv-sink, path: out.csv, inputs: [sq] }
pipes:
  n:  { framing: lines, queue: { max: 4096 } }
  sq: { framing: lines, queue: { max: 16 } }
`,
    );
    const home = tempHome('jobwire-takeover-');
    const servers: ServerProcess[] = [];
    try {
      const first = await startServerProcess(home);
      servers.push(first);
      const result = await runCli(['network', 'run', path, '--json'], { env: cliEnv(first), timeoutMs: 60_000 });
      assert.equal(result.code, 0, result.stderr + result.stdout);
      const started = JSON.parse(result.stdout) as NetworkStatus;
      const client = new Client({ url: first.url, token: first.token });
      await until(client, 'restarted', (s) => s.pipes.find((p) => p.name === 'sq')!.frames >= 150 && s.jobs[0]!.status === 'Success');
      first.proc.kill('SIGKILL');
      await first.exited;

      const second = await startServerProcess(home);
      servers.push(second);
      const again = new Client({ url: second.url, token: second.token });
      // At once: answered from the saved status.
      const seen = await again.networkStatus('restarted');
      assert.equal(seen.run, started.run);
      const done = await until(again, 'restarted', (s) => s.state !== 'running', 90_000);
      assert.equal(done.state, 'done', JSON.stringify(done));
      assert.deepEqual(
        done.jobs.map((j) => [j.name, j.status, j.moves]),
        [
          ['numbers', 'Success', 0],
          ['square', 'Success', 1],
          ['sink', 'Success', 1],
        ],
      );
      const rows = readFileSync(out, 'utf8').trim().split('\n').map((line) => Math.sqrt(Number(line)));
      const firsts = rows.filter((n, i) => rows.indexOf(n) === i);
      assert.deepEqual(firsts, Array.from({ length: N }, (_, i) => i + 1), 'every frame arrives, in order');
      // Twice at most (docs/networks.md, "When the wiring server stops"): the sink's sets sent and
      // not stored as committed (sq's max, 16: rows written again), and square's one group stored
      // and not committed (what sq, a block pipe of 16, had room for: 16 frames stored again).
      assert.ok(rows.length - N <= 16 + 16, `at most the sets in flight come twice (${rows.length - N} did)`);
    } finally {
      for (const server of servers) {
        if (server.proc.exitCode === null && server.proc.signalCode === null) {
          server.proc.kill('SIGTERM');
          await server.exited;
        }
      }
      removeHome(home);
    }
  });
});
