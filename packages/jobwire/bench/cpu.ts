/**
 * CPU time per job of each process of the embedded path, which the load of a shared machine
 * moves far less than wall-clock rates: a `jobwire server` with a fresh home, its job host, the
 * host's warm JS runners and this client. Not part of `npm run bench`; run
 * `node packages/jobwire/dist/bench/cpu.js` after a build. BENCH_JOBS (default 400) jobs per
 * row after 20 warm-up ones, concurrency BENCH_SLOTS (default 2); BENCH_CPU_ROWS picks rows
 * (comma-separated: spawn — the baseline, a spawn('true') loop —, true, true-batched, js, js-batched; and
 * net64, net4096: the squares network of `networks.ts` with queues of 64 / 4096, BENCH_FRAMES frames
 * (default 50000), CPU in µs per frame); output: `head -c BENCH_OUTPUT_MB MiB /dev/zero` (default 256) read
 * by one attached client, CPU in ms per MiB (the `head` under "jobs"); roundtrip: BENCH_ROUNDS (default
 * 2000) lines through an interactive `cat`, CPU in µs per line (`cat` is still running, so it is not
 * counted). BENCH_SERVER_NODE_ARGS and
 * BENCH_HOST_NODE_ARGS (space-separated) pass node options to the server and to the job host
 * (with the latter the host is started here, before the server), e.g. `--cpu-prof`. BENCH_HOME:
 * a home to use instead of a fresh one (one whose host was started by hand, under strace say).
 * Each job row is followed by a `sleeps/job` row: the times each process slept (voluntary context
 * switches, all threads; see sleeps.ts) per job, which the load does not move.
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobDescription } from '@jobwire/client';
import { stopHost } from '../src/host/index.js';
import { HOST_NODE_OPTIONS } from '../src/host/ensure.js';
import { childrenOf } from '../test/executors/sshd.js';
import { clientOf } from './client-of.js';
import { jobRate } from './distributed.js';
import { networkThroughput } from './networks.js';
import { jobRoundTrips } from './round-trip.js';
import { sleeps } from './sleeps.js';

const CLI = fileURLToPath(new URL('../../bin/jobwire.js', import.meta.url));
const JOBS = Number(process.env.BENCH_JOBS ?? 400);
const SLOTS = Number(process.env.BENCH_SLOTS ?? 2);
const ROWS = (process.env.BENCH_CPU_ROWS ?? 'spawn,true,true-batched,js,js-batched').split(',');
const nodeArgs = (name: string): string[] => process.env[name]?.split(' ').filter((arg) => arg !== '') ?? [];
const SERVER_ARGS = nodeArgs('BENCH_SERVER_NODE_ARGS');
const HOST_ARGS = nodeArgs('BENCH_HOST_NODE_ARGS');
const HOST_MAIN = fileURLToPath(new URL('../src/host/main.js', import.meta.url));
const TICK_MS = 1000 / 100; // USER_HZ

/** utime + stime of `pid` in ms, with its waited-for children's (cutime + cstime) apart. */
function cpuOf(pid: number): { own: number; children: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { own: (Number(fields[11]) + Number(fields[12])) * TICK_MS, children: (Number(fields[13]) + Number(fields[14])) * TICK_MS };
  } catch {
    return { own: 0, children: 0 };
  }
}

interface Sample {
  /** Voluntary context switches of the server, host, runners and this client (see sleeps.ts). */
  sleeps: { server: number; host: number; runners: number; client: number };
  server: number;
  host: number;
  /** CPU of the host's waited-for children (the `true` processes). */
  jobs: number;
  runners: number;
  client: number;
}

