/**
 * Xenon's PathAttributes and POSIX permissions from Node's file stats.
 * @module
 */
import { constants, readFileSync, type Stats } from 'node:fs';
import { access } from 'node:fs/promises';
import { posix } from 'node:path';
import type { PathAttributes, PosixFilePermission } from './messages.js';

/** Permission names in mode-bit order, highest bit first (0o400 … 0o001). */
const PERMISSION_BITS: readonly [PosixFilePermission, number][] = [
  ['OWNER_READ', 0o400],
  ['OWNER_WRITE', 0o200],
  ['OWNER_EXECUTE', 0o100],
  ['GROUP_READ', 0o040],
  ['GROUP_WRITE', 0o020],
  ['GROUP_EXECUTE', 0o010],
  ['OTHERS_READ', 0o004],
  ['OTHERS_WRITE', 0o002],
  ['OTHERS_EXECUTE', 0o001],
];

/** The permissions set in `mode`. */
export function permissionsOf(mode: number): PosixFilePermission[] {
  return PERMISSION_BITS.filter(([, bit]) => (mode & bit) !== 0).map(([name]) => name);
}

/** The mode bits of a permission set (NONE and unknown names add nothing). */
export function modeOf(permissions: readonly PosixFilePermission[]): number {
  let mode = 0;
  for (const p of permissions) mode |= PERMISSION_BITS.find(([name]) => name === p)?.[1] ?? 0;
  return mode;
}

/** Names of user and group ids, read once from /etc/passwd and /etc/group. */
const names = { users: undefined as Map<number, string> | undefined, groups: undefined as Map<number, string> | undefined };

function idNames(file: string): Map<number, string> {
  const map = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id && /^\d+$/.test(id) && !map.has(Number(id))) map.set(Number(id), name);
    }
  } catch {
    // No such file (not Linux): ids are shown as numbers.
  }
  return map;
}

function userName(uid: number): string {
  names.users ??= idNames('/etc/passwd');
  return names.users.get(uid) ?? String(uid);
}

function groupName(gid: number): string {
  names.groups ??= idNames('/etc/group');
  return names.groups.get(gid) ?? String(gid);
}

async function can(path: string, mode: number): Promise<boolean> {
  return access(path, mode).then(
    () => true,
    () => false,
  );
}

/**
 * Xenon's attributes of `path`, whose lstat is `stat`. Access is checked on `accessPath`, a path
 * that names the very object `stat` describes (a held descriptor, see file-space.ts), so a name
 * swapped meanwhile tells nothing about another file. A link reports its own permissions (all),
 * not those of whatever it points to.
 */
export async function pathAttributes(path: string, stat: Stats, accessPath: string): Promise<PathAttributes> {
  const link = stat.isSymbolicLink();
  const allowed = async (mode: number): Promise<boolean> => link || (await can(accessPath, mode));
  return {
    path: { path, separator: '/' },
    creation_time: Math.floor(stat.birthtimeMs || stat.ctimeMs),
    group: groupName(stat.gid),
    owner: userName(stat.uid),
    is_directory: stat.isDirectory(),
    is_regular: stat.isFile(),
    is_symbolic_link: link,
    is_other: !stat.isDirectory() && !stat.isFile() && !link,
    is_hidden: posix.basename(path).startsWith('.'),
    is_readable: await allowed(constants.R_OK),
    is_writable: await allowed(constants.W_OK),
    is_executable: await allowed(constants.X_OK),
    last_access_time: Math.floor(stat.atimeMs),
    last_modified_time: Math.floor(stat.mtimeMs),
    permissions: permissionsOf(stat.mode),
    size: stat.size,
  };
}
