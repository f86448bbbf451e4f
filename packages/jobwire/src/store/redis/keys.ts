/**
 * Every Redis key and channel jobwire uses, in one place. All live under one prefix (default
 * `jobwire:`), so several installations (or test runs) share a Redis without meeting, and
 * `SCAN prefix*` finds everything one of them stored.
 *
 * The Lua scripts build the same names from the same segments: {@link luaKeyFunctions} turns
 * this table into the Lua prelude, so the two sides cannot drift apart.
 *
 * | key (after the prefix)        | type   | holds                                                        |
 * |-------------------------------|--------|--------------------------------------------------------------|
 * | `job:ID`                      | hash   | one job: info JSON, result, description, token, pid, process identity, placement |
 * | `jobs:OWNER:PATH`             | zset   | jobs of OWNER in the subtree PATH (`''` = all), lex `createdAt\0id` |
 * | `groupz:OWNER`, `grouph:OWNER`| zset, hash | the owner's groups (lex `createdAt\0path`; path → createdAt) |
 * | `events`, `events:OWNER`      | stream | every event (trimmed, for live readers); the owner's events (kept) |
 * | `eventId`                     | string | the last event id (INCR)                                     |
 * | `queues`, `queued:Q`, `running:Q`, `running`, `running@NODE` | set/zset | Queued and Running jobs by queue and node |
 * | `pending`, `parked`, `seq`    | zset, zset, string | jobs waiting for placement (score: arrival), jobs no live worker can take |
 * | `pqueue`                      | hash   | job id → queue of the jobs in `pending` or `parked`, so a placement pass skips the jobs of a class no worker has room for without reading them |
 * | `st:ID`                       | hash   | stream sizes and flags of a job (out, err, in, ic, iu, oc, cancel) |
 * | `idx:ID`                      | stream | merged output index: entry id `pos-1`, fields c (1/2), o (offset), n (length) |
 * | `out:ID`, `err:ID`, `in:ID`   | stream | channel bytes: entry id `offset-1`, field d                  |
 * | `ev:ID` (pub/sub channel)     |        | live stream events of a job                                  |
 * | `workers`, `worker:NAME`, `alive:NAME`, `load:NAME:CLASS` | set, hash, string (TTL), set | the worker registry |
 * | `orphans@NAME`                | hash   | job id → process identity of jobs that were Running on a worker when it was removed: its next instance stops what still runs |
 * | `servers`, `server:ID`        | set, string (TTL) | live servers and their URLs                           |
 * | `tokens` (hash and channel)   | hash   | token digest → user, shared by every server                  |
 * | `blob:ID`, `blobs:FOLDER`     | string, hash | a kept file's bytes; a folder's files (name → blob key): uploads and job output files |
 * | `bull:...`                    |        | BullMQ's own keys (one queue per worker node)                |
 *
 * OWNER is written as `LENGTH:NAME` (byte length first), so no owner name can run into a path.
 * @module
 */

/** Key segments, shared with the Lua prelude. */
export const SEGMENTS = {
  job: 'job:',
  jobs: 'jobs:',
  groupsZ: 'groupz:',
  groupsH: 'grouph:',
  events: 'events',
  ownerEvents: 'events:',
  eventId: 'eventId',
  queues: 'queues',
  queued: 'queued:',
  runningQ: 'running:',
  running: 'running',
  runningAt: 'running@',
  orphans: 'orphans@',
  pending: 'pending',
  parked: 'parked',
  pqueue: 'pqueue',
  seq: 'seq',
  st: 'st:',
  idx: 'idx:',
  out: 'out:',
  err: 'err:',
  in: 'in:',
  ev: 'ev:',
  workers: 'workers',
  worker: 'worker:',
  alive: 'alive:',
  load: 'load:',
  blob: 'blob:',
  blobs: 'blobs:',
} as const;

/** The owner as it appears in keys: byte length, `:`, name. */
export function ownerPart(owner: string): string {
  return `${Buffer.byteLength(owner)}:${owner}`;
}

/** Key and channel names under one prefix. */
export class Keys {
  constructor(readonly prefix: string) {}

