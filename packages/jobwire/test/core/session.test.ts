/**
 * The live-session core (`jobs/session.ts`) that the WebSocket attach and the gRPC interactive
 * call both drive: real servers, real jobs, the server's own store; sessions are opened on a job
 * service over that store, as the transports open theirs.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import type { JobwireError, OutputChunk } from '@jobwire/client';
import { CloseCode, Tag, decodeFrame, encodeFlow, encodeStdin, type Frame } from '@jobwire/client/protocol';
import { LocalExecutor } from '../../src/executors/local/index.js';
import type { JobScheduler } from '../../src/jobs/scheduler.js';
import { JobService } from '../../src/jobs/service.js';
import type { LiveSession, LiveSessionOptions, SessionStart, StatusUpdate } from '../../src/jobs/session.js';
import type { FinalStatus, JobRecord, Store } from '../../src/store/index.js';
import { sleepUntil, withServer, type TestServer } from '../helpers.js';

/** A job service over the server's store that counts the job reads made through it. */
function countingService(store: Store): { service: JobService; jobReads: () => number } {
  let reads = 0;
  const counted = new Proxy(store, {
    get(target, property) {
      if (property === 'getJob') {
        return (...args: Parameters<Store['getJob']>) => {
          reads += 1;
          return target.getJob(...args);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  // The service only reads through this store here; its scheduler runs nothing (the server's does).
  const local = new LocalExecutor();
  const scheduler: JobScheduler = {
    adaptor: local.name,
    check: (description) => local.check(description),
    admit: async () => {},
    queued: () => {},
    queues: async () => local.queues(),
  };
  return { service: new JobService({ store: counted, scheduler }), jobReads: () => reads };
}

/** What one session reported, and how it ended. */
interface Recorded {
  session: LiveSession;
  start: SessionStart | undefined;
  output: OutputChunk[];
  updates: StatusUpdate[];
  /** Resolves with how the session ended: `end`'s final status or `fail`'s error. */
  done: Promise<{ end: FinalStatus } | { fail: JobwireError }>;
  /** Whether the session has ended yet. */
  over(): boolean;
}

/** Opens and starts a session; `canTake` false keeps it from delivering (and so from ending). */
async function openSession(service: JobService, owner: string, job: JobRecord, options: LiveSessionOptions = {}, canTake = () => true): Promise<Recorded> {
  let settle!: (outcome: { end: FinalStatus } | { fail: JobwireError }) => void;
  let over = false;
  const done = new Promise<{ end: FinalStatus } | { fail: JobwireError }>((resolve) => {
    settle = (outcome) => {
      assert.equal(over, false, 'a session ends once');
      over = true;
      resolve(outcome);
    };
  });
  const output: OutputChunk[] = [];
  const updates: StatusUpdate[] = [];
  const session = service.openSession(
    owner,
    job,
    {
      canTake,
      output: (chunk) => output.push(chunk),
      status: (update) => updates.push(update),
      end: (end) => settle({ end }),
      fail: (fail) => settle({ fail }),
    },
    options,
  );
  const start = await session.open();
  session.start();
  return { session, start, output, updates, done, over: () => over };
}

function text(chunks: OutputChunk[]): string {
  return Buffer.concat(chunks.map((c) => c.data)).toString();
}

/** The job as the server's store has it. */
async function record(s: TestServer, id: string): Promise<JobRecord> {
  const job = await s.server.store.getJob(id);
  assert.ok(job, `job ${id} exists`);
  return job;
}

describe('live session: the end', () => {
  it('a session opened after the job ended ends with the final status its output close recorded, reading no job', async () => {
    await withServer(async (s) => {
      const { client, server } = s;
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'read x; echo "got $x"; exit 3'], interactive: true, queueName: 'unlimited' });
      await client.waitUntilRunning(job.id, 10_000);
      await client.setProgress(job.id, 'halfway');
      await client.writeStdin(job.id, 'line\n');
      await client.waitUntilDone(job.id, 10_000);
      const expected: FinalStatus = { status: 'Failed', exitCode: 3, signal: null, error: 'exited with code 3', progress: 'halfway' };
      assert.deepEqual((await server.store.streams.sizes(job.id)).final, expected, 'the close recorded the final status');

      const { service, jobReads } = countingService(server.store);
      const ended = await record(s, job.id);
      const readsBefore = jobReads();
      const session = await openSession(service, 'admin', ended, { statusUpdates: true });
      assert.deepEqual(await session.done, { end: expected });
      assert.equal(text(session.output), 'got line\n');
      assert.equal(jobReads(), readsBefore, 'no job read from open to end');
    });
  });

  it('a session on output closed without a final status (by older jobwire) reads it from the record', async () => {
    await withServer(async (s) => {
      const { client, server } = s;
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'exit 4'], queueName: 'unlimited' });
      await client.waitUntilDone(job.id, 10_000);
      // Output closed the old way: a job made in the store, finished, closed without a final status.
      const base = await record(s, job.id);
      const old = await server.store.createJob({
        id: randomUUID(),
        owner: 'admin',
        name: 'old',
        group: '',
        queue: base.queue,
        description: base.description,
        interactive: false,
        tty: false,
        url: null,
        jobToken: 'old',
        createdAt: new Date().toISOString(),
      });
      await server.store.finishJob(old.id, { status: 'Failed', exitCode: 4, signal: null, error: 'exited with code 4', endedAt: new Date().toISOString() });
      await server.store.streams.closeOutput(old.id);

      const { service, jobReads } = countingService(server.store);
      const session = await openSession(service, 'admin', old);
      assert.deepEqual(await session.done, { end: { status: 'Failed', exitCode: 4, signal: null, error: 'exited with code 4', progress: null } });
      assert.equal(jobReads(), 1, 'one job read, at the end');
    });
  });
});

