/**
 * The `sftp` file adaptor's work on one remote host: every FileSystemService call that SFTP
 * (version 3, as OpenSSH serves it) can do, over an sftp session on an {@link SshConnection} —
 * the shared connection of one of the server's ssh or `slurm+ssh` executors (default
 * credential), or a connection of the handle's own (a password or key the caller brought; see
 * docs/grpc.md for which hosts and key files). Paths are the remote host's, with the rights of the
 * account logged in: no file space confinement applies there (a jobwire user who may run jobs on
 * that host as that account reaches the same files with a job).
 *
 * SFTP's status codes say less than errno (OpenSSH answers "failure" for an existing name, a
 * folder that is not empty, ...), so calls that Xenon distinguishes by kind look first (lstat,
 * readdir) and name the kind themselves.
 * @module
 */
import { posix } from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import type { Attributes, FileEntry, OpenMode, SFTPWrapper } from 'ssh2';
import type { SshConnection } from '../executors/ssh/connection.js';
import { targetText } from '../executors/ssh/url.js';
import { permissionsOf } from './attributes.js';
import { permissionDenied, XenonError } from './errors.js';
import type { CopyMode, PathAttributes } from './messages.js';

/** The adaptor name. */
export const SFTP = 'sftp';

/** Bytes per read request (OpenSSH serves up to 256 KiB; ssh2 splits bigger ones). */
export const SFTP_CHUNK = 32 * 1024;

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;
const OP_UNSUPPORTED = 8;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** What kind of object a mode names. */
export const isDirectory = (a: Attributes): boolean => (a.mode & S_IFMT) === S_IFDIR;
export const isFile = (a: Attributes): boolean => (a.mode & S_IFMT) === S_IFREG;
export const isLink = (a: Attributes): boolean => (a.mode & S_IFMT) === S_IFLNK;

/** Calls an ssh2 sftp method with a node-style callback. */
function call<T = void>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** Maps an sftp or connection error about `path` to the Xenon kind. */
export function fromSftpError(err: unknown, path: string): XenonError {
  if (err instanceof XenonError) return err;
  const e = err as { code?: unknown; message?: string } | undefined;
  if (e?.code === 'JOBWIRE_SSH_CONNECT') return new XenonError('NotConnectedException', SFTP, e.message ?? String(err), { cause: err });
  const words = e?.message ?? String(err);
  switch (e?.code) {
    case NO_SUCH_FILE:
      return new XenonError('NoSuchPathException', SFTP, `${path}: no such path`, { cause: err });
    case PERMISSION_DENIED:
      return permissionDenied(SFTP, `${path}: permission denied`);
    case OP_UNSUPPORTED:
      return new XenonError('UnsupportedOperationException', SFTP, `${path}: the sftp server does not support this (${words})`, { cause: err });
    default:
      return new XenonError('XenonException', SFTP, `${path}: ${words}`, { cause: err });
  }
}

/** The files of one remote host, through one sftp session at a time (opened again after a drop). */
export class SftpFiles {
  #session: Promise<SFTPWrapper> | undefined;

  constructor(
    /** The connection the session runs on. */
    readonly connection: SshConnection,
    /**
     * Whether the connection belongs to this handle alone (closed with it) or is shared: then
     * one object (one sftp session, one SSH channel) serves every handle on it, so open handles
     * never take the channels the executor's jobs need.
     */
    private readonly owned: boolean,
  ) {}

  /** `user@host:port`, for messages and descriptions. */
  get where(): string {
    return targetText(this.connection.target);
  }

  /** The sftp session, opened on first use and after the last one closed. */
  session(): Promise<SFTPWrapper> {
    if (this.#session === undefined) {
      const opening = this.connection.sftp().then((sftp) => {
        sftp.once('close', () => {
          if (this.#session === opening) this.#session = undefined;
        });
        return sftp;
      });
      opening.catch(() => {
        if (this.#session === opening) this.#session = undefined;
      });
      this.#session = opening;
    }
    return this.#session;
  }

  /** Runs `fn` on the session, turning errors about `path` into Xenon ones. */
  async run<T>(path: string, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.session());
    } catch (err) {
      throw fromSftpError(err, path);
    }
  }

