/**
 * Copy operations of the `file` adaptor: started by `copy`, run in the background, followed
 * with `getStatus` / `waitUntilDone`, stopped with `cancel`. Source and destination are held by
 * descriptors checked to lie in the caller's file space before the copy starts, and the copy works
 * only through them (the rule at the top of file-space.ts); inside a copied tree no symbolic link
 * is followed — links are copied as links and an existing link at the destination is replaced or
 * skipped, never written through. Statuses stay queryable after the copy ends (the newest
 * {@link KEPT_COPIES} per user).
 * @module
 */
import { randomUUID } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, symlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { fromFsError, XenonError } from './errors.js';
import { inside, removeEntry, type Held, type HeldName } from './file-space.js';
import type { CopyErrorType, CopyMode, XenonCopyStatus } from './messages.js';
import { setLongTimeout, type LongTimeout } from '../timers.js';

/** Finished copies kept per user for status queries. */
export const KEPT_COPIES = 1000;
/** Bytes per read/write step. */
const STEP = 256 * 1024;

/** What every copy has: whose, on which handle, from where to where (as the client named them). */
export interface CopyCommon {
  owner: string;
  /** File system handle the copy was started on (closing it cancels the copy). */
  fileSystemId: string;
  /** Absolute source and destination as the client named them (for messages). */
  source: string;
  destination: string;
}

/** What to copy with the `file` adaptor. */
export interface CopyPlan extends CopyCommon {
  /** The source, held and checked (file-space.ts); undefined when it does not exist. Closed by the copy. */
  from: Held | undefined;
  /** The destination's name in its held, checked folder. Closed by the copy. */
  to: HeldName;
  mode: CopyMode;
  recursive: boolean;
}

/** One copy operation. */
export interface CopyOperation extends CopyCommon {
  id: string;
  state: 'PENDING' | 'RUNNING' | 'DONE' | 'FAILED';
  bytesCopied: number;
  bytesToCopy: number;
  error?: { type: CopyErrorType; message: string };
  readonly abort: AbortController;
  /** Resolves when the copy has ended, however. */
  readonly done: Promise<void>;
}

class Cancelled extends Error {}

/** The copy operations of this server. */
export class CopyOperations {
  private readonly ops = new Map<string, CopyOperation>();

  /** Starts a copy of the `file` adaptor in the background. */
  start(plan: CopyPlan): CopyOperation {
    return this.startWith(plan, (op) => runCopy(op, plan));
  }

  /**
   * Starts `work` in the background as a copy operation (another adaptor's copy): `work` keeps
   * the byte counts and sets the state and error; it stops when `op.abort` aborts.
   */
  startWith(common: CopyCommon, work: (op: CopyOperation) => Promise<void>): CopyOperation {
    let finish!: () => void;
    const op: CopyOperation = {
      owner: common.owner,
      fileSystemId: common.fileSystemId,
      source: common.source,
      destination: common.destination,
      id: `COPY-${randomUUID()}`,
      state: 'PENDING',
      bytesCopied: 0,
      bytesToCopy: 0,
      abort: new AbortController(),
      done: new Promise<void>((resolve) => (finish = resolve)),
    };
    this.ops.set(op.id, op);
    this.trim(common.owner);
    void work(op).finally(finish);
    return op;
  }

  /** A copy of `owner`, or undefined. */
  find(owner: string, id: string | undefined): CopyOperation | undefined {
    const op = id === undefined ? undefined : this.ops.get(id);
    return op && op.owner === owner ? op : undefined;
  }

  /** Cancels a copy that has not ended. */
  cancel(op: CopyOperation): void {
    if (op.state === 'PENDING' || op.state === 'RUNNING') op.abort.abort();
  }

  /** Cancels every running copy started on a file system handle. */
  cancelAllOf(fileSystemId: string): void {
    for (const op of this.ops.values()) if (op.fileSystemId === fileSystemId) this.cancel(op);
  }