function sample(serverPid: number, hostPid: number): Sample {
  const server = cpuOf(serverPid).own;
  const host = cpuOf(hostPid);
  let runners = 0;
  let runnerSleeps = 0;
  for (const child of childrenOf(hostPid)) {
    runners += cpuOf(child).own;
    runnerSleeps += sleeps(child);
  }
  const me = process.cpuUsage();
  return {
    sleeps: { server: sleeps(serverPid), host: sleeps(hostPid), runners: runnerSleeps, client: sleeps(process.pid) },
    server,
    host: host.own,
    jobs: host.children,
    runners,
    client: (me.user + me.system) / 1000,
  };
}

/** Baseline: a spawn('true') loop of the same concurrency in this process; prints its row. */
async function spawnBaseline(): Promise<void> {
  const s0 = cpuOf(process.pid);
  const t0 = process.hrtime.bigint();
  let next = 0;
  const spawnOne = (): Promise<void> => new Promise((resolve, reject) => spawn('true').on('exit', () => resolve()).on('error', reject));
  await Promise.all(
    Array.from({ length: SLOTS }, async () => {
      while (next++ < JOBS) await spawnOne();
    }),
  );
  const spawnRate = JOBS / (Number(process.hrtime.bigint() - t0) / 1e9);
  const s1 = cpuOf(process.pid);
  const loop = (s1.own - s0.own) / JOBS;
  const procs = (s1.children - s0.children) / JOBS;
  console.log(['spawn loop', spawnRate.toFixed(0), '', '', '', procs.toFixed(2), loop.toFixed(2), (loop + procs).toFixed(2)].join('\t'));
}

