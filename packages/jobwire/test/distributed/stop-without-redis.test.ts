/**
 * A server and a worker of distributed mode stop on SIGTERM in bounded time even when their
 * Redis is gone: they give up on it, say on stderr (and in a log line) what they could not
 * settle, and exit 1. With Redis there, the same stop is clean (exit 0).
 *
 * Each test runs its own redis-server (see `startPrivateRedis`) on a free port in a temporary
 * folder, so killing it touches nobody else.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Client } from '@jobwire/client';
import { CLI, removeHome, sleepUntil } from '../helpers.js';
import { startPrivateRedis, type PrivateRedis } from '../redis-env.js';

/** The documented bound (`jobwire server --help`, docs/deployment.md): grace + 10 s; with slack for a loaded machine. */
const EXIT_WAIT_MS = 40_000;

/** A process with its output collected and its exit awaited. */
interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

function start(command: string, args: string[]): Proc {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Waits for `proc` to exit, failing (and killing it) if it has not after `ms`. */
async function exitOf(proc: Proc, what: string, ms = EXIT_WAIT_MS): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not exit within ${ms} ms of SIGTERM; stderr:\n${proc.stderr()}`)), ms);
  });
  try {
    return await Promise.race([proc.exited, late]);
  } finally {
    clearTimeout(timer);
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
  }
}

/** A private redis-server, a jobwire server and a worker on it, with a job running on the worker. */
async function cluster(dir: string): Promise<{ redis: PrivateRedis; server: Proc; worker: Proc; jobId: string }> {
  const redis = await startPrivateRedis();
  const url = redis.url;
  const home = join(dir, 'home');
  const server = start(process.execPath, [CLI, 'server', '--port', '0', '--home', home, '--redis', url, '--log-level', 'warn']);
  const worker = start(process.execPath, [CLI, 'worker', '--redis', url, '--home', join(dir, 'worker-home'), '--name', 'w1', '--slots', '1', '--grace', '1', '--log-level', 'warn', '--stop-jobs']);
  const record = await sleepUntil(() => {
    if (server.child.exitCode !== null) throw new Error(`server exited: ${server.stderr()}`);
    try {
      return JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string };
    } catch {
      return undefined;
    }
  }, 20_000, 'the server to start');
  await sleepUntil(() => {
    if (worker.child.exitCode !== null) throw new Error(`worker exited: ${worker.stderr()}`);
    return worker.stdout().includes('ready');
  }, 20_000, 'the worker to be ready');
  const client = new Client({ url: record.url, token: readFileSync(join(home, 'token'), 'utf8').trim() });
  const job = await client.submitBatchJob({ executable: 'sleep', arguments: ['300'] });
  await client.waitUntilRunning(job.id, 20_000);
  return { redis, server, worker, jobId: job.id };
}

describe('stopping without Redis', () => {
  it('stops a server and a worker whose Redis was killed, saying what they could not settle', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobwire-stop-'));
    const { redis, server, worker, jobId } = await cluster(dir);
    try {
      await redis.kill();
      server.child.kill('SIGTERM');
      worker.child.kill('SIGTERM');
      const [serverExit, workerExit] = await Promise.all([exitOf(server, 'the server'), exitOf(worker, 'the worker')]);

      assert.equal(serverExit, 1, server.stderr());
      assert.match(server.stderr(), /stopping the server \(within 10 s/);
      assert.match(server.stderr(), /jobwire: stopped the server without settling everything:\n {2}- .*Redis did not answer/);
      assert.match(server.stdout(), /"unsettled":\[.*\],"msg":"stopped without settling everything"/, 'a log line says it too');

      assert.equal(workerExit, 1, worker.stderr());
      assert.match(worker.stderr(), /stopping the worker \(within 11 s/);
      assert.match(worker.stderr(), /jobwire: stopped the worker without settling everything:\n/);
      assert.match(worker.stderr(), new RegExp(`the final status of job\\(s\\) ${jobId} was not stored`));
      assert.match(worker.stderr(), /leaving the worker registry .*Redis did not answer/);
    } finally {
      for (const proc of [server, worker]) if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
      await redis.stop();
      removeHome(join(dir, 'worker-home'));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops them cleanly, exit 0, while Redis is up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobwire-stop-'));
    const { redis, server, worker } = await cluster(dir);
    try {
      worker.child.kill('SIGTERM');
      assert.equal(await exitOf(worker, 'the worker'), 0, worker.stderr());
      server.child.kill('SIGTERM');
      assert.equal(await exitOf(server, 'the server'), 0, server.stderr());
      for (const proc of [server, worker]) assert.doesNotMatch(proc.stderr(), /without settling/);
    } finally {
      for (const proc of [server, worker]) if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
      await redis.stop();
      removeHome(join(dir, 'worker-home'));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
