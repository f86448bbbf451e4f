/**
 * The host's journal: what lets a server find and stop the processes of a host that died, even
 * of a job whose start the server never heard back about. For each job the host holds it
 * records the identities of the host and of the job's process-group leader, synchronously,
 * before the job is spawned (so a job that cannot be recorded is not started) and again once
 * its leader is known; a client forgetting the job ends its entry.
 *
 * On disk (`<home>/host-jobs/`): each host appends to a file of its own,
 * `host-<pid>-<startTicks>.log`, one JSON object per line — first `{"host": identity}`, then
 * `{"entry": JournalEntry}` (a later entry of the same job replaces the earlier one) and
 * `{"forget": jobId}`. An append is one `write` to an open file, where a file per job cost a
 * file creation, a rename and an unlink per job (about a millisecond each on a loaded VM's
 * ext4). Each line also starts with a newline, so a line cut short by a failed write never
 * swallows the next one; unreadable lines are skipped. The host rewrites its file with only its
 * live entries (written aside, then renamed) once forgotten lines far outnumber them.
 *
 * Hosts of jobwire before this format wrote one file per job (`<jobId>.json`, a
 * {@link JournalEntry}); {@link readJournal} still reads them, so a dead host of an older
 * version is recovered the same way.
 * @module
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
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

/** What one host's journal holds, as read back. */
export interface JournalFile {
  /** The file's name in the journal folder. */
  name: string;
  /** The host that wrote it; undefined for a file of the older one-entry-per-file format. */
  host: ProcessIdentity | undefined;
  /** Its entries not forgotten. */
  entries: JournalEntry[];
}

/** Forgotten lines beyond which (and beyond four times the live entries) a host rewrites its file. */
const COMPACT_AFTER = 1000;

/** Creates the journal folder `dir` (once, when a host starts). */
export function makeJournalDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** The name of the journal file of host `host`. */
export function journalFileName(host: ProcessIdentity): string {
  return `host-${host.pid}-${host.startTicks}.log`;
}

/** The journal a live host writes (see the module documentation). Not for sharing between processes. */
export class JournalWriter {
  readonly #host: ProcessIdentity;
  readonly #path: string;
  #fd: number;
  readonly #live = new Map<string, JournalEntry>();
  /** Lines in the file that no longer describe a live entry. */
  #dead = 0;

  /** Opens (creating) the journal file of `host` in `dir`, which must exist. Throws on failure. */
  constructor(dir: string, host: ProcessIdentity) {
    this.#host = host;
    this.#path = join(dir, journalFileName(host));
    this.#fd = openSync(this.#path, 'a', 0o600);
    this.#append({ host });
  }

  /** Records (or replaces) `entry`. Throws when it could not be written. */
  record(entry: JournalEntry): void {
    this.#append({ entry });
    if (this.#live.has(entry.jobId)) this.#dead += 1;
    this.#live.set(entry.jobId, entry);
  }

  /** Ends the entry of `jobId`; harmless when there is none. Throws when it could not be written. */
  forget(jobId: string): void {
    if (!this.#live.has(jobId)) return;
    this.#append({ forget: jobId });
    this.#live.delete(jobId);
    this.#dead += 2;
    if (this.#dead >= COMPACT_AFTER && this.#dead >= 4 * this.#live.size) this.#compact();
  }

  /** Closes the file; removes it when no entry is left (nothing to recover). */
  close(): void {
    closeSync(this.#fd);
    if (this.#live.size === 0) rmSync(this.#path, { force: true });
  }

  #append(line: object): void {
    const text = Buffer.from(`\n${JSON.stringify(line)}\n`);
    let done = 0;
    while (done < text.length) done += writeSync(this.#fd, text, done, text.length - done);
  }

  /** Rewrites the file with the live entries only: aside first, then renamed over it. */
  #compact(): void {
    const aside = `${this.#path}.tmp`;
    const lines = [{ host: this.#host }, ...[...this.#live.values()].map((entry) => ({ entry }))];
    try {
      writeFileSync(aside, lines.map((line) => `\n${JSON.stringify(line)}\n`).join(''), { mode: 0o600 });
      renameSync(aside, this.#path);
    } catch {
      // The long file still says the same; try again after more forgets.
      rmSync(aside, { force: true });
      this.#dead = 0;
      return;
    }
    closeSync(this.#fd);
    this.#fd = openSync(this.#path, 'a', 0o600);
    this.#dead = 0;
  }
}

/** Removes the older format's entry of one job; harmless when there is none. */
export function removeJournalEntry(dir: string, jobId: string): void {
  rmSync(join(dir, `${jobId}.json`), { force: true });
}

/** Removes journal file `name` (of a host that is gone, once its jobs are recovered). */
export function removeJournalFile(dir: string, name: string): void {
  rmSync(join(dir, name), { force: true });
}

/** Every readable journal file in `dir`, with its live entries (none when there is no folder). */
export function readJournalFiles(dir: string): JournalFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const files: JournalFile[] = [];
  for (const name of names) {
    let text: string;
    try {
      text = readFileSync(join(dir, name), 'utf8');
    } catch {
      continue;
    }
    if (name.endsWith('.json')) {
      try {
        const entry = JSON.parse(text) as JournalEntry;
        if (isEntry(entry)) files.push({ name, host: undefined, entries: [entry] });
      } catch {
        // Written by rename, so only a foreign edit is unreadable: nothing we can act on.
      }
    } else if (name.endsWith('.log')) {
      const file = parseLog(name, text);
      if (file !== undefined) files.push(file);
    }
  }
  return files;
}

/** Every live entry of the journal in `dir` (none when it has no folder). */
export function readJournal(dir: string): JournalEntry[] {
  return readJournalFiles(dir).flatMap((file) => file.entries);
}

/** A host's journal file from its text; undefined when it names no host. */
function parseLog(name: string, text: string): JournalFile | undefined {
  let host: ProcessIdentity | undefined;
  const live = new Map<string, JournalEntry>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let value: { host?: ProcessIdentity; entry?: JournalEntry; forget?: unknown };
    try {
      value = JSON.parse(line) as typeof value;
    } catch {
      // Cut short by a failed write: the record it began was not made.
      continue;
    }
    if (value.host !== undefined && typeof value.host.pid === 'number') host ??= value.host;
    else if (value.entry !== undefined && isEntry(value.entry)) live.set(value.entry.jobId, value.entry);
    else if (typeof value.forget === 'string') live.delete(value.forget);
  }
  return host === undefined ? undefined : { name, host, entries: [...live.values()] };
}

function isEntry(entry: Partial<JournalEntry> | null | undefined): entry is JournalEntry {
  return typeof entry?.jobId === 'string' && typeof entry.host?.pid === 'number';
}
