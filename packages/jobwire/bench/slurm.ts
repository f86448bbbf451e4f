/**
 * Slurm executor figures for `npm run bench`, beside a shell loop of `sbatch` + `squeue` polling
 * on the same one-node test cluster in the same run (test/slurm-env.ts starts it; it needs root
 * and Debian's munge, slurmctld, slurmd and slurm-client). Jobs go through the executor's
 * interface, as a backend calls it. Both sides poll every {@link POLL_MS}.
 * BENCH_SLURM_JOBS (default 20; Slurm starts about one job a second here): jobs of the throughput run; latency takes 20 jobs each.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BatchJob } from '../src/executors/slurm/batch-job.js';
import { LocalSubmitHost, slurmExecutor, type SlurmExecutor } from '../src/executors/slurm/index.js';
import type { StartSpec } from '../src/executors/types.js';
import { SLURM_ENV, stopTestSlurm, useTestSlurm } from '../test/slurm-env.js';
import type { BenchRow } from './distributed.js';

/** Poll interval of both the executor and the shell loop. */
const POLL_MS = 200;
const JOBS = Number(process.env.BENCH_SLURM_JOBS ?? 20);
const LATENCY_JOBS = 20;
const run = promisify(execFile);
const now = (): bigint => process.hrtime.bigint();
const ms = (t0: bigint): number => Number(now() - t0) / 1e6;
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** The shell loop: submit `true` with sbatch, then squeue every POLL_MS until it is no longer PENDING. */
const SHELL_LATENCY = `id=$(printf '#!/bin/sh\\ntrue\\n' | sbatch --parsable --output=/dev/null --error=/dev/null)
while :; do s=$(squeue --noheader --states=all --jobs="$id" --format=%T); case "$s" in PENDING|"") sleep ${POLL_MS / 1000};; *) break;; esac; done`;

/** The shell loop: submit N `true` jobs, then squeue every POLL_MS until none is left pending or running. */
const shellThroughput = (n: number): string => `ids=""
for i in $(seq ${n}); do ids="$ids,$(printf '#!/bin/sh\\ntrue\\n' | sbatch --parsable --output=/dev/null --error=/dev/null)"; done
ids=\${ids#,}
while squeue --noheader --jobs="$ids" --format=%T | grep -q .; do sleep ${POLL_MS / 1000}; done`;

function spec(jobId: string, cwd: string): StartSpec {
  return { jobId, description: { executable: 'true' }, defaultCwd: cwd, env: {}, onOutput: () => undefined, onProgress: () => undefined };
}

/** Resolves once the executor has seen the job leave PENDING (running, or already ended). */
async function leftQueue(job: BatchJob): Promise<void> {
  while (job.phase === 'queued' && !job.settled) await new Promise((r) => setTimeout(r, 2));
}

async function latency(executor: SlurmExecutor, cwd: string): Promise<BenchRow> {
  const ours: number[] = [];
  const shell: number[] = [];
  for (let i = 0; i < LATENCY_JOBS; i++) {
    let t0 = now();
    const job = executor.start(spec(`bench-latency-${i}`, cwd)) as BatchJob;
    await leftQueue(job);
    ours.push(ms(t0));
    await job.done;
    t0 = now();
    await run('sh', ['-c', SHELL_LATENCY], { env: { ...process.env, ...SLURM_ENV }, cwd });
    shell.push(ms(t0));
  }
  const a = median(ours);
  const b = median(shell);
  return { name: `Slurm: submit → running p50 (${LATENCY_JOBS} \`true\` jobs, polls every ${POLL_MS} ms)`, jobwire: `${a.toFixed(0)} ms`, baseline: `${b.toFixed(0)} ms (sbatch + squeue loop)`, ratio: `${(a / b).toFixed(2)}×`, target: '≤ 1×' };
}

async function throughput(executor: SlurmExecutor, cwd: string): Promise<BenchRow> {
  let t0 = now();
  const jobs = Array.from({ length: JOBS }, (_, i) => executor.start(spec(`bench-throughput-${i}`, cwd)));
  const results = await Promise.all(jobs.map((job) => job.done));
  const ours = JOBS / (ms(t0) / 1000);
  if (results.some((r) => r.exitCode !== 0)) throw new Error(`Slurm bench: a job failed: ${JSON.stringify(results.find((r) => r.exitCode !== 0))}`);
  t0 = now();
  await run('sh', ['-c', shellThroughput(JOBS)], { env: { ...process.env, ...SLURM_ENV }, cwd });
  const shell = JOBS / (ms(t0) / 1000);
  return { name: `Slurm: throughput, ${JOBS} \`true\` jobs submitted at once, to all ended`, jobwire: `${ours.toFixed(1)} jobs/s`, baseline: `${shell.toFixed(1)} jobs/s (sbatch loop + squeue loop)`, ratio: `${((100 * ours) / shell).toFixed(0)}%`, target: '≥ 90%' };
}

/** The Slurm rows; one row saying why when the test cluster cannot run here. */
export async function slurmBench(): Promise<BenchRow[]> {
  try {
    await useTestSlurm();
  } catch (error) {
    return [{ name: 'Slurm executor', jobwire: 'not measured', baseline: '', ratio: '', target: `no test cluster: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` }];
  }
  const cwd = mkdtempSync(join(tmpdir(), 'jobwire-bench-slurm-'));
  const executor = await slurmExecutor({ host: new LocalSubmitHost({ env: SLURM_ENV }), jobsFolder: join(cwd, 'jobs'), pollMs: POLL_MS });
  try {
    return [await latency(executor, cwd), await throughput(executor, cwd)];
  } finally {
    executor.close();
    rmSync(cwd, { recursive: true, force: true });
    await stopTestSlurm();
  }
}

// Alone: `node packages/jobwire/dist/bench/slurm.js` after a build.
if (process.argv[1]?.endsWith('/bench/slurm.js')) {
  for (const row of await slurmBench()) console.log(`| ${row.name} | ${row.jobwire} | ${row.baseline} | ${row.ratio} | ${row.target} |`);
}
