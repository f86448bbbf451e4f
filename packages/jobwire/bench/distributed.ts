/**
 * Distributed-mode figures for `npm run bench`, each beside a baseline measured in the same run:
 * batch throughput through Redis with 1 and 2 worker processes (and of no-op JS function jobs)
 * beside raw BullMQ add → process of no-op jobs on the same Redis; the interactive round trip
 * through Redis (server → Redis → worker → `cat` and back) beside the embedded server's.
 *
 * Needs Redis at BENCH_REDIS (default redis://127.0.0.1:6379); it uses a fresh key prefix and
 * deletes it afterwards. BENCH_DISTRIBUTED (a comma-separated list of `true`, `js`, `two`,
 * `roundtrip`; default all) runs only those rows, for a quick look at one of them;
 * BENCH_PREFETCH=N starts the workers with `--prefetch N` (default: theirs). The `js` row also
 * counts the Redis commands per job (beside raw BullMQ's): use a Redis of its own for that
 * figure (BENCH_REDIS), as every client's commands count.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Client, type JobDescription } from '@jobwire/client';
import { dropPrefix } from '../src/store/redis/index.js';
import { clientOf } from './client-of.js';
import { jobRoundTrips } from './round-trip.js';

/** A row of the benchmark table (as `run.ts` prints it). */
export interface BenchRow {
  name: string;
  jobwire: string;
  baseline: string;
  ratio: string;
  target: string;
}

/** What the distributed benchmarks need from the runner. */
export interface DistributedBenchOptions {
  cli: string;
  /** A client of the embedded server of the same run (for the round-trip baseline). */
  embedded: Client;
  jobs: number;
  rounds: number;
  redisUrl?: string;
}

/** The rows to measure (see BENCH_DISTRIBUTED). */
const PARTS = process.env.BENCH_DISTRIBUTED?.split(',').map((part) => part.trim());
const part = (name: string): boolean => PARTS === undefined || PARTS.includes(name);

const now = (): bigint => process.hrtime.bigint();
const seconds = (t0: bigint): number => Number(now() - t0) / 1e9;
function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Processes started for the benchmark, stopped at the end. */
class Processes {
  readonly all: ChildProcess[] = [];
  readonly homes: string[] = [];

  home(): string {
    const home = mkdtempSync(join(tmpdir(), 'jobwire-bench-'));
    this.homes.push(home);
    return home;
  }

  async server(cli: string, redisUrl: string, prefix: string): Promise<Client> {
    const home = this.home();
    const proc = spawn(process.execPath, [cli, 'server', '--port', '0', '--home', home, '--log-level', 'warn', '--redis', redisUrl, '--redis-prefix', prefix], { stdio: ['ignore', 'ignore', 'inherit'] });
    this.all.push(proc);
    return clientOf(home);
  }

  async worker(cli: string, redisUrl: string, prefix: string, name: string, slots: number): Promise<void> {
    const home = this.home();
    const proc = spawn(process.execPath, [cli, 'worker', '--redis', redisUrl, '--redis-prefix', prefix, '--name', name, '--slots', String(slots), ...(process.env.BENCH_PREFETCH ? ['--prefetch', process.env.BENCH_PREFETCH] : []), '--log-level', 'warn', '--home', home], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.all.push(proc);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      proc.on('exit', (code) => reject(new Error(`worker ${name} exited with ${code}`)));
    });
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.all.map(
        (proc) =>
          new Promise<void>((resolve) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
            proc.once('exit', () => resolve());
            proc.kill('SIGTERM');
          }),
      ),
    );
    for (const home of this.homes) rmSync(home, { recursive: true, force: true });
  }
}

/**
 * Jobs submitted at once (a request each, or with `batched` up to 1000 per `submitBatchJobs`
 * request), rate from the first submit to the last Success seen on the events stream.
 */
export async function jobRate(client: Client, jobs: number, description: JobDescription, group: string, options: { batched?: boolean } = {}): Promise<number> {
  const stream = client.events(group);
  await stream.ready;
  const t0 = now();
  let finished = 0;
  const done = (async () => {
    for await (const ev of stream) {
      if (ev.info.type === 'job' && (ev.info.status === 'Success' || ev.info.status === 'Failed')) {
        if (ev.info.status === 'Failed') throw new Error(`a benchmark job failed: ${ev.info.error ?? ''}`);
        if (++finished === jobs) break;
      }
    }
  })();
  const submits: Promise<unknown>[] = [];
  if (options.batched === true) {
    for (let left = jobs; left > 0; left -= 1000) submits.push(client.submitBatchJobs(Array.from({ length: Math.min(left, 1000) }, () => ({ ...description, group }))));
  } else {
    for (let i = 0; i < jobs; i++) submits.push(client.submitBatchJob({ ...description, group }));
  }
  await Promise.all(submits);
  await done;
  stream.close();
  return jobs / seconds(t0);
}

/**
 * Commands Redis ran so far (INFO commandstats, those inside scripts included). Counts every
 * client's: per-job figures from it mean something only on a Redis nothing else uses.
 */