  /**
   * A handle that used it is closed: its own connection ends; a session on a shared connection
   * stays for the other handles (see {@link end}).
   */
  close(): void {
    if (this.owned) {
      this.#session = undefined;
      this.connection.close();
    }
  }

  /** Ends the session (server shutdown); the next use would open another. */
  end(): void {
    const session = this.#session;
    this.#session = undefined;
    void session?.then((sftp) => sftp.end(), () => undefined);
  }

  /** The folder the session starts in (the account's home). */
  home(): Promise<string> {
    return this.run('.', (s) => call<string>((cb) => s.realpath('.', cb)));
  }

  /** lstat; undefined when nothing is there. */
  async lstatOrNone(path: string): Promise<Attributes | undefined> {
    try {
      return await this.run(path, (s) => call<Attributes>((cb) => s.lstat(path, cb)));
    } catch (err) {
      if (err instanceof XenonError && err.kind === 'NoSuchPathException') return undefined;
      throw err;
    }
  }

  lstat(path: string): Promise<Attributes> {
    return this.run(path, (s) => call<Attributes>((cb) => s.lstat(path, cb)));
  }

  stat(path: string): Promise<Attributes> {
    return this.run(path, (s) => call<Attributes>((cb) => s.stat(path, cb)));
  }

  /** stat, following links; InvalidPathException (or `kind`) unless it is a folder. */
  async directory(path: string, kind: 'InvalidPathException' | 'InvalidLocationException' = 'InvalidPathException'): Promise<void> {
    if (!isDirectory(await this.stat(path))) throw new XenonError(kind, SFTP, `${path}: not a directory`);
  }

  /** stat, following links; InvalidPathException unless it is a regular file. */
  async regularFile(path: string): Promise<Attributes> {
    const a = await this.stat(path);
    if (!isFile(a)) throw new XenonError('InvalidPathException', SFTP, `${path}: not a regular file`);
    return a;
  }

