/**
 * The token book of distributed mode: every server on one Redis accepts the same tokens.
 *
 * Redis holds the shared book (`tokens`: SHA-256 digest of a token → its user), so no server
 * keeps a secret another one lacks and no token travels in clear text. Each server adds the
 * tokens of its own `tokens.json` to it (at start and whenever the file changes — so
 * `jobwire token create` on any server's machine works everywhere), keeps a copy in memory for
 * lookups, and reloads it when another server announces a change on the `tokens` channel (and
 * every few seconds, in case it missed one).
 * @module
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { WhoAmI } from '@jobwire/client';
import type { RedisStore } from '../store/redis/index.js';
import { readTokenFile, TokenBook, type TokenEntry } from './tokens.js';

/** How often the tokens file is checked for changes. */
const FILE_CHECK_MS = 1000;
/** How often the shared book is reloaded without being told. */
const RELOAD_MS = 5000;

function digest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Adds tokens to the shared book of a Redis store (used by `jobwire token create --redis`). */
export async function shareTokens(store: RedisStore, entries: readonly TokenEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const fields: string[] = [];
  for (const entry of entries) fields.push(digest(entry.token), JSON.stringify({ user: entry.user, admin: Boolean(entry.admin) }));
  await store.redis.hset(store.keys.tokens, ...fields);
  await store.redis.publish(store.keys.tokens, 'changed');
}

/** A {@link TokenBook} that also accepts every token of the shared book in Redis. */
export class SharedTokenBook extends TokenBook {
  readonly #store: RedisStore;
  readonly #home: string;
  readonly #onError: (err: unknown) => void;
  #shared = new Map<string, WhoAmI>();
  #fileMtime = -1;
  #timers: NodeJS.Timeout[] = [];
  readonly #onMessage = (channel: string): void => {
    if (channel === this.#store.keys.tokens) this.reloadShared().catch(this.#onError);
  };

  private constructor(home: string, store: RedisStore, onError: (err: unknown) => void) {
    super(home);
    this.#home = home;
    this.#store = store;
    this.#onError = onError;
  }

  /** Opens the book: shares this home's tokens, loads the shared ones, follows changes. */
  static async open(home: string, store: RedisStore, onError: (err: unknown) => void): Promise<SharedTokenBook> {
    const book = new SharedTokenBook(home, store, onError);
    await book.#shareFile();
    await book.reloadShared();
    store.subscriber.on('message', book.#onMessage);
    await store.subscriber.subscribe(store.keys.tokens);
    book.#timers.push(
      setInterval(() => void book.#shareFile().catch(onError), FILE_CHECK_MS),
      setInterval(() => void book.reloadShared().catch(onError), RELOAD_MS),
    );
    for (const timer of book.#timers) timer.unref();
    return book;
  }

  override lookup(token: string | undefined): WhoAmI | undefined {
    return super.lookup(token) ?? (token ? this.#shared.get(digest(token)) : undefined);
  }

  /** Reads the shared book again. */
  async reloadShared(): Promise<void> {
    const all = await this.#store.redis.hgetall(this.#store.keys.tokens);
    const next = new Map<string, WhoAmI>();
    for (const [key, value] of Object.entries(all)) {
      try {
        const who = JSON.parse(value) as { user?: unknown; admin?: unknown };
        if (typeof who.user === 'string') next.set(key, { user: who.user, admin: who.admin === true });
      } catch {
        // An entry written by something else: not a token.
      }
    }
    this.#shared = next;
  }

  /** Stops following changes. */
  close(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#store.subscriber.off('message', this.#onMessage);
  }

  /** Adds the tokens of this home's file to the shared book when the file changed. */
  async #shareFile(): Promise<void> {
    let mtime: number;
    try {
      mtime = statSync(join(this.#home, 'tokens.json')).mtimeMs;
    } catch {
      return;
    }
    if (mtime === this.#fileMtime) return;
    await shareTokens(this.#store, readTokenFile(this.#home));
    this.#fileMtime = mtime;
  }
}