async function redisCommands(redisUrl: string): Promise<number> {
  const connection = new Redis(redisUrl);
  try {
    const info = await connection.info('commandstats');
    return [...info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  } finally {
    connection.disconnect();
  }
}

/** Runs `measure` and answers its result with the Redis commands per job it cost (see redisCommands). */
async function counted<T>(redisUrl: string, jobs: number, measure: () => Promise<T>): Promise<{ value: T; perJob: number }> {
  const before = await redisCommands(redisUrl);
  const value = await measure();
  return { value, perJob: (await redisCommands(redisUrl)) / jobs - before / jobs };
}

/** Raw BullMQ on the same Redis: add `jobs` no-op jobs, process them with `concurrency`; answers jobs/s. */
export async function rawBullmq(redisUrl: string, prefix: string, jobs: number, concurrency: number): Promise<number> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('raw-noop', { connection, prefix: `${prefix}rawbull` });
  let processed = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  const worker = new Worker('raw-noop', async () => undefined, { connection, prefix: `${prefix}rawbull`, concurrency, removeOnComplete: { count: 0 } });
  worker.on('completed', () => {
    if (++processed === jobs) allDone();
  });
  await worker.waitUntilReady();
  const t0 = now();
  await Promise.all(Array.from({ length: jobs }, (_, i) => queue.add('noop', { i }, { removeOnComplete: true })));
  await finished;
  const rate = jobs / seconds(t0);
  await worker.close();
  await queue.close();
  connection.disconnect();
  return rate;
}

/** `rounds` lines through an interactive `cat` job; sorted round-trip times in ns. */
async function catRoundTrips(client: Client, rounds: number): Promise<number[]> {
  const times = await jobRoundTrips(await client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited' }), rounds);
  return times.sort((a, b) => a - b);
}

/** Runs the distributed benchmarks; returns their rows. */
export async function distributedBench(options: DistributedBenchOptions): Promise<BenchRow[]> {
  const redisUrl = options.redisUrl ?? process.env.BENCH_REDIS ?? 'redis://127.0.0.1:6379';
  const prefix = `jwbench:${randomBytes(4).toString('hex')}:`;
  const slots = availableParallelism();
  const rows: BenchRow[] = [];
  const procs = new Processes();
  const rate = (n: number): string => `${n.toFixed(0)} jobs/s`;
  const us = (ns: number): string => `${(ns / 1000).toFixed(0)} µs`;
  try {
    console.error('… distributed: raw BullMQ baseline');
    // Measured before and after the jobwire rows, their mean the baseline: on a loaded machine
    // one measurement alone drifts with the load of the moment.
    const { value: rawBefore, perJob: rawCommands } = await counted(redisUrl, options.jobs, () => rawBullmq(redisUrl, prefix, options.jobs, slots));
    let raw = rawBefore;
    const client = await procs.server(options.cli, redisUrl, prefix);
    await procs.worker(options.cli, redisUrl, prefix, 'bench-1', slots);
    const vsRaw = (n: number): string => `${((100 * n) / raw).toFixed(0)}%`;
    const rateRows: Array<{ row: BenchRow; value: number }> = [];
    let commandRow: BenchRow | undefined;

    if (part('true')) {
      console.error('… distributed: batch throughput, 1 worker');
      const one = await jobRate(client, options.jobs, { executable: 'true' }, 'dbench-1');
      rateRows.push({ row: { name: `distributed: ${options.jobs} \`true\` jobs, 1 worker × ${slots} slots`, jobwire: rate(one), baseline: '', ratio: '', target: '' }, value: one });
    }
    if (part('js')) {
      console.error('… distributed: JS function jobs, 1 worker');
      const { value: js, perJob } = await counted(redisUrl, options.jobs, () => jobRate(client, options.jobs, { js: { code: 'return 1' } }, 'dbench-js'));
      rateRows.push({ row: { name: `distributed: ${options.jobs} no-op JS function jobs, 1 worker × ${slots} slots`, jobwire: rate(js), baseline: '', ratio: '', target: '≥ 80%' }, value: js });
      commandRow = {
        name: 'distributed: Redis commands per no-op JS function job (INFO commandstats, scripts\' own commands included; every client of that Redis counts)',
        jobwire: perJob.toFixed(0),
        baseline: `${rawCommands.toFixed(0)} (raw BullMQ no-op)`,
        ratio: `${(perJob / rawCommands).toFixed(1)}×`,
        target: '',
      };
    }

    if (part('two')) {
      await procs.worker(options.cli, redisUrl, prefix, 'bench-2', slots);
      console.error('… distributed: batch throughput, 2 workers');
      const two = await jobRate(client, options.jobs, { executable: 'true' }, 'dbench-2');
      rateRows.push({ row: { name: `distributed: ${options.jobs} \`true\` jobs, 2 workers × ${slots} slots (one machine)`, jobwire: rate(two), baseline: '', ratio: '', target: '' }, value: two });
    }
    if (rateRows.length > 0) {
      console.error('… distributed: raw BullMQ baseline again');
      const rawAfter = await rawBullmq(redisUrl, `${prefix}again:`, options.jobs, slots);
      raw = (rawBefore + rawAfter) / 2;
      for (const { row, value } of rateRows) {
        rows.push({ ...row, baseline: `${rate(raw)} (raw BullMQ no-op, concurrency ${slots}; mean of ${rate(rawBefore)} before and ${rate(rawAfter)} after)`, ratio: vsRaw(value) });
      }
      if (commandRow !== undefined) rows.push(commandRow);
    }

    if (!part('roundtrip')) return rows;
    console.error('… distributed: interactive round trip');
    const viaRedis = await catRoundTrips(client, options.rounds);
    const embedded = await catRoundTrips(options.embedded, options.rounds);
    for (const p of [50, 99]) {
      rows.push({
        name: `distributed: interactive round trip p${p} (SDK → server → Redis → worker → cat and back)`,
        jobwire: us(pct(viaRedis, p)),
        baseline: `${us(pct(embedded, p))} (embedded server)`,
        ratio: `${(pct(viaRedis, p) / pct(embedded, p)).toFixed(2)}×`,
        target: '',
      });
    }
  } finally {
    await procs.stop();
    await dropPrefix(redisUrl, prefix);
  }
  return rows;
}
