/**
 * A full disk under a job's output, through a real server: the job host stops reading the job
 * (it blocks), the job's info says why (its `reason`), nothing is lost, and it goes on when space
 * returns. The output folder of the home is a small tmpfs (the database stays on the real disk,
 * so the server can still record why), so the test needs root; it fails, loudly, without.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client } from '@jobwire/client';
import { stopHost } from '../../src/host/index.js';
import { removeHome, runs, sleepUntil, startServerProcess, tempHome, type ServerProcess } from '../helpers.js';

const LINES = 1_500_000;

test('disk full through the server: the job blocks, its info says why, and it completes with every byte once space returns', { timeout: 180_000 }, async () => {
  assert.equal(process.getuid?.(), 0, 'this test mounts a tmpfs in the home: run it as root');
  const home = tempHome();
  const output = join(home, 'output');
  mkdirSync(output, { recursive: true, mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', output]);
  let server: ServerProcess | undefined;
  try {
    // Leaves about 1.5 MiB for a job that writes about 11 MB: more than that and the host's
    // write-behind buffer (4 MiB) together.
    writeFileSync(join(output, 'filler'), Buffer.alloc(14.5 * 1024 * 1024, 1));
    server = await startServerProcess(home);
    const client = new Client({ url: server.url, token: server.token });
    const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', `echo $$ >&2; exec seq 1 ${LINES}`], queueName: 'unlimited' });

    const held = await sleepUntil(async () => {
      const info = await client.getJobStatus(job.id);
      return info.reason !== null && info;
    }, 60_000, 'the job to be held back');
    assert.equal(held.status, 'Running');
    assert.match(held.reason ?? '', /^held back since .*: its output cannot be stored \(disk full: .*ENOSPC/);
    const pid = Number(Buffer.from((await client.readOutput(job.id, 'stderr')).data).toString().trim());
    assert.ok(runs(pid), 'the job has not ended: it blocks on its output');

    rmSync(join(output, 'filler'));
    const done = await client.waitUntilDone(job.id, 120_000);
    assert.equal(done.status, 'Success');
    assert.equal(done.reason, null, 'the reason is cleared once it goes on');
    const expected = Array.from({ length: LINES }, (_, i) => `${i + 1}\n`).join('');
    const stdout = Buffer.from((await client.readOutput(job.id, 'stdout')).data).toString();
    assert.equal(stdout.length, expected.length, 'every byte');
    assert.ok(stdout === expected, 'every byte once, in order');
  } finally {
    if (server) {
      server.proc.kill('SIGTERM');
      await server.exited;
    }
    await stopHost(home);
    execFileSync('umount', [output]);
    removeHome(home);
  }
});
