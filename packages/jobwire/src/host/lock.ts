/**
 * One job host per home: a lock that dies with its holder.
 *
 * Node has no flock(2), and a pid file alone cannot be taken over safely when its holder died:
 * two contenders that both find it stale would both replace it. So the lock is a folder
 * (`<home>/host.lock/`) of numbered files, each holding the identity (pid, start time, boot id)
 * of the process that created it; the highest number is the lock. A contender takes it by
 * creating the next number with link(2), which fails when that number exists: of all contenders
 * that found the same holder gone, exactly one creates the next number. Numbers only go up while
 * anyone holds the lock, and no one creates a number above a live holder's, so a contender that
 * finds a higher number than its own after creating it steps down. Identities are never a bare
 * pid: a pid reused by another process does not keep the lock held.
 * @module
 */
import { linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { selfIdentity, stillSame, type ProcessIdentity } from '../executors/local/process-identity.js';

/** The folder of the host lock in `home`. */
export function lockDir(home: string): string {
  return join(home, 'host.lock');
}

/** A held host lock. */
export interface HostLock {
  /** The generation held. */
  readonly generation: number;
  /** Gives the lock up (removes its file); harmless when called twice. */
  release(): void;
}

/** What {@link acquireHostLock} found. */
export type LockOutcome = { held: true; lock: HostLock } | { held: false; holder: ProcessIdentity };

/** How many times to look again after losing a race to another contender. */
const ATTEMPTS = 100;

/**
 * Takes the host lock of `home`, or says which live process holds it. Throws when this process
 * has no identity (no /proc) or the folder cannot be written.
 */
export function acquireHostLock(home: string): LockOutcome {
  return acquireLock(lockDir(home), 'the job host lock');
}

/**
 * Takes the lock kept in folder `dir` (the same design as the host lock, for other one-per-home
 * processes: the server's `server.lock/`), or says which live process holds it. `what` names the
 * lock in errors.
 */
export function acquireLock(dir: string, what: string): LockOutcome {
  const self = selfIdentity();
  if (self === undefined) throw new Error(`cannot take ${what}: this process has no identity (is /proc mounted?)`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const top = generations(dir).at(-1);
    if (top !== undefined) {
      const holder = readHolder(dir, top);
      // Gone between listing and reading: its holder released it; look again.
      if (holder === 'missing') continue;
      if (holder !== undefined && stillSame(holder)) return { held: false, holder };
    }
    const mine = (top ?? 0) + 1;
    if (!create(dir, mine, self)) continue;
    if (generations(dir).some((g) => g > mine)) {
      // Created on an outdated view: someone holds a later generation.
      rmSync(join(dir, name(mine)), { force: true });
      continue;
    }
    for (const g of generations(dir)) if (g < mine) rmSync(join(dir, name(g)), { force: true });
    let released = false;
    return {
      held: true,
      lock: {
        generation: mine,
        release() {
          if (released) return;
          released = true;
          rmSync(join(dir, name(mine)), { force: true });
        },
      },
    };
  }
  throw new Error(`cannot take ${what} in ${dir}: it changed hands ${ATTEMPTS} times while trying`);
}

/** The live holder of `home`'s host lock, if any. */
export function lockHolder(home: string): ProcessIdentity | undefined {
  return lockHolderOf(lockDir(home));
}

/** The live holder of the lock kept in folder `dir` (see {@link acquireLock}), if any. */
export function lockHolderOf(dir: string): ProcessIdentity | undefined {
  let list: number[];
  try {
    list = generations(dir);
  } catch {
    return undefined;
  }
  const top = list.at(-1);
  if (top === undefined) return undefined;
  const holder = readHolder(dir, top);
  return holder !== undefined && holder !== 'missing' && stillSame(holder) ? holder : undefined;
}

function name(generation: number): string {
  return String(generation).padStart(12, '0');
}

/** Generations present, lowest first. */
function generations(dir: string): number[] {
  return readdirSync(dir)
    .filter((entry) => /^\d{12}$/.test(entry))
    .map(Number)
    .sort((a, b) => a - b);
}

/** The identity in a generation's file; undefined when unreadable, 'missing' when gone. */
function readHolder(dir: string, generation: number): ProcessIdentity | undefined | 'missing' {
  let text: string;
  try {
    text = readFileSync(join(dir, name(generation)), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    return undefined;
  }
  try {
    const value = JSON.parse(text) as Partial<ProcessIdentity>;
    if (typeof value.pid === 'number' && typeof value.startTicks === 'number' && typeof value.bootId === 'string') {
      return { pid: value.pid, startTicks: value.startTicks, bootId: value.bootId };
    }
  } catch {
    // Files appear complete (link of a written file), so this is a foreign edit: not a holder.
  }
  return undefined;
}

/** Creates generation `generation` holding `self`, complete or not at all; false when it exists. */
function create(dir: string, generation: number, self: ProcessIdentity): boolean {
  const aside = join(dir, `.new-${process.pid}-${randomBytes(6).toString('hex')}`);
  writeFileSync(aside, JSON.stringify(self), { mode: 0o600 });
  try {
    linkSync(aside, join(dir, name(generation)));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    rmSync(aside, { force: true });
  }
}
