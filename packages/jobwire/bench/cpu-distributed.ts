/**
 * Per-job costs of Redis (distributed) mode, which the load of a shared machine moves far less
 * than wall-clock rates: CPU time per job of a `jobwire server --redis`, one `jobwire worker`,
 * the worker's job host and its warm JS runners, and Redis itself; the Redis commands and the
 * reads Redis processed (about one per round trip: a pipeline arrives in one read) per job.
 * Beside them, raw BullMQ no-op jobs on the same Redis (run before and after), with the same
 * counts. Not part of `npm run bench`; run `node packages/jobwire/dist/bench/cpu-distributed.js`
 * after a build, with BENCH_REDIS a Redis of its own (every client's commands count; Redis's CPU
 * is read from its INFO). BENCH_JOBS (default 300) jobs per row after 20 warm-up ones;
 * BENCH_SLOTS (default 2) the worker's slots and BullMQ's concurrency; BENCH_CPU_ROWS picks rows
 * (comma-separated: js, true; default js). BENCH_SERVER_NODE_ARGS and BENCH_WORKER_NODE_ARGS
 * (space-separated) pass node options to the server and the worker, e.g. `--cpu-prof`.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { JobDescription } from '@jobwire/client';
import { stopHost } from '../src/host/index.js';
import { dropPrefix } from '../src/store/redis/index.js';
import { childrenOf } from '../test/executors/sshd.js';
import { clientOf } from './client-of.js';
import { jobRate, rawBullmq } from './distributed.js';

const CLI = fileURLToPath(new URL('../../bin/jobwire.js', import.meta.url));
const REDIS = process.env.BENCH_REDIS ?? 'redis://127.0.0.1:6379';
const JOBS = Number(process.env.BENCH_JOBS ?? 300);
const SLOTS = Number(process.env.BENCH_SLOTS ?? 2);
const ROWS = (process.env.BENCH_CPU_ROWS ?? 'js').split(',');
const nodeArgs = (name: string): string[] => process.env[name]?.split(' ').filter((arg) => arg !== '') ?? [];
const TICK_MS = 1000 / 100; // USER_HZ

/** utime + stime of `pid` in ms. */
function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** What Redis did so far: commands (those inside scripts included), reads, CPU ms. */
async function redisCounts(connection: Redis): Promise<{ commands: number; reads: number; cpu: number }> {
  const [commandstats, stats, cpu] = await Promise.all([connection.info('commandstats'), connection.info('stats'), connection.info('cpu')]);
  const field = (text: string, name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? NaN);
  return {
    commands: [...commandstats.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0),
    reads: field(stats, 'total_reads_processed'),
    cpu: (field(cpu, 'used_cpu_sys') + field(cpu, 'used_cpu_user')) * 1000,
  };
}

const started: ChildProcess[] = [];
function start(args: string[], nodeOptions: string[]): ChildProcess {
  const proc = spawn(process.execPath, [...nodeOptions, CLI, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(proc);
  return proc;
}

async function main(): Promise<void> {
  const prefix = `jwcpu:${randomBytes(4).toString('hex')}:`;
  const serverHome = mkdtempSync(join(tmpdir(), 'jobwire-cpu-server-'));
  const workerHome = mkdtempSync(join(tmpdir(), 'jobwire-cpu-worker-'));
  const connection = new Redis(REDIS);
  const print = (cells: Array<string | number>): void => console.log(cells.join('\t'));
  const perJob = (b: number, a: number): string => ((b - a) / JOBS).toFixed(2);
  try {
    print([`jobs/row ${JOBS}, slots ${SLOTS}; CPU ms per job (utime+stime); Redis commands and reads per job`]);
    print(['row', 'jobs/s', 'server', 'worker', 'host', 'runners', 'redis', 'commands', 'reads']);
    const bullRow = async (name: string): Promise<void> => {
      const a = await redisCounts(connection);
      const me0 = process.cpuUsage();
      const rate = await rawBullmq(REDIS, `${prefix}${name}:`, JOBS, SLOTS);
      const me = process.cpuUsage(me0);
      const b = await redisCounts(connection);
      print([name, rate.toFixed(0), '', `${((me.user + me.system) / 1000 / JOBS).toFixed(2)} (this process)`, '', '', perJob(b.cpu, a.cpu), perJob(b.commands, a.commands), perJob(b.reads, a.reads)]);
    };
    await bullRow('raw BullMQ (before)');
    const server = start(['server', '--port', '0', '--home', serverHome, '--log-level', 'warn', '--redis', REDIS, '--redis-prefix', prefix], nodeArgs('BENCH_SERVER_NODE_ARGS'));
    const worker = start(['worker', '--redis', REDIS, '--redis-prefix', prefix, '--name', 'cpu-1', '--slots', String(SLOTS), '--log-level', 'warn', '--home', workerHome], nodeArgs('BENCH_WORKER_NODE_ARGS'));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      worker.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      worker.on('exit', (code) => reject(new Error(`the worker exited with ${code}`)));
    });
    const client = await clientOf(serverHome);
    for (let i = 0; i < 300 && !existsSync(join(workerHome, 'host.json')); i++) await new Promise((r) => setTimeout(r, 50));
    const hostPid = (JSON.parse(readFileSync(join(workerHome, 'host.json'), 'utf8')) as { pid: number }).pid;
    const descriptions: Record<string, JobDescription> = { js: { js: { code: 'return 1' } }, true: { executable: 'true' } };
    for (const name of ROWS) {
      const description = descriptions[name]!;
      await jobRate(client, 20, description, `warm-${name}`);
      const runners = (): number => childrenOf(hostPid).reduce((sum, pid) => sum + cpuOf(pid), 0);
      const a = { server: cpuOf(server.pid!), worker: cpuOf(worker.pid!), host: cpuOf(hostPid), runners: runners(), redis: await redisCounts(connection) };
      const rate = await jobRate(client, JOBS, description, `cpu-${name}`);
      const b = { server: cpuOf(server.pid!), worker: cpuOf(worker.pid!), host: cpuOf(hostPid), runners: runners(), redis: await redisCounts(connection) };
      print([name, rate.toFixed(0), perJob(b.server, a.server), perJob(b.worker, a.worker), perJob(b.host, a.host), perJob(b.runners, a.runners), perJob(b.redis.cpu, a.redis.cpu), perJob(b.redis.commands, a.redis.commands), perJob(b.redis.reads, a.redis.reads)]);
    }
    for (const proc of started) proc.kill('SIGTERM');
    await Promise.all(started.map((proc) => new Promise((r) => (proc.exitCode !== null ? r(null) : proc.on('exit', r)))));
    await bullRow('raw BullMQ (after)');
  } finally {
    for (const proc of started) if (proc.exitCode === null) proc.kill('SIGKILL');
    connection.disconnect();
    await stopHost(workerHome).catch(() => {});
    await stopHost(serverHome).catch(() => {});
    await dropPrefix(REDIS, prefix);
    for (const home of [serverHome, workerHome]) {
      rmSync(home, { recursive: true, force: true });
      rmSync(`${home}-work`, { recursive: true, force: true });
    }
  }
}

await main();
