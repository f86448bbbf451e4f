/**
 * The confinement rule of the Xenon `file` adaptor: a user's file space is the folder
 * `<workDir>/<user>/` (the server's work folder, `<home>-work` by default), and every path a
 * client names must lie inside it — after resolving `..` and every symbolic link on the way. Anything else is refused with
 * PERMISSION_DENIED before the file system is touched. Operations on a link itself (lstat,
 * readlink, delete, rename) check the folder holding the link; operations that follow a link
 * also check where it leads. The file space is also the default working directory of jobs
 * submitted over gRPC, so a job's relative stdout file is readable through the file adaptor.
 * @module
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { permissionDenied, XenonError } from './errors.js';
import type { XenonPath } from './messages.js';

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

/** How a path is going to be used. */
export interface ResolveOptions {
  /** The operation follows a symbolic link at the last component (read, write, list, chmod). */
  follow: boolean;
}

/** Per-user roots and the path check. */
export class FileSpace {
  private readonly realRoots = new Map<string, string>();

  constructor(
    /** The folder holding one file space per user (the server's `workDir`). */
    readonly base: string,
  ) {}

  /** The root of `user`'s file space; created (mode 0700) when missing. */
  root(user: string): string {
    const dir = posix.join(this.base, userFolder(user));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  private async realRoot(user: string): Promise<string> {
    let real = this.realRoots.get(user);
    if (real === undefined) {
      real = await realpath(this.root(user));
      this.realRoots.set(user, real);
    }
    return real;
  }

  /**
   * The absolute path `input` names, relative to `cwd`; throws PERMISSION_DENIED unless it lies
   * in `user`'s file space.
   */
  async resolve(user: string, cwd: string, input: string, options: ResolveOptions): Promise<string> {
    const root = this.root(user);
    const p = posix.resolve(cwd, input);
    const deny = (): never => {
      throw permissionDenied('file', `${p}: permission denied: outside your file space ${root} (see docs/grpc.md)`);
    };
    if (!inside(root, p)) deny();
    const realRoot = await this.realRoot(user);
    // The folders on the way: the deepest one that exists must really lie in the file space.
    let dir = p === root ? root : posix.dirname(p);
    for (;;) {
      try {
        if (!inside(realRoot, await realpath(dir))) deny();
        break;
      } catch (err) {
        if (err instanceof XenonError) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dir === root) throw err;
        dir = posix.dirname(dir);
      }
    }
    if (options.follow && p !== root) {
      const stat = await lstat(p).catch(() => undefined);
      if (stat?.isSymbolicLink()) {
        const target = await realpath(p).catch(() => undefined);
        if (target !== undefined && !inside(realRoot, target)) deny();
      }
    }
    return p;
  }
}