  job(id: string): string {
    return this.prefix + SEGMENTS.job + id;
  }
  subtree(owner: string, group: string): string {
    return this.prefix + SEGMENTS.jobs + ownerPart(owner) + ':' + group;
  }
  groupsZ(owner: string): string {
    return this.prefix + SEGMENTS.groupsZ + ownerPart(owner);
  }
  get events(): string {
    return this.prefix + SEGMENTS.events;
  }
  ownerEvents(owner: string): string {
    return this.prefix + SEGMENTS.ownerEvents + ownerPart(owner);
  }
  get eventId(): string {
    return this.prefix + SEGMENTS.eventId;
  }
  get queues(): string {
    return this.prefix + SEGMENTS.queues;
  }
  queued(queue: string): string {
    return this.prefix + SEGMENTS.queued + queue;
  }
  runningQ(queue: string): string {
    return this.prefix + SEGMENTS.runningQ + queue;
  }
  get running(): string {
    return this.prefix + SEGMENTS.running;
  }
  runningAt(node: string): string {
    return this.prefix + SEGMENTS.runningAt + node;
  }
  /** Process identities of the jobs a removed worker left running (job id → JSON). */
  orphans(node: string): string {
    return this.prefix + SEGMENTS.orphans + node;
  }
  get pending(): string {
    return this.prefix + SEGMENTS.pending;
  }
  get parked(): string {
    return this.prefix + SEGMENTS.parked;
  }
  /** Queue of each job waiting for placement (job id → queue name). */
  get pqueue(): string {
    return this.prefix + SEGMENTS.pqueue;
  }
  st(id: string): string {
    return this.prefix + SEGMENTS.st + id;
  }
  idx(id: string): string {
    return this.prefix + SEGMENTS.idx + id;
  }
  out(id: string): string {
    return this.prefix + SEGMENTS.out + id;
  }
  err(id: string): string {
    return this.prefix + SEGMENTS.err + id;
  }
  in(id: string): string {
    return this.prefix + SEGMENTS.in + id;
  }
  /** One kept file's bytes (uploads, output files; see `redis-blobs.ts`). */
  blob(id: string): string {
    return this.prefix + SEGMENTS.blob + id;
  }
  /** A folder of kept files: name → blob key. */
  blobFolder(folder: string): string {
    return this.prefix + SEGMENTS.blobs + folder;
  }
  /** Pub/sub channel of a job's live stream events. */
  ev(id: string): string {
    return this.prefix + SEGMENTS.ev + id;
  }
  get workers(): string {
    return this.prefix + SEGMENTS.workers;
  }
  worker(name: string): string {
    return this.prefix + SEGMENTS.worker + name;
  }
  alive(name: string): string {
    return this.prefix + SEGMENTS.alive + name;
  }
  load(name: string, cls: string): string {
    return this.prefix + SEGMENTS.load + name + ':' + cls;
  }
  get servers(): string {
    return this.prefix + 'servers';
  }
  server(id: string): string {
    return this.prefix + 'server:' + id;
  }
  /** Hash of token digests, and the channel announcing changes to it. */
  get tokens(): string {
    return this.prefix + 'tokens';
  }
  /** BullMQ's prefix: its keys are `PREFIX bull:QUEUE:...`. */
  get bull(): string {
    return this.prefix + 'bull';
  }
}

/** The Lua side of {@link Keys}: functions of the prelude, built from {@link SEGMENTS}. */
export function luaKeyFunctions(): string {
  const s = SEGMENTS;
  return `
local function ownerPart(owner) return #owner .. ':' .. owner end
local function jobKey(id) return P .. '${s.job}' .. id end
local function subtreeKey(owner, group) return P .. '${s.jobs}' .. ownerPart(owner) .. ':' .. group end
local function groupsZKey(owner) return P .. '${s.groupsZ}' .. ownerPart(owner) end
local function groupsHKey(owner) return P .. '${s.groupsH}' .. ownerPart(owner) end
local function ownerEventsKey(owner) return P .. '${s.ownerEvents}' .. ownerPart(owner) end
local function queuedKey(queue) return P .. '${s.queued}' .. queue end
local function runningQKey(queue) return P .. '${s.runningQ}' .. queue end
local function runningAtKey(node) return P .. '${s.runningAt}' .. node end
local function orphansKey(node) return P .. '${s.orphans}' .. node end
local function stKey(id) return P .. '${s.st}' .. id end
local function idxKey(id) return P .. '${s.idx}' .. id end
local function chanKey(id, ch) if ch == '1' then return P .. '${s.out}' .. id end return P .. '${s.err}' .. id end
local function inKey(id) return P .. '${s.in}' .. id end
local function evChannel(id) return P .. '${s.ev}' .. id end
local function workerKey(name) return P .. '${s.worker}' .. name end
local function aliveKey(name) return P .. '${s.alive}' .. name end
local function loadKey(name, cls) return P .. '${s.load}' .. name .. ':' .. cls end
local K = {
  events = P .. '${s.events}', eventId = P .. '${s.eventId}', queues = P .. '${s.queues}',
  running = P .. '${s.running}', pending = P .. '${s.pending}', parked = P .. '${s.parked}',
  pqueue = P .. '${s.pqueue}', seq = P .. '${s.seq}', workers = P .. '${s.workers}',
}
`;
}
