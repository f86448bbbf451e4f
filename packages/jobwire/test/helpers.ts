/**
 * Shared test helpers: real servers (in-process or as separate processes), real CLI runs,
 * users and polling. Every server gets its own temporary jobwire home and a free port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, type OutputChunk } from '@jobwire/client';
import { startWorker, type WorkerHandle } from '../src/distributed/worker.js';
import { startServer, type ServerHandle, type ServerOptions } from '../src/server/index.js';
import { newToken, readTokenFile, writeTokenFile } from '../src/server/tokens.js';
import { REDIS_URL, dropPrefix, freshPrefix } from './redis-env.js';

/**
 * The backend `withServer` runs on: `embedded` (default) or `redis` (env JOBWIRE_TEST_BACKEND):
 * a distributed-mode server on a fresh key prefix of the test Redis, with one in-process worker
 * holding the server's `multiSlots`. The same tests run unchanged on both.
 */
export const TEST_BACKEND: 'embedded' | 'redis' = process.env.JOBWIRE_TEST_BACKEND === 'redis' ? 'redis' : 'embedded';

/** Folder with test scripts (glite.sh, rot13.mjs). */
export const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
/** The CLI launcher. */
export const CLI = fileURLToPath(new URL('../../bin/jobwire.js', import.meta.url));

/** A fresh temporary jobwire home. */
export function tempHome(prefix = 'jobwire-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A server started in this process, with an admin client. */
export interface TestServer {
  server: ServerHandle;
  url: string;
  token: string;
  home: string;
  client: Client;
  /** A client for another user (created on demand). */
  clientFor(user: string): Client;
}

/** Adds a token for `user` to the home's tokens.json; returns it. */
export function addUser(home: string, user: string): string {
  const tokens = readTokenFile(home);
  const existing = tokens.find((t) => t.user === user && !t.admin);
  if (existing) return existing.token;
  const token = newToken();
  writeTokenFile(home, [...tokens, { token, user, admin: false }]);
  return token;
}

/** Runs `fn` with a fresh in-process server; always closes it and removes its home. */
export async function withServer<T>(fn: (s: TestServer) => Promise<T>, options: ServerOptions = {}): Promise<T> {
  const home = options.home ?? tempHome();
  const settings = { port: 0, logLevel: 'warn', graceSeconds: 1, multiSlots: 4, ...options, home };
  const prefix = TEST_BACKEND === 'redis' ? freshPrefix() : undefined;
  const server = await startServer(prefix ? { ...settings, redis: REDIS_URL, redisPrefix: prefix } : settings);
  let worker: WorkerHandle | undefined;
  if (prefix) {
    try {
      worker = await startWorker({
        redis: REDIS_URL,
        prefix,
        name: `test-${prefix.split(':')[1]}`,
        slots: settings.multiSlots,
        graceSeconds: settings.graceSeconds,
        workDir: join(home, 'work'),
        serverUrl: server.url,
        logLevel: 'warn',
      });
    } catch (err) {
      await server.close();
      await dropPrefix(prefix);
      throw err;
    }
  }
  const clients: Client[] = [];
  const make = (token: string): Client => {
    const c = new Client({ url: server.url, token });
    clients.push(c);
    return c;
  };
  const s: TestServer = {
    server,
    url: server.url,
    token: server.token,
    home,
    client: make(server.token),
    clientFor: (user) => make(addUser(home, user)),
  };
  try {
    return await fn(s);
  } finally {
    await worker?.close();
    await server.close();
    if (prefix) await dropPrefix(prefix);
    if (!options.home) rmSync(home, { recursive: true, force: true });
  }
}

/** A server running as its own process (for kill -9 tests and CLI tests). */
export interface ServerProcess {
  proc: ChildProcess;
  url: string;
  token: string;
  home: string;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
}

/** Starts `jobwire server --port 0` in its own process and waits until it recorded its URL. */
export async function startServerProcess(home: string, extraArgs: string[] = []): Promise<ServerProcess> {
  rmSync(join(home, 'server.json'), { force: true });
  const proc = spawn(process.execPath, [CLI, 'server', '--port', '0', '--home', home, '--log-level', 'warn', '--grace', '1', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout!.resume();
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const record = await sleepUntil(() => {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${stderr}`);
    try {
      return JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string; pid: number };
    } catch {
      return undefined;
    }
  }, 15_000, 'server to start');
  const token = readFileSync(join(home, 'token'), 'utf8').trim();
  return { proc, url: record.url, token, home, exited };
}

/** Polls `probe` until it returns something other than undefined/false. */
export async function sleepUntil<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Result of a CLI run. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with `args` (env adds to the current environment); optional stdin text. */
export function runCli(args: string[], options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`jobwire ${args.join(' ')} did not finish in time; stdout=${stdout} stderr=${stderr}`));
    }, options.timeoutMs ?? 30_000);
    proc.on('error', reject);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (options.input !== undefined) proc.stdin.end(options.input);
    else proc.stdin.end();
  });
}

/** Environment that points the CLI at a server. */
export function cliEnv(s: { url: string; token: string; home: string }): Record<string, string> {
  return { JOBWIRE_URL: s.url, JOBWIRE_TOKEN: s.token, JOBWIRE_HOME: s.home };
}

/** Concatenates chunks. */
export function concat(chunks: Uint8Array[]): Buffer {
  return Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
}

/** Collects all output of an attachment until it ends. */
export async function collect(output: AsyncIterable<OutputChunk>): Promise<OutputChunk[]> {
  const all: OutputChunk[] = [];
  for await (const c of output) all.push(c);
  return all;
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True while `pid` is a process that still runs (a zombie, exited but not yet reaped, does not). */
export function runs(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return false;
  }
}

/** The numbers a job printed as its first line of stdout (e.g. `echo $$ $!`). */
export async function printedPids(client: Client, id: string): Promise<number[]> {
  const line = await sleepUntil(async () => {
    const text = Buffer.from((await client.readOutput(id, 'stdout')).data).toString();
    return text.includes('\n') ? text.slice(0, text.indexOf('\n')) : undefined;
  }, 10_000, `job ${id} to print its pids`);
  return line.split(' ').map(Number);
}

/**
 * A shell command that prints `PID still runs` for each of `pids` still running, then
 * `checked`: run as a job, it shows whether it ran alone.
 */
export function reportRunning(pids: number[]): string {
  return `for p in ${pids.join(' ')}; do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); if [ -n "$s" ] && [ "$s" != Z ]; then echo "$p still runs"; fi; done; echo checked`;
}
