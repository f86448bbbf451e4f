/**
 * The close of a job's output records how the job ended, on both stores: the `output-closed`
 * event, `sizes()` and `readOutput()` carry it, and a restart keeps it, so a reader of the
 * output never reads the job at the end.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BadRequestError } from '@jobwire/client';
import { openEmbeddedStore, openRedisStore, type FinalStatus, type StreamEvent } from '../../src/store/index.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';
import { decodeMessage } from '../../src/store/redis/redis-stream-log.js';
import { sleepUntil } from '../helpers.js';
import { newJob, withStore, type HarnessFactory } from './store-behaviour.js';

const embedded: HarnessFactory = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jobwire-store-'));
  return {
    open: () => openEmbeddedStore({ dir, onListenerError: () => {} }),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
};

const redis: HarnessFactory = async () => {
  const prefix = freshPrefix();
  return {
    open: () => openRedisStore({ url: REDIS_URL, prefix, onListenerError: () => {} }),
    dispose: () => dropPrefix(prefix),
  };
};

const FAILED: FinalStatus = { status: 'Failed', exitCode: 3, signal: null, error: 'exited with code 3', progress: 'halfway | "quoted" ✓' };

for (const [name, make] of [
  ['embedded', embedded],
  ['redis', redis],
] as const) {
  describe(`${name} stream log: the final status of closed output`, () => {
    it('carries the final status the close recorded in the event, sizes and reads, also after a restart', async () => {
      await withStore(make, async (context) => {
        const events: StreamEvent[] = [];
        context.store.streams.subscribe('j', (event) => events.push(event));
        await context.store.streams.appendOutput('j', 'stdout', Buffer.from('last words'));
        assert.equal((await context.store.streams.sizes('j')).final, undefined, 'no final status while output is open');
        await context.store.streams.closeOutput('j', FAILED);
        await context.store.streams.closeOutput('j', { ...FAILED, status: 'Success', exitCode: 0 });
        await sleepUntil(() => events.some((e) => e.type === 'output-closed') || undefined, 5000, 'the event');
        assert.deepEqual(
          events.filter((e) => e.type === 'output-closed'),
          [{ type: 'output-closed', end: 10, final: FAILED }],
          'one event, with what the first close said',
        );
        assert.deepEqual((await context.store.streams.sizes('j')).final, FAILED);
        const page = await context.store.streams.readOutput('j', 10, 100);
        assert.deepEqual(page, { chunks: [], end: 10, closed: true, final: FAILED });
        const store = await context.reopen();
        assert.deepEqual((await store.streams.sizes('j')).final, FAILED);
        assert.deepEqual((await store.streams.readOutput('j', 0, 100)).final, FAILED);
      });
    });

    // (A later close that says fills it in on the embedded log: a job host closes the output it
    // wrote before the server knows how the job ended — see the stream-log adoption tests.)
    it('leaves the final status absent when the close did not say (output closed by older code)', async () => {
      await withStore(make, async ({ store }) => {
        await store.streams.closeOutput('j');
        assert.equal('final' in (await store.streams.sizes('j')), false);
        assert.equal('final' in (await store.streams.readOutput('j', 0, 100)), false);
      });
    });

    it('records Lost with the reason and the last progress when a job is lost with its runner', async () => {
      await withStore(make, async ({ store }) => {
        const job = await store.createJob(newJob());
        await store.markRunning(job.id, { startedAt: new Date().toISOString(), pid: null, node: 'n1' });
        await store.setProgress(job.id, 'step 2');
        const [lost] = await store.loseRunningJobs((j) => `node ${j.node} went away`);
        const expected: FinalStatus = { status: 'Lost', exitCode: null, signal: null, error: 'node n1 went away', progress: 'step 2' };
        assert.deepEqual((await store.streams.sizes(job.id)).final, expected);
        assert.deepEqual(
          [lost?.status, lost?.exitCode, lost?.signal, lost?.error, lost?.progress],
          [expected.status, expected.exitCode, expected.signal, expected.error, expected.progress],
          'the close said what the record says',
        );
      });
    });

    it('refuses a malformed final status, naming the field, and closes nothing', async () => {
      await withStore(make, async ({ store }) => {
        const bad = [
          [{ ...FAILED, status: 'Running' }, 'final.status'],
          [{ ...FAILED, exitCode: 1.5 }, 'final.exitCode'],
          [{ ...FAILED, signal: 9 }, 'final.signal'],
          [{ status: 'Lost', exitCode: null, signal: null, error: null }, 'final.progress'],
        ] as const;
        for (const [final, field] of bad) {
          await assert.rejects(store.streams.closeOutput('j', final as unknown as FinalStatus), (err: unknown) => err instanceof BadRequestError && err.field === field);
        }
        assert.equal((await store.streams.sizes('j')).outputClosed, false);
      });
    });
  });
}

describe('redis stream log: the output-closed message', () => {
  it('decodes the end alone (closed by older code) and the end with the final status', () => {
    assert.deepEqual(decodeMessage(Buffer.from('c99')), { type: 'output-closed', end: 99 });
    assert.deepEqual(decodeMessage(Buffer.from(`c10|${JSON.stringify(FAILED)}`)), { type: 'output-closed', end: 10, final: FAILED });
  });
});
