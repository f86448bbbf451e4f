/**
 * ioredis and BullMQ are optional peer dependencies, loaded only in distributed mode: an embedded
 * server works without them, and distributed mode without them says what to install. Runs the
 * CLI with a loader hook that makes both packages missing (fixtures/without-redis-packages.mjs).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { CLI, FIXTURES, removeHome, sleepUntil, tempHome } from '../helpers.js';
import { REDIS_URL } from '../redis-env.js';

const WITHOUT = ['--import', join(FIXTURES, 'without-redis-packages.mjs')];

/** Runs the CLI without the Redis packages until it exits. */
function runWithout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [...WITHOUT, CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('optional packages', () => {
  it('an embedded server runs jobs without ioredis and bullmq installed', async () => {
    const home = tempHome();
    const proc = spawn(process.execPath, [...WITHOUT, CLI, 'server', '--port', '0', '--home', home, '--log-level', 'warn', '--grace', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    try {
      const record = await sleepUntil(() => {
        if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${stderr}`);
        try {
          return JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string };
        } catch {
          return undefined;
        }
      }, 15_000, 'server to start');
      const client = new Client({ url: record.url, token: readFileSync(join(home, 'token'), 'utf8').trim() });
      const job = await client.submitBatchJob({ executable: 'echo', arguments: ['fine'] });
      assert.equal((await client.waitUntilDone(job.id, 10_000)).status, 'Success');
      assert.equal(Buffer.from((await client.readOutput(job.id)).data).toString(), 'fine\n');
      assert.deepEqual((await client.getWorkers()).mode, 'embedded');
    } finally {
      proc.kill('SIGTERM');
      await exited;
      removeHome(home);
    }
    assert.doesNotMatch(stderr, /ioredis|bullmq/);
  });

  it('distributed mode without them says which packages to install', async () => {
    const home = tempHome();
    try {
      const server = await runWithout(['server', '--port', '0', '--home', home, '--redis', REDIS_URL]);
      assert.equal(server.code, 1, server.stderr);
      assert.match(server.stderr, /^jobwire: distributed mode \(Redis\) needs the packages ioredis and bullmq, and (ioredis|bullmq) is not installed: npm install ioredis bullmq\n$/);
      const worker = await runWithout(['worker', '--home', home, '--work-dir', `${home}-work`, '--redis', REDIS_URL]);
      assert.equal(worker.code, 1, worker.stderr);
      assert.match(worker.stderr, /npm install ioredis bullmq/);
    } finally {
      removeHome(home);
    }
  });
});
