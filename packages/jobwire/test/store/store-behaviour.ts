/**
 * The behaviour every {@link Store} and {@link StreamLog} must show, as test suites that take a
 * harness factory: the embedded store runs them in `embedded-store.test.ts`, and any other
 * implementation (Redis) registers them the same way with its own harness.
 *
 * Nothing here assumes that listeners are called synchronously: live events are awaited with
 * `waitFor`, so an implementation that delivers through a network passes too.
 * @module
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { BadRequestError, ConflictError, JobwireError, NotFoundError, type GroupInfo, type JobInfo, type OutputChunk } from '@jobwire/client';
import type { NewJob, Store, StoredEvent, StreamEvent, StreamLog } from '../../src/store/index.js';
import { sleepUntil } from '../helpers.js';

/** Storage for one test: fresh and empty when made, deleted by `dispose`. */
export interface StoreHarness {
  /** Opens a store on this storage; a second call (after closing the first) is a restart. */
  open(): Promise<Store>;
  /** Deletes the storage. */
  dispose(): Promise<void>;
}

/** Makes a fresh harness; called once per test. */
export type HarnessFactory = () => Promise<StoreHarness>;

/** What a test body receives: the open store, and a way to restart it on the same storage. */
export interface StoreContext {
  readonly store: Store;
  /** Closes the store and opens a new one on the same storage. */
  reopen(): Promise<Store>;
}

/** Runs `body` against a fresh store, then closes it and deletes its storage. */
export async function withStore(make: HarnessFactory, body: (context: StoreContext) => Promise<void>): Promise<void> {
  const harness = await make();
  let store = await harness.open();
  const context: StoreContext = {
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = await harness.open();
      return store;
    },
  };
  try {
    await body(context);
  } finally {
    await store.close();
    await harness.dispose();
  }
}

let clock = Date.UTC(2025, 0, 1);
let counter = 0;

/** A distinct, later ISO timestamp on every call. */
export function nextTime(): string {
  clock += 1000;
  return new Date(clock).toISOString();
}

/** A valid NewJob with a fresh id and a later createdAt, overridden by `fields`. */
export function newJob(fields: Partial<NewJob> = {}): NewJob {
  counter += 1;
  return {
    id: `job-${counter}`,
    owner: 'alice',
    name: 'echo',
    group: '',
    queue: 'multi',
    description: { executable: 'echo', arguments: ['hi'] },
    interactive: false,
    tty: false,
    url: null,
    jobToken: `token-${counter}`,
    createdAt: nextTime(),
    ...fields,
  };
}

function ids(items: Array<{ id: string }>): string[] {
  return items.map((item) => item.id);
}

