/**
 * Jobs outlive their client: the "server" (a separate process using the host client) is killed
 * with -9 while jobs run; a new client finds them in the host and carries on.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ensureHost } from '../../src/host/ensure.js';
import { ClientProcess, follow, jobSpec, withHostHome, type ClientEvent } from './helpers.js';

const TIMEOUT = { timeout: 60_000 };

describe('job host: reattach after the client died', () => {
  test('an interactive cat survives kill -9 of its client: typed lines still echo, nothing lost or doubled, exit after the output', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const server = new ClientProcess(home);
      const connected = await server.waitFor((e): e is Extract<ClientEvent, { ev: 'connected' }> => e.ev === 'connected', 'the client process to connect');
      server.send({ op: 'start', job: jobSpec('cat-1', { executable: 'cat', interactive: true }) });
      // A batch job beside it, printing while nobody is connected.
      server.send({ op: 'start', job: jobSpec('batch-1', { executable: 'sh', arguments: ['-c', 'seq 1 3000; sleep 0.5; seq 3001 6000; exit 7'] }) });
      server.send({ op: 'subscribe', jobId: 'cat-1', from: 0 });
      await server.waitFor((e) => e.ev === 'reply' && e.op === 'subscribe', 'the subscription');
      server.send({ op: 'stdin', jobId: 'cat-1', offset: 0, text: 'line one\n' });
      await server.waitFor(() => server.output('cat-1') === 'line one\n', 'the first echo');
      await server.kill();

      const { client, started } = await ensureHost(home);
      assert.equal(started, false, 'the host outlived its client');
      assert.equal(client.host.pid, connected.hostPid);
      const jobs = new Map((await client.list()).map((job) => [job.jobId, job]));
      const cat = jobs.get('cat-1');
      assert.ok(cat, 'the host still holds the interactive job');
      assert.equal(cat.exit, null);
      assert.equal(cat.stdin.received, 9);
      assert.equal(cat.output.end, 9);
      assert.ok(jobs.has('batch-1'));

      // Resume where the dead client's output stopped; resend stdin from an earlier offset, as
      // a client unsure what arrived would: the host skips what it has.
      const seen = await follow(client, 'cat-1', 9);
      client.writeStdin('cat-1', 5, Buffer.from('one\nline two\n'));
      await seen.until('line two\n');
      client.writeStdin('cat-1', 18, Buffer.from('line three\n'));
      await seen.until('line three\n');
      await client.closeStdin('cat-1', 29);
      const exit = await seen.exit;
      assert.equal(exit.exitCode, 0);
      assert.equal(seen.text(), 'line two\nline three\n');
      // Three chunks stored: three index records.
      assert.deepEqual(exit.output, { end: 29, stdout: 29, stderr: 0, records: 3 });
      assert.deepEqual(exit.stdin, { consumed: 29, closed: true });

      // The batch job's output is complete, from the start, and its exit code right.
      const batch = await follow(client, 'batch-1');
      const batchExit = await batch.exit;
      assert.equal(batchExit.exitCode, 7);
      assert.equal(batch.text(), Array.from({ length: 6000 }, (_, i) => `${i + 1}\n`).join(''));

      await client.forget('cat-1');
      await client.forget('batch-1');
      assert.deepEqual(await client.list(), []);
      client.close();
    });
  });

  test('a job that ended while no client was connected keeps its exit until a client forgets it', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const server = new ClientProcess(home);
      server.send({ op: 'start', job: jobSpec('short', { executable: 'sh', arguments: ['-c', 'read x; echo "got $x"; exit 4'], interactive: true }) });
      await server.waitFor((e) => e.ev === 'reply' && e.op === 'start', 'the start');
      await server.kill();

      const { client } = await ensureHost(home);
      client.writeStdin('short', 0, Buffer.from('it\n'));
      // Ends while nobody listens.
      for (;;) {
        const [job] = await client.list();
        if (job?.exit) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      client.close();

      const { client: next } = await ensureHost(home);
      const [job] = await next.list();
      assert.equal(job?.exit?.exitCode, 4, 'the exit waits for a client');
      const seen = await follow(next, 'short');
      assert.equal((await seen.exit).exitCode, 4);
      assert.equal(seen.text(), 'got it\n');
      await next.forget('short');
      assert.deepEqual(await next.list(), []);
      next.close();
    });
  });

  test('a tty job survives a client restart, keeps its size, and resizes after the reattach', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const server = new ClientProcess(home);
      // Prints its terminal size at the start and after each line typed.
      const script = 'stty size; while read line; do stty size; done';
      server.send({ op: 'start', job: jobSpec('tty-1', { executable: 'sh', arguments: ['-c', script], interactive: true, tty: true, size: { cols: 100, rows: 30 } }) });
      server.send({ op: 'subscribe', jobId: 'tty-1', from: 0 });
      await server.waitFor(() => server.output('tty-1').includes('30 100'), 'the first size');
      await server.kill();

      const { client } = await ensureHost(home);
      const [job] = await client.list();
      assert.deepEqual(job?.size, { cols: 100, rows: 30 });
      assert.equal(job?.tty, true);
      const seen = await follow(client, 'tty-1', job!.output.end);
      client.writeStdin('tty-1', 0, Buffer.from('a\r'));
      await seen.until('30 100');
      await client.resize('tty-1', 120, 40);
      client.writeStdin('tty-1', 2, Buffer.from('b\r'));
      await seen.until('40 120');
      assert.deepEqual((await client.list())[0]?.size, { cols: 120, rows: 40 });
      await client.terminate('tty-1', { graceMs: 1000, reason: 'test over' });
      const exit = await seen.exit;
      assert.equal(exit.stoppedBy, 'test over');
      client.close();
    });
  });
});
