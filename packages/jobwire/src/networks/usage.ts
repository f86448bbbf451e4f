/**
 * What a job's processes use, read from /proc (Linux): the cpu time and resident memory of every
 * live process in the job's process group (a job leads a group of its own, see
 * `executors/local/process-group.ts`). Used by the `logging` builtin (`builtins.ts`), which runs on
 * a machine and measures the jobs whose processes run on that same machine.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { currentBootId, groupMembers, type ProcessIdentity } from '../executors/local/process-identity.js';

/** What a job's processes use at one moment. */
export interface Usage {
  /** Cpu seconds (user and system) of the live members and of the children they have waited for. */
  cpu: number;
  /** Resident memory of the live members, in bytes. */
  rss: number;
  /** Live members of the group. */
  processes: number;
}

let units: { tick: number; page: number } | undefined;

/** Clock ticks per second and the page size, as `getconf` tells (the usual 100 and 4096 without it). */
function systemUnits(): { tick: number; page: number } {
  if (units === undefined) {
    const ask = (name: string, fallback: number): number => {
      try {
        const value = Number(execFileSync('getconf', [name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
        return Number.isSafeInteger(value) && value > 0 ? value : fallback;
      } catch {
        return fallback;
      }
    };
    units = { tick: ask('CLK_TCK', 100), page: ask('PAGESIZE', 4096) };
  }
  return units;
}

/** True when `leader` ran on this machine's current boot, so that its processes can be read here. */
export function measurableHere(leader: ProcessIdentity): boolean {
  return leader.bootId === currentBootId();
}

/**
 * The usage of the process group that `leader` leads, or undefined when nothing of it is left
 * (or it ran on another machine or boot). Processes that exit between the listing and the read
 * are left out.
 */
export function groupUsage(leader: ProcessIdentity): Usage | undefined {
  if (!measurableHere(leader)) return undefined;
  const { tick, page } = systemUnits();
  let ticks = 0;
  let pages = 0;
  let processes = 0;
  for (const pid of groupMembers(leader)) {
    let stat: string;
    let statm: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      statm = readFileSync(`/proc/${pid}/statm`, 'latin1');
    } catch {
      continue;
    }
    // Fields after "pid (comm) ": 3 state … 14 utime, 15 stime, 16 cutime, 17 cstime.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    for (let field = 14; field <= 17; field++) ticks += Number(fields[field - 3]) || 0;
    // statm: size resident shared …, in pages.
    pages += Number(statm.split(' ')[1]) || 0;
    processes++;
  }
  if (processes === 0) return undefined;
  return { cpu: ticks / tick, rss: pages * page, processes };
}