/** Registers the {@link Store} behaviour tests. */
export function storeBehaviour(name: string, make: HarnessFactory): void {
  describe(`${name}: blobs`, () => {
    it('removeFile removes one file of a folder and leaves the others; a missing one is no error', async () => {
      await withStore(make, async ({ store }) => {
        await store.blobs.write('folder', 'a\nb', [Buffer.from('one')], 1024);
        await store.blobs.write('folder', 'c', [Buffer.from('two')], 1024);
        await store.blobs.removeFile('folder', 'a\nb');
        assert.equal(await store.blobs.read('folder', 'a\nb'), undefined);
        assert.equal((await store.blobs.read('folder', 'c'))?.toString(), 'two');
        assert.deepEqual((await store.blobs.list('folder')).map((e) => e.name), ['c']);
        await store.blobs.removeFile('folder', 'a\nb');
        await store.blobs.removeFile('nowhere', 'x');
      });
    });
  });

  describe(`${name}: jobs`, () => {
    it('creates a Queued job and reads it back with its description', async () => {
      await withStore(make, async ({ store }) => {
        const input = newJob({ group: 'g', url: 'http://x', interactive: true, tty: true });
        const created = await store.createJob(input);
        assert.equal(created.status, 'Queued');
        assert.equal(created.type, 'job');
        assert.deepEqual(created.description, input.description);
        assert.equal(created.jobToken, input.jobToken);
        assert.equal(created.pid, null);
        assert.equal(created.interactive, true);
        assert.equal(created.tty, true);
        assert.equal(created.url, 'http://x');
        assert.equal(created.result, null);
        assert.deepEqual(await store.getJob(input.id), created);
        assert.deepEqual(await store.getJob(input.id, 'alice'), created);
        assert.equal(await store.getJob('job-none'), undefined);
      });
    });

    it('refuses a second job with the same id and changes nothing', async () => {
      await withStore(make, async ({ store }) => {
        const input = newJob();
        await store.createJob(input);
        const before = await store.lastEventId();
        await assert.rejects(store.createJob({ ...input, name: 'other' }), ConflictError);
        assert.equal(await store.lastEventId(), before);
        assert.equal((await store.getJob(input.id))?.name, 'echo');
      });
    });

    it('lists jobs oldest first, page by page, ties broken by id', async () => {
      await withStore(make, async ({ store }) => {
        const created = [(await store.createJob(newJob())).id];
        const same = nextTime();
        for (const fields of [{ id: 'tie-b', createdAt: same }, { id: 'tie-a', createdAt: same }, {}, {}, {}, {}]) {
          created.push((await store.createJob(newJob(fields))).id);
        }
        const expected = [created[0], 'tie-a', 'tie-b', ...created.slice(3)];
        const seen: string[] = [];
        const pages: number[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.listJobs({ owner: 'alice', limit: 3, ...(cursor === undefined ? {} : { cursor }) });
          pages.push(page.items.length);
          seen.push(...ids(page.items));
          cursor = page.next;
        } while (cursor !== undefined);
        assert.deepEqual(seen, expected);
        assert.deepEqual(pages, [3, 3, 1]);
        const whole = await store.listJobs({ owner: 'alice', limit: 7 });
        assert.equal(whole.next, undefined, 'an exactly full last page has no next');
      });
    });

    it('lists what others may see: no description, token or pid', async () => {
      await withStore(make, async ({ store }) => {
        await store.createJob(newJob());
        const [item] = (await store.listJobs({ owner: 'alice', limit: 10 })).items;
        assert.ok(item);
        assert.equal('description' in item, false);
        assert.equal('jobToken' in item, false);
        assert.equal('pid' in item, false);
        assert.equal('process' in item, false);
      });
    });

    it('filters listings by status, name and group subtree', async () => {
      await withStore(make, async ({ store }) => {
        const inA = await store.createJob(newJob({ group: 'a', name: 'x' }));
        const inAB = await store.createJob(newJob({ group: 'a:b', name: 'y' }));
        const inAb = await store.createJob(newJob({ group: 'ab', name: 'x' }));
        const atRoot = await store.createJob(newJob({ name: 'x' }));
        // LIKE wildcards in a path are plain characters.
        const inPct = await store.createJob(newJob({ group: 'p%' }));
        const inPq = await store.createJob(newJob({ group: 'pq' }));
        await store.markRunning(inAB.id, { startedAt: nextTime(), pid: 1, node: 'n' });
        await store.finishJob(atRoot.id, { status: 'Failed', exitCode: 1, endedAt: nextTime() });
        const list = async (query: { group?: string; status?: JobInfo['status'][]; name?: string }) =>
          ids((await store.listJobs({ owner: 'alice', limit: 100, ...query })).items);

        assert.deepEqual(await list({ group: 'a' }), [inA.id, inAB.id]);
        assert.deepEqual(await list({ group: 'a:b' }), [inAB.id]);
        assert.deepEqual(await list({ group: 'p%' }), [inPct.id]);
        assert.deepEqual(await list({ group: '' }), ids([inA, inAB, inAb, atRoot, inPct, inPq]), "'' is the whole tree");
        assert.deepEqual(await list({ status: ['Running', 'Failed'] }), [inAB.id, atRoot.id]);
        assert.deepEqual(await list({ status: ['Queued'], name: 'x' }), [inA.id, inAb.id]);
        assert.deepEqual(await list({ name: 'x', group: 'a' }), [inA.id]);
        assert.deepEqual(await list({ name: 'nobody' }), []);
      });
    });

    it('refuses a malformed cursor or limit', async () => {
      await withStore(make, async ({ store }) => {
        await assert.rejects(store.listJobs({ owner: 'alice', limit: 10, cursor: 'not a cursor' }), BadRequestError);
        await assert.rejects(store.listJobs({ owner: 'alice', limit: 0 }), BadRequestError);
        await assert.rejects(store.readEvents('alice', '', 0, -1), BadRequestError);
      });
    });

    it("keeps owners apart: another owner's job is missing, unlisted and silent", async () => {
      await withStore(make, async ({ store }) => {
        const alices = await store.createJob(newJob({ owner: 'alice', group: 'shared:path' }));
        const bobs = await store.createJob(newJob({ owner: 'bob', group: 'shared:path' }));
        assert.equal(await store.getJob(alices.id, 'bob'), undefined);
        assert.equal((await store.getJob(bobs.id, 'bob'))?.owner, 'bob');
        assert.deepEqual(ids((await store.listJobs({ owner: 'bob', limit: 10 })).items), [bobs.id]);
        assert.deepEqual(ids((await store.listJobs({ owner: 'carol', limit: 10 })).items), []);
        const bobsEvents = await store.readEvents('bob', '', 0, 100);
        assert.ok(bobsEvents.length > 0);
        assert.ok(bobsEvents.every((event) => event.info.owner === 'bob'));
        assert.deepEqual(await store.readEvents('carol', '', 0, 100), []);
        // The same path is a separate group for each owner.
        const groups = await store.listGroups('bob');
        assert.deepEqual(groups.map((g) => [g.path, g.owner]), [['shared', 'bob'], ['shared:path', 'bob']]);
        assert.deepEqual(await store.listGroups('carol'), []);
      });
    });

    it('starts only Queued jobs', async () => {
      await withStore(make, async ({ store }) => {
        const job = await store.createJob(newJob());
        await store.setReason(job.id, 'waiting for a slot');
        const startedAt = nextTime();
        const running = await store.markRunning(job.id, { startedAt, pid: 4242, node: 'here' });
        assert.equal(running?.status, 'Running');
        assert.equal(running?.startedAt, startedAt);
        assert.equal(running?.pid, 4242);
        assert.equal(running?.node, 'here');
        assert.equal(running?.reason, null, 'a started job no longer waits');
        assert.equal(running?.process, null, 'no process identity unless given');
        assert.equal(await store.markRunning(job.id, { startedAt, pid: 1, node: null }), undefined);

        const cancelled = await store.createJob(newJob());
        await store.finishJob(cancelled.id, { status: 'Cancelled', endedAt: nextTime() });
        assert.equal(await store.markRunning(cancelled.id, { startedAt, pid: 1, node: null }), undefined);
        assert.equal((await store.getJob(cancelled.id))?.status, 'Cancelled');
        assert.equal(await store.markRunning('job-none', { startedAt, pid: 1, node: null }), undefined);
      });
    });

    it('finishes a job only once, keeping the first outcome', async () => {
      await withStore(make, async ({ store }) => {
        const job = await store.createJob(newJob());
        await store.markRunning(job.id, { startedAt: nextTime(), pid: 7, node: null });
        const endedAt = nextTime();
        const result = { rows: [1, 2, 3], nested: { ok: true, text: 'é' } };
        const done = await store.finishJob(job.id, { status: 'Success', exitCode: 0, result, endedAt });
        assert.equal(done?.status, 'Success');
        assert.equal(done?.exitCode, 0);
        assert.equal(done?.signal, null);
        assert.equal(done?.endedAt, endedAt);
        assert.deepEqual(done?.result, result);
        const events = await store.lastEventId();
        assert.equal(await store.finishJob(job.id, { status: 'Cancelled', signal: 'SIGTERM', endedAt: nextTime() }), undefined);
        assert.equal(await store.lastEventId(), events, 'a refused finish appends no event');
        const stored = await store.getJob(job.id);
        assert.equal(stored?.status, 'Success');
        assert.deepEqual(stored?.result, result);

        const killed = await store.createJob(newJob());
        const lost = await store.finishJob(killed.id, { status: 'Failed', signal: 'SIGKILL', error: 'killed', endedAt });
        assert.equal(lost?.exitCode, null);
        assert.equal(lost?.signal, 'SIGKILL');
        assert.equal(lost?.error, 'killed');
        assert.equal(lost?.result, null, 'no result is stored as null');
      });
    });

    it('keeps the latest executor state of a job, for a restart to find it again', async () => {
      await withStore(make, async ({ store }) => {
        const job = await store.createJob(newJob());
        assert.equal(await store.executorState(job.id), undefined);
        await store.markRunning(job.id, { startedAt: nextTime(), pid: null, node: null });
        await store.setExecutorState(job.id, { kind: 'job-host', n: 1 });
        await store.setExecutorState(job.id, { kind: 'job-host', n: 2 });
        assert.deepEqual(await store.executorState(job.id), { kind: 'job-host', n: 2 });
      });
    });

    it('sets progress until the job is final, and a reason while Queued or Running (held back), not after', async () => {
      await withStore(make, async ({ store }) => {
        const job = await store.createJob(newJob());
        assert.equal((await store.setReason(job.id, 'queue full'))?.reason, 'queue full');
        const before = await store.lastEventId();
        assert.equal((await store.setReason(job.id, 'queue full'))?.reason, 'queue full');
        assert.equal(await store.lastEventId(), before, 'restating the same reason appends no event');
        assert.equal((await store.setProgress(job.id, '10%'))?.progress, '10%');
        await store.markRunning(job.id, { startedAt: nextTime(), pid: null, node: null });
        assert.equal((await store.setReason(job.id, 'disk full'))?.reason, 'disk full', 'a Running job may be held back');
        assert.equal((await store.setReason(job.id, null))?.reason, null);
        assert.equal((await store.setProgress(job.id, '50%'))?.progress, '50%');
        await store.finishJob(job.id, { status: 'Success', exitCode: 0, endedAt: nextTime() });
        assert.equal(await store.setReason(job.id, 'late'), undefined, 'no reason once final');
        assert.equal(await store.setProgress(job.id, '99%'), undefined);
        assert.equal((await store.getJob(job.id))?.progress, '50%');
      });
    });

    it('hands out Queued jobs per queue oldest first, and counts them', async () => {
      await withStore(make, async ({ store }) => {
        const a1 = await store.createJob(newJob({ queue: 'single' }));
        const b1 = await store.createJob(newJob({ queue: 'multi' }));
        const a2 = await store.createJob(newJob({ queue: 'single' }));
        const a3 = await store.createJob(newJob({ queue: 'single' }));
        await store.markRunning(a1.id, { startedAt: nextTime(), pid: null, node: null });
        assert.deepEqual(ids(await store.queuedJobs('single', 10)), [a2.id, a3.id]);
        assert.deepEqual(ids(await store.queuedJobs('single', 1)), [a2.id]);
        assert.deepEqual(ids(await store.queuedJobs('multi', 10)), [b1.id]);
        assert.deepEqual(await store.queuedJobs('none', 10), []);
        const counts = await store.queueCounts();
        assert.deepEqual(counts.get('single'), { running: 1, queued: 2 });
        assert.deepEqual(counts.get('multi'), { running: 0, queued: 1 });
        await store.finishJob(b1.id, { status: 'Cancelled', endedAt: nextTime() });
        assert.equal((await store.queueCounts()).get('multi'), undefined, 'a queue with nothing active is not listed');
      });
    });

    it('deletes only finished jobs, with their streams', async () => {
      await withStore(make, async ({ store }) => {
        const job = await store.createJob(newJob());
        await store.streams.appendOutput(job.id, 'stdout', Buffer.from('bye'));
        await assert.rejects(store.deleteJob(job.id), ConflictError);
        await assert.rejects(store.deleteJob('job-none'), NotFoundError);
        await store.finishJob(job.id, { status: 'Success', exitCode: 0, endedAt: nextTime() });
        await store.streams.closeOutput(job.id);
        await store.deleteJob(job.id);
        assert.equal(await store.getJob(job.id), undefined);
        const [last] = (await store.readEvents('alice', '', (await store.lastEventId()) - 1, 10)).slice(-1);
        assert.equal(last?.verb, 'remove');
        assert.equal(last?.info.id, job.id);
        const sizes = await store.streams.sizes(job.id);
        assert.equal(sizes.end, 0);
        assert.equal(sizes.outputClosed, false);
        assert.deepEqual((await store.streams.readOutput(job.id, 0, 1000)).chunks, []);
      });
    });

    it('keeps the process identity of a Running job, out of its events, until it ends', async () => {
      await withStore(make, async ({ store }) => {
        const job = await store.createJob(newJob());
        const events: StoredEvent[] = [];
        store.onEvent((event) => events.push(event));
        const identity = (pid: number) => ({ pid, startTicks: 123456, bootId: 'b00t' });
        const process = { leader: identity(4242), runner: identity(77) };
        const running = await store.markRunning(job.id, { startedAt: nextTime(), pid: 4242, node: 'here', process });
        assert.deepEqual(running?.process, process);
        assert.deepEqual((await store.getJob(job.id))?.process, process);
        assert.deepEqual((await store.runningJobs('here')).map((j) => [j.id, j.process]), [[job.id, process]]);
        assert.deepEqual(await store.runningJobs('elsewhere'), []);
        const finished = await store.finishJob(job.id, { status: 'Success', exitCode: 0, endedAt: nextTime() });
        assert.equal(finished?.process, null, 'a finished job has no processes');
        assert.deepEqual(await store.runningJobs(), []);
        await sleepUntil(() => events.length === 2, 2000, 'events.length === 2');
        for (const event of events) assert.equal('process' in event.info, false, 'server-only');
      });
    });

    it('marks Running jobs Lost and closes their output', async () => {
      await withStore(make, async ({ store }) => {
        const here = await store.createJob(newJob());
        const there = await store.createJob(newJob());
        const queued = await store.createJob(newJob());
        await store.markRunning(here.id, { startedAt: nextTime(), pid: 10, node: 'here' });
        await store.markRunning(there.id, { startedAt: nextTime(), pid: 11, node: 'there' });
        await store.streams.appendOutput(here.id, 'stdout', Buffer.from('partial'));
        const events: StoredEvent[] = [];
        store.onEvent((event) => events.push(event));

        assert.deepEqual(ids(await store.runningJobs()), [here.id, there.id]);
        const lostThere = await store.loseRunningJobs((job) => `worker ${job.node} died`, 'there');
        assert.deepEqual(ids(lostThere), [there.id]);
        assert.equal(lostThere[0]?.error, 'worker there died');

        const lost = await store.loseRunningJobs('server restarted');
        assert.deepEqual(ids(lost), [here.id]);
        const record = await store.getJob(here.id);
        assert.equal(record?.status, 'Lost');
        assert.equal(record?.error, 'server restarted');
        assert.ok(record?.endedAt);
        assert.equal((await store.getJob(queued.id))?.status, 'Queued');
        const sizes = await store.streams.sizes(here.id);
        assert.equal(sizes.outputClosed, true);
        assert.equal(sizes.end, 7);
        assert.equal((await store.streams.sizes(there.id)).outputClosed, true);
        await sleepUntil(() => events.length === 2, 2000, 'events.length === 2');
        assert.deepEqual(
          events.map((e) => [e.verb, e.info.id, (e.info as JobInfo).status]),
          [
            ['update', there.id, 'Lost'],
            ['update', here.id, 'Lost'],
          ],
        );
        assert.deepEqual(await store.loseRunningJobs('again'), []);
      });
    });
  });

  describe(`${name}: groups and events`, () => {
    it("creates the groups along a job's path, each announced before the job", async () => {
      await withStore(make, async ({ store }) => {
        const job = await store.createJob(newJob({ group: 'a:b:c' }));
        const events = await store.readEvents('alice', '', 0, 100);
        assert.deepEqual(
          events.map((e) => [e.verb, e.info.type, e.info.id]),
          [
            ['add', 'group', 'group:a'],
            ['add', 'group', 'group:a:b'],
            ['add', 'group', 'group:a:b:c'],
            ['add', 'job', job.id],
          ],
        );
        assert.ok(events.every((e, i) => i === 0 || e.id > events[i - 1]!.id), 'ids increase');
        const deepest = events[2]!.info as GroupInfo;
        assert.deepEqual(deepest, { id: 'group:a:b:c', type: 'group', name: 'c', path: 'a:b:c', parent: 'a:b', owner: 'alice', createdAt: job.createdAt });
        assert.equal((events[0]!.info as GroupInfo).parent, null);

        const second = await store.createJob(newJob({ group: 'a:b:c' }));
        const more = await store.readEvents('alice', '', events[3]!.id, 100);
        assert.deepEqual(more.map((e) => [e.verb, e.info.id]), [['add', second.id]], 'existing groups are not added again');
      });
    });

    it('lists groups under a path, oldest first', async () => {
      await withStore(make, async ({ store }) => {
        await store.createJob(newJob({ group: 'a:b' }));
        await store.createJob(newJob({ group: 'ab' }));
        await store.createJob(newJob({ group: 'a:c' }));
        assert.deepEqual((await store.listGroups('alice')).map((g) => g.path), ['a', 'a:b', 'ab', 'a:c']);
        assert.deepEqual((await store.listGroups('alice', 'a')).map((g) => g.path), ['a', 'a:b', 'a:c']);
        assert.deepEqual((await store.listGroups('alice', 'a:b')).map((g) => g.path), ['a:b']);
        assert.deepEqual(await store.listGroups('alice', 'zzz'), []);
      });
    });

    it('refuses a group path with an empty name, changing nothing', async () => {
      await withStore(make, async ({ store }) => {
        await assert.rejects(store.createJob(newJob({ group: 'a::b' })), BadRequestError);
        await assert.rejects(store.createJob(newJob({ group: ':a' })), BadRequestError);
        assert.equal(await store.lastEventId(), 0);
        assert.deepEqual(await store.listGroups('alice'), []);
      });
    });

    it('replays events after an id, filtered to a subtree', async () => {
      await withStore(make, async ({ store }) => {
        assert.equal(await store.lastEventId(), 0);
        const inA = await store.createJob(newJob({ group: 'a' }));
        const mark = await store.lastEventId();
        const inAB = await store.createJob(newJob({ group: 'a:b' }));
        const inAb = await store.createJob(newJob({ group: 'ab' }));
        await store.markRunning(inA.id, { startedAt: nextTime(), pid: null, node: null });
        await store.setProgress(inAB.id, 'half');

        const all = await store.readEvents('alice', '', mark, 100);
        assert.deepEqual(
          all.map((e) => [e.verb, e.info.id]),
          [
            ['add', 'group:a:b'],
            ['add', inAB.id],
            ['add', 'group:ab'],
            ['add', inAb.id],
            ['update', inA.id],
            ['update', inAB.id],
          ],
        );
        assert.equal(all[all.length - 1]!.id, await store.lastEventId());
        assert.equal((all[5]!.info as JobInfo).progress, 'half');

        const underA = await store.readEvents('alice', 'a', 0, 100);
        assert.deepEqual(
          underA.map((e) => [e.verb, e.info.id]),
          [
            ['add', 'group:a'],
            ['add', inA.id],
            ['add', 'group:a:b'],
            ['add', inAB.id],
            ['update', inA.id],
            ['update', inAB.id],
          ],
        );
        const page = await store.readEvents('alice', 'a', 0, 2);
        assert.deepEqual(page, underA.slice(0, 2));
        assert.deepEqual(await store.readEvents('alice', 'a', page[1]!.id, 100), underA.slice(2));
        assert.deepEqual(await store.readEvents('alice', '', await store.lastEventId(), 100), []);
      });
    });

    it('announces every change to live listeners, in order, with owner and group', async () => {
      await withStore(make, async ({ store }) => {
        const events: StoredEvent[] = [];
        const stop = store.onEvent((event) => events.push(event));
        const job = await store.createJob(newJob({ group: 'g', owner: 'bob' }));
        await store.markRunning(job.id, { startedAt: nextTime(), pid: null, node: null });
        await store.finishJob(job.id, { status: 'Success', exitCode: 0, endedAt: nextTime() });
        await store.deleteJob(job.id);
        await sleepUntil(() => events.length === 5, 2000, 'events.length === 5');
        assert.deepEqual(
          events.map((e) => [e.verb, e.info.id, e.owner, e.group]),
          [
            ['add', 'group:g', 'bob', 'g'],
            ['add', job.id, 'bob', 'g'],
            ['update', job.id, 'bob', 'g'],
            ['update', job.id, 'bob', 'g'],
            ['remove', job.id, 'bob', 'g'],
          ],
        );
        assert.deepEqual(await store.readEvents('bob', '', 0, 100), events.map(({ id, verb, info }) => ({ id, verb, info })));
        stop();
        await store.createJob(newJob());
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(events.length, 5, 'no events after unsubscribing');
      });
    });

    it('keeps going when a listener throws', async () => {
      await withStore(make, async ({ store }) => {
        const seen: number[] = [];
        store.onEvent(() => {
          throw new Error('listener bug');
        });
        store.onEvent((event) => seen.push(event.id));
        const job = await store.createJob(newJob());
        assert.equal((await store.getJob(job.id))?.status, 'Queued');
        await sleepUntil(() => seen.length === 1, 2000, 'seen.length === 1');
      });
    });
  });

  describe(`${name}: restart`, () => {
    it('keeps jobs, groups, events and streams across a restart', async () => {
      await withStore(make, async (context) => {
        let store = context.store;
        const job = await store.createJob(newJob({ group: 'keep:me', interactive: true }));
        await store.markRunning(job.id, { startedAt: nextTime(), pid: 99, node: null });
        await store.finishJob(job.id, { status: 'Success', exitCode: 0, result: [1, 'two'], endedAt: nextTime() });
        await store.streams.appendOutput(job.id, 'stdout', Buffer.from('out'));
        await store.streams.appendOutput(job.id, 'stderr', Buffer.from('err'));
        await store.streams.appendStdin(job.id, 0, Buffer.from('in'));
        await store.streams.closeStdin(job.id);
        await store.streams.closeOutput(job.id);
        const record = await store.getJob(job.id);
        const events = await store.readEvents('alice', '', 0, 100);
        const groups = await store.listGroups('alice');
        const output = await store.streams.readOutput(job.id, 0, 1000);

        store = await context.reopen();
        assert.deepEqual(await store.getJob(job.id), record);
        assert.deepEqual(await store.readEvents('alice', '', 0, 100), events);
        assert.equal(await store.lastEventId(), events[events.length - 1]!.id);
        assert.deepEqual(await store.listGroups('alice'), groups);
        assert.deepEqual(await store.streams.readOutput(job.id, 0, 1000), output);
        assert.deepEqual(await store.streams.sizes(job.id), {
          end: 6,
          stdout: 3,
          stderr: 3,
          stdin: 2,
          stdinClosed: true,
          stdinConsumed: 0,
          outputClosed: true,
        });
        const next = await store.createJob(newJob());
        const [added] = await store.readEvents('alice', '', events[events.length - 1]!.id, 100);
        assert.equal(added?.info.id, next.id, 'event ids keep increasing after a restart');
      });
    });

    it('finds jobs left Running by a crash and marks them Lost after the restart', async () => {
      await withStore(make, async (context) => {
        let store = context.store;
        const job = await store.createJob(newJob());
        await store.markRunning(job.id, { startedAt: nextTime(), pid: 5, node: null });
        await store.streams.appendOutput(job.id, 'stdout', Buffer.from('before the crash'));
        store = await context.reopen();
        const lost = await store.loseRunningJobs('the server restarted');
        assert.deepEqual(ids(lost), [job.id]);
        assert.equal(lost[0]?.status, 'Lost');
        const read = await store.streams.readOutput(job.id, 0, 1000);
        assert.equal(read.closed, true);
        assert.equal(Buffer.concat(read.chunks.map((c) => c.data)).toString(), 'before the crash');
      });
    });
  });

  describe(`${name}: closing`, () => {
    it('answers calls after close with an error, not a crash', async () => {
      await withStore(make, async ({ store }) => {
        await store.close();
        await assert.rejects(store.getJob('x'), JobwireError);
        await assert.rejects(store.createJob(newJob()), JobwireError);
        await assert.rejects(store.streams.appendOutput('x', 'stdout', Buffer.from('x')), JobwireError);
      });
    });
  });
}

