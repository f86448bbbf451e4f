/**
 * `npm run bench`: jobwire's figures next to baselines measured in the same run on the same
 * machine, so the ratios mean something on a noisy host. The server runs as its own process,
 * as a user would run it. Sizes can be lowered for a quick look:
 * BENCH_OUTPUT_MB (default 1024), BENCH_JOBS (default 400), BENCH_ROUNDS (default 2000); and
 * BENCH_ONLY (a comma-separated list of roundtrip, output, batch, latency, functions,
 * restart, networks, distributed, ssh, slurm) runs only those parts. BENCH_FRAMES (default 100000):
 * frames through the squares network (`networks.ts`). BENCH_SERVER_NODE_ARGS (space-separated)
 * passes node options to the server process, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
 * The distributed-mode figures (`distributed.ts`) need Redis at BENCH_REDIS (default
 * redis://127.0.0.1:6379); the ssh executor's (`ssh.ts`) start Debian's /usr/sbin/sshd. The Slurm figures (`slurm.ts`) start the tests' one-node Slurm
 * (root, Debian's munge and Slurm packages); BENCH_SLURM_JOBS (default 20).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, type JobDescription } from '@jobwire/client';
import { stopHost } from '../src/host/index.js';
import { distributedBench, jobRate } from './distributed.js';
import { networkBench } from './networks.js';
import { slurmBench } from './slurm.js';
import { jobRoundTrips, pipeRoundTrips } from './round-trip.js';
import { sleeps } from './sleeps.js';
import { sshBench } from './ssh.js';

const CLI = fileURLToPath(new URL('../../bin/jobwire.js', import.meta.url));
const OUTPUT_MB = Number(process.env.BENCH_OUTPUT_MB ?? 1024);
const JOBS = Number(process.env.BENCH_JOBS ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2000);
const FRAMES = Number(process.env.BENCH_FRAMES ?? 100_000);
/** Node options for the server process (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile it). */
const NODE_ARGS = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter((arg) => arg !== '') ?? [];
const ONLY = process.env.BENCH_ONLY?.split(',').map((part) => part.trim());
/** True when the part `name` is to run (see BENCH_ONLY). */
const wanted = (name: string): boolean => ONLY === undefined || ONLY.includes(name);

interface Row {
  name: string;
  jobwire: string;
  baseline: string;
  ratio: string;
  target: string;
}
const rows: Row[] = [];

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const us = (ns: number): string => `${(ns / 1000).toFixed(0)} µs`;
const now = (): bigint => process.hrtime.bigint();