  /** Cancels everything (server shutdown). */
  cancelAll(): Promise<void> {
    for (const op of this.ops.values()) this.cancel(op);
    return Promise.allSettled([...this.ops.values()].map((op) => op.done)).then(() => undefined);
  }

  /** Waits until the copy ended, `timeoutMs` passed (0 = no limit) or `signal` aborted. */
  async wait(op: CopyOperation, timeoutMs: number, signal: AbortSignal): Promise<void> {
    let timer: LongTimeout | undefined;
    let onAbort: (() => void) | undefined;
    const stops: Promise<void>[] = [op.done];
    if (timeoutMs > 0) stops.push(new Promise((resolve) => (timer = setLongTimeout(resolve, timeoutMs))));
    stops.push(new Promise((resolve) => signal.addEventListener('abort', (onAbort = () => resolve()), { once: true })));
    await Promise.race(stops);
    timer?.clear();
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }

  /** Forgets the oldest finished copies of `owner` beyond {@link KEPT_COPIES}. */
  private trim(owner: string): void {
    const finished = [...this.ops.values()].filter((op) => op.owner === owner && (op.state === 'DONE' || op.state === 'FAILED'));
    for (const op of finished.slice(0, Math.max(0, finished.length - KEPT_COPIES))) this.ops.delete(op.id);
  }
}

/** Xenon's CopyStatus of an operation. */
export function copyStatus(op: CopyOperation): XenonCopyStatus {
  return {
    copy_operation: { id: op.id },
    bytes_copied: op.bytesCopied,
    bytes_to_copy: op.bytesToCopy,
    done: op.state === 'DONE' || op.state === 'FAILED',
    running: op.state === 'RUNNING',
    state: op.state,
    error_message: op.error?.message ?? '',
    error_type: op.error?.type ?? 'NONE',
  };
}

