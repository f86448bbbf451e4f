/**
 * The embedded store (SQLite + files): the shared store and stream-log behaviour, plus what
 * only this implementation promises (its files, crash repair, synchronous listeners).
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { BadRequestError } from '@jobwire/client';
import { OutputFiles } from '../../src/host/output-files.js';
import { SCHEMA_VERSION } from '../../src/store/embedded/migrations.js';
import { openEmbeddedStore, type EmbeddedStoreOptions, type Store, type StoredEvent } from '../../src/store/index.js';
import { newJob, nextTime, storeBehaviour, streamLogBehaviour, type HarnessFactory } from './store-behaviour.js';

type Options = Omit<EmbeddedStoreOptions, 'dir'>;

/** Harnesses on a fresh temporary folder; listener errors are swallowed unless a test asks. */
function embedded(options: Options = {}): HarnessFactory {
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobwire-store-'));
    return {
      open: () => openEmbeddedStore({ dir, onListenerError: () => {}, ...options }),
      dispose: () => rm(dir, { recursive: true, force: true }),
    };
  };
}

storeBehaviour('embedded store', embedded());
streamLogBehaviour('embedded stream log', embedded());
// The same behaviour with every read from the files, and with a tail so small that pages
// straddle the line between memory and files.
streamLogBehaviour('embedded stream log without a memory tail', embedded({ tailBytes: 0 }));
streamLogBehaviour('embedded stream log with a 100-byte memory tail', embedded({ tailBytes: 100 }));

