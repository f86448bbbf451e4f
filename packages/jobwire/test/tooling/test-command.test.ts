import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REDIS_URL, RedisServerMissingError, ensureTestRedis, freePort, redisAnswers } from '../redis-env.js';

/** The repository root, where `npm test` runs scripts/test.mjs. */
const ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));

describe('the test command on a fresh machine (scripts/test.mjs)', () => {
  it('starts a private redis-server when nothing answers, and stops it after (port closed, folder gone)', async () => {
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const redis = await ensureTestRedis(nowhere);
    assert.ok(redis.started, 'a private server was started');
    try {
      assert.notEqual(redis.url, nowhere);
      assert.equal(await redisAnswers(redis.url), true);
      assert.ok(existsSync(redis.started.dir));
    } finally {
      await redis.started.stop();
    }
    assert.equal(await redisAnswers(redis.url), false, 'stopped');
    assert.equal(existsSync(redis.started.dir), false, 'its folder removed');
  });

  it('uses the Redis that answers, starting none', async () => {
    const redis = await ensureTestRedis(REDIS_URL);
    assert.deepEqual(redis, { url: REDIS_URL });
  });

  it('without Redis and without redis-server, `node scripts/test.mjs` stops at once with one line saying what to install', async () => {
    const emptyPath = mkdtempSync(join(tmpdir(), 'jobwire-nopath-'));
    try {
      const nowhere = `redis://127.0.0.1:${await freePort()}`;
      await assert.rejects(ensureTestRedis(nowhere, join(emptyPath, 'redis-server')), RedisServerMissingError);
      const proc = spawn(process.execPath, ['scripts/test.mjs'], {
        cwd: ROOT,
        env: { ...process.env, PATH: emptyPath, JOBWIRE_TEST_REDIS: nowhere },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
      assert.equal(code, 1);
      assert.equal(stdout, '', 'no test ran');
      assert.equal(stderr, `npm test: the tests need Redis: nothing answers at ${nowhere} and redis-server is not installed (apt-get install redis-server)\n`);
    } finally {
      rmSync(emptyPath, { recursive: true, force: true });
    }
  });
});
