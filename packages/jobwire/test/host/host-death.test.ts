/**
 * When the host itself dies: its jobs are Lost with a reason naming the host, and nothing it
 * started is left running. And the identity checks: a pid that now names another process is
 * never signalled.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { identify, selfIdentity } from '../../src/executors/local/process-identity.js';
import { ensureHost } from '../../src/host/ensure.js';
import { lockDir } from '../../src/host/lock.js';
import { hostPaths } from '../../src/host/paths.js';
import { hostStatus, recoverJobs, stopHost } from '../../src/host/recovery.js';
import { runs, sleepUntil } from '../helpers.js';
import { follow, hostGone, jobSpec, withHostHome } from './helpers.js';

const TIMEOUT = { timeout: 60_000 };

/** A job that prints the pids of its shell and of a background sleep, then waits. */
const PRINT_PIDS = { executable: 'sh', arguments: ['-c', 'sleep 1000 & echo "$$ $!"; wait'] };

describe('job host: death and identities', () => {
  test('kill -9 of the host: its jobs are Lost with a reason naming the host, and their processes are stopped', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      const hostPid = client.host.pid;
      // "known" is recorded by the server (its process identity comes back from start);
      // "unrecorded" stands for a job whose start reply the server never got.
      const { job: known } = await client.start(jobSpec('known', PRINT_PIDS));
      await client.start(jobSpec('unrecorded', PRINT_PIDS));
      const pids: number[] = [];
      for (const id of ['known', 'unrecorded']) {
        const seen = await follow(client, id);
        await seen.until('\n');
        pids.push(...seen.text().trim().split(' ').map(Number));
      }
      assert.ok(pids.every(runs), 'the jobs run');

      process.kill(hostPid, 'SIGKILL');
      await client.closed;
      await hostGone(home, hostPid);
      assert.equal(hostStatus(home).state, 'gone', 'host.json names a host that is gone');

      const outcomes = await recoverJobs(home, [{ id: 'known', process: known.process }], 1000);
      const recovery = outcomes.get('known');
      assert.equal(recovery?.kind, 'lost');
      assert.match(recovery.kind === 'lost' ? recovery.reason : '', new RegExp(`its job host \\(pid ${hostPid}\\) died while it ran; its processes were still running and have been stopped`));

      // A new host: the journal of the dead one accounts for the job nobody recorded.
      const { client: next, started, recovered } = await ensureHost(home, { graceMs: 1000 });
      assert.equal(started, true);
      const lost = new Map(recovered.map(({ jobId, recovery }) => [jobId, recovery]));
      assert.equal(lost.get('unrecorded')?.kind, 'lost');
      assert.match(JSON.stringify(lost.get('unrecorded')), new RegExp(`job host \\(pid ${hostPid}\\) died`));
      assert.equal(lost.get('known')?.kind, 'lost', 'the journal names every job of the dead host');
      assert.deepEqual(await next.list(), [], 'the new host holds none of them');
      for (const pid of pids) assert.equal(runs(pid), false, `pid ${pid} was stopped`);
      next.close();
    });
  });

  test('a job that ended before its host died is recovered as ended, with its stored exit', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const { client } = await ensureHost(home);
      const { job } = await client.start(jobSpec('done', { executable: 'sh', arguments: ['-c', 'echo bye; exit 5'] }));
      const seen = await follow(client, 'done');
      await seen.exit;
      process.kill(client.host.pid, 'SIGKILL');
      await hostGone(home, client.host.pid);
      const recovery = (await recoverJobs(home, [{ id: 'done', process: job.process }], 1000)).get('done');
      assert.equal(recovery?.kind, 'ended');
      assert.equal(recovery.kind === 'ended' ? recovery.exit.exitCode : undefined, 5);
    });
  });

  test('a host.json whose pid now names another process is never signalled', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const stranger = spawn('sleep', ['1000'], { stdio: 'ignore' });
      try {
        const pid = stranger.pid!;
        await sleepUntil(() => identify(pid), 5000, 'the stranger to start');
        const real = identify(pid)!;
        // The record of a host that had this pid once, with another start time.
        const stale = { ...real, startTicks: real.startTicks - 1 };
        writeFileSync(hostPaths(home).info, JSON.stringify({ pid, identity: stale, versions: [1], jobwireVersion: 'old', startedAt: '', socket: hostPaths(home).socket }));
        // It held the lock too, and recorded a job whose leader had the same pid.
        mkdirSync(lockDir(home), { recursive: true });
        writeFileSync(join(lockDir(home), '000000000007'), JSON.stringify(stale));
        const leader = { ...stale };

        assert.equal(hostStatus(home).state, 'gone');
        assert.equal(await stopHost(home), false, 'stopHost refuses to signal it');
        const recovery = (await recoverJobs(home, [{ id: 'old-job', process: { leader, runner: stale } }], 100)).get('old-job');
        assert.equal(recovery?.kind, 'lost');
        assert.deepEqual(recovery.kind === 'lost' ? recovery.stopped : undefined, []);
        // A new host takes over the lock the stale record seemed to hold.
        const { client, started } = await ensureHost(home);
        assert.equal(started, true);
        client.close();
        assert.equal(runs(pid), true, 'the process that reused the pid was never signalled');
        assert.equal(stranger.exitCode, null);
        assert.equal(stranger.signalCode, null);
      } finally {
        stranger.kill('SIGKILL');
      }
    });
  });

  test('a job record whose leader pid now names another process is never signalled', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const stranger = spawn('sleep', ['1000'], { stdio: 'ignore', detached: true });
      try {
        const pid = stranger.pid!;
        await sleepUntil(() => identify(pid), 5000, 'the stranger to start');
        const leader = { ...identify(pid)!, startTicks: identify(pid)!.startTicks - 1 };
        // A runner that is gone: a pid that cannot exist.
        const runner = { ...selfIdentity()!, pid: 2 ** 22 + 1 };
        const recovery = (await recoverJobs(home, [{ id: 'j', process: { leader, runner } }], 100)).get('j');
        assert.equal(recovery?.kind, 'lost');
        assert.equal(runs(pid), true);
      } finally {
        stranger.kill('SIGKILL');
      }
    });
  });
});