  /** True when `path` exists (following links). */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (err) {
      if (err instanceof XenonError && err.kind === 'NoSuchPathException') return false;
      throw err;
    }
  }

  /** PathAlreadyExistsException when something (a dangling link too) is at `path`. */
  async mustBeFree(path: string): Promise<void> {
    if ((await this.lstatOrNone(path)) !== undefined) throw new XenonError('PathAlreadyExistsException', SFTP, `${path}: path already exists`);
  }

  /** The folder holding `path` must exist: NoSuchPathException otherwise. */
  async parentMustExist(path: string): Promise<void> {
    const parent = posix.dirname(path);
    const a = await this.stat(parent);
    if (!isDirectory(a)) throw new XenonError('InvalidPathException', SFTP, `${parent}: not a directory`);
  }

  async mkdir(path: string): Promise<void> {
    await this.mustBeFree(path);
    await this.parentMustExist(path);
    await this.run(path, (s) => call((cb) => s.mkdir(path, cb)));
  }

  /** Makes `path` and the folders above it that are missing. */
  async mkdirs(path: string): Promise<void> {
    await this.mustBeFree(path);
    let at = '/';
    for (const part of path.split('/').filter((p) => p !== '')) {
      at = posix.join(at, part);
      const a = await this.lstatOrNone(at);
      if (a === undefined) await this.run(at, (s) => call((cb) => s.mkdir(at, cb)));
      else if (!isDirectory(isLink(a) ? await this.stat(at) : a)) throw new XenonError('InvalidPathException', SFTP, `${at}: not a directory`);
    }
  }

  /** Opens `path` with sftp `flags` ('r', 'wx', 'r+', ...). */
  open(path: string, flags: OpenMode, mode = 0o644): Promise<Buffer> {
    return this.run(path, (s) => call<Buffer>((cb) => s.open(path, flags, { mode }, cb)));
  }

  closeFile(handle: Buffer): Promise<void> {
    return this.session().then((s) => call((cb) => s.close(handle, cb)), () => undefined).catch(() => undefined);
  }

  /** Reads up to `length` bytes at `position`; an empty buffer at the end. */
  async read(path: string, handle: Buffer, position: number, length = SFTP_CHUNK): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    try {
      const n = await this.run(path, (s) => call<number>((cb) => s.read(handle, buffer, 0, length, position, (err, bytesRead) => cb(err, bytesRead))));
      return buffer.subarray(0, n);
    } catch (err) {
      // ssh2 reports the end of the file as an error with SFTP's EOF status (1).
      if (err instanceof XenonError && (err.cause as { code?: unknown } | undefined)?.code === 1) return buffer.subarray(0, 0);
      throw err;
    }
  }

  write(path: string, handle: Buffer, data: Buffer, position: number): Promise<void> {
    return this.run(path, (s) => call((cb) => s.write(handle, data, 0, data.length, position, cb)));
  }

  /** Creates an empty file; PathAlreadyExistsException when the name is taken. */
  async createFile(path: string): Promise<void> {
    await this.mustBeFree(path);
    await this.parentMustExist(path);
    await this.closeFile(await this.open(path, 'wx'));
  }

  async symlink(link: string, target: string): Promise<void> {
    await this.mustBeFree(link);
    await this.parentMustExist(link);
    await this.run(link, (s) => call((cb) => s.symlink(target, link, cb)));
  }

  readlink(path: string): Promise<string> {
    return this.run(path, async (s) => {
      const a = await call<Attributes>((cb) => s.lstat(path, cb));
      if (!isLink(a)) throw new XenonError('InvalidPathException', SFTP, `${path}: not a symbolic link`);
      return call<string>((cb) => s.readlink(path, cb));
    });
  }

  async rename(source: string, target: string): Promise<void> {
    await this.lstat(source);
    if (source === target) return;
    await this.mustBeFree(target);
    await this.parentMustExist(target);
    await this.run(source, (s) => call((cb) => s.rename(source, target, cb)));
  }

  readdir(path: string): Promise<FileEntry[]> {
    return this.run(path, (s) => call<FileEntry[]>((cb) => s.readdir(path, cb)));
  }

  /** Deletes a file, link or empty folder; a whole tree when `recursive`. Links are never followed. */
  async delete(path: string, recursive: boolean): Promise<void> {
    const a = await this.lstat(path);
    if (!isDirectory(a)) {
      await this.run(path, (s) => call((cb) => s.unlink(path, cb)));
      return;
    }
    const entries = (await this.readdir(path)).filter((e) => e.filename !== '.' && e.filename !== '..');
    if (entries.length > 0 && !recursive) throw new XenonError('DirectoryNotEmptyException', SFTP, `${path}: directory not empty`);
    for (const entry of entries) await this.delete(posix.join(path, entry.filename), true);
    await this.run(path, (s) => call((cb) => s.rmdir(path, cb)));
  }

  chmod(path: string, mode: number): Promise<void> {
    return this.run(path, (s) => call((cb) => s.chmod(path, mode, cb)));
  }

  /**
   * Copies `source` to `destination` on this host (a folder with `recursive`), as the `file`
   * adaptor does: links are copied as links, `mode` says what happens to what is already there.
   * Adds to `progress` as it goes; stops with `signal`.
   */
  async copy(source: string, destination: string, mode: CopyMode, recursive: boolean, progress: { bytesCopied: number; bytesToCopy: number }, signal: AbortSignal): Promise<void> {
    const from = await this.lstat(source);
    if (isDirectory(from) && !recursive) throw new XenonError('InvalidPathException', SFTP, `${source}: is a directory; copy it with recursive set`);
    if (isDirectory(from) && (destination === source || destination.startsWith(source + '/'))) throw new XenonError('InvalidPathException', SFTP, `${destination}: cannot copy a directory into itself`);
    if (mode === 'CREATE') await this.mustBeFree(destination);
    progress.bytesToCopy = await this.#size(source, from, signal);
    await this.#copyEntry(source, from, destination, mode, progress, signal);
  }

  async #size(path: string, a: Attributes, signal: AbortSignal): Promise<number> {
    if (signal.aborted) throw new XenonError('XenonException', SFTP, 'copy cancelled');
    if (isFile(a)) return a.size;
    if (!isDirectory(a)) return 0;
    let total = 0;
    for (const e of await this.readdir(path)) if (e.filename !== '.' && e.filename !== '..') total += await this.#size(posix.join(path, e.filename), e.attrs, signal);
    return total;
  }

  async #copyEntry(source: string, from: Attributes, target: string, mode: CopyMode, progress: { bytesCopied: number; bytesToCopy: number }, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new XenonError('XenonException', SFTP, 'copy cancelled');
    let there = await this.lstatOrNone(target);
    if (there !== undefined && mode === 'CREATE') throw new XenonError('PathAlreadyExistsException', SFTP, `${target}: path already exists`);
    if (there !== undefined && mode === 'IGNORE' && !(isDirectory(from) && isDirectory(there))) {
      progress.bytesToCopy -= await this.#size(source, from, signal);
      return;
    }
    if (there !== undefined && (!isDirectory(from) || !isDirectory(there)) && !(isFile(from) && isFile(there))) {
      await this.delete(target, true);
      there = undefined;
    }
    if (isDirectory(from)) {
      if (there === undefined) await this.run(target, (s) => call((cb) => s.mkdir(target, { mode: from.mode & 0o777 }, cb)));
      for (const e of await this.readdir(source)) {
        if (e.filename === '.' || e.filename === '..') continue;
        await this.#copyEntry(posix.join(source, e.filename), e.attrs, posix.join(target, e.filename), mode, progress, signal);
      }
      return;
    }
    if (isLink(from)) {
      const to = await this.run(source, (s) => call<string>((cb) => s.readlink(source, cb)));
      await this.run(target, (s) => call((cb) => s.symlink(to, target, cb)));
      return;
    }
    if (!isFile(from)) return; // fifos, sockets, devices: skipped, as by the file adaptor
    const input = await this.open(source, 'r');
    try {
      const output = await this.open(target, there === undefined ? 'wx' : 'w', from.mode & 0o777);
      try {
        for (let at = 0; ; ) {
          if (signal.aborted) throw new XenonError('XenonException', SFTP, 'copy cancelled');
          const data = await this.read(source, input, at);
          if (data.length === 0) break;
          await this.write(target, output, data, at);
          at += data.length;
          progress.bytesCopied += data.length;
        }
      } finally {
        await this.closeFile(output);
      }
    } finally {
      await this.closeFile(input);
    }
  }
}

