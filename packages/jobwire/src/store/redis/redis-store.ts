/**
 * The Redis {@link Store}: job records, groups and events in Redis, for any number of servers
 * and workers sharing one Redis. Each change of a job (with the indexes it moves between and
 * its event) is one Lua script (`scripts/jobs.ts`); reads are plain commands or read-only
 * scripts.
 *
 * Events get increasing integer ids from a counter and are kept twice: in the owner's stream
 * (for replay by id, kept like the embedded store keeps them) and in one all-owners stream,
 * trimmed to about {@link RedisStoreSettings.eventsMaxLen} entries, that `onEvent` follows with
 * a blocking XREAD on its own connection.
 * @module
 */
import { RedisBlobs } from './redis-blobs.js';
import type { Redis } from 'ioredis';
import {
  BadRequestError,
  FINAL_STATUSES,
  inSubtree,
  type EventVerb,
  type GroupInfo,
  type InfoObject,
  type JobDescription,
  type JobEvent,
  type JobInfo,
} from '@jobwire/client';
import { checkGroupPath, checkJobId, checkLimit, decodeCursor, encodeCursor, resultText } from '../checks.js';
import type { ListenerErrorHandler } from '../listeners.js';
import type { JobProcess } from '../../job-process.js';
import { finalStatusOf, type FinishFields, type JobRecord, type ListJobsQuery, type LostReason, type NewJob, type RunningFields, type Store, type StoredEvent } from '../types.js';
import { duplicateConnection } from './connection.js';
import { closedError, toRedisStoreError } from './errors.js';
import { Gate } from './gate.js';
import { Keys } from './keys.js';
import { RedisStreamLog } from './redis-stream-log.js';
import type { ScriptRunner } from './scripts/index.js';

/** What `openRedisStore` hands the store. */
export interface RedisStoreSettings {
  redis: Redis;
  subscriber: Redis;
  scripts: ScriptRunner;
  keys: Keys;
  /** Approximate length of the all-owners event stream. */
  eventsMaxLen: number;
  onListenerError: ListenerErrorHandler;
}

const FINAL = new Set<string>(FINAL_STATUSES);
/** Events read per XRANGE while replaying. */
const EVENT_PAGE = 500;

/** The record fields every job script answers with. */
export type RecordReply = [info: string, result: string | null, description: string, token: string, pid: string | null, process: string | null];
/** The hash fields of {@link RecordReply}, in order. */
export const RECORD_FIELDS = ['info', 'result', 'desc', 'token', 'pid', 'proc'] as const;

/** A live-event listener with the first event id it may hear (known once its subscription is active). */
interface EventSubscriber {
  listener: (event: StoredEvent) => void;
  after: number | undefined;
  held: StoredEvent[];
}

/** The Redis-backed {@link Store}. */
export class RedisStore implements Store {
  readonly streams: RedisStreamLog;
  readonly blobs: RedisBlobs;
  /** Command connection (shared with the cluster store's BullMQ queues); for the store's own modules and tests. */
  readonly redis: Redis;
  /** Pub/sub connection: job channels and the token book's channel. */
  readonly subscriber: Redis;
  readonly keys: Keys;
  readonly scripts: ScriptRunner;
  readonly #settings: RedisStoreSettings;
  readonly #gate = new Gate();
  readonly #subscribers = new Set<EventSubscriber>();
  #follower: Redis | undefined;
  #following: Promise<void> | undefined;
  /** Id of the last event handed to listeners. */
  #lastSeen = 0;
  /** When the command connection last became ready (ms since the epoch). */
  #readySince = Date.now();
  #closed = false;

  constructor(settings: RedisStoreSettings) {
    this.#settings = settings;
    this.redis = settings.redis;
    this.subscriber = settings.subscriber;
    this.keys = settings.keys;
    this.scripts = settings.scripts;
    this.streams = new RedisStreamLog({
      redis: settings.redis,
      subscriber: settings.subscriber,
      scripts: settings.scripts,
      keys: settings.keys,
      gate: this.#gate,
      onListenerError: settings.onListenerError,
    });
    this.blobs = new RedisBlobs(settings.redis, settings.keys);
    this.streams.markConnected();
    settings.redis.on('ready', () => {
      this.#readySince = Date.now();
    });
  }