/** Runs `body` with a store on a fresh folder it can inspect; `reopen` restarts the store. */
async function withEmbedded(
  options: Options,
  body: (context: { store: Store; dir: string; reopen(): Promise<Store> }) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'jobwire-store-'));
  let store = await openEmbeddedStore({ dir, onListenerError: () => {}, ...options });
  try {
    await body({
      get store() {
        return store;
      },
      dir,
      async reopen() {
        await store.close();
        store = await openEmbeddedStore({ dir, onListenerError: () => {}, ...options });
        return store;
      },
    });
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('embedded store: files and database', () => {
  it("keeps a job's streams as plain files under output/<jobId>/", async () => {
    await withEmbedded({}, async ({ store, dir }) => {
      await store.streams.appendOutput('j', 'stdout', Buffer.from('out1 '));
      await store.streams.appendOutput('j', 'stderr', Buffer.from('err'));
      await store.streams.appendOutput('j', 'stdout', Buffer.from('out2'));
      await store.streams.appendStdin('j', 0, Buffer.from('in'));
      await store.streams.closeStdin('j');
      await store.streams.closeOutput('j');
      const jobDir = join(dir, 'output', 'j');
      assert.equal(readFileSync(join(jobDir, 'stdout'), 'utf8'), 'out1 out2');
      assert.equal(readFileSync(join(jobDir, 'stderr'), 'utf8'), 'err');
      assert.equal(readFileSync(join(jobDir, 'stdin'), 'utf8'), 'in');
      assert.equal(statSync(join(jobDir, 'index')).size, 3 * 24);
      assert.deepEqual(JSON.parse(readFileSync(join(jobDir, 'state.json'), 'utf8')), {
        outputClosed: true,
        stdinClosed: true,
        stdinConsumed: 0,
      });
    });
  });

  it('uses WAL and records its schema version', async () => {
    await withEmbedded({}, async ({ dir }) => {
      const db = new Database(join(dir, 'jobwire.db'), { readonly: true });
      try {
        assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
        assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      } finally {
        db.close();
      }
    });
  });

  it('brings a database of schema version 1 up to date, keeping its jobs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobwire-store-'));
    try {
      const old = await openEmbeddedStore({ dir });
      const job = await old.createJob(newJob());
      await old.close();
      // Version 1 had no process identity (version 2 added it) and no executor state (version 3).
      const db = new Database(join(dir, 'jobwire.db'));
      db.exec('ALTER TABLE jobs DROP COLUMN process');
      db.exec('ALTER TABLE jobs DROP COLUMN executor_state');
      db.pragma('user_version = 1');
      db.close();

      const store = await openEmbeddedStore({ dir });
      try {
        assert.equal((await store.getJob(job.id))?.process, null);
        const process = { leader: { pid: 10, startTicks: 5, bootId: 'b' }, runner: { pid: 9, startTicks: 1, bootId: 'b' } };
        assert.deepEqual((await store.markRunning(job.id, { startedAt: nextTime(), pid: 10, node: null, process }))?.process, process);
        assert.equal(await store.executorState(job.id), undefined);
        await store.setExecutorState(job.id, { kind: 'test', n: 1 });
        assert.deepEqual(await store.executorState(job.id), { kind: 'test', n: 1 });
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("deleting a job removes its folder", async () => {
    await withEmbedded({}, async ({ store, dir }) => {
      const job = await store.createJob(newJob());
      await store.streams.appendOutput(job.id, 'stdout', Buffer.from('x'));
      await store.streams.appendStdin(job.id, 0, Buffer.from('y'));
      await store.finishJob(job.id, { status: 'Success', exitCode: 0, endedAt: nextTime() });
      await store.streams.closeOutput(job.id);
      assert.ok(existsSync(join(dir, 'output', job.id)));
      await store.deleteJob(job.id);
      assert.equal(existsSync(join(dir, 'output', job.id)), false);
    });
  });

  it("stdinTarget reads a job's interactive flag and status for its owner only, and follows its status", async () => {
    await withEmbedded({}, async ({ store }) => {
      const job = await store.createJob(newJob({ interactive: true }));
      const batch = await store.createJob(newJob());
      assert.deepEqual(await store.stdinTarget!(job.id, 'alice'), { interactive: true, status: 'Queued' });
      assert.deepEqual(await store.stdinTarget!(batch.id, 'alice'), { interactive: false, status: 'Queued' });
      assert.equal(await store.stdinTarget!(job.id, 'bob'), undefined);
      assert.equal(await store.stdinTarget!('no-such-job', 'alice'), undefined);
      await store.finishJob(job.id, { status: 'Cancelled', exitCode: null, endedAt: nextTime() });
      assert.deepEqual(await store.stdinTarget!(job.id, 'alice'), { interactive: true, status: 'Cancelled' });
    });
  });

  it('stream remove deletes the folder even while output is open', async () => {
    await withEmbedded({}, async ({ store, dir }) => {
      await store.streams.appendOutput('j', 'stdout', Buffer.from('x'));
      await store.streams.remove('j');
      assert.deepEqual(readdirSync(join(dir, 'output')), []);
    });
  });

  it('refuses job ids that are not safe folder names', async () => {
    await withEmbedded({}, async ({ store, dir }) => {
      for (const id of ['../escape', '.', '..', 'a/b', '', 'x:y']) {
        await assert.rejects(store.createJob(newJob({ id })), BadRequestError, id);
        await assert.rejects(store.streams.appendOutput(id, 'stdout', Buffer.from('x')), BadRequestError, id);
      }
      assert.equal(existsSync(join(dir, 'escape')), false);
      assert.equal(await store.lastEventId(), 0);
    });
  });
});

describe('embedded store: crash repair', () => {
  it('cuts off channel bytes and a torn index record left by an interrupted append', async () => {
    await withEmbedded({}, async ({ store, dir, reopen }) => {
      await store.streams.appendOutput('j', 'stdout', Buffer.from('kept'));
      await store.streams.appendOutput('j', 'stderr', Buffer.from('also'));
      await store.close();
      const jobDir = join(dir, 'output', 'j');
      appendFileSync(join(jobDir, 'stdout'), 'unindexed');
      appendFileSync(join(jobDir, 'index'), Buffer.alloc(10, 7));
      rmSync(join(jobDir, 'state.json'), { force: true });

      const again = await reopen();
      const sizes = await again.streams.sizes('j');
      assert.deepEqual([sizes.end, sizes.stdout, sizes.stderr], [8, 4, 4]);
      const next = await again.streams.appendOutput('j', 'stdout', Buffer.from('+more'));
      assert.deepEqual([next.pos, next.offset], [8, 4]);
      assert.equal(Buffer.from(await again.streams.readChannel('j', 'stdout', 0)).toString(), 'kept+more');
      const read = await again.streams.readOutput('j', 0, 1000);
      assert.deepEqual(read.chunks.map((c) => Buffer.from(c.data).toString()), ['kept', 'also', '+more']);
    });
  });

  it('drops index records whose bytes never reached the disk', async () => {
    await withEmbedded({}, async ({ store, dir, reopen }) => {
      await store.streams.appendOutput('j', 'stdout', Buffer.from('first'));
      await store.streams.appendOutput('j', 'stderr', Buffer.from('second'));
      await store.streams.appendOutput('j', 'stdout', Buffer.from('third'));
      await store.close();
      truncateSync(join(dir, 'output', 'j', 'stderr'), 3);

      const again = await reopen();
      const sizes = await again.streams.sizes('j');
      assert.deepEqual([sizes.end, sizes.stdout, sizes.stderr], [5, 5, 0]);
      const read = await again.streams.readOutput('j', 0, 1000);
      assert.deepEqual(read.chunks.map((c) => Buffer.from(c.data).toString()), ['first']);
    });
  });
});

describe('embedded store: live path', () => {
  it('tells listeners of a change before the operation resolves', async () => {
    await withEmbedded({}, async ({ store }) => {
      const events: StoredEvent[] = [];
      store.onEvent((event) => events.push(event));
      // Writes are committed in groups (at the end of the turn); the events go out at the commit.
      let heardWhenResolved = -1;
      const job = await store.createJob(newJob({ group: 'g' })).then((record) => {
        heardWhenResolved = events.length;
        return record;
      });
      assert.equal(heardWhenResolved, 2, 'group and job events are out before the operation resolves');
      let seenInListener: string | undefined;
      store.onEvent((event) => {
        if (event.verb === 'update') void store.getJob(job.id).then((record) => (seenInListener = record?.status));
      });
      await store.markRunning(job.id, { startedAt: nextTime(), pid: null, node: null });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(seenInListener, 'Running', 'a listener reading the store sees the committed change');
    });
  });

  it('commits the writes of one turn together: in call order, a failing one rejected alone, reads seeing them all', async () => {
    await withEmbedded({}, async ({ store, dir }) => {
      const events: StoredEvent[] = [];
      store.onEvent((event) => events.push(event));
      const first = newJob();
      const pending = [
        store.createJob(first),
        store.createJob({ ...newJob(), id: first.id }),
        store.markRunning(first.id, { startedAt: nextTime(), pid: null, node: null }),
        store.finishJob(first.id, { status: 'Running' as never, endedAt: nextTime() }),
        store.finishJob(first.id, { status: 'Success', exitCode: 0, endedAt: nextTime() }),
      ];
      // A read asked for in the same turn runs the waiting writes first.
      const seen = await store.getJob(first.id);
      assert.equal(seen?.status, 'Success');
      const outcomes = await Promise.allSettled(pending);
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'],
      );
      assert.match(String((outcomes[1] as PromiseRejectedResult).reason), /exists already/);
      assert.deepEqual(
        events.map((event) => (event.info.type === 'job' ? event.info.status : event.verb)),
        ['Queued', 'Running', 'Success'],
        'only the writes that stood announced their events, in call order',
      );
      // Another connection sees every committed write.
      const other = new Database(join(dir, 'jobwire.db'), { readonly: true });
      try {
        assert.equal((other.prepare('SELECT status FROM jobs WHERE id = ?').get(first.id) as { status: string }).status, 'Success');
      } finally {
        other.close();
      }
    });
  });

  it('listeners hear events in id order even when a listener causes a commit while they are being told', async () => {
    await withEmbedded({}, async ({ store }) => {
      const heard: number[] = [];
      let reacted = false;
      store.onEvent((event) => {
        heard.push(event.id);
        if (reacted) return;
        reacted = true;
        // A write of its own, then a read, which commits that write before the others are told.
        void store.createJob(newJob({ group: 'from-listener' }));
        void store.getJob('none');
      });
      await Promise.all([store.createJob(newJob()), store.createJob(newJob()), store.createJob(newJob())]);
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(heard.length >= 5, `heard ${heard.join(', ')}`);
      assert.deepEqual(
        heard,
        [...heard].sort((a, b) => a - b),
        'ids only grow',
      );
    });
  });

  it('reports a throwing listener to onListenerError', async () => {
    const errors: unknown[] = [];
    await withEmbedded({ onListenerError: (error) => errors.push(error) }, async ({ store }) => {
      store.onEvent(() => {
        throw new Error('store listener bug');
      });
      store.streams.subscribe('j', () => {
        throw new Error('stream listener bug');
      });
      await store.createJob(newJob());
      await store.streams.appendOutput('j', 'stdout', Buffer.from('x'));
      assert.deepEqual(
        errors.map((e) => (e as Error).message),
        ['store listener bug', 'stream listener bug'],
      );
    });
  });

  it('serves a reader close behind the writer from memory', async () => {
    await withEmbedded({ tailBytes: 1024 }, async ({ store, dir }) => {
      let written = '';
      for (let i = 0; i < 100; i++) {
        written += `line ${i}\n`;
        await store.streams.appendOutput('j', 'stdout', Buffer.from(`line ${i}\n`));
      }
      const end = (await store.streams.sizes('j')).end;
      // Pull the file out from under the log: only a memory copy can still answer.
      truncateSync(join(dir, 'output', 'j', 'stdout'), 0);
      const read = await store.streams.readOutput('j', end - 20, 1000);
      assert.equal(Buffer.concat(read.chunks.map((c) => c.data)).toString(), written.slice(-20));
    });
  });
});

describe('embedded stream log: output a job host writes (adopted)', () => {
  it('serves adopted output from memory until it is stored and from the host\'s files after, never writing or repairing them', async () => {
    await withEmbedded({ tailBytes: 8 }, async ({ store, dir }) => {
      const streams = store.streams;
      const jobDir = join(dir, 'output', 'h');
      // The host's own writer; it stores in the background, and the log learns how far only from noteStored.
      const files = new OutputFiles({ dir: jobDir });
      assert.deepEqual({ ...streams.adoptOutput!('h') }, { end: 0, stdout: 0, stderr: 0, stdin: 0, stdinClosed: false, stdinConsumed: 0, outputClosed: false });
      const events: string[] = [];
      streams.subscribe('h', (event) => events.push(event.type === 'output' ? `${event.chunk.channel}:${Buffer.from(event.chunk.data).toString()}` : event.type));
      const sent = [files.append('stdout', Buffer.from('hello ')), files.append('stderr', Buffer.from('oops\n')), files.append('stdout', Buffer.from('world\n'))];
      for (const chunk of sent) streams.noteOutput!('h', chunk);
      // A repeat (a resubscription from an older position) is dropped; a gap is refused.
      streams.noteOutput!('h', sent[1]!);
      assert.throws(() => streams.noteOutput!('h', { channel: 'stdout', pos: 100, offset: 50, data: Buffer.from('x') }), /gap/);
      assert.deepEqual(events, ['stdout:hello ', 'stderr:oops\n', 'stdout:world\n']);
      // Beyond the tail limit (8 bytes), yet all in memory: nothing is known to be stored yet.
      const page = await streams.readOutput('h', 0, 1000);
      assert.equal(Buffer.concat(page.chunks.map((c) => c.data)).toString(), 'hello oops\nworld\n');
      assert.equal(Buffer.from(await streams.readChannel('h', 'stdout', 0)).toString(), 'hello world\n');

      await files.stored();
      streams.noteStored!('h', files.durable);
      const again = await streams.readOutput('h', 2, 1000);
      assert.equal(Buffer.concat(again.chunks.map((c) => c.data)).toString(), 'llo oops\nworld\n', 'from the files now');
      const chunks: Uint8Array[] = [];
      for await (const chunk of streams.readChannelChunks('h', 'stderr', 0)) chunks.push(chunk);
      assert.equal(Buffer.concat(chunks).toString(), 'oops\n');

      // Bytes the host wrote past its index (a batch under way) are not the log's to cut.
      appendFileSync(join(jobDir, 'stdout'), 'partial');
      await streams.closeOutput('h', { status: 'Success', exitCode: 0, signal: null, error: null, progress: null });
      assert.equal(readFileSync(join(jobDir, 'stdout'), 'utf8'), 'hello world\npartial');
      const sizes = await streams.sizes('h');
      assert.equal(sizes.end, 'hello oops\nworld\n'.length);
      assert.equal(sizes.outputClosed, true);
      await files.close();
    });
  });

  it('a job that wrote nothing: no output files, the folder made by the host, its close not written again; a reload takes the final status from elsewhere', async () => {
    await withEmbedded({}, async ({ store, dir, reopen }) => {
      const jobDir = join(dir, 'output', 'quiet');
      const sizes = store.streams.adoptOutput!('quiet');
      assert.equal(sizes.end, 0);
      assert.equal(existsSync(jobDir), false, 'adopting makes no folder: the host makes it');
      const files = new OutputFiles({ dir: jobDir });
      await files.stored();
      await files.finish({ exitCode: 0, stdin: { consumed: 0, closed: true } });
      assert.deepEqual(readdirSync(jobDir).sort(), ['exit.json'], 'no stdout, stderr, index or state.json for a job that wrote nothing');
      const final = { status: 'Success' as const, exitCode: 0, signal: null, error: null, progress: null };
      await store.streams.closeOutput('quiet', final);
      assert.deepEqual(readdirSync(jobDir).sort(), ['exit.json'], "the host's close (its exit.json) stands: no state.json written");
      assert.deepEqual((await store.streams.sizes('quiet')).final, final, 'this process keeps the final status');
      assert.deepEqual((await store.streams.readOutput('quiet', 0, 100)).chunks, []);
      await files.close();
      const again = await reopen();
      const reloaded = await again.streams.sizes('quiet');
      assert.equal(reloaded.outputClosed, true);
      assert.equal(reloaded.end, 0);
      assert.equal(reloaded.final, undefined, 'a reader takes it from the job record then');
    });
  });

  it('adopting again (a restart) reads the sizes from the host\'s files', async () => {
    await withEmbedded({}, async ({ dir, reopen }) => {
      const files = new OutputFiles({ dir: join(dir, 'output', 'r') });
      files.append('stdout', Buffer.from('one\n'));
      files.append('stderr', Buffer.from('two\n'));
      await files.stored();
      const store = await reopen();
      const sizes = store.streams.adoptOutput!('r');
      assert.deepEqual([sizes.stdout, sizes.stderr, sizes.end], [4, 4, 8]);
      const page = await store.streams.readOutput('r', 0, 100);
      assert.equal(Buffer.concat(page.chunks.map((c) => c.data)).toString(), 'one\ntwo\n');
      await files.close();
    });
  });
});
