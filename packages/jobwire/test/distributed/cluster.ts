/**
 * A distributed-mode cluster for tests, made of real processes: `jobwire server --redis` and
 * `jobwire worker` processes on a fresh key prefix of the test Redis. Everything started is
 * stopped (and the prefix dropped) by `close()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Client } from '@jobwire/client';
import { Redis } from 'ioredis';
import { CLI, sleepUntil, startServerProcess, removeHome, tempHome, type ServerProcess } from '../helpers.js';
import { REDIS_URL, dropPrefix, freshPrefix } from '../redis-env.js';

/** A worker process. */
export interface WorkerProcess {
  name: string;
  /** What it was started with (its home included), for {@link TestCluster.restartWorker}. */
  spec: WorkerSpec;
  home: string;
  proc: ChildProcess;
  exited: Promise<void>;
  /** What it wrote to stderr (its log). */
  log(): string;
}

/** What a worker is started with. */
export interface WorkerSpec {
  name: string;
  pools?: string[];
  slots?: number;
  /** `--dead-after` seconds. @defaultValue 5 (the tests' bound: settled within 10 s; the worker's own default is 30) */
  deadAfter?: number;
  /** `--prefetch`. @defaultValue the worker's default (its slots) */
  prefetch?: number;
  /** `--executor URL` (e.g. `slurm:`; the worker inherits this process's environment, SLURM_CONF too). @defaultValue the job host */
  executor?: string;
  /** Environment on top of this process's. @defaultValue none */
  env?: Record<string, string>;
}

/** A cluster of server and worker processes on one Redis prefix. */
export class TestCluster {
  readonly prefix = freshPrefix();
  readonly servers: ServerProcess[] = [];
  readonly workers = new Map<string, WorkerProcess>();
  readonly homes: string[] = [];
  /** Process groups of jobs to kill at the end (orphans of killed workers). */
  readonly orphans = new Set<number>();

  constructor(readonly redisUrl = REDIS_URL) {}

  /** Starts a server process on the cluster's Redis. */
  async addServer(): Promise<ServerProcess> {
    const home = tempHome('jobwire-cluster-');
    this.homes.push(home);
    const server = await startServerProcess(home, ['--redis', this.redisUrl, '--redis-prefix', this.prefix]);
    this.servers.push(server);
    return server;
  }

  /** Starts a worker process (on a new home) and waits until it is taking jobs. */
  async addWorker(spec: WorkerSpec): Promise<WorkerProcess> {
    const home = tempHome('jobwire-worker-');
    this.homes.push(home);
    return this.#startWorker(spec, home);
  }

  /** Starts worker `name` again, as it was started and on the same home (its earlier process has exited). */
  async restartWorker(name: string): Promise<WorkerProcess> {
    const worker = this.workers.get(name)!;
    return this.#startWorker(worker.spec, worker.home);
  }

  /** Stops worker `name` with SIGTERM and waits until the process is gone; resolves to its exit code. */
  async stopWorker(name: string): Promise<number | null> {
    const worker = this.workers.get(name)!;
    worker.proc.kill('SIGTERM');
    await worker.exited;
    return worker.proc.exitCode;
  }

  async #startWorker(spec: WorkerSpec, home: string): Promise<WorkerProcess> {
    const args = [CLI, 'worker', '--redis', this.redisUrl, '--redis-prefix', this.prefix, '--name', spec.name, '--slots', String(spec.slots ?? 2)];
    for (const pool of spec.pools ?? []) args.push('--pool', pool);
    args.push('--dead-after', String(spec.deadAfter ?? 5));
    if (spec.prefetch !== undefined) args.push('--prefetch', String(spec.prefetch));
    if (spec.executor !== undefined) args.push('--executor', spec.executor);
    args.push('--grace', '1', '--log-level', 'warn', '--home', home, '--work-dir', `${home}-work`);
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(spec.env !== undefined ? { env: { ...process.env, ...spec.env } } : {}) });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    try {
      await sleepUntil(() => {
        if (proc.exitCode !== null) throw new Error(`worker ${spec.name} exited with ${proc.exitCode}: ${stderr}`);
        return stdout.includes(`jobwire worker ${spec.name} ready`);
      }, 30_000, `worker ${spec.name} to start`);
    } catch (err) {
      // Not left running: its pipes would keep the test file's process waiting for ever.
      proc.kill('SIGKILL');
      throw err;
    }
    const worker: WorkerProcess = { name: spec.name, spec, home, proc, exited, log: () => stderr };
    this.workers.set(spec.name, worker);
    return worker;
  }

  /** A client of server `index` (admin token of that server; every server accepts it). */
  client(index = 0, options: { fallbackUrls?: string[] } = {}): Client {
    const server = this.servers[index]!;
    return new Client({ url: server.url, token: server.token, ...options });
  }

  /** The pid of a running job (read from Redis). */
  async jobPid(id: string): Promise<number> {
    const redis = new Redis(this.redisUrl);
    try {
      const pid = Number(await redis.hget(`${this.prefix}job:${id}`, 'pid'));
      // A test that compares pids must not compare two missing ones.
      if (!(pid > 0)) throw new Error(`job ${id} has no pid stored in Redis`);
      return pid;
    } finally {
      redis.disconnect();
    }
  }

  /** Kills a worker with SIGKILL and waits until the process is gone. */
  async killWorker(name: string): Promise<void> {
    const worker = this.workers.get(name)!;
    worker.proc.kill('SIGKILL');
    await worker.exited;
  }

  /** Stops everything, kills orphaned jobs, drops the prefix and the homes. */
  async close(): Promise<void> {
    const stopping: Promise<void>[] = [];
    for (const worker of this.workers.values()) {
      if (worker.proc.exitCode === null && worker.proc.signalCode === null) {
        worker.proc.kill('SIGTERM');
        stopping.push(worker.exited);
      }
    }
    await within(Promise.all(stopping), 10_000);
    for (const server of this.servers) {
      if (server.proc.exitCode === null && server.proc.signalCode === null) {
        server.proc.kill('SIGTERM');
        stopping.push(server.exited);
      }
    }
    await within(Promise.all(stopping), 10_000);
    for (const proc of [...this.workers.values(), ...this.servers].map((p) => p.proc)) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
    for (const pgid of this.orphans) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    await dropPrefix(this.prefix, this.redisUrl);
    for (const home of this.homes) removeHome(home);
  }
}

/** Waits for `promise`, at most `ms` (without keeping the process alive after it settled). */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Runs `body` with a fresh cluster, always closing it. */
export async function withCluster<T>(body: (cluster: TestCluster) => Promise<T>, redisUrl?: string): Promise<T> {
  const cluster = new TestCluster(redisUrl);
  try {
    return await body(cluster);
  } finally {
    await cluster.close();
  }
}
