/**
 * The events of a server handle (`ServerHandle.events`, typed by `ServerEventMap`): what an
 * embedding program hears of jobs lost under the server and of its own life cycle.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { startServer, type ServerEventMap } from '../../src/server/index.js';
import { printedPids, removeHome, runs, sleepUntil, startServerProcess, tempHome, TEST_BACKEND, withServer } from '../helpers.js';

describe('server handle events', () => {
  it('emits job:lost for a job a server killed with -9 left running, when the next server starts on the home', async () => {
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
        assert.match(lost[0]!.job.error ?? '', /server stopped while the job was running.*its processes were still running and have been stopped/);
        assert.equal('jobToken' in lost[0]!.job, false, 'no secret in the payload');
        assert.deepEqual(order, ['job:lost', 'server:listening']);
        assert.deepEqual(pids.filter(runs), [], 'its process was stopped first');
      } finally {
        await second.close();
      }
    } finally {
      for (const pid of pids.filter(runs)) process.kill(pid, 'SIGKILL');
      removeHome(home);
    }
  });

  it('emits server:stopping with the reason, job:lost for each job the stop ended, then server:stopped with the report', async () => {
    await withServer(async ({ server, client }) => {
      const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['1000'] });
      await client.waitUntilRunning(job.id, 10_000);
      const heard: Array<{ name: string; detail: string }> = [];
      server.events.on('server:stopping', ({ reason }) => heard.push({ name: 'server:stopping', detail: reason }));
      server.events.on('job:lost', ({ job: lost }) => heard.push({ name: 'job:lost', detail: `${lost.id} ${lost.error}` }));
      server.events.on('server:stopped', ({ report }) => heard.push({ name: 'server:stopped', detail: JSON.stringify(report.unsettled) }));
      const report = await server.close();
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
