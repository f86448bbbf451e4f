/**
 * Where the Xenon `file` adaptor reaches, and the confinement rule of its non-admin users.
 *
 * - **The admin** (the server's own OS user, whose jobs run arbitrary programs as that user
 *   anyway) gets the whole local file system with the OS permissions of the server's account, as
 *   Xenon's `file` adaptor gives its user; relative paths are taken from the file system's
 *   working directory, which starts as the server's work folder (`--work-dir`).
 * - **Every other user**'s file space is the folder `<workDir>/<user>/`; every path they name must
 *   lie inside it, after resolving `..` and every symbolic link on the way. Anything else is
 *   refused with PERMISSION_DENIED. This bounds the *file API*, not their jobs (docs/grpc.md).
 *
 * The rule, which every operation of the FileSystemService (and every copy) keeps (for the admin
 * the root is `/`, so the checks pass, but the operations are the same):
 *
 * 1. A path is first resolved as text against the working directory (`..` included) and must lie
 *    under the user's root.
 * 2. Nothing is checked by name and then used by name: a user (or a job of theirs) may swap any
 *    component for a link between the two. Instead the operation *holds* what it acts on with an
 *    `O_PATH` descriptor (which opens nothing: no read, no write, no FIFO or device opened), then
 *    asks the kernel where that descriptor really is (`/proc/self/fd/N`), then acts only through
 *    the descriptor. A descriptor found outside is closed and the call refused; nothing was done
 *    through it.
 * 3. Operations that follow a link at the end of the path (read, append, list, set permissions,
 *    exists, working directory, a copy's source) hold the path itself, following links, and act
 *    on `/proc/self/fd/N` (a reopen of that very object, not a new lookup by name).
 * 4. Operations on a name itself (create a file, folder or link, write a new file, delete,
 *    rename, read a link, get attributes, a copy's destination) hold the folder that contains
 *    the name (following links, checked as above) and act on `/proc/self/fd/<folder>/<name>`:
 *    one component that the kernel looks up in that very folder, with calls that never follow a
 *    link there (`O_EXCL`, `O_NOFOLLOW`, mkdir, symlink, unlink, rmdir, rename, readlink, lstat).
 * 5. Walking a tree (recursive list, delete and copy) holds each entry with `O_NOFOLLOW` from its
 *    held folder before it looks inside, so a folder swapped for a link is never entered.
 *
 * Linux only (`O_PATH`, `/proc/self/fd`). A non-admin user's file space is also the default
 * working directory of their jobs submitted over gRPC, so a job's relative stdout file is
 * readable through the adaptor; the admin's gRPC jobs start where any job does (the server's or
 * the worker's work folder).
 * @module
 */
import { createHash } from 'node:crypto';
import { constants, mkdirSync, type Stats } from 'node:fs';
import { open, opendir, readlink, realpath, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { permissionDenied } from './errors.js';
import type { WhoAmI } from '@jobwire/client';
import type { XenonPath } from './messages.js';

/**
 * Linux's O_PATH (the same on x86-64 and arm64), which Node does not export: a descriptor
 * that names a file system object without opening it.
 */
const O_PATH = 0o10000000;
const { O_NOFOLLOW } = constants;

/** The folder name of a user inside the work folder: the name itself when it is a plain name. */
export function userFolder(user: string): string {
  if (/^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/.test(user)) return user;
  return 'u-' + createHash('sha256').update(user).digest('hex').slice(0, 24);
}

/** Turns a Xenon path message into a "/"-separated string. */
export function pathText(path: XenonPath | null | undefined): string {
  if (!path) return '';
  const sep = path.separator;
  return sep && sep !== '/' ? path.path.split(sep).join('/') : path.path;
}

/** True when `p` is `root` or lies below it. */
export function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith('/') ? root : root + '/');
}

/**
 * A file system object held by an `O_PATH` descriptor and known to lie in a file space. Paths
 * from {@link at} and {@link child} reach it through the descriptor, never by its name.
 */
export class Held {
  constructor(
    private readonly handle: FileHandle,
    /** Where it really is (for messages and "copy into itself"). */
    readonly real: string,
  ) {}

  /** A path naming this very object. */
  get at(): string {
    return `/proc/self/fd/${this.handle.fd}`;
  }

  /** A path naming `name` inside this folder (one component, looked up in this folder). */
  child(name: string): string {
    return `${this.at}/${name}`;
  }

  /** Stats of the object held (of a link itself when it was held without following). */
  stat(): Promise<Stats> {
    return this.handle.stat();
  }

