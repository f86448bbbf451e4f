/**
 * The ssh executor's figures in `npm run bench`, beside plain OpenSSH to the same sshd in the
 * same run: a test sshd on a free 127.0.0.1 port (`test/executors/sshd.ts`), a `jobwire server
 * --executor box=ssh://...` process, and
 * - round trip: one line through `cat` on the host, written with the SDK until its echo is back,
 *   beside the same line through one `ssh host cat`;
 * - `true` job latency: a `true` batch job on the host from submit to its stored Success, one
 *   after another, beside one `ssh host true` process each (jobwire reuses its connection).
 */
import { spawn } from 'node:child_process';
import { startSshd } from '../test/executors/sshd.js';
import { clientOf } from './client-of.js';
import type { BenchRow } from './distributed.js';
import { jobRoundTrips, pipeRoundTrips } from './round-trip.js';

/** Options of {@link sshBench}. */
export interface SshBenchOptions {
  /** The CLI launcher. */
  cli: string;
  /** A fresh, empty jobwire home for the server. */
  home: string;
  /** Lines through `cat`. */
  rounds: number;
  /** `true` jobs, one after another. */
  jobs: number;
}

const now = (): bigint => process.hrtime.bigint();
const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const ms = (ns: number): string => `${(ns / 1e6).toFixed(2)} ms`;

/** Runs the ssh figures; resolves to their rows. */
export async function sshBench(options: SshBenchOptions): Promise<BenchRow[]> {
  const sshd = await startSshd();
  const { home } = options;
  const proc = spawn(
    process.execPath,
    [options.cli, 'server', '--port', '0', '--home', home, '--log-level', 'warn', '--executor', `box=${sshd.url}`, '--ssh-identity', sshd.identity, '--ssh-known-hosts', sshd.knownHosts],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SSH_AUTH_SOCK: '' } },
  );
  try {
    const client = await clientOf(home);
    // Baseline: one `ssh host cat`.
    const cat = spawn('ssh', [...sshd.sshArgs, 'cat'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const direct = await pipeRoundTrips(cat, options.rounds);
    cat.stdin.end();
    const viaJobwire = await jobRoundTrips(await client.submitInteractiveJob({ executable: 'cat', queueName: 'unlimited', executor: 'box' }), options.rounds);

    // `true`: one ssh process per job vs jobs on the shared connection.
    const sshTrue: number[] = [];
    for (let i = 0; i < options.jobs; i++) {
      const t0 = now();
      await new Promise<void>((resolve, reject) => {
        const p = spawn('ssh', [...sshd.sshArgs, 'true'], { stdio: 'ignore' });
        p.on('error', reject);
        p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ssh true exited ${code}`))));
      });
      sshTrue.push(Number(now() - t0));
    }
    const jobTrue: number[] = [];
    for (let i = 0; i < options.jobs; i++) {
      const t0 = now();
      const submitted = await client.submitBatchJob({ executable: 'true', queueName: 'unlimited', executor: 'box' });
      const done = await client.waitUntilDone(submitted.id, 60_000);
      if (done.status !== 'Success') throw new Error(`a true job ended ${done.status}: ${done.error ?? ''}`);
      jobTrue.push(Number(now() - t0));
    }
    for (const list of [direct, viaJobwire, sshTrue, jobTrue]) list.sort((a, b) => a - b);
    return [
      { name: `ssh: round trip through \`cat\` p50 (${options.rounds} lines)`, jobwire: ms(pct(viaJobwire, 50)), baseline: `${ms(pct(direct, 50))} (one \`ssh host cat\`)`, ratio: `${(pct(viaJobwire, 50) / pct(direct, 50)).toFixed(1)}×`, target: '' },
      { name: 'ssh: round trip through `cat` p99', jobwire: ms(pct(viaJobwire, 99)), baseline: ms(pct(direct, 99)), ratio: `${(pct(viaJobwire, 99) / pct(direct, 99)).toFixed(1)}×`, target: '' },
      { name: `ssh: \`true\` job, submit → Success p50 (${options.jobs} jobs, one at a time)`, jobwire: ms(pct(jobTrue, 50)), baseline: `${ms(pct(sshTrue, 50))} (\`ssh host true\`)`, ratio: `${(pct(jobTrue, 50) / pct(sshTrue, 50)).toFixed(2)}×`, target: 'beat `ssh host true`' },
    ];
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.on('exit', r));
    await sshd.stop();
  }
}
