/**
 * `overflow: block` holds the producer's process, not only the pipe: a fast `seq` into a sink
 * that reads nothing until a gate file appears. The server holds the producer's output once it
 * runs a window ahead of the full pipe (`output-window.ts`), the job host stops reading its
 * stdout, and `seq` blocks in its write: the bytes it has written (`/proc/PID/io`) stop
 * growing while it is still running. Once the gate opens every frame arrives, none dropped.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NetworkStatus } from '@jobwire/client';
import { OUTPUT_WINDOW_BYTES } from '../../src/networks/output-window.js';
import { withServer, type TestServer } from '../helpers.js';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'jobwire-network-block-'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of the process whose arguments are exactly `argv`, once there is one. */
async function findProcess(argv: string[]): Promise<number> {
  const want = `${argv.join('\0')}\0`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readFileSync(`/proc/${entry}/cmdline`, 'utf8') === want) return Number(entry);
      } catch {
        // Gone meanwhile.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no process ${argv.join(' ')}`);
}

/** Bytes the process has written so far (`wchar` of `/proc/PID/io`). */
function written(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return Number(/^wchar: (\d+)$/m.exec(io)![1]);
}

async function until(s: TestServer, name: string, done: (status: NetworkStatus) => boolean, ms = 120_000): Promise<NetworkStatus> {
  const deadline = Date.now() + ms;
  for (;;) {
    const status = await s.client.networkStatus(name);
    if (done(status) || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('overflow: block holds the producer process', () => {
  it('a fast seq into a gated sink: seq is blocked (its written bytes stop growing while it runs), then every frame arrives, none dropped', async () => {
    // An argument list no other test uses, to find this very seq among the machine's processes.
    const N = 150_017;
    const expected = Array.from({ length: N }, (_, i) => `${i + 1}\n`).join('');
    assert.ok(expected.length > 2 * OUTPUT_WINDOW_BYTES + 128 * 1024, 'seq writes well beyond the window and a pipe buffer');
    const gate = join(dir, 'gate');
    const out = join(dir, 'received');
    await withServer(async (s) => {
      await s.client.runNetwork(
        {
          name: 'held',
          jobs: {
            fast: { command: ['seq', '1', String(N)], outputs: ['n'] },
            slow: { command: ['sh', '-c', 'while [ ! -e "$1" ]; do sleep 0.05; done; exec cat > "$2"', 'sh', gate, out], inputs: ['n'] },
          },
          pipes: { n: { framing: 'lines', queue: { max: 4096, overflow: 'block' } } },
        },
        { baseDir: dir },
      );
      const pid = await findProcess(['seq', '1', String(N)]);
      // Sampled until two readings a second apart agree: the producer stopped writing.
      let before = written(pid);
      let still = false;
      for (let i = 0; i < 60 && !still; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const now = written(pid);
        still = now === before;
        before = now;
      }
      assert.ok(still, `seq kept writing (${before} bytes)`);
      assert.ok(existsSync(`/proc/${pid}`), 'seq is still running: it is blocked, not done');
      assert.ok(before < expected.length, `seq wrote ${before} of ${expected.length} bytes before it was held`);
      const held = await s.client.networkStatus('held');
      assert.equal(held.jobs.find((j) => j.name === 'fast')!.status, 'Running');
      assert.equal(held.pipes[0]!.lag, 4096, 'the pipe is full');

      writeFileSync(gate, '');
      const status = await until(s, 'held', (st) => st.state !== 'running');
      assert.equal(status.state, 'done', JSON.stringify(status));
      assert.equal(status.pipes[0]!.dropped, 0);
      assert.equal(status.pipes[0]!.frames, N);
      assert.equal(readFileSync(out, 'utf8'), expected, 'every line arrived once, in order');
    });
  });
});