async function main(): Promise<void> {
  const home = process.env.BENCH_HOME ?? mkdtempSync(join(tmpdir(), 'jobwire-cpu-'));
  if (HOST_ARGS.length > 0) {
    spawn(process.execPath, [...HOST_NODE_OPTIONS, ...HOST_ARGS, HOST_MAIN, '--home', home], { stdio: 'ignore', detached: true }).unref();
    for (let i = 0; i < 300 && !existsSync(join(home, 'host.json')); i++) await new Promise((r) => setTimeout(r, 50));
  }
  const proc = spawn(process.env.BENCH_SERVER_WRAPPER ?? process.execPath, [...SERVER_ARGS, CLI, 'server', '--port', '0', '--home', home, '--log-level', 'warn', '--multi-slots', String(SLOTS)], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const client = await clientOf(home);
    const hostPid = (JSON.parse(readFileSync(join(home, 'host.json'), 'utf8')) as { pid: number }).pid;
    const rows: Record<string, [JobDescription, boolean]> = {
      true: [{ executable: 'true', queueName: 'multi' }, false],
      'true-batched': [{ executable: 'true', queueName: 'multi' }, true],
      js: [{ js: { code: 'return 1' }, queueName: 'multi' }, false],
      'js-batched': [{ js: { code: 'return 1' }, queueName: 'multi' }, true],
    };
    console.log(`jobs/row ${JOBS}, slots ${SLOTS}; CPU ms per job (utime+stime)`);
    console.log(['row', 'jobs/s', 'server', 'host', 'runners', 'true procs', 'client', 'total'].join('\t'));
    if (ROWS.includes('spawn')) await spawnBaseline();
    for (const name of ROWS.filter((row) => row.startsWith('net'))) {
      const frames = Number(process.env.BENCH_FRAMES ?? 50000);
      const dir = mkdtempSync(join(tmpdir(), 'jobwire-cpu-net-'));
      try {
        const a = sample(proc.pid!, hostPid);
        const row = await networkThroughput(client, frames, dir, Number(name.slice(3)));
        const b = sample(proc.pid!, hostPid);
        // `jobs`: the ended children of the host (`seq`); the js jobs run in the warm runners.
        const per = (k: Exclude<keyof Sample, 'sleeps'>): number => ((b[k] - a[k]) * 1000) / frames;
        const total = per('server') + per('host') + per('runners') + per('jobs');
        console.log([`${name} (µs/frame)`, row.jobwire, ...(['server', 'host', 'runners', 'jobs', 'client'] as const).map((k) => per(k).toFixed(1)), total.toFixed(1)].join('\t'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (ROWS.includes('output')) {
      const mib = Number(process.env.BENCH_OUTPUT_MB ?? 256);
      const bytes = mib * 1024 * 1024;
      const a = sample(proc.pid!, hostPid);
      const t0 = process.hrtime.bigint();
      const job = await client.submitBatchJob({ executable: 'head', arguments: ['-c', String(bytes), '/dev/zero'], queueName: 'unlimited' });
      const attached = await client.attach(job.id);
      let read = 0;
      for await (const chunk of attached.output) read += chunk.data.byteLength;
      await attached.exit;
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const b = sample(proc.pid!, hostPid);
      if (read !== bytes) throw new Error(`the attached client read ${read} bytes of ${bytes}`);
      const per = (k: Exclude<keyof Sample, 'sleeps'>): number => (b[k] - a[k]) / mib;
      const total = per('server') + per('host') + per('jobs') + per('client');
      console.log([`output (ms/MiB, ${mib} MiB)`, `${(mib / seconds).toFixed(0)} MiB/s`, ...(['server', 'host', 'runners', 'jobs', 'client'] as const).map((k) => per(k).toFixed(2)), total.toFixed(2)].join('\t'));
      await client.deleteJob(job.id);
    }
    if (ROWS.includes('roundtrip')) {
      const rounds = Number(process.env.BENCH_ROUNDS ?? 2000);
      const job = await client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited' });
      await client.waitUntilRunning(job.jobId, 60_000);
      const a = sample(proc.pid!, hostPid);
      let b = a;
      const times = await jobRoundTrips(job, rounds, () => {
        b = sample(proc.pid!, hostPid);
      });
      times.sort((x, y) => x - y);
      const per = (k: Exclude<keyof Sample, 'sleeps'>): number => ((b[k] - a[k]) * 1000) / rounds;
      const total = per('server') + per('host') + per('client');
      console.log([`roundtrip (µs/line, ${rounds} lines)`, `p50 ${(times[Math.floor(times.length / 2)]! / 1000).toFixed(0)} µs`, ...(['server', 'host', 'runners', 'jobs', 'client'] as const).map((k) => per(k).toFixed(1)), total.toFixed(1)].join('\t'));
    }
    for (const name of ROWS.filter((row) => row !== 'spawn' && row !== 'output' && row !== 'roundtrip' && !row.startsWith('net'))) {
      const [description, batched] = rows[name]!;
      await jobRate(client, 20, description, `warm-${name}`, { batched });
      const a = sample(proc.pid!, hostPid);
      const rate = await jobRate(client, JOBS, description, `cpu-${name}`, { batched });
      const b = sample(proc.pid!, hostPid);
      const per = (k: Exclude<keyof Sample, 'sleeps'>): number => (b[k] - a[k]) / JOBS;
      const total = per('server') + per('host') + per('runners') + per('jobs') + per('client');
      console.log([name, rate.toFixed(0), ...(['server', 'host', 'runners', 'jobs', 'client'] as const).map((k) => per(k).toFixed(2)), total.toFixed(2)].join('\t'));
      // Runners replaced during the row (jsRunnerMaxJobs) take their count with them: a floor.
      const slept = (k: keyof Sample['sleeps']): number => (b.sleeps[k] - a.sleeps[k]) / JOBS;
      const sleptTotal = slept('server') + slept('host') + slept('runners') + slept('client');
      console.log([' sleeps/job', '', slept('server').toFixed(2), slept('host').toFixed(2), slept('runners').toFixed(2), '', slept('client').toFixed(2), sleptTotal.toFixed(2)].join('\t'));
    }
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.on('exit', r));
    await stopHost(home).catch(() => {});
    if (process.env.BENCH_HOME === undefined) {
      rmSync(home, { recursive: true, force: true });
      rmSync(`${home}-work`, { recursive: true, force: true });
    }
  }
}

await main();