async function startServer(home: string, slots: number): Promise<{ proc: ChildProcess; client: Client }> {
  const proc = spawn(process.execPath, [...NODE_ARGS, CLI, 'server', '--port', '0', '--home', home, '--log-level', 'warn', '--multi-slots', String(slots)], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 300; i++) {
    try {
      const { url } = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string };
      const token = readFileSync(join(home, 'token'), 'utf8').trim();
      return { proc, client: new Client({ url, token }) };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('server did not start');
}

/** One line through `cat`, many times: jobwire (SDK → WebSocket → server → host → cat and back) vs a direct pipe. */
async function roundTrip(client: Client, server: number, home: string): Promise<void> {
  // Baseline: a child process pipe, written and read by this process.
  const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
  const count = (pids: number[]): number[] => [...pids.map((pid) => sleeps(pid)), ...pids.map((pid) => sleeps(pid, true))];
  const pipePids = [process.pid, cat.pid!];
  let before = count(pipePids);
  const direct = await pipeRoundTrips(cat, ROUNDS);
  const pipeSleeps = count(pipePids).map((n, i) => n - before[i]!);
  cat.stdin.end();
  const job = await client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited' });
  await client.waitUntilRunning(job.jobId, 60_000);
  const host = (JSON.parse(readFileSync(join(home, 'host.json'), 'utf8')) as { pid: number }).pid;
  const jobwirePids = [process.pid, server, host];
  before = count(jobwirePids);
  const viaJobwire = await jobRoundTrips(job, ROUNDS, () => {
    before = count(jobwirePids).map((n, i) => n - before[i]!);
  });
  direct.sort((a, b) => a - b);
  viaJobwire.sort((a, b) => a - b);
  const perLine = (n: number): string => (n / ROUNDS).toFixed(2);
  rows.push({ name: `interactive round trip p50 (${ROUNDS} lines)`, jobwire: us(pct(viaJobwire, 50)), baseline: us(pct(direct, 50)), ratio: (pct(viaJobwire, 50) / pct(direct, 50)).toFixed(2) + '×', target: 'p50 ≤ 150 µs' });
  rows.push({ name: 'interactive round trip p99', jobwire: us(pct(viaJobwire, 99)), baseline: us(pct(direct, 99)), ratio: (pct(viaJobwire, 99) / pct(direct, 99)).toFixed(2) + '×', target: 'p99 ≤ 1 ms' });
  rows.push({
    name: '  sleeps per line (voluntary context switches): benchmark process / server / job host, all threads',
    jobwire: before.slice(0, 3).map(perLine).join(' / '),
    baseline: `${pipeSleeps.slice(0, 2).map(perLine).join(' / ')} (benchmark process / cat)`,
    ratio: '',
    target: '',
  });
  rows.push({
    name: '  preemptions per line (involuntary context switches: taken off a CPU while runnable), same processes',
    jobwire: before.slice(3).map(perLine).join(' / '),
    baseline: `${pipeSleeps.slice(2).map(perLine).join(' / ')} (benchmark process / cat)`,
    ratio: '',
    target: '',
  });
}

/** CPU time (user + system) a process has used so far, in ms, from /proc. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** CPU time this process has used so far, in ms. */
function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * Output throughput to one attached client vs reading the same bytes from a direct pipe, and the
 * CPU time each process spends per MiB (less noisy than the rate on a shared machine).
 */
async function throughput(client: Client, serverPid: number, home: string): Promise<void> {
  const bytes = OUTPUT_MB * 1024 * 1024;
  const args = ['-c', `head -c ${bytes} /dev/zero`];
  let t0 = now();
  let cpu0 = ownCpuMs();
  const direct = spawn('sh', args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let n = 0;
  for await (const d of direct.stdout) n += (d as Buffer).length;
  const directS = Number(now() - t0) / 1e9;
  const directCpu = ownCpuMs() - cpu0;
  if (n !== bytes) throw new Error(`direct pipe read ${n} bytes`);

  // A first job starts the job host, so that its start is not counted below.
  const warm = await client.attach((await client.submitBatchJob({ executable: 'true', queueName: 'unlimited' })).id);
  for await (const _ of warm.output);
  await warm.exit;
  const hostPid = (JSON.parse(readFileSync(join(home, 'host.json'), 'utf8')) as { pid: number }).pid;
  const before = { client: ownCpuMs(), server: cpuMs(serverPid), host: cpuMs(hostPid) };
  t0 = now();
  const job = await client.submitBatchJob({ executable: 'sh', arguments: args, queueName: 'unlimited' });
  const att = await client.attach(job.id);
  let m = 0;
  for await (const c of att.output) m += c.data.byteLength;
  await att.exit;
  const jwS = Number(now() - t0) / 1e9;
  const perMiB = (ms: number): string => (ms / OUTPUT_MB).toFixed(2);
  const cpuRow: Row = {
    name: '  CPU time per MiB: SDK client / server / job host',
    jobwire: `${perMiB(ownCpuMs() - before.client)} / ${perMiB(cpuMs(serverPid) - before.server)} / ${perMiB(cpuMs(hostPid) - before.host)} ms`,
    baseline: `${perMiB(directCpu)} ms (the pipe's reader)`,
    ratio: '',
    target: '',
  };
  if (m !== bytes) throw new Error(`attach read ${m} bytes`);
  // Second baseline: appending the same bytes to a file, as the stream log must (no fsync, like it).
  const file = join(tmpdir(), `jobwire-bench-disk-${process.pid}`);
  const fd = openSync(file, 'a');
  const block = Buffer.alloc(64 * 1024);
  t0 = now();
  for (let w = 0; w < bytes; w += block.length) writeSync(fd, block);
  const diskS = Number(now() - t0) / 1e9;
  closeSync(fd);
  rmSync(file, { force: true });
  const mbps = (s: number): number => bytes / 1024 / 1024 / s;
  const diskRow: Row = { name: '  the same bytes appended to a file (64 KiB writes)', jobwire: '', baseline: `${mbps(diskS).toFixed(0)} MiB/s`, ratio: `${((100 * mbps(jwS)) / mbps(diskS)).toFixed(0)}% of disk`, target: '≥ 90% of disk' };
  rows.push({ name: `output throughput, ${OUTPUT_MB} MiB to one attached client`, jobwire: `${mbps(jwS).toFixed(0)} MiB/s`, baseline: `${mbps(directS).toFixed(0)} MiB/s`, ratio: `${((100 * mbps(jwS)) / mbps(directS)).toFixed(0)}%`, target: '≥ 60% (256 MiB)' });
  rows.push(diskRow, cpuRow);
  await client.deleteJob(job.id);
}

/** Runs `file args` `count` times, `concurrency` at a time, each until it exits; returns runs per second. */
async function spawnLoop(count: number, concurrency: number, file: string, args: string[]): Promise<number> {
  const spawnOne = (): Promise<void> => new Promise((resolve, reject) => spawn(file, args).on('exit', () => resolve()).on('error', reject));
  const t0 = now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) await spawnOne();
    }),
  );
  return count / (Number(now() - t0) / 1e9);
}

