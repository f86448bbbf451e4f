import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { sleepUntil, startServerProcess, removeHome, tempHome } from '../helpers.js';
import { XenonClient } from './xenon-client.js';

const GIB = 1024 * 1024 * 1024;
/** Resident memory the server may reach while 1 GiB flows past a client that reads nothing. */
const RSS_LIMIT = 300 * 1024 * 1024;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Resident set size of a process, in bytes. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

describe('Xenon gRPC: flow control', () => {
  it('keeps server memory bounded while a job writes 1 GiB to a client that reads nothing', { timeout: 120_000 }, async (t) => {
    const home = tempHome();
    const port = await freePort();
    const sp = await startServerProcess(home, ['--grpc-port', String(port)]);
    const x = new XenonClient(`127.0.0.1:${port}`, { token: sp.token });
    const api = async (path: string, init: RequestInit = {}): Promise<Response> =>
      fetch(`${sp.url}/v1${path}`, { ...init, headers: { authorization: `Bearer ${sp.token}`, ...(init.headers ?? {}) } });
    try {
      const sched = await sleepUntil(() => x.sched('localScheduler').catch(() => undefined), 10_000, 'the gRPC service');
      const call = x.interactive();
      call.on('error', () => undefined);
      call.write({ scheduler: sched, description: { executable: 'head', arguments: ['-c', String(GIB), '/dev/zero'], queue_name: 'unlimited' } });
      call.end();
      // Read the first response (the job id), then nothing more.
      const first = await new Promise<{ job: { id: string } }>((resolve) =>
        call.once('data', (m) => {
          call.pause();
          resolve(m);
        }),
      );
      const id = first.job.id;
      const pid = sp.proc.pid!;
      let peak = rss(pid);
      let size = 0;
      let status = '';
      const started = Date.now();
      while (Date.now() - started < 100_000) {
        peak = Math.max(peak, rss(pid));
        const out = await api(`/jobs/${id}/output?to=0`);
        size = Number(out.headers.get('x-jobwire-size'));
        await out.arrayBuffer();
        status = ((await (await api(`/jobs/${id}`)).json()) as { status: string }).status;
        if (size >= GIB && status === 'Success') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      peak = Math.max(peak, rss(pid));
      assert.equal(size, GIB, 'the job wrote all of its output to storage');
      assert.equal(status, 'Success', 'a client that reads nothing does not hold the job back');
      t.diagnostic(`server RSS peak ${(peak / 1048576).toFixed(0)} MiB while 1 GiB went to storage in ${Date.now() - started} ms`);
      assert.ok(peak < RSS_LIMIT, `server RSS peaked at ${(peak / 1048576).toFixed(0)} MiB`);
      call.cancel();
      const del = await api(`/jobs/${id}`, { method: 'DELETE' });
      assert.equal(del.status, 204);
    } finally {
      x.close();
      sp.proc.kill('SIGTERM');
      await sp.exited;
      removeHome(home);
    }
  });
});
