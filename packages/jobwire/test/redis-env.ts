/**
 * Where tests find Redis, fresh key prefixes there, and private redis-servers. Tests that need
 * Redis fail (never skip) when it is down; `npm test` (scripts/test.mjs) makes sure one answers
 * first — the one at `JOBWIRE_TEST_REDIS`, or a private one it starts with {@link ensureTestRedis}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropPrefix as dropRedisPrefix } from '../src/store/redis/index.js';

/** Where tests look for Redis unless told otherwise. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** The Redis the tests use (`JOBWIRE_TEST_REDIS`, default the local standard port). */
export const REDIS_URL = process.env.JOBWIRE_TEST_REDIS ?? DEFAULT_REDIS_URL;

/** A key prefix no other test run uses: `jwtest:RANDOM:`. */
export function freshPrefix(): string {
  return `jwtest:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under `prefix`. */
export function dropPrefix(prefix: string, url = REDIS_URL): Promise<void> {
  return dropRedisPrefix(url, prefix);
}

/** True when a Redis answers `PING` at `url` within `timeoutMs` (one that wants a password counts: it answers). */
export function redisAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || 6379) });
    let reply = '';
    const done = (answered: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

/** redis-server is not installed (not on PATH). */
export class RedisServerMissingError extends Error {
  override name = 'RedisServerMissingError';
}

/** Options of {@link startPrivateRedis}. */
export interface PrivateRedisOptions {
  /** Keep an append-only file, so that {@link PrivateRedis.restart} keeps the data. @defaultValue false */
  appendOnly?: boolean;
  /** The program to run. @defaultValue "redis-server" (from PATH) */
  command?: string;
}

/** A redis-server of one test (or one test run): its own free port and temporary folder. */
export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** Its working folder (removed by {@link PrivateRedis.stop}). */
  readonly dir: string;
  /** Stops it (SIGTERM) and starts it again on the same port and folder. */
  restart(): Promise<void>;
  /** Kills it (SIGKILL), as a crash would; the folder stays until {@link PrivateRedis.stop}. */
  kill(): Promise<void>;
  /** Stops it and removes its folder. */
  stop(): Promise<void>;
}

/** A port nothing listens on (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts a private redis-server on 127.0.0.1 (a free port, a temporary folder, no snapshots)
 * and resolves once it answers. A missing redis-server is a {@link RedisServerMissingError}.
 */
export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const command = options.command ?? 'redis-server';
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-redis-'));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', options.appendOnly ? 'yes' : 'no'];
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async (): Promise<void> => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = child;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    exited = new Promise((resolve) => child.once('close', () => resolve()));
    const failed = new Promise<Error>((resolve) => {
      child.once('error', (err: NodeJS.ErrnoException) =>
        resolve(err.code === 'ENOENT' ? new RedisServerMissingError(`${command} is not installed`, { cause: err }) : err),
      );
      child.once('exit', (code) => resolve(new Error(`${command} exited with ${code} before it answered: ${stderr.trim()}`)));
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const outcome = await Promise.race([failed, redisAnswers(url, 200).then((up) => up || undefined)]);
      if (outcome === true) return;
      if (outcome instanceof Error) throw outcome;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${command} did not answer on ${url} within 10 s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(sig);
    await exited;
  };

  try {
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    port,
    dir,
    restart: async () => {
      await signal('SIGTERM');
      await start();
    },
    kill: () => signal('SIGKILL'),
    stop: async () => {
      await signal('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What {@link ensureTestRedis} settled on. */
export interface TestRedis {
  /** The Redis to use. */
  url: string;
  /** The private server started for it, when nothing answered at the URL asked for. */
  started?: PrivateRedis;
}

/**
 * The Redis a test run uses: `url` when something answers there; else a private redis-server
 * (stop it with `started.stop()` after the run). When nothing answers and redis-server is not
 * installed, a {@link RedisServerMissingError} whose message is the one line to show.
 */
export async function ensureTestRedis(url = REDIS_URL, command = 'redis-server'): Promise<TestRedis> {
  if (await redisAnswers(url)) return { url };
  try {
    const started = await startPrivateRedis({ command });
    return { url: started.url, started };
  } catch (err) {
    if (err instanceof RedisServerMissingError) {
      throw new RedisServerMissingError(`the tests need Redis: nothing answers at ${url} and ${command} is not installed (apt-get install redis-server)`, { cause: err });
    }
    throw err;
  }
}