describe('live session: stdin, the same rules for every transport', () => {
  it('drops stdin the job can no longer read — stdin closed, job ended — silently, whether the writer names offsets or not', async () => {
    await withServer(async (s) => {
      const { client, server } = s;
      const { service } = countingService(server.store);
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'cat; exec sleep 600'], interactive: true, queueName: 'unlimited' });
      await client.waitUntilRunning(job.id, 10_000);
      const running = await record(s, job.id);
      // One writer names its offsets (the attach protocol), the other does not (a gRPC call).
      const byOffset = await openSession(service, 'admin', running);
      const byWindow = await openSession(service, 'admin', running);
      await byOffset.session.writeStdin(Buffer.from('a\n'), 0);
      await byWindow.session.writeStdin(Buffer.from('b\n'));
      await byOffset.session.closeStdin();
      await byOffset.session.writeStdin(Buffer.from('late\n'), 4);
      await byWindow.session.writeStdin(Buffer.from('late\n'));
      assert.deepEqual([byOffset.over(), byWindow.over()], [false, false], 'neither session failed');
      assert.equal((await server.store.streams.sizes(job.id)).stdin, 4, 'nothing after EOF was stored');
      await sleepUntil(() => text(byOffset.output) === 'a\nb\n' && text(byWindow.output) === 'a\nb\n', 10_000, 'cat echoing both lines');
      await client.cancelJob(job.id);
      for (const session of [byOffset, byWindow]) {
        const done = await session.done;
        assert.ok('end' in done && done.end.status === 'Cancelled', JSON.stringify(done));
        assert.equal(text(session.output), 'a\nb\n');
      }

      const reader = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'read x'], interactive: true, queueName: 'unlimited' });
      await client.waitUntilRunning(reader.id, 10_000);
      const paused = (): boolean => false; // the sessions stay open past the end
      const stillOffset = await openSession(service, 'admin', await record(s, reader.id), {}, paused);
      const stillWindow = await openSession(service, 'admin', await record(s, reader.id), {}, paused);
      await stillOffset.session.writeStdin(Buffer.from('x\n'), 0);
      await client.waitUntilDone(reader.id, 10_000);
      await stillOffset.session.writeStdin(Buffer.from('after the end\n'), 2);
      await stillWindow.session.writeStdin(Buffer.from('after the end\n'));
      assert.deepEqual([stillOffset.over(), stillWindow.over()], [false, false], 'neither session failed');
      assert.equal((await server.store.streams.sizes(reader.id)).stdin, 2, 'nothing after the end was stored');
      stillOffset.session.dispose();
      stillWindow.session.dispose();
    });
  });

  it('ends the session with a protocol error for a gap in stdin offsets and for a writer far beyond the window, storing nothing', async () => {
    await withServer(async (s) => {
      const { client, server } = s;
      const { service } = countingService(server.store);
      const job = await client.submitBatchJob({ executable: 'cat', interactive: true, queueName: 'unlimited' });
      const gap = await openSession(service, 'admin', await record(s, job.id));
      await gap.session.writeStdin(Buffer.from('late'), 10);
      const gapEnd = await gap.done;
      assert.ok('fail' in gapEnd, JSON.stringify(gapEnd));
      assert.equal(gapEnd.fail.code, 'protocol');
      assert.match(gapEnd.fail.message, /offset 10 leaves a gap after the 0 bytes accepted/);

      const greedy = await openSession(service, 'admin', await record(s, job.id), { stdinWindow: 1000 });
      void greedy.session.writeStdin(Buffer.from('x'), 4000);
      const greedyEnd = await greedy.done;
      assert.ok('fail' in greedyEnd && greedyEnd.fail.code === 'protocol', JSON.stringify(greedyEnd));
      assert.match(greedyEnd.fail.message, /far beyond the flow-control window/);

      const batch = await client.submitBatchJob({ executable: 'true', queueName: 'unlimited' });
      const notInteractive = await openSession(service, 'admin', await record(s, batch.id), {}, () => false);
      await notInteractive.session.writeStdin(Buffer.from('x'), 0);
      const refusal = await notInteractive.done;
      assert.ok('fail' in refusal && refusal.fail.code === 'conflict', JSON.stringify(refusal));
      assert.match(refusal.fail.message, /is not interactive/);

      assert.equal((await server.store.streams.sizes(job.id)).stdin, 0);
      await client.closeStdin(job.id);
      await client.waitUntilDone(job.id, 10_000);
    });
  });
});

