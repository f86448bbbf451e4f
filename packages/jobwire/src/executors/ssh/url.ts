/**
 * `ssh://[user@]host[:port]`: where an ssh executor runs its jobs.
 * @module
 */
import { userInfo } from 'node:os';

/** A parsed `ssh://` location. */
export interface SshTarget {
  user: string;
  host: string;
  port: number;
}

/**
 * Reads `ssh://[user@]host[:port]` (or, for Xenon's `location`, `[user@]host[:port]` without a
 * scheme); the user defaults to this process's account, the port to 22. Throws a RangeError
 * naming what is wrong.
 */
export function parseSshTarget(location: string, options: { scheme?: string } = {}): SshTarget {
  const scheme = options.scheme ?? 'ssh:';
  const text = location.includes('://') ? location : `${scheme}//${location}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RangeError(`"${location}" is not an ${scheme}//[user@]host[:port] location`);
  }
  if (url.protocol !== scheme) throw new RangeError(`"${location}": expected an ${scheme}// location`);
  if (url.hostname === '') throw new RangeError(`"${location}" names no host`);
  if (url.password !== '') throw new RangeError(`"${location}": put no password in the URL; use a password file (--ssh-password-file)`);
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw new RangeError(`"${location}": an ${scheme}// location is [user@]host[:port], nothing after it`);
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { user: url.username !== '' ? decodeURIComponent(url.username) : userInfo().username, host, port: url.port !== '' ? Number(url.port) : 22 };
}

/** `user@host:port` for messages and logs. */
export function targetText(target: SshTarget): string {
  return `${target.user}@${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
}
