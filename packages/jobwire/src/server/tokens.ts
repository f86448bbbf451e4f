/**
 * Tokens and the users they stand for, kept in `$JOBWIRE_HOME/tokens.json` (mode 0600).
 * The first start creates an admin token and also writes it to `$JOBWIRE_HOME/token` so the
 * CLI and SDK on the same machine find it. The file is re-read when it changes, so
 * `jobwire token create` takes effect without a restart.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WhoAmI } from '@jobwire/client';

/** One entry of tokens.json. */
export interface TokenEntry {
  token: string;
  user: string;
  admin: boolean;
}

/** A fresh random token (32 bytes, base64url). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Reads tokens.json (missing file = no tokens). */
export function readTokenFile(home: string): TokenEntry[] {
  const file = join(home, 'tokens.json');
  if (!existsSync(file)) return [];
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { tokens?: TokenEntry[] };
  return Array.isArray(parsed.tokens) ? parsed.tokens.filter((t) => typeof t.token === 'string' && typeof t.user === 'string') : [];
}

/** Writes tokens.json with mode 0600. */
export function writeTokenFile(home: string, tokens: TokenEntry[]): void {
  const file = join(home, 'tokens.json');
  writeFileSync(file, JSON.stringify({ tokens }, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** Looks up tokens; lookups hash the presented token so timing reveals nothing of stored ones. */
export class TokenBook {
  private byDigest = new Map<string, WhoAmI>();
  private mtimeMs = -1;
  private checkedAt = 0;
  /** The admin token. */
  readonly adminToken: string;

  constructor(private readonly home: string) {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    let tokens = readTokenFile(home);
    let admin = tokens.find((t) => t.admin);
    if (!admin) {
      admin = { token: newToken(), user: 'admin', admin: true };
      tokens = [...tokens, admin];
      writeTokenFile(home, tokens);
    }
    const tokenFile = join(home, 'token');
    writeFileSync(tokenFile, admin.token + '\n', { mode: 0o600 });
    chmodSync(tokenFile, 0o600);
    this.adminToken = admin.token;
    this.reload();
  }

  private reload(): void {
    const file = join(this.home, 'tokens.json');
    try {
      const mtime = statSync(file).mtimeMs;
      if (mtime === this.mtimeMs) return;
      const map = new Map<string, WhoAmI>();
      for (const t of readTokenFile(this.home)) map.set(digest(t.token), { user: t.user, admin: !!t.admin });
      this.byDigest = map;
      this.mtimeMs = mtime;
    } catch {
      // A half-written or removed file keeps the previous tokens in force.
    }
  }

  /** The user a token stands for, or undefined. */
  lookup(token: string | undefined): WhoAmI | undefined {
    if (!token) return undefined;
    const now = Date.now();
    if (now - this.checkedAt > 1000) {
      this.checkedAt = now;
      this.reload();
    }
    return this.byDigest.get(digest(token));
  }
}