  /**
   * Holds the entry `name` of this folder without following it: whatever it is, it lies in
   * this folder, so it needs no check.
   */
  async entry(name: string): Promise<Held> {
    return new Held(await open(this.child(name), O_PATH | O_NOFOLLOW), posix.join(this.real, name));
  }

  close(): Promise<void> {
    return this.handle.close().catch(() => undefined);
  }
}

/** A name in a held folder: what operations on the name itself act on. */
export interface HeldName {
  dir: Held;
  /** One path component ('.' for the root of the file space). */
  name: string;
  /** `dir.child(name)`. */
  at: string;
}

/** How a path is held. */
export interface HoldOptions {
  /** Follow a symbolic link at the last component (every other component is followed). */
  follow: boolean;
}

/** Who a file space belongs to: the user, and whether they are the admin. */
export type SpaceOwner = Pick<WhoAmI, 'user' | 'admin'>;

/** Per-user roots and the confinement rule. */
export class FileSpace {
  private readonly realRoots = new Map<string, string>();

  constructor(
    /** The server's work folder: the admin's working directory, and the parent of the other users' file spaces. */
    readonly base: string,
  ) {}

  /** The root of `who`'s file space: `/` for the admin; else created (mode 0700) when missing. */
  root(who: SpaceOwner): string {
    if (who.admin) return '/';
    const dir = posix.join(this.base, userFolder(who.user));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** The working directory a new file system of `who` starts in: the work folder for the admin, else the root of their space. */
  home(who: SpaceOwner): string {
    return who.admin ? this.base : this.root(who);
  }

  private async realRoot(who: SpaceOwner): Promise<string> {
    const root = this.root(who);
    let real = this.realRoots.get(root);
    if (real === undefined) {
      real = await realpath(root);
      this.realRoots.set(root, real);
    }
    return real;
  }

  private deny(who: SpaceOwner, p: string): never {
    throw permissionDenied('file', `${p}: permission denied: outside your file space ${this.root(who)} (see docs/grpc.md)`);
  }

  /**
   * The absolute path `input` names, relative to `cwd`, as text; throws PERMISSION_DENIED unless
   * it lies under `who`'s root. Links are checked when the path is held.
   */
  path(who: SpaceOwner, cwd: string, input: string): string {
    const p = posix.resolve(cwd, input);
    if (!inside(this.root(who), p)) this.deny(who, p);
    return p;
  }

  /**
   * Holds the object at `p` (rule 3); PERMISSION_DENIED, naming `shownAs`, when it lies outside
   * `who`'s space.
   */
  async hold(who: SpaceOwner, p: string, options: HoldOptions, shownAs = p): Promise<Held> {
    return this.checked(who, shownAs, await open(p, options.follow ? O_PATH : O_PATH | O_NOFOLLOW));
  }

  /** Holds `name` in the held folder `dir`, following a link there, checked like {@link hold}. */
  async holdIn(who: SpaceOwner, dir: Held, name: string, shownAs: string): Promise<Held> {
    return this.checked(who, shownAs, await open(dir.child(name), O_PATH));
  }

  /** Holds the folder containing `p` and names `p` in it (rule 4). */
  async holdName(who: SpaceOwner, p: string): Promise<HeldName> {
    const root = this.root(who);
    const [dirPath, name] = p === root ? [root, '.'] : [posix.dirname(p), posix.basename(p)];
    const dir = await this.hold(who, dirPath, { follow: true }, p);
    return { dir, name, at: dir.child(name) };
  }

  /** Keeps `handle` when it really lies in `who`'s space; else closes it and refuses. */
  private async checked(who: SpaceOwner, shownAs: string, handle: FileHandle): Promise<Held> {
    try {
      const real = await readlink(`/proc/self/fd/${handle.fd}`);
      if (!inside(await this.realRoot(who), real)) this.deny(who, shownAs);
      return new Held(handle, real);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }
}

/**
 * Removes `name` from the held folder `dir`, a whole tree when it is a folder, never following
 * a link: each folder is held before it is emptied (rule 5).
 */
export async function removeEntry(dir: Held, name: string): Promise<void> {
  const entry = await dir.entry(name);
  try {
    if (!(await entry.stat()).isDirectory()) {
      await unlink(dir.child(name));
      return;
    }
    for await (const child of await opendir(entry.at)) await removeEntry(entry, child.name);
  } finally {
    await entry.close();
  }
  await rmdir(dir.child(name));
}
