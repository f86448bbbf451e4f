/**
 * The events of a server handle (`ServerHandle.events`, typed by `ServerEventMap`): what an
 * embedding program hears of jobs lost under the server and of its own life cycle.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { startServer, type ServerEventMap } from '../../src/server/index.js';
import { hostStatus } from '../../src/host/index.js';
import { printedPids, removeHome, runs, sleepUntil, startServerProcess, tempHome, TEST_BACKEND, withServer } from '../helpers.js';

describe('server handle events', () => {
  it('emits job:lost for a job whose job host died with the server (both killed with -9), when the next server starts on the home', async () => {
    const home = tempHome();
    const pids: number[] = [];
    try {
      const first = await startServerProcess(home);
      const client = new Client({ url: first.url, token: first.token });
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo $$; exec sleep 1000'] });
      await client.waitUntilRunning(job.id, 10_000);
      pids.push(...(await printedPids(client, job.id)));
      first.proc.kill('SIGKILL');
      await first.exited;
      // Jobs outlive the server on the job host; with the host gone too, the job is lost.
      const host = hostStatus(home);
      assert.equal(host.state, 'running');
      if (host.state === 'running') process.kill(host.info.pid, 'SIGKILL');
      await sleepUntil(() => hostStatus(home).state === 'gone', 10_000, 'the host to die');

      // Passed in, so that events of the start itself are heard.
      const events = new EventEmitter<ServerEventMap>();
      const lost: ServerEventMap['job:lost'][0][] = [];
      const order: string[] = [];
      events.on('job:lost', (event) => {
        lost.push(event);
        order.push('job:lost');
      });
      events.on('server:listening', () => order.push('server:listening'));
      const second = await startServer({ home, port: 0, logLevel: 'silent', graceSeconds: 1, events });
      try {
        assert.equal(second.events, events);
        assert.deepEqual(lost.map((e) => e.job.id), [job.id]);
        assert.equal(lost[0]!.job.status, 'Lost');
        assert.match(lost[0]!.job.error ?? '', /^its job host \(pid \d+\) died while it ran; its processes were still running and have been stopped$/);
        assert.equal('jobToken' in lost[0]!.job, false, 'no secret in the payload');
        assert.deepEqual(order, ['job:lost', 'server:listening']);
        assert.deepEqual(pids.filter(runs), [], 'its process was stopped first');
      } finally {
        await second.close({ stopJobs: true });
      }
    } finally {
      for (const pid of pids.filter(runs)) process.kill(pid, 'SIGKILL');
      removeHome(home);
    }
  });

  it('emits server:stopping with the reason, job:lost for each job a stop with stopJobs ended, then server:stopped with the report', async () => {
    await withServer(async ({ server, client }) => {
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['1000'] });
      await client.waitUntilRunning(job.id, 10_000);
      const heard: Array<{ name: string; detail: string }> = [];
      server.events.on('server:stopping', ({ reason }) => heard.push({ name: 'server:stopping', detail: reason }));
      server.events.on('job:lost', ({ job: lost }) => heard.push({ name: 'job:lost', detail: `${lost.id} ${lost.error}` }));
      server.events.on('server:stopped', ({ report }) => heard.push({ name: 'server:stopped', detail: JSON.stringify(report.unsettled) }));
      const report = await server.close({ stopJobs: true });
      const reason = 'the jobwire server shut down while the job was running';
      // In distributed mode the job runs on a worker, which outlives this server.
      const expected =
        TEST_BACKEND === 'embedded'
          ? [
              { name: 'server:stopping', detail: reason },
              { name: 'job:lost', detail: `${job.id} ${reason}` },
              { name: 'server:stopped', detail: JSON.stringify(report.unsettled) },
            ]
          : [
              { name: 'server:stopping', detail: reason },
              { name: 'server:stopped', detail: JSON.stringify(report.unsettled) },
            ];
      assert.deepEqual(heard, expected);
    });
  });

  it('reports a listener that throws as a warning and goes on', async () => {
    await withServer(async ({ server }) => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error): void => {
        if (warning.message === 'listener bug') warnings.push(warning);
      };
      process.on('warning', onWarning);
      try {
        server.events.on('server:stopping', () => {
          throw new Error('listener bug');
        });
        const report = await server.close();
        assert.deepEqual(report.unsettled, []);
        await sleepUntil(() => warnings.length > 0, 5000, 'the warning');
      } finally {
        process.off('warning', onWarning);
      }
    });
  });
});
