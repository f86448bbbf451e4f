/**
 * A worker killed with -9 that never comes back: its job host stops the worker's running jobs
 * once nobody has followed them for the follow deadline the worker set (a little under
 * --dead-after), before the cluster takes the worker for dead; then the cluster hands each job
 * on (per its retries) or marks it Lost — and the new attempt never runs beside the old one.
 * Real processes: a server and worker processes on the test Redis, jobs in the process table.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ExitRecord } from '../../src/host/protocol.js';
import { printedPids, runs, sleepUntil } from '../helpers.js';
import { withCluster } from './cluster.js';

describe('distributed: the job host stops the jobs of a worker that does not come back', () => {
  it('kill -9 of a worker, not restarted: after its follow deadline its jobs\' processes are gone, then one job is handed on and runs alone, the other is Lost; the host recorded why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobwire-deadline-'));
    try {
      await withCluster(async (cluster) => {
        await cluster.addServer();
        // --dead-after 4 with --grace 1: the host stops an unfollowed job after 1.5 s (SIGKILL 1 s later).
        const doomed = await cluster.addWorker({ name: 'doomed', pools: ['first'], slots: 2, deadAfter: 4 });
        const client = cluster.client();
        // Both ignore SIGTERM (leader and child): only the host's SIGKILL stops them.
        const stubborn = 'trap "" TERM; sleep 1000 & echo $$ $!; wait';
        const lost = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', stubborn], pools: ['first'] });
        // The second attempt reports whether any process of the first still runs as it starts.
        const check = `for p in $(cat ${dir}/pids); do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); if [ -n "$s" ] && [ "$s" != Z ]; then echo "$p still runs"; fi; done; echo second`;
        const retried = await client.submitBatchJob({
          executable: 'sh',
          arguments: ['-c', `if [ -e ${dir}/pids ]; then ${check}; else ${stubborn.replace('echo $$ $!', () => `echo $$ $! | tee ${dir}/pids`)}; fi`],
          retries: 1,
        });
        const pids = new Map<string, number[]>();
        for (const job of [lost, retried]) {
          await client.waitUntilRunning(job.id, 20_000);
          pids.set(job.id, await printedPids(client, job.id));
          for (const pid of pids.get(job.id)!) cluster.orphans.add(pid);
        }
        assert.equal((await client.getJobStatus(retried.id)).node, 'doomed');
        await cluster.addWorker({ name: 'spare' });

        await cluster.killWorker('doomed');
        const all = [...pids.values()].flat();
        assert.deepEqual(all.filter((pid) => !runs(pid)), [], `the jobs outlive their worker at first (${JSON.stringify([...pids])})`);
        await sleepUntil(() => !all.some(runs), 15_000, 'the job host to stop the jobs nobody follows');

        const done = await client.waitUntilDone(lost.id, 20_000);
        assert.equal(done.status, 'Lost');
        assert.match(done.error ?? '', /the worker doomed stopped answering/);
        const again = await client.waitUntilDone(retried.id, 20_000);
        assert.deepEqual([again.status, again.node], ['Success', 'spare'], JSON.stringify(again));
        const [leader, child] = pids.get(retried.id)!;
        assert.equal(Buffer.from((await client.readOutput(retried.id, 'stdout')).data).toString(), `${leader} ${child}\nsecond\n`, 'the second attempt found no process of the first running');

        // The host recorded why it stopped them (their exit records in the worker's home).
        for (const job of [lost, retried]) {
          const exit = JSON.parse(readFileSync(join(doomed.home, 'output', job.id, 'exit.json'), 'utf8')) as ExitRecord;
          assert.match(exit.stoppedBy ?? '', /no client followed it for 1\.5 s/);
          assert.equal(exit.signal, 'SIGKILL');
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
