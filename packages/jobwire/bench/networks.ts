/**
 * Network figures (issue 12), beside baselines measured in the same run:
 *
 * - **frames per second** through `numbers` (`seq 1 N`, executable) → `square` (js) → `sink`
 *   (`csv-sink`), from `runNetwork` until the network is `done` and the file holds every square,
 *   beside the shell pipeline `seq 1 N | awk '{print $1*$1}' > file`; with the default queues
 *   (64 frames, `block`) and with queues of 4096 frames (a 64 KiB OS pipe holds about 9000 such lines);
 * - **latency of one frame through three jobs**: a line typed into an `interactive` job, through
 *   two `forward` jobs, until a tap on the last pipe yields it; p50 and p99 over `rounds` lines,
 *   beside one line through a chain of three `cat` processes (`cat | cat | cat`).
 *
 * Part `networks` of `npm run bench` (alone: `BENCH_ONLY=networks npm run bench`), against the
 * bench's server. BENCH_FRAMES (default 100000) and BENCH_ROUNDS (default 2000, at most 1000 here).
 * @module
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, NetworkSpec, NetworkStatus } from '@jobwire/client';
import { LINE, pipeRoundTrips } from './round-trip.js';

/** One row of the results table (the shape of `run.ts`'s). */
export interface NetworkRow {
  name: string;
  jobwire: string;
  baseline: string;
  ratio: string;
  target: string;
}

const now = (): bigint => process.hrtime.bigint();

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const us = (ns: number): string => `${(ns / 1000).toFixed(0)} µs`;

/** Polls a network's status until it is no longer running. */
async function settled(client: Client, name: string, timeoutMs: number): Promise<NetworkStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await client.networkStatus(name);
    if (status.state !== 'running') return status;
    if (Date.now() > deadline) throw new Error(`network ${name} still running after ${timeoutMs} ms: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Seconds for `sh -c script`, which must exit 0. */
function shell(script: string): Promise<number> {
  const t0 = now();
  return new Promise((resolve, reject) => {
    spawn('sh', ['-c', script], { stdio: 'ignore' })
      .on('error', reject)
      .on('exit', (code) => (code === 0 ? resolve(Number(now() - t0) / 1e9) : reject(new Error(`${script}: exit ${code}`))));
  });
}

/** The squares of 1..n, one per line, as both sides must write them. */
function squares(n: number): string {
  const lines: string[] = [];
  for (let i = 1; i <= n; i++) lines.push(String(i * i));
  return `${lines.join('\n')}\n`;
}

/** Frames per second through seq → square (js) → csv-sink, beside `seq | awk > file`. */
export async function networkThroughput(client: Client, frames: number, dir: string, queueMax: number): Promise<NetworkRow> {
  const expected = squares(frames);
  const shellOut = join(dir, 'shell.out');
  const shellS = await shell(`seq 1 ${frames} | awk '{print $1*$1}' > ${shellOut}`);
  // awk may print large squares in another notation (1e+10): count its lines only.
  if (readFileSync(shellOut, 'utf8').split('\n').length !== expected.split('\n').length) throw new Error('the shell pipeline wrote another count of lines');

  const module = join(dir, 'square.mjs');
  writeFileSync(module, 'export function run(n) { return Number(n) ** 2; }\n');
  const out = join(dir, 'squares.csv');
  const spec: NetworkSpec = {
    name: 'bench-squares',
    jobs: {
      numbers: { command: ['seq', '1', String(frames)], outputs: ['n'] },
      square: { js: module, inputs: ['n'], outputs: ['sq'] },
      sink: { builtin: 'csv-sink', path: out, inputs: ['sq'] },
    },
    pipes: { n: { framing: 'lines', queue: { max: queueMax } }, sq: { framing: 'lines', queue: { max: queueMax } } },
  };
  const t0 = now();
  const started = await client.runNetwork(spec, { baseDir: dir });
  // The sink's end is waited for with the server's long-poll, not status polls: polling every
  // 20 ms cost the server about 6% of a core on the 2-core VM, which the shell pipeline never pays.
  await client.waitUntilDone(started.jobs.find((job) => job.name === 'sink')!.id, 600_000);
  const status = await settled(client, spec.name, 600_000);
  const jwS = Number(now() - t0) / 1e9;
  if (status.state !== 'done') throw new Error(`the squares network ended ${status.state}: ${status.errors.join('; ')}`);
  if (readFileSync(out, 'utf8') !== expected) throw new Error('the squares network wrote something else than 1..N squared');
  const rate = frames / jwS;
  const base = frames / shellS;
  return {
    name: `network: frames/s, seq → square (js) → csv-sink, ${frames} frames, queues of ${queueMax}${queueMax === 64 ? ' (the default)' : ''}`,
    jobwire: `${rate.toFixed(0)} frames/s`,
    baseline: `${base.toFixed(0)} lines/s (\`seq | awk > file\`)`,
    ratio: `${((100 * rate) / base).toFixed(0)}%`,
    target: '≥ 50%',
  };
}

