/**
 * Times a process slept, for the benchmarks: voluntary context switches of all its threads, from
 * `/proc`. Each is a wait for an event and a wake-up after it; unlike CPU time the count does not
 * move with the machine's load, so a change that saves wake-ups shows in it run after run.
 * @module
 */
import { readFileSync, readdirSync } from 'node:fs';

/**
 * Voluntary context switches of every thread of `pid`; 0 once it has exited (or off Linux). With
 * `preempted`, the times it was taken off a CPU while it could run (involuntary ones): each is a
 * wait for a CPU, which is what a loaded machine adds to a round trip's tail.
 */
export function sleeps(pid: number, preempted = false): number {
  const field = preempted ? /\nnonvoluntary_ctxt_switches:\s+(\d+)/ : /\nvoluntary_ctxt_switches:\s+(\d+)/;
  let total = 0;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        const match = field.exec(readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8'));
        total += Number(match?.[1] ?? 0);
      } catch {
        // A thread that ended meanwhile.
      }
    }
  } catch {
    // Not Linux, or the process is gone.
  }
  return total;
}
