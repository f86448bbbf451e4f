/**
 * Host keys checked as OpenSSH does: against a known_hosts file (plain, `[host]:port` and hashed
 * `|1|salt|hash` entries), and an unknown or changed key refused with its SHA256 fingerprint.
 * @module
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The `SHA256:...` fingerprint of a host key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH key blob (e.g. "ssh-ed25519"). */
function keyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const length = key.readUInt32BE(0);
  return key.subarray(4, 4 + length).toString('latin1');
}

/** How known_hosts names a host: `host` on port 22, `[host]:port` otherwise. */
function hostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Whether one known_hosts host pattern list (`a,b,[c]:2222`, or a hashed entry) names `name`. */
function matches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (salt === undefined || hash === undefined) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let found = false;
  for (const pattern of patterns.split(',')) {
    const negated = pattern.startsWith('!');
    const glob = negated ? pattern.slice(1) : pattern;
    const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
    if (re.test(name)) {
      if (negated) return false;
      found = true;
    }
  }
  return found;
}

/** Why a host key was refused. */
export class HostKeyError extends Error {
  /** "JOBWIRE_SSH_HOST_KEY". */
  readonly code = 'JOBWIRE_SSH_HOST_KEY';
}

/**
 * Checks `key` (the raw blob the server presented) for `host:port` against the known_hosts file
 * `file`; returns undefined when it is known, or a {@link HostKeyError} saying why not (unknown
 * host, changed key, revoked key, unreadable file), with the key's fingerprint.
 */
export function checkHostKey(file: string, host: string, port: number, key: Buffer): HostKeyError | undefined {
  const name = hostName(host, port);
  const type = keyType(key);
  const print = `${type} ${fingerprint(key)}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return new HostKeyError(`host key of ${name} (${print}) cannot be checked: known_hosts file ${file} is unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const blob = key.toString('base64');
  let sameTypeOther = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0]!.startsWith('@') ? fields.shift() : undefined;
    const [patterns, entryType, entryKey] = fields;
    if (patterns === undefined || entryType === undefined || entryKey === undefined || !matches(patterns, name)) continue;
    if (marker === '@revoked' && entryKey === blob) return new HostKeyError(`host key of ${name} (${print}) is marked revoked in ${file}`);
    if (marker !== undefined) continue; // @cert-authority: certificates are not supported
    if (entryType === type && entryKey === blob) return undefined;
    if (entryType === type) sameTypeOther = true;
  }
  if (sameTypeOther) {
    return new HostKeyError(`host key of ${name} has CHANGED (${print} is not the key ${file} holds for it): refused; if the change is expected, replace its line in ${file}`);
  }
  return new HostKeyError(`host key of ${name} (${print}) is not in ${file}: refused; check the fingerprint and add it (e.g. ssh-keyscan -p ${port} ${host} >> ${file})`);
}