/** Appends `parts` as output chunks, returning what the log answered. */
async function appendAll(streams: StreamLog, jobId: string, parts: Array<[OutputChunk['channel'], string | Uint8Array]>): Promise<OutputChunk[]> {
  const chunks: OutputChunk[] = [];
  for (const [channel, data] of parts) {
    chunks.push(await streams.appendOutput(jobId, channel, typeof data === 'string' ? Buffer.from(data) : data));
  }
  return chunks;
}

/** Reads all merged output from `from` in pages of `maxBytes`, checking that pages join up. */
async function readAllOutput(streams: StreamLog, jobId: string, from: number, maxBytes: number): Promise<OutputChunk[]> {
  const chunks: OutputChunk[] = [];
  let at = from;
  for (;;) {
    const page = await streams.readOutput(jobId, at, maxBytes);
    if (page.chunks.length === 0) {
      assert.ok(at >= page.end);
      return chunks;
    }
    for (const chunk of page.chunks) {
      assert.equal(chunk.pos, at, 'pages and chunks join without gap or overlap');
      at += chunk.data.byteLength;
      chunks.push(chunk);
    }
  }
}

/** Joins the bytes of one channel from merged chunks, checking each chunk's channel offset. */
function channelBytes(chunks: OutputChunk[], channel: OutputChunk['channel'], startOffset = 0): Buffer {
  const parts: Uint8Array[] = [];
  let offset = startOffset;
  for (const chunk of chunks) {
    if (chunk.channel !== channel) continue;
    assert.equal(chunk.offset, offset, `${channel} offsets are contiguous`);
    offset += chunk.data.byteLength;
    parts.push(chunk.data);
  }
  return Buffer.concat(parts);
}