  /** Milliseconds since the command connection was (re)established. */
  get connectedFor(): number {
    return Date.now() - this.#readySince;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  createJob(job: NewJob): Promise<JobRecord> {
    return this.#op(async () => {
      checkJobId(job.id);
      checkGroupPath(job.group);
      const info: Omit<JobInfo, 'result'> = {
        id: job.id,
        type: 'job',
        name: job.name,
        group: job.group,
        owner: job.owner,
        status: 'Queued',
        queue: job.queue,
        progress: null,
        exitCode: null,
        signal: null,
        error: null,
        url: job.url,
        interactive: job.interactive,
        tty: job.tty,
        node: null,
        reason: null,
        createdAt: job.createdAt,
        startedAt: null,
        endedAt: null,
      };
      const placement = placementOf(job.description);
      const reply = await this.scripts.run<RecordReply>(
        'jwCreateJob',
        job.id,
        JSON.stringify(info),
        JSON.stringify(job.description),
        job.jobToken,
        lexMember(job.createdAt, job.id),
        placement.node,
        placement.pools,
        placement.retries,
      );
      return toRecord(reply);
    });
  }

  getJob(id: string, owner?: string): Promise<JobRecord | undefined> {
    return this.#op(async () => {
      const reply = (await this.redis.hmget(this.keys.job(id), ...RECORD_FIELDS)) as RecordReply | [null, ...unknown[]];
      if (reply[0] === null) return undefined;
      const record = toRecord(reply as RecordReply);
      return owner === undefined || record.owner === owner ? record : undefined;
    });
  }

  listJobs(query: ListJobsQuery): Promise<{ items: JobInfo[]; next?: string }> {
    return this.#op(async () => {
      const limit = checkLimit(query.limit);
      let after = query.cursor === undefined ? '' : cursorMember(query.cursor);
      const statuses = query.status !== undefined && query.status.length > 0 ? query.status.join(',') : '';
      const items: JobInfo[] = [];
      // One more than asked: whether it exists decides `next`.
      while (items.length <= limit) {
        const reply = await this.scripts.run<string[]>(
          'jwListJobs',
          query.owner,
          query.group ?? '',
          after,
          limit + 1 - items.length,
          statuses,
          query.name === undefined ? '0' : '1',
          query.name ?? '',
        );
        for (let i = 1; i < reply.length; i += 2) items.push(infoOf(reply[i]!, reply[i + 1] || null));
        after = reply[0]!;
        if (after === '') break;
      }
      const more = items.length > limit;
      if (more) items.length = limit;
      const last = items[items.length - 1];
      return more && last !== undefined ? { items, next: encodeCursor(last.createdAt, last.id) } : { items };
    });
  }

  markRunning(id: string, fields: RunningFields): Promise<JobRecord | undefined> {
    const process = fields.process == null ? '' : JSON.stringify(fields.process);
    return this.#change('jwMarkRunning', id, fields.startedAt, fields.pid === null ? '' : String(fields.pid), fields.node ?? '', process);
  }

  setExecutorState(id: string, state: Record<string, unknown>): Promise<void> {
    return this.#op(async () => {
      await this.redis.hset(this.keys.job(id), 'executorState', JSON.stringify(state));
    });
  }

  executorState(id: string): Promise<Record<string, unknown> | undefined> {
    return this.#op(async () => {
      const text = await this.redis.hget(this.keys.job(id), 'executorState');
      return text === null || text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>);
    });
  }

  setProgress(id: string, message: string): Promise<JobRecord | undefined> {
    return this.#change('jwSetProgress', id, message);
  }

  setReason(id: string, reason: string | null): Promise<JobRecord | undefined> {
    return this.#change('jwSetReason', id, JSON.stringify(reason));
  }

  finishJob(id: string, fields: FinishFields): Promise<JobRecord | undefined> {
    return this.#op(async () => {
      const changes = finishChanges(fields);
      const reply = await this.scripts.run<RecordReply | null>('jwFinishJob', id, JSON.stringify(changes.info), changes.result, 'finish');
      return reply === null ? undefined : toRecord(reply);
    });
  }

  deleteJob(id: string): Promise<void> {
    return this.#op(async () => {
      await this.scripts.run('jwDeleteJob', id);
    });
  }

  queuedJobs(queue: string, limit: number): Promise<JobRecord[]> {
    return this.#op(async () => {
      const members = await this.redis.zrangebylex(this.keys.queued(queue), '-', '+', 'LIMIT', 0, checkLimit(limit));
      return this.#records(members.map(idOfMember));
    });
  }

  queueCounts(): Promise<Map<string, { running: number; queued: number }>> {
    return this.#op(async () => {
      const names = (await this.redis.smembers(this.keys.queues)).sort();
      const pipeline = this.redis.pipeline();
      for (const name of names) pipeline.zcard(this.keys.queued(name)).scard(this.keys.runningQ(name));
      const replies = (await pipeline.exec()) ?? [];
      const counts = new Map<string, { running: number; queued: number }>();
      names.forEach((name, i) => {
        const queued = Number(replies[2 * i]?.[1] ?? 0);
        const running = Number(replies[2 * i + 1]?.[1] ?? 0);
        if (queued > 0 || running > 0) counts.set(name, { running, queued });
      });
      return counts;
    });
  }

  /**
   * Every Running job (of `node`, when given) becomes Lost with `reason`, its output closed
   * first (a status is final only once the output is complete). Oldest first.
   */
  loseRunningJobs(reason: LostReason, node?: string): Promise<JobRecord[]> {
    return this.#op(async () => {
      const running = await this.#running(node);
      const lost: JobRecord[] = [];
      for (const job of running) {
        const record = await this.loseJob(job.id, typeof reason === 'string' ? reason : reason(job));
        if (record) lost.push(record);
      }
      return lost;
    });
  }

  runningJobs(node?: string): Promise<JobRecord[]> {
    return this.#op(() => this.#running(node));
  }

  /** Running jobs (of `node`, when given), oldest first. */
  async #running(node: string | undefined): Promise<JobRecord[]> {
    const ids = await this.redis.smembers(node === undefined ? this.keys.running : this.keys.runningAt(node));
    return (await this.#records(ids)).filter((job) => job.status === 'Running').sort(byCreation);
  }

  /**
   * One Running job (or one Queued in a worker's executor's own queue) becomes Lost with
   * `reason`, its output closed first (recording that end).
   */
  async loseJob(id: string, reason: string): Promise<JobRecord | undefined> {
    const job = await this.getJob(id);
    const live = job !== undefined && (job.status === 'Running' || (job.status === 'Queued' && (await this.executorState(id)) !== undefined));
    await this.streams.closeOutput(id, live ? { ...finalStatusOf(job), status: 'Lost', error: reason } : undefined);
    return this.#op(async () => {
      const changes = { status: 'Lost', error: reason, endedAt: new Date().toISOString() };
      const reply = await this.scripts.run<RecordReply | null>('jwFinishJob', id, JSON.stringify(changes), '', 'lose');
      return reply === null ? undefined : toRecord(reply);
    });
  }

  listGroups(owner: string, under?: string): Promise<GroupInfo[]> {
    return this.#op(async () => {
      const members = await this.redis.zrange(this.keys.groupsZ(owner), 0, -1);
      const groups: GroupInfo[] = [];
      for (const member of members) {
        const cut = member.indexOf('\0');
        const path = member.slice(cut + 1);
        if (under !== undefined && under !== '' && path !== under && !path.startsWith(under + ':')) continue;
        groups.push(groupInfo(owner, path, member.slice(0, cut)));
      }
      return groups;
    });
  }

  readEvents(owner: string, group: string, sinceId: number, limit: number): Promise<JobEvent[]> {
    return this.#op(async () => {
      if (typeof sinceId !== 'number' || !Number.isSafeInteger(sinceId)) {
        throw new BadRequestError(`since must be an integer, got ${String(sinceId)}`, { field: 'since' });
      }
      checkLimit(limit);
      const key = this.keys.ownerEvents(owner);
      const events: JobEvent[] = [];
      let start = `${Math.max(0, sinceId) + 1}-0`;
      while (events.length < limit) {
        const page = await this.redis.xrange(key, start, '+', 'COUNT', EVENT_PAGE);
        for (const [entryId, fields] of page) {
          const event = entryEvent(entryId, fields);
          if (inSubtree(event.group, group)) events.push({ id: event.id, verb: event.verb, info: event.info });
          if (events.length >= limit) break;
        }
        if (page.length < EVENT_PAGE) break;
        start = `(${page[page.length - 1]![0]}`;
      }
      return events;
    });
  }

  lastEventId(): Promise<number> {
    return this.#op(async () => Number((await this.redis.get(this.keys.eventId)) ?? 0));
  }

  onEvent(listener: (event: StoredEvent) => void): () => void {
    const subscriber: EventSubscriber = { listener, after: undefined, held: [] };
    this.#subscribers.add(subscriber);
    if (!this.#closed) {
      // The listener hears exactly the events after the id current once its subscription is
      // active; reads issued after this call wait for that (the gate).
      const ready = this.#follow().then(() => this.redis.get(this.keys.eventId));
      this.#gate.hold(ready);
      ready.then(
        (id) => {
          subscriber.after = Number(id ?? 0);
          const held = subscriber.held.splice(0);
          for (const event of held) this.#deliver(subscriber, event);
        },
        () => {
          subscriber.after = this.#lastSeen;
        },
      );
    }
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  /**
   * Drops every connection now, without waiting for Redis: commands in flight or queued fail at
   * once ("Connection is closed") instead of waiting for a reconnect. For a stop that must end
   * while Redis does not answer (see `stop.ts`); `close()` still releases the store.
   */
  abandon(): void {
    const follower = this.#follower;
    // Also ends the follow loop, which would otherwise retry on the dropped connection.
    this.#follower = undefined;
    follower?.disconnect();
    this.#settings.subscriber.disconnect();
    this.redis.disconnect();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.streams.close();
    this.#subscribers.clear();
    const follower = this.#follower;
    this.#follower = undefined;
    follower?.disconnect();
    this.#settings.subscriber.disconnect();
    // QUIT on a connection that is down would wait in the offline queue for a reconnect.
    if (this.redis.status !== 'ready') {
      this.redis.disconnect();
      return;
    }
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  /** Starts following the all-owners event stream (once); resolves when it follows. */
  #follow(): Promise<void> {
    this.#following ??= (async () => {
      this.#lastSeen = Number((await this.redis.get(this.keys.eventId)) ?? 0);
      this.#follower = await duplicateConnection(this.redis, 'events');
      void this.#followLoop(this.#follower);
    })();
    return this.#following;
  }

  async #followLoop(connection: Redis): Promise<void> {
    while (!this.#closed && this.#follower === connection) {
      let reply: Array<[string, Array<[string, string[]]>]> | null;
      try {
        reply = (await connection.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', this.keys.events, `${this.#lastSeen}-1`)) as typeof reply;
      } catch {
        if (this.#closed) return;
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      for (const [, entries] of reply ?? []) {
        for (const [entryId, fields] of entries) {
          const event = entryEvent(entryId, fields);
          if (event.id <= this.#lastSeen) continue;
          this.#lastSeen = event.id;
          for (const subscriber of [...this.#subscribers]) this.#deliver(subscriber, event);
        }
      }
    }
  }

  #deliver(subscriber: EventSubscriber, event: StoredEvent): void {
    if (subscriber.after === undefined) {
      subscriber.held.push(event);
      return;
    }
    if (event.id <= subscriber.after || !this.#subscribers.has(subscriber)) return;
    // A throwing listener must not stop the others (its error goes to onListenerError).
    try {
      subscriber.listener(event);
    } catch (error) {
      this.#settings.onListenerError(error);
    }
  }

  /** Runs a job-changing script that answers a record or nil (for the cluster store's scripts). */
  protected change(script: string, id: string, ...args: string[]): Promise<JobRecord | undefined> {
    return this.#change(script, id, ...args);
  }

  /** Runs an operation as every operation of this store runs (after pending subscriptions, errors mapped). */
  protected op<T>(operation: () => Promise<T>): Promise<T> {
    return this.#op(operation);
  }

  /** Records of existing jobs among `ids`, in the same order. */
  protected records(ids: string[]): Promise<JobRecord[]> {
    return this.#records(ids);
  }

  /** Runs a job-changing script that answers a record or nil. */
  #change(script: string, id: string, ...args: string[]): Promise<JobRecord | undefined> {
    return this.#op(async () => {
      const reply = await this.scripts.run<RecordReply | null>(script, id, ...args);
      return reply === null ? undefined : toRecord(reply);
    });
  }

  /** Records of existing jobs among `ids`, in the same order. */
  async #records(ids: string[]): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(this.keys.job(id), ...RECORD_FIELDS);
    const replies = (await pipeline.exec()) ?? [];
    const records: JobRecord[] = [];
    for (const [error, reply] of replies) {
      if (error) throw error;
      const fields = reply as RecordReply | [null];
      if (fields[0] !== null) records.push(toRecord(fields as RecordReply));
    }
    return records;
  }

  /** Runs an operation after pending subscriptions, mapping failures to jobwire errors. */
  #op<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    return this.#gate.run(operation).catch((error: unknown) => {
      throw this.#closed ? closedError() : toRedisStoreError(error);
    });
  }
}

