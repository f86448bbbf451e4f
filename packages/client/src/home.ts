/**
 * The jobwire home: where a server records its URL and tokens so the CLI and SDK find it with
 * no flags. Node only (the SDK imports it lazily, never in a browser).
 *
 * Layout: `server.json` ({url, pid, startedAt}), `token` (admin token, mode 0600),
 * `tokens.json` (SHA-256 digests of all tokens, mode 0600), `jobwire.db`, `output/`. Jobs start
 * beside it, in `<home>-work`, never in it.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

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

/** URL and token from options, environment or home, in that order. */
export async function resolveConnection(options: { url?: string; token?: string; home?: string }): Promise<{ url?: string; token?: string }> {
  const url = options.url ?? process.env.JOBWIRE_URL ?? (await readServerRecord(options.home))?.url;
  const token = options.token ?? process.env.JOBWIRE_TOKEN ?? (await readAdminToken(options.home));
  return { url, token };
}