/**
 * Xenon's attributes of the remote `path` from its sftp attributes. SFTP v3 tells neither the
 * owner's and group's names nor what the logged-in account may do, so owner and group are the
 * numeric ids and readable/writable/executable are the owner's permission bits (as Xenon's own
 * sftp adaptor reports them); a link reports its own (all).
 */
export function sftpAttributes(path: string, a: Attributes): PathAttributes {
  const link = isLink(a);
  const dir = isDirectory(a);
  const file = isFile(a);
  return {
    path: { path, separator: '/' },
    creation_time: a.mtime * 1000,
    group: String(a.gid),
    owner: String(a.uid),
    is_directory: dir,
    is_regular: file,
    is_symbolic_link: link,
    is_other: !dir && !file && !link,
    is_hidden: posix.basename(path).startsWith('.'),
    is_readable: link || (a.mode & 0o400) !== 0,
    is_writable: link || (a.mode & 0o200) !== 0,
    is_executable: link || (a.mode & 0o100) !== 0,
    last_access_time: a.atime * 1000,
    last_modified_time: a.mtime * 1000,
    permissions: permissionsOf(a.mode),
    size: a.size,
  };
}

/** A location of the sftp adaptor: `[sftp://][user@]host[:port][/folder]`. */
export interface SftpLocation {
  /** `[user@]host[:port]`. */
  target: string;
  /** Whether a user was named. */
  explicitUser: boolean;
  /** The folder to start in, when given. */
  folder?: string;
}

/** Splits an sftp location; InvalidLocationException when it names no host. */
export function parseSftpLocation(location: string): SftpLocation {
  const text = location.replace(/^(sftp|ssh):\/\//i, '');
  const slash = text.indexOf('/');
  const target = slash < 0 ? text : text.slice(0, slash);
  const folder = slash < 0 ? undefined : text.slice(slash);
  if (target === '') throw new XenonError('InvalidLocationException', SFTP, `location ${JSON.stringify(location)}: give [user@]host[:port][/folder]`, { code: Status.FAILED_PRECONDITION });
  return { target, explicitUser: target.includes('@'), ...(folder !== undefined && folder !== '/' ? { folder } : {}) };
}
