/**
 * A network's status kept in the store, so that every server of a cluster can answer `network
 * status` — not only the one that wires the network. The wiring server saves its status (once
 * a second while the network runs, and once it has ended) as a blob (folder `networks`, one per
 * owner and network); another server answers from it, with each job's status and node read
 * afresh from its job record. Counts of frames are as of the last save.
 *
 * A saved status that says `running` but was not renewed for {@link STALE_AFTER_MS} is from a
 * server that stopped wiring the network: the answer says so in `errors` (its jobs run on
 * unwired; a restarted server does not take a network back yet).
 * @module
 */
import type { NetworkStatus } from '@jobwire/client';
import type { Store } from '../store/types.js';

/** The blob folder of saved network statuses. */
const FOLDER = 'networks';

/** How often a wiring server saves the status of a running network. */
export const SAVE_EVERY_MS = 1000;

/** A running network's saved status older than this is from a server that no longer wires it. */
export const STALE_AFTER_MS = 10_000;

/** Largest saved status (a network's status is a few hundred bytes a job and a pipe). */
const MAX_RECORD_BYTES = 4 * 1024 * 1024;

/** What a server that takes a network over needs besides its status. */
export interface SavedWiring {
  /** The network as it was asked for (a network file's content), and the folder its paths resolve against. */
  spec: unknown;
  baseDir: string;
  /** How each job's supervision ended, for the jobs whose ended. */
  outcomes: Record<string, 'done' | 'failed' | 'stopped'>;
  /** Pipes that have ended. */
  ended: string[];
  /** The network is being stopped. */
  stopping: boolean;
  /** Takeovers so far (the claims in the run's claim stream, {@link claimWiring}). */
  claims: number;
}

/** What is saved: the status, when, and by which server process. */
export interface SavedNetwork {
  status: NetworkStatus;
  /** Milliseconds since the epoch. */
  savedAt: number;
  /** The wiring server, as `pid@host`. */
  server: string;
  wiring?: SavedWiring;
}

function recordName(owner: string, name: string): string {
  // Owner and network names hold no newline (network names are letters, digits, `_` and `-`).
  return `${owner}\n${name}`;
}

/** Saves `status` as `owner`'s network's newest. */
export async function saveNetworkStatus(store: Store, owner: string, status: NetworkStatus, server: string, wiring?: SavedWiring): Promise<void> {
  const saved: SavedNetwork = { status, savedAt: Date.now(), server, ...(wiring !== undefined ? { wiring } : {}) };
  await store.blobs.write(FOLDER, recordName(owner, status.name), [Buffer.from(JSON.stringify(saved), 'utf8')], MAX_RECORD_BYTES);
}

/** The saved status of `owner`'s network `name`, or undefined when none was saved. */
export async function loadNetworkStatus(store: Store, owner: string, name: string): Promise<SavedNetwork | undefined> {
  const bytes = await store.blobs.read(FOLDER, recordName(owner, name));
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8')) as SavedNetwork;
  } catch {
    // A record cut short (never written by a whole write): as good as none.
    return undefined;
  }
}

/**
 * The status of a network that another server wires (or wired), from its saved status: each
 * job's status, exit code and node as its job record says now, the rest as of the save.
 */
export async function savedStatusNow(store: Store, owner: string, saved: SavedNetwork, now = Date.now()): Promise<NetworkStatus> {
  const { status } = saved;
  const jobs = await Promise.all(
    status.jobs.map(async (job) => {
      const record = await store.getJob(job.id, owner).catch(() => undefined);
      return record === undefined ? job : { ...job, status: record.status, exitCode: record.exitCode ?? null, node: record.node ?? null };
    }),
  );
  const errors = [...status.errors];
  if (status.state === 'running' && now - saved.savedAt > STALE_AFTER_MS) {
    errors.push(
      `the server that wires this network (${saved.server}) has not saved its status since ${new Date(saved.savedAt).toISOString()}: it stopped, and the network's jobs run unwired (a server does not take a network back yet)`,
    );
  }
  return { ...status, jobs, errors };
}

/** Removes the saved status of `owner`'s network `name` (nothing when there is none). */
export async function removeNetworkStatus(store: Store, owner: string, name: string): Promise<void> {
  await store.blobs.removeFile(FOLDER, recordName(owner, name));
}

/** The stream of a network run's takeover claims ({@link claimWiring}). */
export function claimStreamId(network: string, run: string): string {
  // A pipe's name cannot start with `-`, so this stream is no pipe's.
  return `net.${network}.${run}.-wiring`;
}

/** The saved networks of every owner (for a server looking for networks to take over). */
export async function listSavedNetworks(store: Store): Promise<Array<{ owner: string; name: string }>> {
  const entries = await store.blobs.list(FOLDER);
  return entries.flatMap(({ name }) => {
    const at = name.lastIndexOf('\n');
    return at < 0 ? [] : [{ owner: name.slice(0, at), name: name.slice(at + 1) }];
  });
}

/** Whether a saved status is of a running network whose wiring server stopped saving it. */
export function isOrphaned(saved: SavedNetwork, now = Date.now()): boolean {
  return saved.status.state === 'running' && saved.wiring !== undefined && now - saved.savedAt > STALE_AFTER_MS;
}

/** Bytes of one claim record: the claiming server's id, padded. */
const CLAIM_BYTES = 32;

/**
 * Claims the wiring of a network run for the server `id`, as its takeover number `claims + 1`.
 * The claims are records in the stdin of the run's claim stream; an append at an offset already
 * written is skipped by the stream log, so of two servers claiming the same takeover, the record
 * that stays is the first one's: each reads it back to learn whether it won.
 */
export async function claimWiring(store: Store, network: string, run: string, claims: number, id: string): Promise<boolean> {
  const stream = claimStreamId(network, run);
  const record = Buffer.alloc(CLAIM_BYTES, ' ');
  record.write(id.slice(0, CLAIM_BYTES), 'utf8');
  const offset = claims * CLAIM_BYTES;
  const { stdin } = await store.streams.sizes(stream);
  // Claimed already, or the saved count is behind the claims (a newer takeover saved nothing yet).
  if (stdin !== offset) return false;
  try {
    await store.streams.appendStdin(stream, offset, record);
  } catch {
    return false;
  }
  const { data } = await store.streams.readStdin(stream, offset, CLAIM_BYTES);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(record);
}
