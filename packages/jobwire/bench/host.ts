/**
 * Micro-benchmark of the job host on its own (no server): each figure beside a baseline
 * measured in the same run, as ratios. Not wired into `npm run bench` yet (the server does not
 * use the host until the integration); run it with
 * `node packages/jobwire/dist/bench/host.js` after a build. Sizes: BENCH_OUTPUT_MB (default
 * 256), BENCH_JOBS (default 400), BENCH_ROUNDS (default 2000).
 *
 * - output throughput: one job writing BENCH_OUTPUT_MB to stdout, read live by one client
 *   while the host stores it; beside appending the same bytes to a file (64 KiB writes, no
 *   fsync, as the host) and reading them from a direct pipe;
 * - spawn rate: `true` jobs started through the host, each until its exit is stored and
 *   delivered, at the machine's parallelism; beside a spawn loop of the same concurrency;
 * - interactive round trip: one line through `cat` in the host and back, beside a direct pipe.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureHost } from '../src/host/ensure.js';
import type { HostClient } from '../src/host/client.js';
import { stopHost } from '../src/host/recovery.js';
import { LINE, pipeRoundTrips } from './round-trip.js';

const OUTPUT_MB = Number(process.env.BENCH_OUTPUT_MB ?? 256);
const JOBS = Number(process.env.BENCH_JOBS ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2000);

const rows: string[][] = [];
const now = (): bigint => process.hrtime.bigint();
const seconds = (since: bigint): number => Number(now() - since) / 1e9;
const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
let nextId = 0;

/** Starts a job and resolves with its output byte count once its exit arrives; forgets it. */
async function runThrough(client: HostClient, description: object, onOutput?: (data: Uint8Array) => void): Promise<number> {
  const jobId = `bench-${nextId++}`;
  let bytes = 0;
  let exited!: () => void;
  const ended = new Promise<void>((resolve) => (exited = resolve));
  await client.start(
    { jobId, description: description as never, defaultCwd: tmpdir(), env: {} },
    {
      listener: (event) => {
        if (event.type === 'output') {
          bytes += event.chunk.data.byteLength;
          onOutput?.(event.chunk.data);
        } else if (event.type === 'exit') exited();
      },
    },
  );
  await ended;
  await client.forget(jobId);
  return bytes;
}

async function throughput(client: HostClient, dir: string): Promise<void> {
  const bytes = OUTPUT_MB * 1024 * 1024;
  const args = ['-c', `head -c ${bytes} /dev/zero`];
  let t0 = now();
  const direct = spawn('sh', args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let n = 0;
  for await (const data of direct.stdout) n += (data as Buffer).length;
  const directS = seconds(t0);
  if (n !== bytes) throw new Error(`the direct pipe gave ${n} bytes`);

  const file = join(dir, 'append-baseline');
  const fd = openSync(file, 'a');
  const block = Buffer.alloc(64 * 1024);
  t0 = now();
  for (let w = 0; w < bytes; w += block.length) writeSync(fd, block);
  const diskS = seconds(t0);
  closeSync(fd);
  rmSync(file);

  t0 = now();
  const got = await runThrough(client, { executable: 'sh', arguments: args });
  const hostS = seconds(t0);
  if (got !== bytes) throw new Error(`the host gave ${got} bytes`);
  const rate = (s: number): string => `${(bytes / 1024 / 1024 / s).toFixed(0)} MiB/s`;
  rows.push([`output, ${OUTPUT_MB} MiB to one client (stored by the host)`, rate(hostS), `${rate(diskS)} append to a file`, `${((100 * diskS) / hostS).toFixed(0)}% of append`]);
  rows.push(['', '', `${rate(directS)} direct pipe`, `${((100 * directS) / hostS).toFixed(0)}% of pipe`]);
}

async function spawnRate(client: HostClient, concurrency: number): Promise<void> {
  let next = 0;
  let t0 = now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < JOBS) await new Promise<void>((resolve, reject) => spawn('true').on('exit', () => resolve()).on('error', reject));
    }),
  );
  const loop = JOBS / seconds(t0);
  next = 0;
  t0 = now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < JOBS) await runThrough(client, { executable: 'true' });
    }),
  );
  const host = JOBS / seconds(t0);
  rows.push([`${JOBS} \`true\` jobs, concurrency ${concurrency}`, `${host.toFixed(0)} jobs/s`, `${loop.toFixed(0)} spawns/s`, `${((100 * host) / loop).toFixed(0)}%`]);
}

async function roundTrip(client: HostClient): Promise<void> {
  const line = LINE;
  const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
  const direct = await pipeRoundTrips(cat, ROUNDS);
  cat.stdin.end();

  const jobId = `bench-${nextId++}`;
  let wake: (() => void) | undefined;
  let received = 0;
  let exitedNow!: () => void;
  const exited = new Promise<void>((resolve) => (exitedNow = resolve));
  await client.start(
    { jobId, description: { executable: 'cat', interactive: true }, defaultCwd: tmpdir(), env: {} },
    {
      listener: (event) => {
        if (event.type === 'output') {
          received += event.chunk.data.byteLength;
          wake?.();
        } else if (event.type === 'exit') exitedNow();
      },
    },
  );
  const viaHost: number[] = [];
  let offset = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = now();
    const want = received + line.length;
    await new Promise<void>((resolve) => {
      wake = () => {
        if (received >= want) resolve();
      };
      client.writeStdin(jobId, offset, line);
      offset += line.length;
    });
    viaHost.push(Number(now() - t0));
  }
  await client.closeStdin(jobId, offset);
  await exited;
  await client.forget(jobId);
  direct.sort((a, b) => a - b);
  viaHost.sort((a, b) => a - b);
  const us = (ns: number): string => `${(ns / 1000).toFixed(0)} µs`;
  rows.push([`interactive round trip p50 (${ROUNDS} lines)`, us(pct(viaHost, 50)), `${us(pct(direct, 50))} direct pipe`, `${(pct(viaHost, 50) / pct(direct, 50)).toFixed(2)}×`]);
  rows.push(['interactive round trip p99', us(pct(viaHost, 99)), `${us(pct(direct, 99))} direct pipe`, `${(pct(viaHost, 99) / pct(direct, 99)).toFixed(2)}×`]);
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'jobwire-bench-host-'));
  const { client } = await ensureHost(home);
  try {
    console.error(`job host bench on ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, node ${process.version}`);
    console.error('… interactive round trip');
    await roundTrip(client);
    console.error('… output throughput');
    await throughput(client, home);
    console.error('… spawn rate');
    await spawnRate(client, availableParallelism());
  } finally {
    client.close();
    await stopHost(home);
    rmSync(home, { recursive: true, force: true });
  }
  console.log('| benchmark | through the host | baseline (same run) | ratio |');
  console.log('|---|---|---|---|');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