/** `true` jobs, submit to stored completion, vs a direct spawn loop of the same concurrency. */
async function batch(client: Client, concurrency: number): Promise<void> {
  const directRate = await spawnLoop(JOBS, concurrency, 'true', []);

  const t0 = now();
  const stream = client.events('bench');
  await stream.ready;
  // Every job of the `bench` group counts; a job may finish before its submit call returns.
  let finished = 0;
  const done = (async () => {
    for await (const ev of stream) {
      if (ev.info.type === 'job' && ev.info.status === 'Success') {
        if (++finished === JOBS) break;
      }
    }
  })();
  const submits: Promise<void>[] = [];
  for (let i = 0; i < JOBS; i++) submits.push(client.submitBatchJob({ executable: 'true', queueName: 'multi', group: 'bench' }).then(() => undefined));
  await Promise.all(submits);
  await done;
  stream.close();
  const rate = JOBS / (Number(now() - t0) / 1e9);
  rows.push({ name: `batch throughput, ${JOBS} \`true\` jobs, concurrency ${concurrency}`, jobwire: `${rate.toFixed(0)} jobs/s`, baseline: `${directRate.toFixed(0)} spawns/s`, ratio: `${((100 * rate) / directRate).toFixed(0)}%`, target: '≥ 85%' });
  const batched = await jobRate(client, JOBS, { executable: 'true', queueName: 'multi' }, 'bench-batched', { batched: true });
  rows.push({ name: '  the same, submitted with `submitBatchJobs` (one request)', jobwire: `${batched.toFixed(0)} jobs/s`, baseline: '', ratio: `${((100 * batched) / directRate).toFixed(0)}%`, target: '≥ 85%' });
}

/** No-op function jobs (warm runners) vs starting a Node process per function, as before them. */
async function functionJobs(client: Client, concurrency: number): Promise<void> {
  const nodeRate = await spawnLoop(Math.min(JOBS, 100), concurrency, process.execPath, ['-e', '0']);
  const description: JobDescription = { js: { code: 'return 1' }, queueName: 'multi' };
  const rate = await jobRate(client, JOBS, description, 'bench-js');
  const batched = await jobRate(client, JOBS, description, 'bench-js-batched', { batched: true });
  rows.push({
    name: `no-op function jobs, ${JOBS} jobs, concurrency ${concurrency} (a request per job)`,
    jobwire: `${rate.toFixed(0)} jobs/s`,
    baseline: `${nodeRate.toFixed(0)} Node starts/s (a process per job)`,
    ratio: `${(rate / nodeRate).toFixed(1)}×`,
    target: '≥ 1,000 jobs/s',
  });
  rows.push({
    name: `  the same, submitted with \`submitBatchJobs\` (one request)`,
    jobwire: `${batched.toFixed(0)} jobs/s`,
    baseline: '',
    ratio: `${(batched / nodeRate).toFixed(1)}×`,
    target: '≥ 1,000 jobs/s',
  });
}

/** Submit → Running latency, seen by a client through the events stream. */
async function submitLatency(client: Client): Promise<void> {
  const stream = client.events('latency');
  await stream.ready;
  const it = stream[Symbol.asyncIterator]();
  const lat: number[] = [];
  const spawnLat: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t0 = now();
    const job = await client.submitBatchJob({ executable: 'true', queueName: 'unlimited', group: 'latency' });
    for (;;) {
      const ev = (await it.next()).value!;
      if (ev.info.id === job.id && ev.info.type === 'job' && ev.info.status !== 'Queued') break;
    }
    lat.push(Number(now() - t0));
    const s0 = now();
    await new Promise<void>((resolve) => spawn('true').on('spawn', () => resolve()));
    spawnLat.push(Number(now() - s0));
  }
  stream.close();
  lat.sort((a, b) => a - b);
  spawnLat.sort((a, b) => a - b);
  rows.push({ name: 'submit → running latency p50 (100 jobs)', jobwire: `${(pct(lat, 50) / 1e6).toFixed(2)} ms`, baseline: `${(pct(spawnLat, 50) / 1e6).toFixed(2)} ms (spawn)`, ratio: (pct(lat, 50) / pct(spawnLat, 50)).toFixed(1) + '×', target: 'p50 ≤ 5 ms' });
}

