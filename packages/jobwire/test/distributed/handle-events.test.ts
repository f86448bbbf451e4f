/**
 * Events of the handles in distributed mode: a server hears a worker it reaped, a worker tells
 * its own life cycle and the jobs its stop ended.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { startWorker, type WorkerEventMap } from '../../src/distributed/worker.js';
import type { ServerEventMap } from '../../src/server/index.js';
import { startServer } from '../../src/server/index.js';
import { removeHome, tempHome } from '../helpers.js';
import { withCluster } from './cluster.js';

describe('distributed: handle events', () => {
  it('a server emits worker:reaped and job:lost when a worker killed with -9 stops answering', async () => {
    await withCluster(async (cluster) => {
      const home = tempHome();
      const server = await startServer({ home, port: 0, logLevel: 'silent', redis: cluster.redisUrl, redisPrefix: cluster.prefix });
      try {
        const lost: Array<ServerEventMap['job:lost'][0]> = [];
        server.events.on('job:lost', (event) => lost.push(event));
        await cluster.addWorker({ name: 'doomed', slots: 1 });
        const client = new Client({ url: server.url, token: server.token });
        const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['1000'] });
        await client.waitUntilRunning(job.id, 20_000);
        cluster.orphans.add(await cluster.jobPid(job.id));
        const reaped = once(server.events, 'worker:reaped', { signal: AbortSignal.timeout(30_000) });
        await cluster.killWorker('doomed');
        const [event] = (await reaped) as ServerEventMap['worker:reaped'];
        assert.deepEqual(event, { node: 'doomed', lost: [job.id], retried: [] });
        assert.deepEqual(
          lost.map((e) => [e.job.id, e.job.status]),
          [[job.id, 'Lost']],
        );
        assert.match(lost[0]!.job.error ?? '', /the worker doomed stopped answering/);
      } finally {
        await server.close();
        removeHome(home);
      }
    });
  });

  it('a worker emits worker:ready as it starts, then at close worker:stopping, job:lost for the job it stopped, worker:stopped', async () => {
    await withCluster(async (cluster) => {
      const home = tempHome();
      const server = await startServer({ home, port: 0, logLevel: 'silent', redis: cluster.redisUrl, redisPrefix: cluster.prefix });
      const workerHome = tempHome();
      try {
        const events = new EventEmitter<WorkerEventMap>();
        const heard: string[] = [];
        events.on('worker:ready', ({ name }) => heard.push(`worker:ready ${name}`));
        events.on('worker:stopping', ({ reason }) => heard.push(`worker:stopping ${reason}`));
        events.on('job:lost', ({ job }) => heard.push(`job:lost ${job.id} ${job.error}`));
        events.on('worker:stopped', ({ report }) => heard.push(`worker:stopped ${report.unsettled.length}`));
        const worker = await startWorker({ redis: cluster.redisUrl, prefix: cluster.prefix, name: 'w1', slots: 1, graceSeconds: 1, home: workerHome, workDir: `${workerHome}-work`, logLevel: 'silent', events, keepJobs: false });
        assert.equal(worker.events, events);
        assert.deepEqual(heard, ['worker:ready w1']);
        const client = new Client({ url: server.url, token: server.token });
        const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['1000'] });
        await client.waitUntilRunning(job.id, 20_000);
        await worker.close();
        const reason = 'the worker w1 shut down while the job was running';
        assert.deepEqual(heard, ['worker:ready w1', `worker:stopping ${reason}`, `job:lost ${job.id} ${reason}`, 'worker:stopped 0']);
        assert.equal((await client.getJobStatus(job.id)).status, 'Lost');
      } finally {
        await server.close();
        removeHome(home);
        removeHome(workerHome);
      }
    });
  });
});
