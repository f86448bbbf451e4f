import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobEvent } from '@jobwire/client';
import { sleepUntil, withServer } from '../helpers.js';

describe('events', () => {
  it('sends a snapshot, then live add and update events for a group subtree', async () => {
    await withServer(async ({ client }) => {
      const before = await client.submitBatchJob({ executable: 'true', group: 'lab:run-1' });
      await client.waitUntilDone(before.id, 10_000);
      await client.submitBatchJob({ executable: 'true', group: 'elsewhere' });
      const stream = client.events('lab');
      const seen: JobEvent[] = [];
      const reader = (async () => {
        for await (const ev of stream) {
          seen.push(ev);
          if (ev.info.type === 'job' && ev.info.name === 'live' && ev.info.status === 'Success') break;
        }
      })();
      await stream.ready;
      const live = await client.submitBatchJob({ executable: 'true', group: 'lab:run-2', name: 'live' });
      await reader;
      const addOf = (id: string): number => seen.findIndex((e) => e.verb === 'add' && e.info.id === id);
      assert.ok(addOf('group:lab') >= 0, 'the snapshot has the group');
      assert.ok(addOf(before.id) >= 0, 'the snapshot has the finished job');
      assert.ok(addOf(before.id) < addOf(live.id), 'snapshot before live events');
      const mine = seen.filter((e) => e.info.id === live.id);
      assert.equal(mine[0]!.verb, 'add');
      assert.deepEqual(mine.map((e) => (e.info as { status: string }).status), ['Queued', 'Running', 'Success']);
      assert.ok(seen.every((e) => !(e.info.type === 'job' && e.info.group === 'elsewhere')), 'nothing from outside the subtree');
      assert.ok(seen.some((e) => e.info.type === 'group' && (e.info as { path: string }).path === 'lab:run-2' && e.verb === 'add'), 'the new group was added');
      stream.close();
    });
  });

  it("gives each no-op function job Queued, Running, then its end with its result, in order (Running and the end may be stored together)", async () => {
    await withServer(async ({ client }) => {
      const stream = client.events('fn');
      const seen: JobEvent[] = [];
      const reader = (async () => {
        for await (const ev of stream) seen.push(ev);
      })();
      await stream.ready;
      const jobs = await client.submitBatchJobs(Array.from({ length: 6 }, (_, i) => ({ js: { code: 'return args[0] * 2', args: [i] }, group: 'fn', queueName: 'multi' })));
      const endOf = (id: string): JobEvent | undefined => seen.find((e) => e.info.id === id && (e.info as { status: string }).status !== 'Queued' && (e.info as { status: string }).status !== 'Running');
      await sleepUntil(() => jobs.every((job) => endOf(job.id) !== undefined), 30_000, 'every end');
      stream.close();
      await reader;
      jobs.forEach((job, i) => {
        const mine = seen.filter((e) => e.info.id === job.id).map((e) => e.info as { status: string; result?: unknown; startedAt?: string; endedAt?: string });
        assert.deepEqual(mine.map((info) => info.status), ['Queued', 'Running', 'Success'], `job ${i}`);
        assert.ok(mine[1]!.startedAt, 'Running carries its start');
        assert.equal(mine[2]!.result, i * 2, 'the end carries the result');
        assert.ok(mine[2]!.startedAt! <= mine[2]!.endedAt!, 'started before it ended');
      });
    });
  });

  it('resumes from an event id without missing or repeating events', async () => {
    await withServer(async ({ client }) => {
      const first = client.events('');
      await first.ready; // so that a's `add` comes live, with its own event id
      const a = await client.submitBatchJob({ executable: 'true', name: 'a' });
      let resumeFrom = -1;
      for await (const ev of first) {
        if (ev.info.id === a.id && ev.verb === 'add') {
          resumeFrom = ev.id;
          break;
        }
      }
      first.close();
      await client.waitUntilDone(a.id, 10_000);
      const b = await client.submitBatchJob({ executable: 'true', name: 'b' });
      await client.waitUntilDone(b.id, 10_000);
      const second = client.events('', { since: resumeFrom });
      const later: JobEvent[] = [];
      for await (const ev of second) {
        later.push(ev);
        if (ev.info.id === b.id && ev.info.type === 'job' && ev.info.status === 'Success') break;
      }
      second.close();
      const ids = later.map((e) => e.id);
      assert.ok(ids.every((id) => id > resumeFrom), 'only newer events');
      assert.equal(new Set(ids).size, ids.length, 'no event twice');
      assert.deepEqual(later.filter((e) => e.info.id === a.id).map((e) => (e.info as { status: string }).status), ['Running', 'Success']);
      assert.deepEqual(later.filter((e) => e.info.id === b.id).map((e) => e.verb), ['add', 'update', 'update']);
    });
  });

  it('sends remove when a job is deleted', async () => {
    await withServer(async ({ client }) => {
      const job = await client.submitBatchJob({ executable: 'true' });
      await client.waitUntilDone(job.id, 10_000);
      const stream = client.events('');
      await stream.ready;
      const it = stream[Symbol.asyncIterator]();
      await client.deleteJob(job.id);
      // The snapshot comes first (with the job's `add`); then the live `remove`.
      const verbs: string[] = [];
      for (;;) {
        const { value } = await it.next();
        if (value.info.id !== job.id) continue;
        verbs.push(value.verb);
        if (value.verb === 'remove') break;
      }
      assert.deepEqual(verbs, ['add', 'remove']);
      stream.close();
    });
  });
});