async function lstatOrNone(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Holds entry `name` of a held folder without following it; undefined when it is gone. */
async function entryOrNone(dir: Held, name: string): Promise<Held | undefined> {
  try {
    return await dir.entry(name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Bytes of the regular files in the held `entry` and below (links not followed). */
async function sizeOf(entry: Held, st: Stats, signal: AbortSignal): Promise<number> {
  if (signal.aborted) throw new Cancelled();
  if (st.isFile()) return st.size;
  if (!st.isDirectory()) return 0;
  let total = 0;
  for (const name of await readdir(entry.at)) {
    const child = await entryOrNone(entry, name);
    if (!child) continue;
    try {
      total += await sizeOf(child, await child.stat(), signal);
    } finally {
      await child.close();
    }
  }
  return total;
}

async function runCopy(op: CopyOperation, plan: CopyPlan): Promise<void> {
  const signal = op.abort.signal;
  op.state = 'RUNNING';
  let current = op.source;
  try {
    if (!plan.from) throw new XenonError('NoSuchPathException', 'file', `${op.source}: no such file or directory`);
    const from = plan.from;
    const to = plan.to;
    const src = await from.stat();
    if (src.isDirectory() && !plan.recursive) throw new XenonError('InvalidPathException', 'file', `${op.source}: is a directory; copy it with recursive set`);
    if (src.isDirectory() && inside(from.real, posix.join(to.dir.real, to.name))) throw new XenonError('InvalidPathException', 'file', `${op.destination}: cannot copy a directory into itself`);
    const dst = await lstatOrNone(to.at);
    if (dst && plan.mode === 'CREATE') throw new XenonError('PathAlreadyExistsException', 'file', `${op.destination}: path already exists`);
    op.bytesToCopy = await sizeOf(from, src, signal);
    /**
     * Copies the held `source` (named `sourceName` in the held folder `sourceDir`, for links) to
     * `name` in the held folder `dir`. Every path used goes through a held folder, one component
     * at a time, never following a link there (file-space.ts, rule 5).
     */
    const copyEntry = async (sourceDir: Held | undefined, sourceName: string, source: Held, fromStat: Stats, dir: Held, name: string, toStat: Stats | undefined, shown: string): Promise<void> => {
      if (signal.aborted) throw new Cancelled();
      current = shown;
      const target = dir.child(name);
      if (toStat && plan.mode === 'CREATE') throw new XenonError('PathAlreadyExistsException', 'file', `${posix.join(op.destination, posix.relative(op.source, shown))}: path already exists`);
      if (fromStat.isDirectory()) {
        if (toStat && !toStat.isDirectory()) {
          if (plan.mode === 'IGNORE') {
            op.bytesToCopy -= await sizeOf(source, fromStat, signal);
            return;
          }
          await removeEntry(dir, name);
          toStat = undefined;
        }
        if (!toStat) await mkdir(target, { mode: fromStat.mode & 0o777 });
        const into = await dir.entry(name);
        try {
          if (!(await into.stat()).isDirectory()) throw new XenonError('InvalidPathException', 'file', `${shown}: the destination is not a directory`);
          for (const child of await readdir(source.at)) {
            const held = await entryOrNone(source, child);
            if (!held) continue;
            try {
              await copyEntry(source, child, held, await held.stat(), into, child, await lstatOrNone(into.child(child)), posix.join(shown, child));
            } finally {
              await held.close();
            }
          }
        } finally {
          await into.close();
        }
        return;
      }
      if (!fromStat.isFile() && !fromStat.isSymbolicLink()) return; // fifos, sockets, devices: skipped
      if (toStat) {
        if (plan.mode === 'IGNORE') {
          op.bytesToCopy -= fromStat.isFile() ? fromStat.size : 0;
          return;
        }
        // REPLACE: never write through an existing link or into a directory; remove it first.
        if (!toStat.isFile() || fromStat.isSymbolicLink()) {
          await removeEntry(dir, name);
          toStat = undefined;
        }
      }
      if (fromStat.isSymbolicLink()) {
        // Read by name in its held folder: a link held with O_PATH cannot be read through /proc.
        if (!sourceDir) return;
        await symlink(await readlink(sourceDir.child(sourceName)), target);
        return;
      }
      await copyFile(op, source.at, target, toStat !== undefined, fromStat.mode & 0o777, signal);
    };
    await copyEntry(undefined, '', from, src, to.dir, to.name, dst, op.source);
    op.state = 'DONE';
  } catch (err) {
    op.state = 'FAILED';
    if (err instanceof Cancelled || signal.aborted) {
      op.error = { type: 'CANCELLED', message: 'file adaptor: copy cancelled' };
      return;
    }
    const xe = err instanceof XenonError ? err : fromFsError(err, current);
    const type: CopyErrorType = xe.kind === 'NoSuchPathException' ? 'NOT_FOUND' : xe.kind === 'PathAlreadyExistsException' ? 'ALREADY_EXISTS' : 'XENON';
    op.error = { type, message: `${xe.kind}: file adaptor: ${xe.message}` };
  } finally {
    await plan.from?.close();
    await plan.to.dir.close();
  }
}

/**
 * Copies the regular file `from` (a path naming the held file) to `to` (a name in a held
 * folder): created new, or truncated when `replace`, and never through a link (O_NOFOLLOW).
 */
async function copyFile(op: CopyOperation, from: string, to: string, replace: boolean, mode: number, signal: AbortSignal): Promise<void> {
  const input = await open(from, 'r');
  try {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (replace ? constants.O_TRUNC : constants.O_EXCL);
    const output = await open(to, flags, mode);
    try {
      const buffer = Buffer.allocUnsafe(STEP);
      for (;;) {
        if (signal.aborted) throw new Cancelled();
        const { bytesRead } = await input.read(buffer, 0, STEP, null);
        if (bytesRead === 0) break;
        await output.write(buffer, 0, bytesRead);
        op.bytesCopied += bytesRead;
      }
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}
