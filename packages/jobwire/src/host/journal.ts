/**
 * The host's journal: one small file per job it holds (`<home>/host-jobs/<jobId>.json`), with
 * the identities of the host and of the job's process-group leader. It is what lets a server
 * find and stop the processes of a host that died, even of a job whose start the server never
 * heard back about. Written synchronously, before the job is spawned (so a job that cannot be
 * recorded is not started) and again once its leader is known; removed when a client forgets
 * the job.
 * @module
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessIdentity } from '../executors/local/process-identity.js';

/** One journal entry. */
export interface JournalEntry {
  jobId: string;
  /** The host that runs the job. */
  host: ProcessIdentity;
  /** The job's process-group leader; null until spawned, or when it never started. */
  leader: ProcessIdentity | null;
  startedAt: string;
}

/** Creates the journal folder `dir` (once, when a host starts). */
export function makeJournalDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Writes (or rewrites) `entry` in the journal folder `dir`, atomically. Throws on failure. */
export function writeJournalEntry(dir: string, entry: JournalEntry): void {
  const path = join(dir, `${entry.jobId}.json`);
  writeFileSync(`${path}.tmp`, JSON.stringify(entry), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Removes a job's entry; harmless when there is none. */
export function removeJournalEntry(dir: string, jobId: string): void {
  rmSync(join(dir, `${jobId}.json`), { force: true });
}

/** Every readable entry of the journal (none when it has no folder). */
export function readJournal(dir: string): JournalEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const entries: JournalEntry[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    try {
      const entry = JSON.parse(readFileSync(join(dir, name), 'utf8')) as JournalEntry;
      if (typeof entry.jobId === 'string' && typeof entry.host?.pid === 'number') entries.push(entry);
    } catch {
      // Written by rename, so only a foreign edit is unreadable: nothing we can act on.
    }
  }
  return entries;
}