/** Milliseconds from `jobwire server` until it has recorded its URL (it follows its running jobs again before it listens). */
async function timedStart(home: string): Promise<{ proc: ChildProcess; ms: number }> {
  rmSync(join(home, 'server.json'), { force: true });
  const t0 = now();
  const { proc } = await startServer(home, 2);
  return { proc, ms: Number(now() - t0) / 1e6 };
}

async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  const exited = new Promise((r) => proc.on('exit', r));
  proc.kill(signal);
  await exited;
}

/**
 * A server restart (kill -9, then start) on a home whose job host runs 100 jobs: the time until
 * the new server listens, having followed all 100 again, beside the start of a server on a home
 * with no jobs (same run).
 */
async function restart(): Promise<void> {
  const COUNT = 100;
  const home = mkdtempSync(join(tmpdir(), 'jobwire-bench-restart-'));
  try {
    const empty = await timedStart(home);
    await stopProcess(empty.proc, 'SIGTERM');
    const first = await startServer(home, 2);
    const ids: string[] = [];
    for (let i = 0; i < COUNT; i++) ids.push((await first.client.submitBatchJob({ executable: 'sleep', arguments: ['1000'], queueName: 'unlimited' })).id);
    for (const id of ids) await first.client.waitUntilRunning(id, 60_000);
    await stopProcess(first.proc, 'SIGKILL');
    const again = await timedStart(home);
    const next = new Client({ url: (JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as { url: string }).url, token: readFileSync(join(home, 'token'), 'utf8').trim() });
    const running = (await next.getJobStatuses(ids)).filter((info) => info.status === 'Running').length;
    if (running !== COUNT) throw new Error(`after the restart ${running} of ${COUNT} jobs are Running`);
    await stopProcess(again.proc, 'SIGTERM');
    rows.push({ name: `server restart with ${COUNT} running jobs (kill -9, start, all followed again)`, jobwire: `${again.ms.toFixed(0)} ms`, baseline: `${empty.ms.toFixed(0)} ms (start, no jobs)`, ratio: (again.ms / empty.ms).toFixed(2) + '×', target: '' });
  } finally {
    await stopHost(home);
    rmSync(home, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'jobwire-bench-'));
  const slots = availableParallelism();
  const { proc, client } = await startServer(home, slots);
  try {
    console.error(`jobwire bench on ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, node ${process.version}, ${new Date().toISOString()}`);
    const parts: [string, string, () => Promise<void>][] = [
      ['roundtrip', 'interactive round trip', () => roundTrip(client, proc.pid!, home)],
      ['output', 'output throughput', () => throughput(client, proc.pid!, home)],
      ['batch', 'batch throughput', () => batch(client, slots)],
      ['latency', 'submit latency', () => submitLatency(client)],
      ['functions', 'no-op function jobs', () => functionJobs(client, slots)],
      ['restart', 'server restart', () => restart()],
      ['networks', 'networks', async () => void rows.push(...(await networkBench(client, { frames: FRAMES, rounds: ROUNDS })))],
      ['distributed', 'distributed mode', async () => void rows.push(...(await distributedBench({ cli: CLI, embedded: client, jobs: JOBS, rounds: ROUNDS })))],
      [
        'ssh',
        'ssh executor',
        async () => {
          const sshHome = mkdtempSync(join(tmpdir(), 'jobwire-bench-ssh-'));
          try {
            rows.push(...(await sshBench({ cli: CLI, home: sshHome, rounds: Math.min(ROUNDS, 500), jobs: Math.min(JOBS, 50) })));
          } finally {
            rmSync(sshHome, { recursive: true, force: true });
            rmSync(`${sshHome}-work`, { recursive: true, force: true });
          }
        },
      ],
      ['slurm', 'Slurm executor', async () => void rows.push(...(await slurmBench()))],
    ];
    for (const [name, what, part] of parts) {
      if (!wanted(name)) continue;
      console.error(`… ${what}`);
      await part();
    }
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.on('exit', r));
    // Jobs outlive the server on the job host: stop them too.
    await stopHost(home);
    rmSync(home, { recursive: true, force: true });
    rmSync(`${home}-work`, { recursive: true, force: true });
  }
  console.log('| benchmark | jobwire | baseline (same run) | ratio | target |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name} | ${r.jobwire} | ${r.baseline} | ${r.ratio} | ${r.target} |`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
