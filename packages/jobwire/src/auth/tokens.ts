/**
 * Tokens and the users they stand for, kept in `$JOBWIRE_HOME/tokens.json` (mode 0600).
 *
 * The file holds only the SHA-256 digest of each token, never the token: a token is shown once,
 * when it is created, so a job or a backup that reads the file learns no token from it. SHA-256
 * is enough (no bcrypt/scrypt/argon2): those slow hashes protect low-entropy passwords from
 * guessing, while a jobwire token is 32 random bytes — 2^256 candidates, out of reach of any
 * guessing however fast the hash. A fast hash also keeps the per-request lookup cheap.
 *
 * Files of older versions held the tokens themselves (`"token"` fields): they are rewritten
 * with digests the first time a server or a `jobwire token` command reads them.
 *
 * The one secret left on disk is the admin token in `$JOBWIRE_HOME/token` (mode 0600, readable
 * by the server's OS user and root only), so that the CLI and SDK on this machine find it.
 * The first start creates it; when it is missing, or revoked, the next start creates a new one.
 * Servers re-read tokens.json when it changes, so `jobwire token ...` takes effect without a
 * restart.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WhoAmI } from '@jobwire/client';

/** One entry of tokens.json: a token's digest and the user it stands for. */
export interface TokenEntry {
  /** SHA-256 of the token, base64url (see {@link tokenDigest}). */
  sha256: string;
  /** The jobwire user the token stands for. */
  user: string;
  /** An admin token. */
  admin: boolean;
  /** The OS account this user's jobs run as when jobs are started by root (docs/security.md). */
  osUser?: string;
  /** When the token was created (ISO 8601); absent for tokens migrated from plain text. */
  createdAt?: string;
}

/**
 * A revoked token. Kept so that every server removes it from the shared token book of
 * distributed mode, which holds the digests of every server's tokens.json.
 */
export interface RevokedEntry {
  sha256: string;
  user: string;
  revokedAt: string;
}

/** The whole of tokens.json; fields this version does not know are kept as they are. */
export interface TokensFile {
  tokens: TokenEntry[];
  revoked?: RevokedEntry[];
  [other: string]: unknown;
}

/** What a user's tokens say about them: admin or not, and the OS account their jobs run as. */
export interface UserEntry {
  /** At least one of the user's tokens is an admin token. */
  admin: boolean;
  /** The OS account mapped to the user, if any. */
  osUser?: string;
}

/** tokens.json cannot be read, parsed or written. */
export class TokenFileError extends Error {
  override name = 'TokenFileError';
}

/** A fresh random token (32 bytes, base64url). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** The digest tokens.json and the shared token book store for `token`: SHA-256, base64url. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** The short name of a token in listings: the start of its digest (says nothing of the token). */
export function fingerprint(sha256: string): string {
  return sha256.slice(0, 10);
}

/** Path of the tokens file of a home. */
export function tokensPath(home: string): string {
  return join(home, 'tokens.json');
}

/** The well-formed entries of a tokens file (others are kept in the file but never used). */
export function validEntries(file: TokensFile): TokenEntry[] {
  return file.tokens.filter((t) => t !== null && typeof t === 'object' && typeof t.sha256 === 'string' && typeof t.user === 'string');
}

/** Sums up each user's entries: admin if any token is, and the first OS account mapped. */
export function usersOf(entries: Iterable<Pick<TokenEntry, 'user' | 'admin' | 'osUser'>>): Map<string, UserEntry> {
  const users = new Map<string, UserEntry>();
  for (const entry of entries) {
    const known = users.get(entry.user) ?? { admin: false };
    if (entry.admin === true) known.admin = true;
    if (known.osUser === undefined && typeof entry.osUser === 'string' && entry.osUser !== '') known.osUser = entry.osUser;
    users.set(entry.user, known);
  }
  return users;
}

/**
 * Reads tokens.json (a missing file has no tokens). Entries of older versions that hold a token
 * in plain text are replaced by its digest and the file is rewritten at once; `onPlain` sees
 * each such entry first (the server uses it to keep the admin token it finds).
 * Throws a {@link TokenFileError} when the file cannot be read or is not a tokens file.
 */
