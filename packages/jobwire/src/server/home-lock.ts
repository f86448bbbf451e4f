/**
 * One server per home: a server holds `<home>/server.lock/` while it runs (the lock design of the
 * job host, `host/lock.ts`: link(2)-created generations holding pid, start time and boot id, so a
 * dead holder's lock is taken over safely and a reused pid holds nothing). A second server on the
 * same home is refused before it touches anything, with a message naming the running one.
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerRecord } from '@jobwire/client/home';
import { acquireLock, lockHolderOf, type HostLock } from '../host/lock.js';
import type { ProcessIdentity } from '../job-process.js';

/** The lock folder of `home`'s server. */
export function serverLockDir(home: string): string {
  return join(home, 'server.lock');
}

/** A second server on a home whose server runs (`code` "JOBWIRE_HOME_IN_USE"). */
export class HomeInUseError extends Error {
  override name = 'HomeInUseError';
  readonly code = 'JOBWIRE_HOME_IN_USE';
  constructor(
    message: string,
    /** The running server's process. */
    readonly holder: ProcessIdentity,
    /** Its URL, when its server.json names it. */
    readonly url: string | undefined,
  ) {
    super(message);
  }
}

/** Takes the server lock of `home`; throws a {@link HomeInUseError} naming the server that holds it. */
export function lockServerHome(home: string): HostLock {
  const outcome = acquireLock(serverLockDir(home), 'the server lock of the jobwire home');
  if (outcome.held) return outcome.lock;
  const url = recordedUrl(home, outcome.holder.pid);
  throw new HomeInUseError(
    `another jobwire server (pid ${outcome.holder.pid}${url !== undefined ? `, ${url}` : ', starting up'}) uses the home ${home}; ` +
      `stop it first (jobwire server stop --home ${home}) or give this one another --home`,
    outcome.holder,
    url,
  );
}

/** The running server of `home` (its process and URL), if one holds the lock. */
export function runningServer(home: string): { holder: ProcessIdentity; url: string | undefined } | undefined {
  const holder = lockHolderOf(serverLockDir(home));
  return holder === undefined ? undefined : { holder, url: recordedUrl(home, holder.pid) };
}

/** The URL in server.json, when that file is the process `pid`'s. */
function recordedUrl(home: string, pid: number): string | undefined {
  try {
    const record = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as Partial<ServerRecord>;
    return record.pid === pid && typeof record.url === 'string' ? record.url : undefined;
  } catch {
    return undefined;
  }
}
