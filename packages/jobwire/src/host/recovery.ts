/**
 * The server's side of a job host that may be gone: is the home's host alive (by identity, never
 * by a bare pid), and what became of jobs whose host is not — ended with their exit stored, or
 * Lost, their leftover processes stopped. Only processes whose identity (pid, start time, boot
 * id) still matches the record are ever signalled, so a pid reused by a stranger is left alone.
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopLostGroup } from '../executors/local/process-group.js';
import { stillSame, type JobProcess, type ProcessIdentity } from '../executors/local/process-identity.js';
import { readJournalFiles, removeJournalEntry, removeJournalFile } from './journal.js';
import { hostPaths } from './paths.js';
import type { ExitRecord, HostInfo } from './protocol.js';

/** Where a home's job host stands, from its host.json. */
export type HostStatus =
  /** No host.json: no host ran, or the last one exited cleanly. */
  | { state: 'absent' }
  /** host.json names a live process with the recorded identity. */
  | { state: 'running'; info: HostInfo }
  /** host.json names a process that is gone (or a pid now used by another process). */
  | { state: 'gone'; info: HostInfo };

/** What became of a job whose host may be gone. */
export type JobRecovery =
  /** Its host (the process that ran it) is alive: ask that host (list, subscribe). */
  | { kind: 'running'; hostPid: number }
  /** Its host is gone, but the job had ended and its end is stored: finish it with `exit`. */
  | { kind: 'ended'; exit: ExitRecord }
  /** Its host is gone and so is the job: mark it Lost with `reason`. */
  | { kind: 'lost'; reason: string; stopped: number[]; stuck: number[] };

/** The home's host status, from host.json and the process table. */
export function hostStatus(home: string): HostStatus {
  let info: HostInfo;
  try {
    info = JSON.parse(readFileSync(hostPaths(home).info, 'utf8')) as HostInfo;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'absent' };
    // Written by rename, so unreadable means foreign: no identity to trust, nothing to signal.
    return { state: 'absent' };
  }
  if (!isIdentity(info.identity)) return { state: 'absent' };
  return stillSame(info.identity) ? { state: 'running', info } : { state: 'gone', info };
}

/** A job's stored end (`<home>/output/<jobId>/exit.json`), if the host wrote one. */
export function readExitRecord(home: string, jobId: string): ExitRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(hostPaths(home).output, jobId, 'exit.json'), 'utf8')) as ExitRecord;
  } catch {
    return undefined;
  }
}

/**
 * What became of `jobs` (as the store recorded them: `process.runner` is the host that ran each)
 * that the home's live host, if any, does not list. A stored end (`exit.json`, which the host
 * removes before it starts a run) always counts. Otherwise a job whose host is alive is left to
 * it; one whose host is gone has its process group stopped (SIGTERM, SIGKILL after `graceMs`) —
 * only while the group still is the one its leader led — and is Lost with a reason naming the
 * host.
 */
export async function recoverJobs(home: string, jobs: ReadonlyArray<{ id: string; process: JobProcess | null }>, graceMs: number): Promise<Map<string, JobRecovery>> {
  const outcomes = new Map<string, JobRecovery>();
  await Promise.all(
    jobs.map(async ({ id, process }) => {
      if (process !== null && stillSame(process.runner)) {
        const exit = readExitRecord(home, id);
        outcomes.set(id, exit !== undefined ? { kind: 'ended', exit } : { kind: 'running', hostPid: process.runner.pid });
        return;
      }
      outcomes.set(id, await recoverOne(home, id, process?.leader ?? null, process?.runner ?? null, graceMs));
    }),
  );
  return outcomes;
}

/**
 * Recovers the jobs in the journal of a host that is gone (see journal.ts), including any the
 * server never heard back about, and removes their entries. Entries of a live host are left.
 * Returns what became of each.
 */
export async function recoverJournal(home: string, graceMs: number): Promise<Array<{ jobId: string; recovery: JobRecovery }>> {
  const dir = hostPaths(home).journal;
  const recovered: Array<{ jobId: string; recovery: JobRecovery }> = [];
  for (const file of readJournalFiles(dir)) {
    // A host's own file: all of it is recovered (and removed) once that host is gone.
    if (file.host !== undefined && stillSame(file.host)) continue;
    const gone = file.entries.filter((entry) => !stillSame(entry.host));
    recovered.push(
      ...(await Promise.all(
        gone.map(async (entry) => {
          const recovery = await recoverOne(home, entry.jobId, entry.leader, entry.host, graceMs);
          if (file.host === undefined) removeJournalEntry(dir, entry.jobId);
          return { jobId: entry.jobId, recovery };
        }),
      )),
    );
    if (file.host !== undefined) removeJournalFile(dir, file.name);
  }
  return recovered;
}

/** Options of {@link stopHost}. */
export interface StopHostOptions {
  /** How long the host may take to stop its jobs and exit before it gets SIGKILL. @defaultValue 20000 */
  timeoutMs?: number;
}

/**
 * Stops the home's job host: SIGTERM (it stops its jobs, stores their ends and exits), SIGKILL
 * when it has not exited after `timeoutMs`. Signals only a process that still has the identity
 * host.json records; returns false (and signals nothing) when there is none.
 */
export async function stopHost(home: string, options: StopHostOptions = {}): Promise<boolean> {
  const status = hostStatus(home);
  if (status.state !== 'running') return false;
  const identity = status.info.identity;
  if (!signalIfSame(identity, 'SIGTERM')) return false;
  if (!(await waitGone(identity, options.timeoutMs ?? 20_000))) {
    signalIfSame(identity, 'SIGKILL');
    await waitGone(identity, 10_000);
  }
  return true;
}

async function recoverOne(home: string, jobId: string, leader: ProcessIdentity | null, host: ProcessIdentity | null, graceMs: number): Promise<JobRecovery> {
  const exit = readExitRecord(home, jobId);
  const stop = leader === null ? { found: [], remaining: [] } : await stopLostGroup(leader, graceMs);
  // An end was stored: whatever the group still ran had been left behind by the job itself.
  if (exit !== undefined) return { kind: 'ended', exit };
  const who = host === null ? 'its job host' : `its job host (pid ${host.pid})`;
  let reason = `${who} died while it ran`;
  if (stop.remaining.length > 0) reason += `; its processes were still running and some could not be stopped (pids ${stop.remaining.join(', ')})`;
  else if (stop.found.length > 0) reason += '; its processes were still running and have been stopped';
  else if (leader === null) reason += '; its processes were never recorded';
  return { kind: 'lost', reason, stopped: stop.found.filter((pid) => !stop.remaining.includes(pid)), stuck: stop.remaining };
}

function signalIfSame(identity: ProcessIdentity, signal: NodeJS.Signals): boolean {
  if (!stillSame(identity)) return false;
  try {
    process.kill(identity.pid, signal);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(identity: ProcessIdentity, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (stillSame(identity)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

function isIdentity(value: unknown): value is ProcessIdentity {
  const v = value as Partial<ProcessIdentity> | undefined;
  return typeof v?.pid === 'number' && typeof v.startTicks === 'number' && typeof v.bootId === 'string';
}
