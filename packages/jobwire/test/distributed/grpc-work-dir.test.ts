/**
 * Distributed mode over gRPC: an admin's job that names no working directory starts in the
 * `--work-dir` of the worker that runs it (not in the server's), so a relative argument is found
 * there, as Xenon finds it against its scheduler's working directory.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { startWorker } from '../../src/distributed/worker.js';
import { startServer } from '../../src/server/index.js';
import { XenonClient } from '../grpc/xenon-client.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';
import { removeHome } from '../helpers.js';

describe('distributed mode: gRPC jobs and the worker’s --work-dir', () => {
  it("runs an admin's gRPC job without a working directory in its worker's --work-dir, where a relative argument is found", async () => {
    const root = realpathSync(mkdtempSync(join(tmpdir(), 'jobwire-grpc-wd-')));
    const prefix = freshPrefix();
    const serverWork = join(root, 'server-work');
    const workerWork = join(root, 'worker-work');
    mkdirSync(join(workerWork, 'tests'), { recursive: true });
    writeFileSync(join(workerWork, 'tests', 'x.sh'), 'echo "found in $(pwd)"\n');
    const server = await startServer({ home: join(root, 'home'), workDir: serverWork, port: 0, grpcPort: 0, logLevel: 'warn', redis: REDIS_URL, redisPrefix: prefix, graceSeconds: 1 });
    const worker = await startWorker({ redis: REDIS_URL, prefix, name: 'wd-worker', slots: 2, graceSeconds: 1, workDir: workerWork, serverUrl: server.url, logLevel: 'warn', home: join(root, 'worker-home') });
    const x = new XenonClient(`127.0.0.1:${server.grpcPort}`, { token: server.token });
    const client = new Client({ url: server.url, token: server.token });
    try {
      const scheduler = await x.sched('localScheduler');
      const job = await x.sched('submitBatchJob', { scheduler, description: { executable: 'sh', arguments: ['./tests/x.sh'] } });
      const status = await x.sched('waitUntilDone', { scheduler, job, timeout: 0 });
      assert.equal(status.state, 'DONE', status.error_message);
      assert.equal(status.exit_code, 0);
      const out = new TextDecoder().decode((await client.readOutput(job.id, 'stdout')).data);
      assert.equal(out, `found in ${workerWork}\n`);
    } finally {
      x.close();
      await worker.close();
      await server.close();
      await dropPrefix(prefix);
      removeHome(join(root, 'worker-home'));
      rmSync(root, { recursive: true, force: true });
    }
  });
});
