/**
 * The jobwire home: where a server records its URL and tokens so the CLI and SDK find it with
 * no flags. Node only (the SDK imports it lazily, never in a browser).
 *
 * Layout: `server.json` ({url, pid, startedAt, ca?}), `token` (admin token, mode 0600),
 * `tokens.json` (SHA-256 digests of all tokens, mode 0600), `jobwire.db`, `output/`. Jobs start
 * beside it, in `<home>-work`, never in it.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BadRequestError } from './errors.js';

/** Resolves the home folder: `JOBWIRE_HOME`, else `$XDG_DATA_HOME/jobwire`, else `~/.local/share/jobwire`. */
export function resolveHome(home?: string): string {
  if (home) return home;
  if (process.env.JOBWIRE_HOME) return process.env.JOBWIRE_HOME;
  const data = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'jobwire');
}

/** What a running server writes to `server.json`. */
export interface ServerRecord {
  url: string;
  pid: number;
  startedAt: string;
  /**
   * Path of a PEM file that a client on this machine can trust for an `https:` url: the server's
   * own certificate file when it is self-signed or ends in its root. Absent for plain HTTP, and
   * for a certificate from a CA the system already trusts.
   */
  ca?: string;
}

/** Reads `server.json`, or undefined when no server recorded itself. */
export async function readServerRecord(home?: string): Promise<ServerRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(resolveHome(home), 'server.json'), 'utf8')) as ServerRecord;
  } catch {
    return undefined;
  }
}

/** Reads the admin token, or undefined. */
export async function readAdminToken(home?: string): Promise<string | undefined> {
  try {
    return (await readFile(join(resolveHome(home), 'token'), 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads a PEM CA bundle for the `ca` option; `source` says where the path came from (`--ca`,
 * `JOBWIRE_CA`, `server.json`) for the error. Throws a BadRequestError (field `ca`) when the file
 * cannot be read or holds no certificate.
 */
export async function readCaFile(path: string, source: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new BadRequestError(`cannot read the CA file ${path} (${source}): ${typeof code === 'string' ? code : (err as Error).message}`, { field: 'ca', cause: err });
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new BadRequestError(`the CA file ${path} (${source}) holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line)`, { field: 'ca' });
  }
  return text;
}

function sameUrl(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

/**
 * URL, token and CA from options, environment or home, in that order. The CA the server recorded
 * in the home is used only for the URL it recorded.
 */
export async function resolveConnection(options: { url?: string; token?: string; home?: string; ca?: string }): Promise<{ url?: string; token?: string; ca?: string }> {
  let record: Promise<ServerRecord | undefined> | undefined;
  const recorded = (): Promise<ServerRecord | undefined> => (record ??= readServerRecord(options.home));
  const url = options.url ?? process.env.JOBWIRE_URL ?? (await recorded())?.url;
  const token = options.token ?? process.env.JOBWIRE_TOKEN ?? (await readAdminToken(options.home));
  let ca = options.ca;
  if (ca === undefined && process.env.JOBWIRE_CA) ca = await readCaFile(process.env.JOBWIRE_CA, 'JOBWIRE_CA');
  if (ca === undefined && url !== undefined) {
    const server = await recorded();
    if (server?.ca && sameUrl(server.url, url)) ca = await readCaFile(server.ca, `recorded in ${join(resolveHome(options.home), 'server.json')}`);
  }
  return { url, token, ...(ca !== undefined ? { ca } : {}) };
}