function text(data: Uint8Array): string {
  return Buffer.from(data).toString();
}

/** Registers the {@link StreamLog} behaviour tests (run through `store.streams`). */
export function streamLogBehaviour(name: string, make: HarnessFactory): void {
  describe(`${name}: output`, () => {
    it('reports zero sizes for a job with no streams', async () => {
      await withStore(make, async ({ store }) => {
        assert.deepEqual(await store.streams.sizes('job-none'), {
          end: 0,
          stdout: 0,
          stderr: 0,
          stdin: 0,
          stdinClosed: false,
          stdinConsumed: 0,
          outputClosed: false,
        });
        assert.deepEqual(await store.streams.readOutput('job-none', 0, 100), { chunks: [], end: 0, closed: false });
        assert.equal((await store.streams.readChannel('job-none', 'stdout', 0)).byteLength, 0);
        const stdin = await store.streams.readStdin('job-none', 0, 100);
        assert.equal(stdin.data.byteLength, 0);
        assert.equal(stdin.end, 0);
      });
    });

    it('keeps stdout and stderr in arrival order, each chunk with its pos and offset', async () => {
      await withStore(make, async ({ store }) => {
        const appended = await appendAll(store.streams, 'j', [
          ['stdout', 'one '],
          ['stderr', 'ERR1 '],
          ['stdout', 'two '],
          ['stdout', 'three '],
          ['stderr', 'ERR2'],
        ]);
        assert.deepEqual(
          appended.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
          [
            ['stdout', 0, 0, 'one '],
            ['stderr', 4, 0, 'ERR1 '],
            ['stdout', 9, 4, 'two '],
            ['stdout', 13, 8, 'three '],
            ['stderr', 19, 5, 'ERR2'],
          ],
        );
        const read = await store.streams.readOutput('j', 0, 1 << 20);
        assert.equal(read.end, 23);
        assert.equal(read.closed, false);
        assert.deepEqual(
          read.chunks.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
          appended.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
        );
        assert.equal(text(await store.streams.readChannel('j', 'stdout', 0)), 'one two three ');
        assert.equal(text(await store.streams.readChannel('j', 'stderr', 0)), 'ERR1 ERR2');
        assert.equal(text(await store.streams.readChannel('j', 'stdout', 2, 10)), 'e two th');
        assert.equal(text(await store.streams.readChannel('j', 'stderr', 3, 1000)), '1 ERR2', 'to is clipped to the size');
        assert.equal((await store.streams.readChannel('j', 'stderr', 50)).byteLength, 0);
        const sizes = await store.streams.sizes('j');
        assert.deepEqual([sizes.end, sizes.stdout, sizes.stderr], [23, 14, 9]);
      });
    });

    it('reads from the middle of a chunk, cutting only the first', async () => {
      await withStore(make, async ({ store }) => {
        await appendAll(store.streams, 'j', [
          ['stdout', 'abcdef'],
          ['stderr', 'ghij'],
          ['stdout', 'klm'],
        ]);
        const read = await store.streams.readOutput('j', 8, 1000);
        assert.deepEqual(
          read.chunks.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
          [
            ['stderr', 8, 2, 'ij'],
            ['stdout', 10, 6, 'klm'],
          ],
        );
        const first = await store.streams.readOutput('j', 3, 1000);
        assert.deepEqual(first.chunks[0] && [first.chunks[0].pos, first.chunks[0].offset, text(first.chunks[0].data)], [3, 3, 'def']);
      });
    });

    it('pages whole chunks of about maxBytes, at least one', async () => {
      await withStore(make, async ({ store }) => {
        await appendAll(store.streams, 'j', [
          ['stdout', '0123456789'],
          ['stdout', '0123456789'],
          ['stderr', '0123456789'],
          ['stdout', '0123456789'],
        ]);
        const page = await store.streams.readOutput('j', 0, 25);
        assert.deepEqual(page.chunks.map((c) => c.data.byteLength), [10, 10]);
        const tiny = await store.streams.readOutput('j', 5, 1);
        assert.deepEqual(tiny.chunks.map((c) => [c.pos, c.data.byteLength]), [[5, 5]], 'one chunk even over maxBytes');
        const all = await readAllOutput(store.streams, 'j', 0, 15);
        assert.equal(all.length, 4);
      });
    });

    it('gives no chunks from the end or past it', async () => {
      await withStore(make, async ({ store }) => {
        await appendAll(store.streams, 'j', [['stdout', 'abc']]);
        assert.deepEqual(await store.streams.readOutput('j', 3, 100), { chunks: [], end: 3, closed: false });
        assert.deepEqual(await store.streams.readOutput('j', 1000, 100), { chunks: [], end: 3, closed: false });
      });
    });

    it('refuses negative or fractional positions', async () => {
      await withStore(make, async ({ store }) => {
        await assert.rejects(store.streams.readOutput('j', -1, 100), BadRequestError);
        await assert.rejects(store.streams.readChannel('j', 'stdout', 1.5), BadRequestError);
        await assert.rejects(store.streams.appendStdin('j', -3, Buffer.from('x')), BadRequestError);
        await assert.rejects(store.streams.appendOutput('j', 'stdlog' as 'stdout', Buffer.from('x')), BadRequestError);
      });
    });

    it('is binary-safe: every byte value comes back as written', async () => {
      await withStore(make, async ({ store }) => {
        const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
        await store.streams.appendOutput('j', 'stderr', bytes);
        await store.streams.appendStdin('j', 0, bytes);
        assert.deepEqual(Buffer.from((await store.streams.readOutput('j', 0, 10_000)).chunks[0]!.data), bytes);
        assert.deepEqual(Buffer.from(await store.streams.readChannel('j', 'stderr', 0)), bytes);
        assert.deepEqual(Buffer.from((await store.streams.readStdin('j', 0, 10_000)).data), bytes);
      });
    });

    it('keeps its own copy of appended bytes', async () => {
      await withStore(make, async ({ store }) => {
        const buffer = Buffer.from('original');
        await store.streams.appendOutput('j', 'stdout', buffer);
        buffer.fill(0);
        assert.equal(text((await store.streams.readOutput('j', 0, 100)).chunks[0]!.data), 'original');
      });
    });

    it('applies appends in call order without awaiting each', async () => {
      await withStore(make, async ({ store }) => {
        const calls = Array.from({ length: 200 }, (_, i) =>
          store.streams.appendOutput('j', i % 3 === 0 ? 'stderr' : 'stdout', Buffer.from(`${i};`)),
        );
        const chunks = await Promise.all(calls);
        let pos = 0;
        for (const [i, chunk] of chunks.entries()) {
          assert.equal(chunk.pos, pos);
          assert.equal(text(chunk.data), `${i};`);
          pos += chunk.data.byteLength;
        }
        const read = await readAllOutput(store.streams, 'j', 0, 64);
        assert.deepEqual(read.map((c) => text(c.data)), chunks.map((c) => text(c.data)));
      });
    });

    it('reads 8 MiB back identical, paged and per channel', async () => {
      await withStore(make, async ({ store }) => {
        const chunkSize = 64 * 1024;
        const total = 8 * 1024 * 1024;
        const data = randomBytes(total);
        const channels = randomBytes(total / chunkSize);
        const expected = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
        for (let i = 0; i < total / chunkSize; i++) {
          const channel = channels[i]! & 1 ? 'stderr' : 'stdout';
          const part = data.subarray(i * chunkSize, (i + 1) * chunkSize);
          expected[channel].push(part);
          await store.streams.appendOutput('big', channel, part);
        }
        const stdout = Buffer.concat(expected.stdout);
        const stderr = Buffer.concat(expected.stderr);

        const all = await readAllOutput(store.streams, 'big', 0, 256 * 1024);
        assert.ok(Buffer.concat(all.map((c) => c.data)).equals(data), 'merged output is the bytes in arrival order');
        assert.ok(channelBytes(all, 'stdout').equals(stdout));
        assert.ok(channelBytes(all, 'stderr').equals(stderr));

        // From the middle of a chunk, with odd page sizes.
        const from = 3 * 1024 * 1024 + 12_345;
        const rest = await readAllOutput(store.streams, 'big', from, 100_000);
        assert.ok(Buffer.concat(rest.map((c) => c.data)).equals(data.subarray(from)));
        const firstOut = rest.find((c) => c.channel === 'stdout')!;
        assert.ok(channelBytes(rest, 'stdout', firstOut.offset).equals(stdout.subarray(firstOut.offset)));

        assert.ok(Buffer.from(await store.streams.readChannel('big', 'stdout', 0)).equals(stdout));
        assert.ok(Buffer.from(await store.streams.readChannel('big', 'stderr', 0)).equals(stderr));
        const [a, b] = [chunkSize - 7, 5 * chunkSize + 3];
        assert.ok(Buffer.from(await store.streams.readChannel('big', 'stderr', a, b)).equals(stderr.subarray(a, b)));

        // Near the end (where a recent-output cache would serve it) and after closing.
        const near = await readAllOutput(store.streams, 'big', total - 100_000, 30_000);
        assert.ok(Buffer.concat(near.map((c) => c.data)).equals(data.subarray(total - 100_000)));
        await store.streams.closeOutput('big');
        const closed = await readAllOutput(store.streams, 'big', total - 100_000, 30_000);
        assert.deepEqual(closed, near);
      });
    });

    it('streams a byte range of one channel in chunks of at most chunkBytes, identical to the bytes written', async () => {
      await withStore(make, async ({ store }) => {
        const data = randomBytes(1024 * 1024 + 777);
        const expected = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
        for (let at = 0, i = 0; at < data.byteLength; i++) {
          const part = data.subarray(at, at + 50_000 + (i % 7) * 3001);
          const channel = i % 3 === 1 ? 'stderr' : 'stdout';
          expected[channel].push(part);
          await store.streams.appendOutput('j', channel, part);
          at += part.byteLength;
        }
        const stdout = Buffer.concat(expected.stdout);
        const stderr = Buffer.concat(expected.stderr);
        const chunked = async (channel: 'stdout' | 'stderr', from: number, to: number | undefined, chunkBytes?: number): Promise<Buffer[]> => {
          const chunks: Buffer[] = [];
          for await (const chunk of store.streams.readChannelChunks('j', channel, from, to, chunkBytes === undefined ? {} : { chunkBytes })) chunks.push(Buffer.from(chunk));
          return chunks;
        };
        const all = await chunked('stdout', 0, undefined, 100_000);
        assert.ok(all.every((c) => c.byteLength > 0 && c.byteLength <= 100_000), `chunk sizes ${all.map((c) => c.byteLength).join(', ')}`);
        assert.ok(Buffer.concat(all).equals(stdout));
        assert.ok(Buffer.concat(await chunked('stderr', 0, undefined)).equals(stderr), 'default chunk size');
        const [a, b] = [49_999, stderr.byteLength - 12_345];
        const middle = await chunked('stderr', a, b, 65_536);
        assert.ok(Buffer.concat(middle).equals(stderr.subarray(a, b)), 'a range across chunk boundaries');
        assert.ok(Buffer.concat(await chunked('stdout', 10, stdout.byteLength + 5000, 99_999)).equals(stdout.subarray(10)), '"to" is clipped to the size');
        const odd = await chunked('stdout', 49_990, 50_061, 7);
        assert.deepEqual(odd.map((c) => c.byteLength), [...Array(10).fill(7), 1]);
        assert.ok(Buffer.concat(odd).equals(stdout.subarray(49_990, 50_061)));
        assert.deepEqual(await chunked('stdout', stdout.byteLength, undefined), [], 'nothing from the end');
        assert.deepEqual(await chunked('stdout', stdout.byteLength + 1, undefined), [], 'nothing past the end');
        assert.deepEqual(await chunked('stdout', 5, 5), [], 'nothing from an empty range');
        for await (const chunk of store.streams.readChannelChunks('job-none', 'stdout', 0)) assert.fail(`a job with no output gave ${chunk.byteLength} bytes`);
      });
    });

    it('reads the size that clips a chunked read when the first chunk is asked for, not before', async () => {
      await withStore(make, async ({ store }) => {
        await store.streams.appendOutput('j', 'stdout', Buffer.from('0123456789'));
        const iterator = store.streams.readChannelChunks('j', 'stdout', 0, undefined, { chunkBytes: 4 })[Symbol.asyncIterator]();
        await store.streams.appendOutput('j', 'stdout', Buffer.from('abcdef'));
        const chunks: string[] = [];
        let next = await iterator.next();
        assert.equal(next.done, false);
        chunks.push(text(next.value as Uint8Array));
        await store.streams.appendOutput('j', 'stdout', Buffer.from('LATER'));
        for (next = await iterator.next(); !next.done; next = await iterator.next()) chunks.push(text(next.value));
        assert.deepEqual(chunks, ['0123', '4567', '89ab', 'cdef']);
      });
    });

    it('lets a consumer stop a chunked read early, and the store goes on', async () => {
      await withStore(make, async ({ store }) => {
        await store.streams.appendOutput('j', 'stdout', randomBytes(100_000));
        let seen = 0;
        for await (const chunk of store.streams.readChannelChunks('j', 'stdout', 0, undefined, { chunkBytes: 1000 })) {
          seen += chunk.byteLength;
          if (seen >= 3000) break;
        }
        assert.equal(seen, 3000);
        await store.streams.appendOutput('j', 'stdout', Buffer.from('more'));
        assert.equal((await store.streams.sizes('j')).stdout, 100_004);
        assert.equal(text(await store.streams.readChannel('j', 'stdout', 100_000)), 'more');
      });
    });

    it('refuses a chunked read with bad arguments on its first step', async () => {
      await withStore(make, async ({ store }) => {
        await store.streams.appendOutput('j', 'stdout', Buffer.from('x'));
        const first = (iterable: AsyncIterable<Uint8Array>): Promise<unknown> => iterable[Symbol.asyncIterator]().next();
        await assert.rejects(first(store.streams.readChannelChunks('j', 'stdout', -1)), BadRequestError);
        await assert.rejects(first(store.streams.readChannelChunks('j', 'stdout', 0, 1.5)), BadRequestError);
        await assert.rejects(first(store.streams.readChannelChunks('j', 'stdlog' as 'stdout', 0)), BadRequestError);
        await assert.rejects(first(store.streams.readChannelChunks('j', 'stdout', 0, undefined, { chunkBytes: 0 })), BadRequestError);
        await assert.rejects(first(store.streams.readChannelChunks('j', 'stdout', 0, undefined, { chunkBytes: 64 * 1024 * 1024 })), BadRequestError);
      });
    });

    it('closes output once: flag, event, and no further appends', async () => {
      await withStore(make, async ({ store }) => {
        const events: StreamEvent[] = [];
        store.streams.subscribe('j', (event) => events.push(event));
        await store.streams.appendOutput('j', 'stdout', Buffer.from('last words'));
        await store.streams.closeOutput('j');
        await store.streams.closeOutput('j');
        const read = await store.streams.readOutput('j', 0, 100);
        assert.equal(read.closed, true);
        assert.equal(read.end, 10);
        await assert.rejects(store.streams.appendOutput('j', 'stdout', Buffer.from('more')), ConflictError);
        await sleepUntil(() => events.length >= 2, 2000, 'events.length >= 2');
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.deepEqual(
          events.map((e) => e.type),
          ['output', 'output-closed'],
        );
        assert.deepEqual(events[1], { type: 'output-closed', end: 10 });
      });
    });

    it('closes the output of a job that wrote nothing', async () => {
      await withStore(make, async (context) => {
        await context.store.streams.closeOutput('quiet');
        assert.deepEqual(await context.store.streams.readOutput('quiet', 0, 100), { chunks: [], end: 0, closed: true });
        const store = await context.reopen();
        assert.equal((await store.streams.sizes('quiet')).outputClosed, true);
      });
    });

    it('removes everything stored for a job', async () => {
      await withStore(make, async ({ store }) => {
        await store.streams.appendOutput('j', 'stdout', Buffer.from('x'));
        await store.streams.appendStdin('j', 0, Buffer.from('y'));
        await store.streams.closeOutput('j');
        await store.streams.remove('j');
        assert.equal((await store.streams.sizes('j')).end, 0);
        assert.equal((await store.streams.sizes('j')).stdin, 0);
        assert.equal((await store.streams.sizes('j')).outputClosed, false);
        // The id may be used afresh.
        const chunk = await store.streams.appendOutput('j', 'stderr', Buffer.from('new'));
        assert.deepEqual([chunk.pos, chunk.offset], [0, 0]);
        await store.streams.remove('never-existed');
      });
    });
  });

  describe(`${name}: stdin`, () => {
    it('skips resent bytes and keeps only the new tail of an overlap', async () => {
      await withStore(make, async ({ store }) => {
        assert.equal(await store.streams.appendStdin('j', 0, Buffer.from('hello')), 5);
        assert.equal(await store.streams.appendStdin('j', 0, Buffer.from('hello')), 5, 'a full resend adds nothing');
        assert.equal(await store.streams.appendStdin('j', 3, Buffer.from('lo world')), 11);
        assert.equal(await store.streams.appendStdin('j', 11, Buffer.alloc(0)), 11);
        const read = await store.streams.readStdin('j', 0, 100);
        assert.equal(text(read.data), 'hello world');
        assert.equal(read.end, 11);
        assert.equal(read.closed, false);
        assert.equal(text((await store.streams.readStdin('j', 6, 3)).data), 'wor');
      });
    });

    it('refuses a gap and an append after close', async () => {
      await withStore(make, async ({ store }) => {
        await store.streams.appendStdin('j', 0, Buffer.from('abc'));
        await assert.rejects(store.streams.appendStdin('j', 4, Buffer.from('e')), ConflictError);
        assert.equal(await store.streams.closeStdin('j'), 3);
        assert.equal(await store.streams.closeStdin('j'), 3, 'closing again is harmless');
        await assert.rejects(store.streams.appendStdin('j', 3, Buffer.from('d')), ConflictError);
        const read = await store.streams.readStdin('j', 0, 100);
        assert.equal(text(read.data), 'abc');
        assert.equal(read.closed, true);
        assert.equal((await store.streams.sizes('j')).stdinClosed, true);
      });
    });

    it('records how much stdin the job has read, never backwards', async () => {
      await withStore(make, async ({ store }) => {
        await store.streams.appendStdin('j', 0, Buffer.from('0123456789'));
        await store.streams.ackStdin('j', 4);
        await store.streams.ackStdin('j', 2);
        assert.equal((await store.streams.sizes('j')).stdinConsumed, 4);
      });
    });
  });

  describe(`${name}: live events`, () => {
    it("delivers a job's stream events to subscribers in order", async () => {
      await withStore(make, async ({ store }) => {
        const events: StreamEvent[] = [];
        const others: StreamEvent[] = [];
        const stop = store.streams.subscribe('j', (event) => events.push(event));
        store.streams.subscribe('other', (event) => others.push(event));
        await store.streams.appendOutput('j', 'stdout', Buffer.from('a'));
        await store.streams.appendStdin('j', 0, Buffer.from('in'));
        await store.streams.appendOutput('j', 'stderr', Buffer.from('b'));
        await store.streams.ackStdin('j', 2);
        await store.streams.sendControl('j', { type: 'resize', cols: 100, rows: 40 });
        await store.streams.sendControl('j', { type: 'output-ack', end: 2 ** 40 + 1 });
        await store.streams.closeStdin('j');
        await store.streams.sendControl('j', { type: 'cancel' });
        await store.streams.closeOutput('j');
        await sleepUntil(() => events.length === 9, 2000, 'events.length === 9');
        const summary = events.map((e) => {
          switch (e.type) {
            case 'output':
              return [e.type, e.chunk.channel, e.chunk.pos, e.chunk.offset, text(e.chunk.data)];
            case 'stdin':
              return [e.type, e.offset, text(e.data)];
            case 'stdin-closed':
              return [e.type, e.offset];
            case 'stdin-ack':
              return [e.type, e.consumed];
            case 'control':
              return [e.type, e.control];
            case 'output-closed':
              return [e.type, e.end];
            default: {
              const never: never = e;
              return never;
            }
          }
        });
        assert.deepEqual(summary, [
          ['output', 'stdout', 0, 0, 'a'],
          ['stdin', 0, 'in'],
          ['output', 'stderr', 1, 0, 'b'],
          ['stdin-ack', 2],
          ['control', { type: 'resize', cols: 100, rows: 40 }],
          ['control', { type: 'output-ack', end: 2 ** 40 + 1 }],
          ['stdin-closed', 2],
          ['control', { type: 'cancel' }],
          ['output-closed', 2],
        ]);
        assert.deepEqual(others, []);
        stop();
        await store.streams.remove('j');
        await store.streams.appendOutput('j', 'stdout', Buffer.from('after'));
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(events.length, 9, 'nothing after unsubscribing');
      });
    });
  });

  describe(`${name}: restart`, () => {
    it('recovers sizes, flags and positions of streams after a restart', async () => {
      await withStore(make, async (context) => {
        const before = await appendAll(context.store.streams, 'open', [
          ['stdout', 'a1'],
          ['stderr', 'b1b1'],
          ['stdout', 'a2a2a2'],
        ]);
        await context.store.streams.appendStdin('open', 0, Buffer.from('typed'));
        await appendAll(context.store.streams, 'done', [['stderr', 'fin']]);
        await context.store.streams.closeOutput('done');

        const store = await context.reopen();
        assert.deepEqual(await store.streams.sizes('open'), {
          end: 12,
          stdout: 8,
          stderr: 4,
          stdin: 5,
          stdinClosed: false,
          stdinConsumed: 0,
          outputClosed: false,
        });
        assert.equal((await store.streams.sizes('done')).outputClosed, true);
        const read = await store.streams.readOutput('open', 0, 1000);
        assert.deepEqual(
          read.chunks.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
          before.map((c) => [c.channel, c.pos, c.offset, text(c.data)]),
        );
        // Appends continue where the streams left off.
        const next = await store.streams.appendOutput('open', 'stderr', Buffer.from('b2'));
        assert.deepEqual([next.pos, next.offset], [12, 4]);
        assert.equal(await store.streams.appendStdin('open', 5, Buffer.from('!')), 6);
        await assert.rejects(store.streams.appendOutput('done', 'stdout', Buffer.from('x')), ConflictError);
      });
    });
  });
}
