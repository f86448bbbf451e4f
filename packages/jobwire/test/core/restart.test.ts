import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { identify } from '../../src/executors/local/process-identity.js';
import { openEmbeddedStore } from '../../src/store/embedded/index.js';
import { concat, collect, printedPids, removeHome, reportRunning, runs, startServerProcess, tempHome } from '../helpers.js';
import { newJob } from '../store/store-behaviour.js';

describe('restart', () => {
  it('after kill -9, finished jobs and output are intact, interrupted jobs are Lost with a reason and their processes are stopped before the next job of a single queue starts', async () => {
    const home = tempHome();
    const pids: number[] = [];
    try {
      const first = await startServerProcess(home);
      const client = new Client({ url: first.url, token: first.token });
      const finished = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'seq 1 1000; echo warn >&2'], queueName: 'unlimited' });
      assert.equal((await client.waitUntilDone(finished.id, 10_000)).status, 'Success');
      // Leader and child ignore SIGTERM, so only the SIGKILL after the grace time stops them.
      const running = await client.submitBatchJob({
        executable: 'sh',
        arguments: ['-c', 'trap "" TERM; sleep 1000 & echo $$ $!; wait'],
        queueName: 'single',
      });
      // Its leader exits at once; the child it started stays in the job's process group.
      const leaderGone = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'sleep 1000 & echo $!'], queueName: 'unlimited' });
      await client.waitUntilRunning(running.id, 10_000);
      const [leader, child] = await printedPids(client, running.id);
      const [abandoned] = await printedPids(client, leaderGone.id);
      pids.push(leader!, child!, abandoned!);
      assert.ok(pids.every(runs), 'the jobs run');
      // Queued behind it; once started it reports any process of the first job still running.
      const next = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', reportRunning([leader!, child!])], queueName: 'single' });
      assert.equal((await client.getJobStatus(next.id)).status, 'Queued');

      first.proc.kill('SIGKILL');
      await first.exited;
      assert.ok(pids.every(runs), 'the jobs outlive the server');

      const second = await startServerProcess(home);
      try {
        const again = new Client({ url: second.url, token: second.token });
        const f = await again.getJobStatus(finished.id);
        assert.equal(f.status, 'Success');
        assert.equal(f.exitCode, 0);
        const out = await again.readOutput(finished.id, 'stdout');
        assert.equal(Buffer.from(out.data).toString(), Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join(''));
        assert.equal(Buffer.from((await again.readOutput(finished.id, 'stderr')).data).toString(), 'warn\n');

        assert.deepEqual(pids.filter(runs), [], 'no process of the interrupted jobs runs');
        for (const id of [running.id, leaderGone.id]) {
          const r = await again.getJobStatus(id);
          assert.equal(r.status, 'Lost');
          assert.match(r.error ?? '', /server stopped while the job was running.*; its processes were still running and have been stopped$/);
        }
        // Its output up to the crash is kept, and an attach ends with the Lost status.
        const att = await again.attach(running.id);
        assert.equal(concat((await collect(att.output)).map((c) => c.data)).toString(), `${leader} ${child}\n`);
        assert.equal((await att.exit).status, 'Lost');

        const done = await again.waitUntilDone(next.id, 15_000);
        assert.equal(done.status, 'Success');
        assert.equal(Buffer.from((await again.readOutput(next.id, 'stdout')).data).toString(), 'checked\n', 'the next single job ran alone');
      } finally {
        second.proc.kill('SIGTERM');
        await second.exited;
      }
    } finally {
      for (const pid of pids.filter(runs)) process.kill(pid, 'SIGKILL');
      removeHome(home);
    }
  });

  it('never signals a recorded pid that now names another process', async () => {
    const home = tempHome();
    // The job's own leader: started, identified, gone.
    const gone = spawn('true');
    const old = identify(gone.pid!);
    await new Promise((resolve) => gone.on('exit', resolve));
    assert.ok(old, 'the short-lived leader was identified');
    // Another process now holds a pid, leading a group of its own, started after the old leader.
    const stranger = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' });
    const strangerPid = stranger.pid!;
    try {
      const store = await openEmbeddedStore({ dir: home });
      const job = await store.createJob(newJob({ owner: 'admin', queue: 'single', description: { executable: 'sleep', arguments: ['1000'] } }));
      // The record names the stranger's pid with the old leader's start time; its runner is gone.
      await store.markRunning(job.id, {
        startedAt: new Date().toISOString(),
        pid: strangerPid,
        node: 'here',
        process: { leader: { ...old, pid: strangerPid }, runner: { ...old } },
      });
      await store.close();

      const server = await startServerProcess(home);
      try {
        const client = new Client({ url: server.url, token: server.token });
        const lost = await client.getJobStatus(job.id);
        assert.equal(lost.status, 'Lost');
        assert.match(lost.error ?? '', /server stopped while the job was running \(noticed at restart, [^)]*\)$/);
        assert.ok(runs(strangerPid), 'the process that reuses the pid was left alone');
      } finally {
        server.proc.kill('SIGTERM');
        await server.exited;
      }
    } finally {
      stranger.kill('SIGKILL');
      removeHome(home);
    }
  });
});
