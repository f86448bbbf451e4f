/**
 * Shared test helpers: real servers (in-process or as separate processes), real CLI runs,
 * users and polling. Every server gets its own temporary jobwire home and a free port.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, type OutputChunk } from '@jobwire/client';
import { startWorker, type WorkerHandle } from '../src/distributed/worker.js';
import { stillSame } from '../src/executors/local/process-identity.js';
import { hostStatus, stopHost } from '../src/host/index.js';
import { startServer, type ServerHandle, type ServerOptions } from '../src/server/index.js';
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

/** Tokens handed out by {@link addUser}, by home and user: tokens.json keeps only digests. */
const addedTokens = new Map<string, string>();

/** Options of {@link addUser}. */
export interface AddUserOptions {
  /**
   * OS account the user's jobs run as under a root server; null for none (a root server then
   * refuses the user's jobs). @defaultValue the account running the tests, so jobs run as before
   */
  osUser?: string | null;
}

/**
 * Adds a token for `user` to the home's tokens.json, written directly in its format (the
 * token's SHA-256 digest, base64url, never the token; a temporary file renamed over the old one,
 * as servers re-read it at any time); returns the token.
 */
export function addUser(home: string, user: string, options: AddUserOptions = {}): string {
  const key = `${home}\0${user}`;
  const known = addedTokens.get(key);
  if (known !== undefined && options.osUser === undefined) return known;
  const osUser = options.osUser === undefined ? userInfo().username : options.osUser;
  const path = join(home, 'tokens.json');
  const file = JSON.parse(readFileSync(path, 'utf8')) as { tokens: object[] };
  const token = randomBytes(32).toString('base64url');
  const sha256 = createHash('sha256').update(token).digest('base64url');
  file.tokens.push({ sha256, user, admin: false, ...(osUser !== null ? { osUser } : {}), createdAt: new Date().toISOString() });
  writeFileSync(`${path}.tmp`, JSON.stringify(file, null, 2), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
  addedTokens.set(key, token);
  return token;
}

/**
 * Removes a temporary home and the work folder beside it (`<home>-work`). A job host still
 * serving the home (its jobs outlive servers) is told to stop them and exit (SIGTERM, after an
 * identity check), so no test leaves processes behind.
 */
export function removeHome(home: string): void {
  const host = hostStatus(home);
  if (host.state === 'running') {
    // The host stores its jobs' ends in the home before it exits: wait for that (up to 20 s), then make sure.
    const signal = (name: NodeJS.Signals): void => {
      try {
        if (stillSame(host.info.identity)) process.kill(host.info.pid, name);
      } catch {
        // gone meanwhile
      }
    };
    signal('SIGTERM');
    const deadline = Date.now() + 20_000;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (stillSame(host.info.identity) && Date.now() < deadline) Atomics.wait(pause, 0, 0, 20);
    signal('SIGKILL');
  }
  rmSync(home, { recursive: true, force: true });
  rmSync(`${home}-work`, { recursive: true, force: true });
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
        // A home of its own for the worker's job host; a test's end stops its jobs.
        home: `${home}-worker`,
        keepJobs: false,
        workDir: `${home}-work`,
        serverUrl: server.url,
        ...(options.tls ? { caFile: options.tls.cert } : {}),
        logLevel: 'warn',
      });
    } catch (err) {
      await server.close();
      await dropPrefix(prefix);
      removeHome(`${home}-worker`);
      throw err;
    }
  }
  const clients: Client[] = [];
  // A TLS server's certificate is self-signed in the tests: its clients trust it.
  const ca = options.tls ? readFileSync(options.tls.cert, 'utf8') : undefined;
  const make = (token: string): Client => {
    const c = new Client({ url: server.url, token, ...(ca !== undefined ? { ca } : {}) });
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
    // Jobs outlive a server by default (they stay on the job host): a test's end stops them.
    await server.close({ stopJobs: true });
    if (!prefix) await stopHost(home);
    if (prefix) await dropPrefix(prefix);
    if (prefix) removeHome(`${home}-worker`);
    if (!options.home) removeHome(home);
  }
}

