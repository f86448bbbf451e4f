/**
 * A slow download of a huge output costs the server little memory: the output is streamed from
 * the stream log as the client takes it, never read whole.
 *
 * The job writes 512 MiB; the client reads at about 1 MiB/s while the server's RSS (its own
 * process, from /proc/PID/status) is sampled. Reading all 512 MiB at that rate would take nine
 * minutes, so the client reads for 25 s and then aborts, which keeps the test under a minute: a
 * server that loads the whole range before sending has grown by 512 MiB by then; a streaming one
 * by about a chunk or two (256 KiB each).
 */
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { sleepUntil, startServerProcess, removeHome, tempHome } from '../helpers.js';

const OUTPUT_BYTES = 512 * 1024 * 1024;
const RATE = 1024 * 1024; // bytes per second
const READ_FOR_MS = 25_000;
const MAX_GROWTH = 64 * 1024 * 1024;

/** Resident set size of a process, in bytes. */
function rss(pid: number): number {
  const line = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!line) throw new Error(`no VmRSS for process ${pid}`);
  return Number(line[1]) * 1024;
}

/** Open file descriptors of a process. */
function openFiles(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

describe('slow download', () => {
  it('streams a 512 MiB output to a client reading at 1 MiB/s with under 64 MiB of server memory growth', async (t) => {
    const home = tempHome();
    const server = await startServerProcess(home);
    const pid = server.proc.pid!;
    try {
      const client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'head', arguments: ['-c', String(OUTPUT_BYTES), '/dev/zero'], queueName: 'unlimited' });
      const done = await client.waitUntilDone(job.id, 120_000);
      assert.equal(done.status, 'Success', done.error ?? '');
      assert.equal((await client.readOutput(job.id, 'stdout', 0, 0)).size, OUTPUT_BYTES);

      const filesBefore = openFiles(pid);
      const before = rss(pid);
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rss(pid));
      }, 200);

      // Read at about RATE: pause whenever ahead of schedule. Then abort.
      let received = 0;
      let status = 0;
      let length = '';
      await new Promise<void>((resolve, reject) => {
        const started = Date.now();
        const request = get(`${server.url}/v1/jobs/${job.id}/output`, { headers: { authorization: `Bearer ${server.token}` } }, (response) => {
          status = response.statusCode ?? 0;
          length = String(response.headers['content-length']);
          response.on('data', (part: Buffer) => {
            received += part.byteLength;
            const elapsed = Date.now() - started;
            if (elapsed >= READ_FOR_MS) {
              request.destroy();
              resolve();
              return;
            }
            const ahead = (received / RATE) * 1000 - elapsed;
            if (ahead > 0) {
              response.pause();
              setTimeout(() => response.resume(), ahead);
            }
          });
          response.on('error', () => undefined);
          response.on('end', () => reject(new Error(`the whole output arrived (${received} bytes): the client did not read slowly`)));
        });
        request.on('error', (err) => (request.destroyed ? undefined : reject(err)));
      });
      clearInterval(sampler);
      peak = Math.max(peak, rss(pid));

      assert.equal(status, 200);
      assert.equal(length, String(OUTPUT_BYTES));
      assert.ok(received >= 10 * RATE, `the client received only ${received} bytes`);
      const growth = peak - before;
      t.diagnostic(`read ${(received / 1048576).toFixed(1)} MiB; server RSS ${(before / 1048576).toFixed(1)} MiB before, peak ${(peak / 1048576).toFixed(1)} MiB`);
      assert.ok(growth < MAX_GROWTH, `server RSS grew by ${(growth / 1048576).toFixed(1)} MiB (from ${(before / 1048576).toFixed(1)} MiB) during the slow download`);
      // The aborted download let go of what it held.
      await sleepUntil(() => openFiles(pid) <= filesBefore, 10_000, `the server's open files to drop back to ${filesBefore} (now ${openFiles(pid)})`);
      assert.equal((await client.getJobStatus(job.id)).status, 'Success', 'the server still answers');
    } finally {
      server.proc.kill('SIGTERM');
      await server.exited;
      removeHome(home);
    }
  });
});
