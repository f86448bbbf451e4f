/**
 * The embedded store: one machine, no services to run. Job records, groups and events live in
 * the SQLite database `<dir>/jobwire.db`; each job's output and stdin in append-only files
 * under `<dir>/output/<jobId>/`. Everything it creates is private to its user: folders 0700,
 * files 0600.
 * @module
 */
import { DiskBlobs } from './file-blobs.js';
import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { resolveHome } from '@jobwire/client/home';
import type { Store } from '../types.js';
import { settle } from './errors.js';
import { FileStreamLog } from './file-stream-log.js';
import { warnListenerError, type ListenerErrorHandler } from './listeners.js';
import { SqliteStore } from './sqlite-store.js';

/** Options of {@link openEmbeddedStore}. */
export interface EmbeddedStoreOptions {
  /**
   * The jobwire home: the database is `dir/jobwire.db`, streams are under `dir/output/`.
   * Created when missing.
   * @defaultValue resolveHome() — `JOBWIRE_HOME`, else `$XDG_DATA_HOME/jobwire`, else `~/.local/share/jobwire`
   */
  dir?: string;
  /**
   * Bytes of recent output kept in memory per job whose output is open, so readers close
   * behind the writer are served without file reads. 0 serves every read from the files.
   * @defaultValue 262144 (256 KiB)
   */
  tailBytes?: number;
  /**
   * How long a write waits for a database lock held by another connection, in milliseconds.
   * @defaultValue 5000
   */
  busyTimeoutMs?: number;
  /**
   * Receives errors thrown by `onEvent` and `subscribe` listeners, which never reach the
   * operation that emitted.
   * @defaultValue a process warning (`process.emitWarning`)
   */
  onListenerError?: ListenerErrorHandler;
}

/** {@link EmbeddedStoreOptions} with every default filled in. */
type ResolvedOptions = Required<EmbeddedStoreOptions>;

/** The defaults, filled in one place. */
function defaultOptions(): ResolvedOptions {
  return { dir: resolveHome(), tailBytes: 256 * 1024, busyTimeoutMs: 5000, onListenerError: warnListenerError };
}

/** Fills in defaults and checks the values. */
function parseOptions(options: EmbeddedStoreOptions): ResolvedOptions {
  const resolved = { ...defaultOptions() };
  for (const [key, value] of Object.entries(options) as Array<[keyof ResolvedOptions, unknown]>) {
    if (value !== undefined) (resolved as Record<string, unknown>)[key] = value;
  }
  if (typeof resolved.dir !== 'string' || resolved.dir === '') throw new TypeError('EmbeddedStoreOptions.dir must be a non-empty path');
  for (const key of ['tailBytes', 'busyTimeoutMs'] as const) {
    const value = resolved[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new TypeError(`EmbeddedStoreOptions.${key} must be a non-negative integer, got ${String(value)}`);
    }
  }
  if (typeof resolved.onListenerError !== 'function') throw new TypeError('EmbeddedStoreOptions.onListenerError must be a function');
  return resolved;
}

/**
 * Opens (creating when needed) the embedded store in `options.dir`. Only one store should be
 * open on a folder at a time: stream sizes are kept in memory.
 */
export function openEmbeddedStore(options: EmbeddedStoreOptions = {}): Promise<Store> {
  return settle(() => {
    const resolved = parseOptions(options);
    mkdirSync(resolved.dir, { recursive: true, mode: 0o700 });
    const dbPath = join(resolved.dir, 'jobwire.db');
    makePrivate(dbPath);
    const streams = new FileStreamLog({
      dir: join(resolved.dir, 'output'),
      tailBytes: resolved.tailBytes,
      onListenerError: resolved.onListenerError,
    });
    try {
      return new SqliteStore({
        dbPath,
        busyTimeoutMs: resolved.busyTimeoutMs,
        streams,
        blobs: new DiskBlobs(join(resolved.dir, 'files')),
        onListenerError: resolved.onListenerError,
      });
    } catch (error) {
      streams.close();
      throw error;
    }
  });
}

/**
 * Creates the database file 0600 (SQLite gives its -wal and -shm files the database's mode), or
 * brings the mode of existing ones down to 0600: a database created by an older version, under a
 * wider umask, may be readable by others.
 */
function makePrivate(dbPath: string): void {
  closeSync(openSync(dbPath, 'a', 0o600));
  for (const file of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) {
    try {
      chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
