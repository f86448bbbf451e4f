/**
 * Running a job as another OS account, for servers and workers started as root
 * (docs/security.md): the account's uid, gid and supplementary groups, its environment, and a
 * working directory entered as that account.
 *
 * Why `setpriv` (util-linux, installed on every Debian and most Linux systems) rather than
 * node's own `uid`/`gid` spawn options or node-pty's: those call setgid/setuid but leave the
 * supplementary groups of the server — root's, group 0 among them — in the job. `setpriv
 * --init-groups` calls initgroups(3) (the account's groups, from NSS), and it execs in place, so
 * the job keeps the pid and process group jobwire signals. `runuser`/`su` would fork and wait
 * (a PAM session), putting a root process between jobwire and the job.
 *
 * Why a shell step after it: every path the job names must be resolved as the account, not as
 * root. A working directory entered by root could be one the account cannot reach (a folder
 * under /root that is itself open), and a stdin file opened by root could be any file on the
 * machine. So `/bin/sh` (running as the account) changes directory and opens the stdin file,
 * then execs the program; a failure there ends the job with the shell's message on stderr and
 * exit code 126 (127 for a missing program).
 * @module
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

/** An OS account (from the passwd database) that jobs run as. */
export interface OsAccount {
  name: string;
  uid: number;
  gid: number;
  /** Home directory: the default working directory of the account's jobs. */
  home: string;
  /** Login shell, handed to jobs as SHELL. */
  shell: string;
}

/** OS account names jobwire accepts: a letter or `_`, then letters, digits, `.`, `_`, `-` (at most 32). */
export const OS_USER_NAME = /^[A-Za-z_][A-Za-z0-9._-]{0,31}$/;

/** An OS account could not be looked up, or a job could not be set up to run as one. */
export class OsAccountError extends Error {
  override name = 'OsAccountError';
}

const run = promisify(execFile);

/**
 * Looks up an account by name the way login does (getent: NSS, so LDAP and sssd accounts count,
 * not just /etc/passwd). Resolves undefined when there is no such account; rejects with an
 * {@link OsAccountError} when the lookup itself fails.
 */
export async function findAccount(name: string): Promise<OsAccount | undefined> {
  if (!OS_USER_NAME.test(name)) return undefined;
  let stdout: string;
  try {
    ({ stdout } = await run('getent', ['passwd', name], { encoding: 'utf8', timeout: 10_000 }));
  } catch (err) {
    // getent's exit code 2: "key not found".
    if ((err as { code?: unknown }).code === 2) return undefined;
    throw new OsAccountError(`cannot look up OS account "${name}": ${(err as Error).message}`, { cause: err });
  }
  const [found, , uid, gid, , home, shell] = (stdout.split('\n')[0] ?? '').split(':');
  if (found !== name || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) throw new OsAccountError(`cannot look up OS account "${name}": getent printed an entry jobwire does not understand`);
  return { name, uid: Number(uid), gid: Number(gid), home: home || '/', shell: shell || '/bin/sh' };
}

/** True when this process may switch to other accounts (it runs as root). */
export function runsAsRoot(): boolean {
  return process.getuid?.() === 0;
}

let setprivPath: string | undefined;

/** Where setpriv is; throws an {@link OsAccountError} saying what to install when it is missing. */
function setpriv(): string {
  if (setprivPath !== undefined) return setprivPath;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/bin', '/usr/sbin', '/sbin'].filter((d) => d.startsWith('/'));
  for (const dir of dirs) {
    const candidate = join(dir, 'setpriv');
    try {
      accessSync(candidate, constants.X_OK);
      setprivPath = candidate;
      return candidate;
    } catch {
      // Not here.
    }
  }
  throw new OsAccountError('cannot run a job as another OS account: setpriv (util-linux) is not installed');
}

/** Runs as the account: enter `$1`, take stdin from `$2` unless empty, then exec the rest. */
// `command exec`: a failed redirection of plain `exec` (a special built-in) would end the shell
// with status 2 before `|| exit 126` runs.
const ENTER = 'cd -- "$1" || exit 126\nif [ -n "$2" ]; then command exec <"$2" || exit 126; fi\nshift 2\nexec "$@"';
/** Runs as the account: enter `$1`, then copy stdin into the file `$2` (created or truncated). */
const COPY = 'cd -- "$1" || exit 126\nexec cat >"$2"';

/** setpriv's arguments that become `account`: real and effective uid and gid, and its groups. */
function become(account: OsAccount): string[] {
  return [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups', '--'];
}

/**
 * The command line that runs `file args` as `account`, in `cwd`, with stdin from `stdinFile`
 * (relative to `cwd`) when given. Start it with cwd "/": the server must not enter `cwd` itself.
 */
export function commandAs(account: OsAccount, cwd: string, file: string, args: readonly string[], stdinFile?: string): { file: string; args: string[] } {
  return { file: setpriv(), args: [...become(account), '/bin/sh', '-c', ENTER, 'jobwire', cwd, stdinFile ?? '', file, ...args] };
}

/**
 * A process, running as `account`, that writes what it reads on stdin into `file` (relative to
 * `cwd`): the description's stdout/stderr copy, opened with the account's rights, not root's.
 */
export function spawnCopyAs(account: OsAccount, cwd: string, file: string): ChildProcess {
  return spawn(setpriv(), [...become(account), '/bin/sh', '-c', COPY, 'jobwire', cwd, file], {
    cwd: '/',
    env: accountEnv(account),
    stdio: ['pipe', 'ignore', 'pipe'],
    // Its own process group: signals meant for the server's (a Ctrl-C) must not cut the copy short.
    detached: true,
  });
}

/**
 * The environment a job of `account` starts from, instead of the server's: the server's may
 * hold secrets (a Redis URL with its password, cloud credentials) that are not the account's.
 * HOME, USER, LOGNAME and SHELL are the account's, PATH is the usual one for users, and the
 * locale and time zone are the server's.
 */
export function accountEnv(account: OsAccount): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && (key === 'LANG' || key === 'LANGUAGE' || key === 'TZ' || key.startsWith('LC_'))) env[key] = value;
  }
  return Object.assign(env, {
    HOME: account.home,
    USER: account.name,
    LOGNAME: account.name,
    SHELL: account.shell,
    PATH: '/usr/local/bin:/usr/bin:/bin',
  });
}
