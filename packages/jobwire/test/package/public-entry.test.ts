import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import * as jobwire from 'jobwire';
import { LocalExecutor, openEmbeddedStore, startServer, startWorker } from 'jobwire';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';
import { removeHome, tempHome } from '../helpers.js';

describe("the package's public entry ('jobwire')", () => {
  it("`import { startServer } from 'jobwire'` starts an embedded server that runs a job", async () => {
    const home = tempHome();
    const server = await startServer({ port: 0, home, logLevel: 'warn' });
    try {
      const client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'sh', arguments: ['-c', 'echo from-the-package'] });
      assert.equal((await client.waitUntilDone(job.id, 30_000)).status, 'Success');
      assert.equal(new TextDecoder().decode((await client.readOutput(job.id)).data), 'from-the-package\n');
    } finally {
      await server.close();
      removeHome(home);
    }
  });

  it('names its surface: the server, the worker, the embedded store, the local executor and their errors — no internals', () => {
    assert.deepEqual(Object.keys(jobwire).sort(), [
      'CHANNEL_CHUNK_BYTES',
      'GrpcUnavailableError',
      'LOCAL_QUEUES',
      'LocalExecutor',
      'MAX_CHANNEL_CHUNK_BYTES',
      'TlsFileError',
      'openEmbeddedStore',
      'startServer',
      'startWorker',
    ]);
  });

  it("keeps Redis out of the root: openRedisStore is in 'jobwire/redis'; deep imports are refused", async () => {
    assert.ok(!('openRedisStore' in jobwire));
    const redis = await import('jobwire/redis');
    assert.equal(typeof redis.openRedisStore, 'function');
    const prefix = freshPrefix();
    const store = await redis.openRedisStore({ url: REDIS_URL, prefix });
    try {
      assert.equal(await store.lastEventId(), 0);
    } finally {
      await store.close();
      await dropPrefix(prefix);
    }
    await assert.rejects(import('jobwire/dist/src/server/index.js' as string), (err: NodeJS.ErrnoException) => err.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  it('opens an embedded store and runs a process with the local executor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobwire-entry-'));
    try {
      const store = await openEmbeddedStore({ dir });
      try {
        assert.equal(await store.lastEventId(), 0);
      } finally {
        await store.close();
      }
      const executor = new LocalExecutor();
      const chunks: Uint8Array[] = [];
      const description = { executable: 'echo', arguments: ['hi'] };
      executor.check(description);
      const handle = executor.start({ jobId: 'entry', description, defaultCwd: dir, env: {}, onOutput: (_channel, data) => void chunks.push(data), onProgress: () => undefined });
      assert.equal((await handle.done).exitCode, 0);
      assert.equal(Buffer.concat(chunks).toString(), 'hi\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('startWorker loads the worker on first use and runs a Redis server’s job', async () => {
    const home = tempHome();
    const prefix = freshPrefix();
    const server = await startServer({ port: 0, home, logLevel: 'warn', redis: REDIS_URL, redisPrefix: prefix });
    const worker = await startWorker({ redis: REDIS_URL, prefix, name: `entry-${prefix.slice(7, 13)}`, slots: 1, home: `${home}-worker`, serverUrl: server.url, logLevel: 'warn' });
    try {
      const client = new Client({ url: server.url, token: server.token });
      const job = await client.submitBatchJob({ executable: 'true' });
      const done = await client.waitUntilDone(job.id, 30_000);
      assert.equal(done.status, 'Success');
      assert.equal(done.node, worker.name);
    } finally {
      await worker.close();
      await server.close();
      removeHome(home);
      removeHome(`${home}-worker`);
      await dropPrefix(prefix);
    }
  });
});
