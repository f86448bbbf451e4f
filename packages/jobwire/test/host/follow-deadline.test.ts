/**
 * Follow deadlines (host protocol version 2): the job host stops a job that no live client has
 * followed for its deadline — its client killed -9, or stopped (SIGSTOP) with its connection still
 * open — SIGTERM first, SIGKILL after the deadline's grace, and records why in the exit. Jobs
 * without a deadline (the embedded server's) run on, and a client of version 1 cannot set one.
 * Real processes: a host process and a "server" process (client-process.ts) that the test kills.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ensureHost } from '../../src/host/ensure.js';
import type { HostJobState } from '../../src/host/protocol.js';
import { runs, sleepUntil } from '../helpers.js';
import { ClientProcess, jobSpec, withHostHome, type ClientEvent } from './helpers.js';

const TIMEOUT = { timeout: 60_000 };

/** Leader and child both ignore SIGTERM: only the SIGKILL after the grace stops them. It prints both pids. */
const STUBBORN = { executable: 'sh', arguments: ['-c', 'trap "" TERM; sleep 1000 & echo $$ $!; wait'] };

/** Starts `jobId` through the client process and follows it there; resolves with the pids it printed. */
async function startFollowed(client: ClientProcess, jobId: string, extra: object = {}): Promise<number[]> {
  client.send({ op: 'start', job: jobSpec(jobId, STUBBORN, extra) });
  await client.waitFor((e) => e.ev === 'reply' && e.op === 'start' && (e.result as { job: HostJobState }).job.jobId === jobId, `the start of ${jobId}`);
  client.send({ op: 'subscribe', jobId, from: 0 });
  await client.waitFor(() => client.output(jobId).includes('\n'), `${jobId} to print its pids`);
  return client.output(jobId).trim().split(' ').map(Number);
}

/** The host's state of `jobId` once its end is stored. */
function endedState(home: string, jobId: string): Promise<HostJobState> {
  return sleepUntil(async () => {
    const state = await stateOf(home, jobId);
    return state.exit !== null ? state : undefined;
  }, 15_000, `the end of ${jobId} to be stored`);
}

/** Stops `jobId` (the test is over). */
async function stop(home: string, jobId: string): Promise<void> {
  const { client } = await ensureHost(home);
  await client.terminate(jobId, { graceMs: 100, reason: 'the test is over' });
  client.close();
}

/** The host's state of `jobId`, through a new connection (which follows nothing). */
async function stateOf(home: string, jobId: string): Promise<HostJobState> {
  const { client } = await ensureHost(home);
  try {
    const job = (await client.list()).find((j) => j.jobId === jobId);
    assert.ok(job, `the host holds ${jobId}`);
    return job;
  } finally {
    client.close();
  }
}

describe('job host: follow deadlines', () => {
  test('a job with a deadline runs on while its client lives; kill -9 of the client: the host stops it (SIGTERM, then SIGKILL) and says why; a job without one runs on', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const server = new ClientProcess(home, {}, { keepAliveMs: 100 });
      await server.waitFor((e): e is Extract<ClientEvent, { ev: 'connected' }> => e.ev === 'connected', 'the client process to connect');
      const bound = await startFollowed(server, 'bound', { followDeadline: { afterMs: 600, graceMs: 300 } });
      const free = await startFollowed(server, 'free');
      // Several deadlines long, with the client alive and following: nothing is stopped.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.ok([...bound, ...free].every(runs), 'every process runs while its client follows');
      assert.equal((await stateOf(home, 'bound')).stoppedBy, null);

      await server.kill();
      await sleepUntil(() => !bound.some(runs), 15_000, 'the job nobody follows to be stopped');
      const state = await endedState(home, 'bound');
      assert.match(state.exit?.stoppedBy ?? '', /no client followed it for 0\.6 s \(the follow deadline its worker set\)/);
      assert.equal(state.exit?.signal, 'SIGKILL', 'SIGTERM was ignored, so SIGKILL came after the grace');
      assert.deepEqual(state.followDeadline, { afterMs: 600, graceMs: 300 });
      assert.ok(free.every(runs), 'a job without a deadline runs on without its client');
      assert.equal((await stateOf(home, 'free')).exit, null);
      await stop(home, 'free');
    });
  });

  test('a client that is stopped (SIGSTOP) with its connection open stops counting as following: the job is stopped', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const server = new ClientProcess(home, {}, { keepAliveMs: 100 });
      await server.waitFor((e) => e.ev === 'connected', 'the client process to connect');
      const pids = await startFollowed(server, 'frozen', { followDeadline: { afterMs: 600, graceMs: 300 } });
      server.signal('SIGSTOP');
      try {
        await sleepUntil(() => !pids.some(runs), 15_000, 'the job of the stopped client to be stopped');
        assert.match((await endedState(home, 'frozen')).exit?.stoppedBy ?? '', /no client followed it/);
      } finally {
        server.signal('SIGCONT');
        await server.kill();
      }
    });
  });

  test('a client that speaks only version 1 cannot set a deadline: its job runs on after the client is gone', TIMEOUT, async () => {
    await withHostHome(async (home) => {
      const server = new ClientProcess(home, {}, { versions: [1] });
      await server.waitFor((e) => e.ev === 'connected', 'the client process to connect');
      const pids = await startFollowed(server, 'old', { followDeadline: { afterMs: 300, graceMs: 100 } });
      await server.kill();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(pids.every(runs), 'the deadline sent on a version-1 connection was ignored');
      const state = await stateOf(home, 'old');
      assert.deepEqual([state.exit, state.stoppedBy, state.followDeadline], [null, null, null]);
      await stop(home, 'old');
    });
  });
});