/** The info fields and result text a final status sets; a status that is not final is refused. */
export function finishChanges(fields: FinishFields): { info: Partial<JobInfo>; result: string } {
  if (!FINAL.has(fields.status)) {
    throw new BadRequestError(`finishJob needs a final status, got ${JSON.stringify(fields.status)}`, { field: 'status' });
  }
  const { result, error } = resultText(fields.result, fields.error ?? null);
  return { info: { status: fields.status, exitCode: fields.exitCode ?? null, signal: fields.signal ?? null, error, endedAt: fields.endedAt }, result: result ?? '' };
}

/** Placement fields of a description, as the scripts store them. */
function placementOf(description: JobDescription): { node: string; pools: string; retries: string } {
  const pools = description.pools !== undefined && description.pools.length > 0 ? description.pools : ['ALL'];
  return { node: description.node ?? '', pools: pools.join(','), retries: String(description.retries ?? 0) };
}

/** The member of a listing zset: sorted by createdAt, then id. */
function lexMember(createdAt: string, id: string): string {
  return `${createdAt}\0${id}`;
}

/** The job id of a listing member (`createdAt\0id`). */
export function idOfMember(member: string): string {
  return member.slice(member.indexOf('\0') + 1);
}

export function toRecord(reply: RecordReply): JobRecord {
  const [info, result, description, jobToken, pid, process] = reply;
  return {
    ...infoOf(info, result),
    description: JSON.parse(description) as JobDescription,
    jobToken,
    pid: pid === null || pid === '' ? null : Number(pid),
    process: process === null || process === undefined || process === '' ? null : (JSON.parse(process) as JobProcess),
  };
}

