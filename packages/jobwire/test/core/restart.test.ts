import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { alive, concat, collect, sleepUntil, startServerProcess, removeHome, tempHome } from '../helpers.js';

describe('restart', () => {
  it('after kill -9, finished jobs and output are intact and interrupted jobs are Lost with a reason', async () => {
    const home = tempHome();
    let orphan: number | undefined;
    try {
      const first = await startServerProcess(home);
      const client = new Client({ url: first.url, token: first.token });
      const finished = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'seq 1 1000; echo warn >&2'], queueName: 'unlimited' });
      assert.equal((await client.waitUntilDone(finished.id, 10_000)).status, 'Success');
      const running = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo started; exec sleep 300'], queueName: 'unlimited' });
      await client.waitUntilRunning(running.id, 10_000);
      await sleepUntil(async () => (await client.readOutput(running.id)).size > 0, 10_000, 'the job to print');

      first.proc.kill('SIGKILL');
      await first.exited;

      const second = await startServerProcess(home);
      try {
        const again = new Client({ url: second.url, token: second.token });
        const f = await again.getJobStatus(finished.id);
        assert.equal(f.status, 'Success');
        assert.equal(f.exitCode, 0);
        const out = await again.readOutput(finished.id, 'stdout');
        assert.equal(Buffer.from(out.data).toString(), Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join(''));
        assert.equal(Buffer.from((await again.readOutput(finished.id, 'stderr')).data).toString(), 'warn\n');

        const r = await again.getJobStatus(running.id);
        assert.equal(r.status, 'Lost');
        assert.match(r.error ?? '', /server stopped while the job was running/);
        // Its output up to the crash is kept, and an attach ends with the Lost status.
        const att = await again.attach(running.id);
        assert.equal(concat((await collect(att.output)).map((c) => c.data)).toString(), 'started\n');
        assert.equal((await att.exit).status, 'Lost');
        const pid = Number((await import('node:child_process')).execFileSync('pgrep', ['-f', 'sleep 300'], { encoding: 'utf8' }).trim().split('\n')[0]);
        if (pid && alive(pid)) orphan = pid;
      } finally {
        second.proc.kill('SIGTERM');
        await second.exited;
      }
    } finally {
      if (orphan) process.kill(orphan, 'SIGKILL');
      removeHome(home);
    }
  });
});