export function readTokenFile(home: string, onPlain?: (entry: { token: string; user: string; admin: boolean }) => void): TokensFile {
  const path = tokensPath(home);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { tokens: [] };
    throw new TokenFileError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TokenFileError(`${path} is not valid JSON; fix or remove it`, { cause: err });
  }
  const file = parsed as Partial<TokensFile> | null;
  if (!file || typeof file !== 'object' || !Array.isArray(file.tokens)) throw new TokenFileError(`${path} has no "tokens" list; fix or remove it`);
  let migrated = false;
  file.tokens = file.tokens.map((entry: TokenEntry & { token?: unknown }) => {
    if (entry === null || typeof entry !== 'object' || typeof entry.token !== 'string') return entry;
    migrated = true;
    const { token, ...rest } = entry;
    onPlain?.({ token, user: String(rest.user), admin: rest.admin === true });
    return { ...rest, sha256: tokenDigest(token) };
  });
  if (migrated) writeTokenFile(home, file as TokensFile);
  return file as TokensFile;
}

/**
 * Writes tokens.json whole: to a private temporary file, then renamed over the old one, so a
 * server re-reading it never sees half a file and it is never readable by others.
 */
export function writeTokenFile(home: string, file: TokensFile): void {
  writePrivateFile(tokensPath(home), `${JSON.stringify(file, null, 2)}\n`);
}

/** Writes `text` to `path` (mode 0600) through a temporary file and a rename. */
function writePrivateFile(path: string, text: string): void {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, text, { mode: 0o600, flag: 'wx' });
    chmodSync(temp, 0o600);
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw new TokenFileError(`cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Path of the admin token file of a home. */
export function adminTokenPath(home: string): string {
  return join(home, 'token');
}

/** Looks up tokens; lookups hash the presented token, so timing reveals nothing of stored ones. */
export class TokenBook {
  private byDigest = new Map<string, WhoAmI>();
  private users = new Map<string, UserEntry>();
  private mtimeMs = -1;
  private checkedAt = 0;
  /** The admin token (from `<home>/token`, created when missing). */
  readonly adminToken: string;

  constructor(private readonly home: string) {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const tokenFile = adminTokenPath(home);
    let plainAdmin: string | undefined;
    const file = readTokenFile(home, (entry) => {
      if (entry.admin) plainAdmin ??= entry.token;
    });
    let admin: string | undefined;
    try {
      admin = readFileSync(tokenFile, 'utf8').trim() || undefined;
    } catch {
      // No admin token on disk yet.
    }
    const isAdmin = (token: string | undefined): token is string =>
      token !== undefined && validEntries(file).some((t) => t.admin && t.sha256 === tokenDigest(token));
    // A home migrated from plain text whose token file went missing keeps its admin token.
    if (!isAdmin(admin) && isAdmin(plainAdmin)) admin = plainAdmin;
    if (!isAdmin(admin)) {
      admin = newToken();
      file.tokens.push({ sha256: tokenDigest(admin), user: 'admin', admin: true, createdAt: new Date().toISOString() });
      writeTokenFile(home, file);
    }
    writePrivateFile(tokenFile, `${admin}\n`);
    this.adminToken = admin;
    this.reload();
  }

  private reload(): void {
    try {
      const mtime = statSync(tokensPath(this.home)).mtimeMs;
      if (mtime === this.mtimeMs) return;
      const entries = validEntries(readTokenFile(this.home));
      const byDigest = new Map<string, WhoAmI>();
      for (const t of entries) byDigest.set(t.sha256, { user: t.user, admin: t.admin === true });
      this.byDigest = byDigest;
      this.users = usersOf(entries);
      this.mtimeMs = mtime;
    } catch {
      // A removed or unreadable file keeps the previous tokens in force.
    }
  }

  /** Re-reads the file when it changed, at most once a second. */
  private refresh(): void {
    const now = Date.now();
    if (now - this.checkedAt > 1000) {
      this.checkedAt = now;
      this.reload();
    }
  }

  /** The user a token stands for, or undefined. */
  lookup(token: string | undefined): WhoAmI | undefined {
    if (!token) return undefined;
    this.refresh();
    return this.byDigest.get(tokenDigest(token));
  }

  /** What this book knows of `user` (admin or not, OS account), or undefined for a stranger. */
  user(user: string): UserEntry | undefined {
    this.refresh();
    return this.users.get(user);
  }
}
