/**
 * One line through `cat` and back, many times, timed per line: through a child process's pipes
 * (the baselines) and through an interactive jobwire job (SDK → server → executor → `cat`).
 * @module
 */
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { InteractiveJob } from '@jobwire/client';

/** The line sent (44 bytes). */
export const LINE = Buffer.from('ping 0123456789 abcdefghijklmnopqrstuvwxyz\n');

const now = (): bigint => process.hrtime.bigint();

/** Nanoseconds per round trip through a child's stdin and stdout (the child is left running). */
export async function pipeRoundTrips(child: ChildProcessByStdio<Writable, Readable, null>, rounds: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = now();
    const got = new Promise<void>((resolve) => {
      let n = 0;
      const on = (d: Buffer): void => {
        n += d.length;
        if (n >= LINE.length) {
          child.stdout.off('data', on);
          resolve();
        }
      };
      child.stdout.on('data', on);
    });
    child.stdin.write(LINE);
    await got;
    times.push(Number(now() - t0));
  }
  return times;
}

/**
 * Nanoseconds per round trip through an interactive `cat` job; ends its stdin and waits for its
 * exit. `afterLast` runs right after the last round trip, before the end.
 */
export async function jobRoundTrips(job: InteractiveJob, rounds: number, afterLast?: () => void): Promise<number[]> {
  const it = job.output[Symbol.asyncIterator]();
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = now();
    await job.stdin.write(LINE);
    let n = 0;
    while (n < LINE.length) n += (await it.next()).value!.data.byteLength;
    times.push(Number(now() - t0));
  }
  afterLast?.();
  await job.stdin.end();
  await job.exit;
  return times;
}