/** Runs openssl in `dir`. Never skipped: without openssl, tests that need certificates fail saying what to install. */
function openssl(dir: string, ...args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('openssl is needed to make the test certificates (apt-get install openssl)', { cause: err });
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? String(err)}`, { cause: err });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Makes a CA, a server certificate for 127.0.0.1 and localhost signed by it, and a client certificate, in `dir`. */
export function makeCertificates(dir: string): { ca: string; cert: string; key: string; clientCert: string; clientKey: string } {
  openssl(dir, 'req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=jobwire test CA');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(dir, 'req', ...EC_KEY, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext');
  openssl(dir, 'req', ...EC_KEY, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=xenon client');
  openssl(dir, 'x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2');
  const p = (f: string): string => join(dir, f);
  return { ca: p('ca.crt'), cert: p('server.crt'), key: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key') };
}

/**
 * Makes a self-signed certificate `<name>.crt` and its key `<name>.key` in `dir` with the
 * one-liner docs/deployment.md shows; `subj` and `san` as given to openssl.
 */
export function makeSelfSigned(dir: string, name = 'self', subj = '/CN=localhost', san = 'DNS:localhost,IP:127.0.0.1'): { cert: string; key: string } {
  const extra = san ? ['-addext', `subjectAltName=${san}`] : [];
  openssl(dir, 'req', '-x509', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', subj, ...extra);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** A server running as its own process (for kill -9 tests and CLI tests). */
export interface ServerProcess {
  proc: ChildProcess;
  url: string;
  token: string;
  home: string;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** What the process wrote to stderr so far. */
  stderr(): string;
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
  let record: { url: string; pid: number };
  try {
    record = await sleepUntil(() => {
      if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${stderr}`);
      try {
        return JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string; pid: number };
      } catch {
        return undefined;
      }
    }, 30_000, 'server to start');
  } catch (err) {
    // A server that did not come up in time must not outlive the test: its pipes would keep the
    // test file's process waiting for ever.
    proc.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; its stderr so far: ${stderr || '(nothing)'}`, { cause: err });
  }
  const token = readFileSync(join(home, 'token'), 'utf8').trim();
  return { proc, url: record.url, token, home, exited, stderr: () => stderr };
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
export function runCli(args: string[], options: { env?: Record<string, string>; input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'], ...(options.cwd !== undefined ? { cwd: options.cwd } : {}) });
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

/** An HTTP answer read off a raw socket by {@link rawRequest}. */
export interface RawResponse {
  status: number;
  /** The reason phrase of the status line. */
  reason: string;
  /** Header names in lower case; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  /** The body parsed as JSON, when it is JSON. */
  json?: unknown;
}

/** Options of {@link rawRequest}. */
export interface RawRequestOptions {
  /** The request is a HEAD: the answer has no body whatever its headers say. @defaultValue false */
  head?: boolean;
  /** How long to wait for a complete answer before failing. @defaultValue 10000 */
  timeoutMs?: number;
}

/**
 * Sends `request` as it is over a new TCP connection to the server at `url` and reads the first
 * final answer (a 101 ends at its headers; a 100 Continue is skipped), then closes the connection. For targets and headers that
 * fetch would normalise or refuse to send. Rejects when the server closes without answering.
 */
export function rawRequest(url: string, request: string | Buffer, options: RawRequestOptions = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname.replace(/^\[|\]$/g, ''));
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | undefined, res?: RawResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(() => finish(new Error(`no complete answer within ${options.timeoutMs ?? 10_000} ms; got ${JSON.stringify(data.toString('latin1').slice(0, 300))}`)), options.timeoutMs ?? 10_000);
    /** Parses what arrived; `ended` once the server closed. */
    const tryParse = (ended: boolean): void => {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) {
        if (ended) finish(new Error(`the server closed the connection without an answer; got ${JSON.stringify(data.toString('latin1').slice(0, 300))}`));
        return;
      }
      const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine!);
      if (!m) return finish(new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`));
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      const status = Number(m[1]);
      if (status >= 100 && status < 200 && status !== 101) {
        // An interim answer (100 Continue): the real one follows.
        data = data.subarray(end + 4);
        return tryParse(ended);
      }
      const rest = data.subarray(end + 4);
      let body: Buffer | undefined;
      if (options.head || status === 101 || status === 204 || status === 304) body = Buffer.alloc(0);
      else if (headers['content-length'] !== undefined) {
        const length = Number(headers['content-length']);
        if (rest.length >= length) body = rest.subarray(0, length);
      } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
        body = dechunk(rest);
      } else if (ended) body = rest;
      if (body === undefined) {
        if (ended) finish(new Error(`the connection closed inside the body of a ${status} answer`));
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        // not JSON
      }
      finish(undefined, { status, reason: m[2]!, headers, body, ...(json !== undefined ? { json } : {}) });
    };
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('close', () => tryParse(true));
    socket.on('error', (err) => {
      // A reset after the answer arrived still leaves the answer readable.
      tryParse(true);
      finish(err);
    });
    socket.write(request);
  });
}

/** The body of a complete chunked transfer, or undefined while it is incomplete. */
function dechunk(raw: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    if (raw.length < eol + 2 + size + 2) return undefined;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
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