function infoOf(info: string, result: string | null): JobInfo {
  const parsed = JSON.parse(info) as JobInfo;
  parsed.result = result === null || result === '' ? null : (JSON.parse(result) as unknown);
  return parsed;
}

function byCreation(a: JobRecord, b: JobRecord): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function groupInfo(owner: string, path: string, createdAt: string): GroupInfo {
  const cut = path.lastIndexOf(':');
  return {
    id: `group:${path}`,
    type: 'group',
    name: cut < 0 ? path : path.slice(cut + 1),
    path,
    parent: cut < 0 ? null : path.slice(0, cut),
    owner,
    createdAt,
  };
}

/** An entry of an event stream (owner's: v, g, i; all-owners: o, v, g, i) as a stored event. */
function entryEvent(entryId: string, fields: string[]): StoredEvent {
  const map: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) map[fields[i]!] = fields[i + 1]!;
  const info = JSON.parse(map.i ?? 'null') as InfoObject;
  return { id: Number(entryId.split('-')[0]), verb: map.v as EventVerb, info, owner: map.o ?? info.owner, group: map.g ?? '' };
}

/** A cursor as the lex member after which the next page starts. */
function cursorMember(cursor: string): string {
  const { createdAt, id } = decodeCursor(cursor);
  return lexMember(createdAt, id);
}
