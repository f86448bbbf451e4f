/**
 * The token book of distributed mode: every server on one Redis accepts the same tokens.
 *
 * The cluster store (Redis) holds the shared book (SHA-256 digest of a token → its user, admin
 * flag and OS account), so no server keeps a secret another one lacks and no token is stored or travels
 * in clear text. Each server adds the entries of its own `tokens.json` to it (at start and
 * whenever the file changes — so `jobwire token create` on any server's machine works
 * everywhere) and removes the ones revoked there, keeps a copy in memory for lookups, and
 * reloads it when another server announces a change (and every few
 * seconds, in case it missed one). Workers read it to learn which OS account runs a user's jobs.
 * @module
 */
import { statSync } from 'node:fs';
import type { WhoAmI } from '@jobwire/client';
import type { ClusterStore } from '../store/cluster.js';
import { readTokenFile, TokenBook, tokenDigest, tokensPath, usersOf, validEntries, type TokenEntry, type UserEntry } from './tokens.js';

/** How often the tokens file is checked for changes. */
const FILE_CHECK_MS = 1000;
/** How often the shared book is reloaded without being told. */
const RELOAD_MS = 5000;

/** One value of the shared book, as stored in Redis. */
interface SharedEntry {
  user: string;
  admin: boolean;
  osUser?: string;
}

/**
 * Puts entries into the shared book of a Redis store and removes revoked digests from it (used
 * by servers for their tokens.json, and by `jobwire token ... --redis`).
 */
export async function shareTokens(store: ClusterStore, entries: readonly TokenEntry[], revoked: readonly string[] = []): Promise<void> {
  const values = new Map<string, string>();
  for (const entry of entries) {
    const value: SharedEntry = { user: entry.user, admin: entry.admin === true, ...(entry.osUser ? { osUser: entry.osUser } : {}) };
    values.set(entry.sha256, JSON.stringify(value));
  }
  await store.shareTokens(values, revoked);
}

/** Reads the shared book: digest → entry (values written by something else are skipped). */
async function readShared(store: ClusterStore): Promise<Map<string, SharedEntry>> {
  const entries = new Map<string, SharedEntry>();
  for (const [key, value] of await store.readTokens()) {
    try {
      const entry = JSON.parse(value) as { user?: unknown; admin?: unknown; osUser?: unknown };
      if (typeof entry.user !== 'string') continue;
      entries.set(key, { user: entry.user, admin: entry.admin === true, ...(typeof entry.osUser === 'string' ? { osUser: entry.osUser } : {}) });
    } catch {
      // An entry written by something else: not a token.
    }
  }
  return entries;
}

/**
 * What the shared book says of `user` (read fresh from Redis): how a worker learns whether a
 * job's owner is an admin and which OS account runs their jobs.
 */
export async function sharedUser(store: ClusterStore, user: string): Promise<UserEntry | undefined> {
  return usersOf((await readShared(store)).values()).get(user);
}

/**
 * What the shared book says of users, for a worker that asks at every job start: kept between
 * jobs, read again once any server announces a change of the book, and at least every
 * `maxAgeMs` (an announcement sent while this process was reconnecting is missed).
 */
export class SharedUsers {
  readonly #store: ClusterStore;
  readonly #maxAgeMs: number;
  #users: Promise<Map<string, UserEntry>> | undefined;
  #readAt = 0;
  #unsubscribe: (() => void) | undefined;

  constructor(store: ClusterStore, maxAgeMs = 2000) {
    this.#store = store;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Starts hearing the servers' announcements of changes. */
  async listen(): Promise<void> {
    this.#unsubscribe = await this.#store.onTokensChanged(() => {
      this.#users = undefined;
    });
  }

  /** What the book says of `user`. */
  async user(user: string): Promise<UserEntry | undefined> {
    if (this.#users === undefined || Date.now() - this.#readAt > this.#maxAgeMs) {
      this.#readAt = Date.now();
      const reading = readShared(this.#store).then((entries) => usersOf(entries.values()));
      reading.catch(() => {
        if (this.#users === reading) this.#users = undefined;
      });
      this.#users = reading;
    }
    return (await this.#users).get(user);
  }

  close(): void {
    this.#unsubscribe?.();
    this.#users = undefined;
  }
}

/** A {@link TokenBook} that also accepts every token of the shared book in Redis. */
export class SharedTokenBook extends TokenBook {
  readonly #store: ClusterStore;
  readonly #home: string;
  #shared = new Map<string, WhoAmI>();
  #sharedUsers = new Map<string, UserEntry>();
  #fileMtime = -1;
  #timers: NodeJS.Timeout[] = [];
  #unsubscribe: (() => void) | undefined;

  private constructor(home: string, store: ClusterStore) {
    super(home);
    this.#home = home;
    this.#store = store;
  }

  /** Opens the book: shares this home's tokens, loads the shared ones, follows changes. */
  static async open(home: string, store: ClusterStore, onError: (err: unknown) => void): Promise<SharedTokenBook> {
    const book = new SharedTokenBook(home, store);
    await book.shareFile();
    await book.reloadShared();
    book.#unsubscribe = await store.onTokensChanged(() => void book.reloadShared().catch(onError));
    book.#timers.push(
      setInterval(() => void book.shareFile().catch(onError), FILE_CHECK_MS),
      setInterval(() => void book.reloadShared().catch(onError), RELOAD_MS),
    );
    for (const timer of book.#timers) timer.unref();
    return book;
  }

  override lookup(token: string | undefined): WhoAmI | undefined {
    return super.lookup(token) ?? (token ? this.#shared.get(tokenDigest(token)) : undefined);
  }

  /** This home's entry for `user`, else the shared book's. */
  override user(user: string): UserEntry | undefined {
    return super.user(user) ?? this.#sharedUsers.get(user);
  }

  /** Reads the shared book again. */
  async reloadShared(): Promise<void> {
    const entries = await readShared(this.#store);
    const next = new Map<string, WhoAmI>();
    for (const [key, entry] of entries) next.set(key, { user: entry.user, admin: entry.admin });
    this.#shared = next;
    this.#sharedUsers = usersOf(entries.values());
  }

  /** Stops following changes. */
  close(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#unsubscribe?.();
  }

  /**
   * Puts the entries of this home's file into the shared book, and takes its revoked ones out,
   * when the file changed. Servers also call it before queuing a job: a token this server
   * accepts from its file a moment after `jobwire token create` must be in the book before a
   * worker looks up the job's owner there.
   */
  async shareFile(): Promise<void> {
    let mtime: number;
    try {
      mtime = statSync(tokensPath(this.#home)).mtimeMs;
    } catch {
      return;
    }
    if (mtime === this.#fileMtime) return;
    const file = readTokenFile(this.#home);
    const revoked = Array.isArray(file.revoked) ? file.revoked.filter((r) => typeof r?.sha256 === 'string').map((r) => r.sha256) : [];
    await shareTokens(this.#store, validEntries(file), revoked);
    this.#fileMtime = mtime;
  }
}