/** One line through interactive → forward → forward (tapped), beside `cat | cat | cat`. */
export async function networkLatency(client: Client, rounds: number, dir: string): Promise<NetworkRow[]> {
  const chain = spawn('sh', ['-c', 'cat | cat | cat'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const direct = await pipeRoundTrips(chain, rounds);
  chain.stdin.end();

  const spec: NetworkSpec = {
    name: 'bench-latency',
    jobs: {
      typed: { builtin: 'interactive', outputs: ['a'] },
      first: { builtin: 'forward', inputs: ['a'], outputs: ['b'] },
      second: { builtin: 'forward', inputs: ['b'], outputs: ['c'] },
    },
    pipes: { a: { framing: 'lines' }, b: { framing: 'lines' }, c: { framing: 'lines' } },
  };
  const started = await client.runNetwork(spec, { baseDir: dir });
  const typed = started.jobs.find((job) => job.name === 'typed')!;
  await client.waitUntilRunning(typed.id, 60_000);
  const attachment = await client.attach(typed.id);
  const tap = client.tapPipe(spec.name, 'c')[Symbol.asyncIterator]();
  const text = LINE.toString('utf8').trimEnd();
  const times: number[] = [];
  try {
    // The first line also waits for every job to start; it is not counted.
    for (let i = -1; i < rounds; i++) {
      const t0 = now();
      await attachment.stdin.write(LINE);
      const frame = (await tap.next()).value as { value: unknown } | undefined;
      if (frame?.value !== text) throw new Error(`the tap gave ${JSON.stringify(frame)}`);
      if (i >= 0) times.push(Number(now() - t0));
    }
  } finally {
    await tap.return?.(undefined);
    attachment.detach();
    await client.stopNetwork(spec.name);
  }
  direct.sort((a, b) => a - b);
  times.sort((a, b) => a - b);
  return [
    { name: `network: one frame through 3 jobs (interactive → forward → forward), p50 (${rounds} lines)`, jobwire: us(pct(times, 50)), baseline: `${us(pct(direct, 50))} (\`cat | cat | cat\`)`, ratio: `${(pct(times, 50) / pct(direct, 50)).toFixed(1)}×`, target: '' },
    { name: 'network: one frame through 3 jobs, p99', jobwire: us(pct(times, 99)), baseline: us(pct(direct, 99)), ratio: `${(pct(times, 99) / pct(direct, 99)).toFixed(1)}×`, target: '' },
  ];
}

/** Both network benchmarks against `client`'s server; files go to a temporary folder on this machine. */
export async function networkBench(client: Client, options: { frames: number; rounds: number }): Promise<NetworkRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'jobwire-bench-networks-'));
  try {
    const rows = [await networkThroughput(client, options.frames, dir, 64), await networkThroughput(client, options.frames, dir, 4096)];
    rows.push(...(await networkLatency(client, Math.min(options.rounds, 1000), dir)));
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
