/**
 * Servers announce themselves in the cluster store (a URL with a time to live), so that workers
 * can hand their jobs a server URL (`JOBWIRE_URL`, used by `jobwire progress`) without being
 * told one.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { ClusterStore } from '../store/cluster.js';

/** How long a server's announcement lives without renewal (renewed every third of it). */
const ANNOUNCE_TTL_MS = 15_000;

/** Announces `url` until the returned function is called. */
export function announceServer(store: ClusterStore, url: string, onError: (err: unknown) => void): () => Promise<void> {
  const id = randomBytes(8).toString('hex');
  const announce = (): Promise<void> => store.announceServer(id, url, ANNOUNCE_TTL_MS);
  announce().catch(onError);
  const timer = setInterval(() => announce().catch(onError), ANNOUNCE_TTL_MS / 3);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await store.withdrawServer(id);
  };
}