/** A raw attach socket: frames as they come, and how it closed. */
function rawAttach(s: TestServer, id: string): { ws: WebSocket; frames: Frame[]; closed: Promise<number> } {
  const ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/v1/jobs/${id}/attach`, { headers: { authorization: `Bearer ${s.token}` } });
  const frames: Frame[] = [];
  ws.on('message', (data: Buffer) => frames.push(decodeFrame(new Uint8Array(data))));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  return { ws, frames, closed };
}

describe('live session: the attach transport', () => {
  it('drops stdin sent over attach after the job ended instead of storing it, then ends with the final status', async () => {
    await withServer(async (s) => {
      const { client, server } = s;
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'read x'], interactive: true, queueName: 'unlimited' });
      const attach = rawAttach(s, job.id);
      await new Promise<void>((resolve) => attach.ws.once('open', () => resolve()));
      // Paused, the session stays open after the end: only the client's resume lets it finish.
      attach.ws.send(encodeFlow(false));
      attach.ws.send(encodeStdin(0, Buffer.from('x\n')));
      await client.waitUntilDone(job.id, 10_000);
      attach.ws.send(encodeStdin(2, Buffer.from('after the end\n')));
      attach.ws.send(encodeFlow(true));
      assert.equal(await attach.closed, CloseCode.NORMAL);
      assert.deepEqual(
        attach.frames.filter((f) => f.tag === Tag.ERROR),
        [],
        'no error frame',
      );
      const last = attach.frames.at(-1);
      assert.ok(last?.tag === Tag.STATUS, `the last frame is the exit status, got tag ${last?.tag}`);
      assert.deepEqual(last.status, { status: 'Success', exitCode: 0, signal: null, error: null, final: true, progress: null });
      assert.equal((await server.store.streams.sizes(job.id)).stdin, 2, 'stdin after the end was not stored');
    });
  });
});
