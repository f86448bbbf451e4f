/**
 * Servers announce themselves in Redis (`servers` set, `server:ID` = URL with a TTL), so that
 * workers can hand their jobs a server URL (`JOBWIRE_URL`, used by `jobwire progress`) without
 * being told one.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { RedisStore } from '../store/redis/index.js';

/** How long a server's announcement lives without renewal (renewed every third of it). */
const ANNOUNCE_TTL_MS = 15_000;

/** Announces `url` until the returned function is called. */
export function announceServer(store: RedisStore, url: string, onError: (err: unknown) => void): () => Promise<void> {
  const id = randomBytes(8).toString('hex');
  const announce = async (): Promise<void> => {
    await store.redis.multi().set(store.keys.server(id), url, 'PX', ANNOUNCE_TTL_MS).sadd(store.keys.servers, id).exec();
  };
  announce().catch(onError);
  const timer = setInterval(() => announce().catch(onError), ANNOUNCE_TTL_MS / 3);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await store.redis.multi().del(store.keys.server(id)).srem(store.keys.servers, id).exec();
  };
}

/** URLs of the live servers (and forgets announcements that expired). */
export async function liveServerUrls(store: RedisStore): Promise<string[]> {
  const ids = await store.redis.smembers(store.keys.servers);
  if (ids.length === 0) return [];
  const urls = await store.redis.mget(ids.map((id) => store.keys.server(id)));
  const gone = ids.filter((_, i) => urls[i] === null);
  if (gone.length > 0) await store.redis.srem(store.keys.servers, ...gone);
  return urls.filter((u): u is string => typeof u === 'string').sort();
}
