/**
 * Process identities: which process a pid names, told apart from a later process that reuses
 * the pid. Linux only (it reads /proc): a pid plus the process's start time (field 22 of
 * /proc/PID/stat, clock ticks since boot) plus the boot id names one process for ever, so a
 * record written before a crash can be checked after it without ever signalling a stranger.
 *
 * Used to stop jobs orphaned by a server or worker that died under them: a job leads its own
 * process group (see process-group.ts), so stopping it means signalling that group — but only
 * while the group still is the one the job started.
 * @module
 */
import { readFileSync, readdirSync } from 'node:fs';

export type { JobProcess, ProcessIdentity } from '../../job-process.js';
import type { JobProcess, ProcessIdentity } from '../../job-process.js';

/** The fields of /proc/PID/stat that identities need. */
interface ProcStat {
  state: string;
  pgid: number;
  startTicks: number;
}

let cachedBootId: string | undefined;

/** The id of the running boot (it cannot change while this process lives). */
export function currentBootId(): string | undefined {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      return undefined;
    }
  }
  return cachedBootId;
}

/**
 * Reads state, process group and start time of `pid`, or undefined when there is no such
 * process. The command name (field 2) may hold spaces and parentheses, so fields are counted
 * from the last ')'.
 */
function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // After "pid (comm) " come fields 3 (state), 4 (ppid), 5 (pgrp), ... 22 (starttime).
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const pgid = Number(fields[5 - 3]);
  const startTicks = Number(fields[22 - 3]);
  if (state === undefined || !Number.isSafeInteger(pgid) || !Number.isSafeInteger(startTicks)) return undefined;
  return { state, pgid, startTicks };
}

/** A zombie (or dying) process runs nothing any more: it counts as gone. */
function isGone(stat: ProcStat): boolean {
  return stat.state === 'Z' || stat.state === 'X' || stat.state === 'x';
}

/** The identity of `pid` now, or undefined when there is no such process (or no /proc). */
export function identify(pid: number): ProcessIdentity | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const bootId = currentBootId();
  const stat = readStat(pid);
  if (bootId === undefined || stat === undefined) return undefined;
  return { pid, startTicks: stat.startTicks, bootId };
}

let self: ProcessIdentity | undefined;

/** The identity of this process. */
export function selfIdentity(): ProcessIdentity | undefined {
  self ??= identify(process.pid);
  return self;
}

/**
 * True while `identity` still names a running process: same boot, the pid exists, and it
 * started at the recorded time. A reused pid (another start time) or another boot is false.
 */
export function stillSame(identity: ProcessIdentity): boolean {
  if (identity.bootId !== currentBootId()) return false;
  const stat = readStat(identity.pid);
  return stat !== undefined && !isGone(stat) && stat.startTicks === identity.startTicks;
}

/**
 * Live members of the process group that `leader` led: processes in the group numbered
 * `leader.pid` that started no earlier than the leader. Empty when the record is from another
 * boot, or when the pid now names another process (then the group number belongs to it).
 *
 * The leader may have exited while processes it started still run in its group. Linux does not
 * hand out a pid that is still some group's id, so while such members exist the number cannot
 * have been reused; once the group is empty nothing is left to find.
 */
export function groupMembers(leader: ProcessIdentity): number[] {
  if (leader.bootId !== currentBootId()) return [];
  const head = readStat(leader.pid);
  if (head !== undefined && head.startTicks !== leader.startTicks) return [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const members: number[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat !== undefined && stat.pgid === leader.pid && stat.startTicks >= leader.startTicks && !isGone(stat)) members.push(Number(name));
  }
  return members;
}

/**
 * The {@link JobProcess} of a job this process just started as the leader `pid` of its own
 * group; undefined without a pid (it never started) or when it has already gone.
 */
export function startedJobProcess(pid: number | undefined): JobProcess | undefined {
  const leader = pid === undefined ? undefined : identify(pid);
  const runner = selfIdentity();
  return leader === undefined || runner === undefined ? undefined : { leader, runner };
}
