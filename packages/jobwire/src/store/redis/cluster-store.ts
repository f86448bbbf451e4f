/**
 * The Redis {@link ClusterStore}: the Redis store plus the operations of distributed mode — the
 * worker registry, placement and hand-over, the runs of workers, the server registry and the
 * shared token book. Every change that must be atomic is one Lua script
 * (`scripts/workers.ts`, `scripts/jobs.ts`); plain reads are commands or pipelines.
 * @module
 */
import type { JobProcess } from '../../job-process.js';
import type {
  ClusterStore,
  DroppedWorker,
  HandOver,
  HandOverConsumer,
  HandOvers,
  LoadClass,
  Placement,
  PlacedJob,
  PlacementPass,
  RegisteredWorker,
  RegisterOutcome,
  RunClaim,
  TakeOptions,
  WorkerRegistration,
} from '../cluster.js';
import type { FinishFields, JobRecord } from '../types.js';
import { BullHandOvers, takeHandOvers } from './hand-over.js';
import { finishChanges, RECORD_FIELDS, RedisStore, toRecord, type RecordReply } from './redis-store.js';

/** How long one reaper holds a dead worker (a reaper that dies lets go after this). */
const REAPING_LOCK_MS = 30_000;
const LOAD_CLASSES: readonly LoadClass[] = ['multi', 'single', 'unlimited'];

/** The Redis store of distributed mode. */
export class RedisClusterStore extends RedisStore implements ClusterStore {
  readonly #tokenListeners = new Set<() => void>();
  #tokensSubscribed: Promise<unknown> | undefined;
  readonly #onMessage = (channel: string): void => {
    if (channel !== this.keys.tokens) return;
    for (const listener of [...this.#tokenListeners]) listener();
  };

  registerWorker(registration: WorkerRegistration, ttlMs: number, takeOver = ''): Promise<RegisterOutcome> {
    return this.op(async () => {
      const r = registration;
      const reply = await this.scripts.run<string[]>(
        'jwRegisterWorker',
        r.name,
        r.instance,
        r.pools.join(','),
        r.slots,
        JSON.stringify(r.labels),
        r.host,
        r.pid,
        r.startedAt,
        new Date().toISOString(),
        ttlMs,
        takeOver,
        r.ahead ?? 0,
      );
      return reply[0] === 'ok' ? { registered: true } : { registered: false, previous: reply[1] ?? '' };
    });
  }

  heartbeat(name: string, instance: string, ttlMs: number): Promise<boolean> {
    return this.op(async () => (await this.scripts.run<number>('jwHeartbeat', name, instance, ttlMs, new Date().toISOString())) === 1);
  }

  dropWorker(name: string, instance: string, force: boolean): Promise<DroppedWorker | undefined> {
    return this.op(async () => {
      const reply = await this.scripts.run<string[] | null>('jwDropWorker', name, instance, force ? 'force' : '');
      return reply === null ? undefined : { instance: reply[0]!, running: reply.slice(1) };
    });
  }

  deadWorkers(): Promise<string[]> {
    return this.op(async () => {
      const names = await this.redis.smembers(this.keys.workers);
      if (names.length === 0) return [];
      const pipeline = this.redis.pipeline();
      for (const name of names) pipeline.exists(this.keys.alive(name));
      const alive = (await pipeline.exec()) ?? [];
      return names.filter((_, i) => alive[i]?.[1] === 0);
    });
  }

  lockReaping(name: string): Promise<boolean> {
    return this.op(async () => (await this.redis.set(this.#reapingKey(name), '1', 'PX', REAPING_LOCK_MS, 'NX')) === 'OK');
  }

  unlockReaping(name: string): Promise<void> {
    return this.op(async () => {
      await this.redis.del(this.#reapingKey(name));
    });
  }

  workers(): Promise<RegisteredWorker[]> {
    return this.op(async () => {
      const keys = this.keys;
      const names = (await this.redis.smembers(keys.workers)).sort();
      const pipeline = this.redis.pipeline();
      for (const name of names) {
        pipeline.hgetall(keys.worker(name)).exists(keys.alive(name));
        for (const cls of LOAD_CLASSES) pipeline.scard(keys.load(name, cls));
      }
      const replies = (await pipeline.exec()) ?? [];
      const per = 2 + LOAD_CLASSES.length;
      const workers: RegisteredWorker[] = [];
      names.forEach((name, i) => {
        const at = (k: number): unknown => replies[per * i + k]?.[1];
        const fields = (at(0) ?? {}) as Record<string, string>;
        if (fields.instance === undefined) return;
        let labels: Record<string, string> = {};
        try {
          labels = JSON.parse(fields.labels ?? '{}') as Record<string, string>;
        } catch {
          // A worker from a future version; show it without labels.
        }
        const load = Object.fromEntries(LOAD_CLASSES.map((cls, k) => [cls, Number(at(2 + k) ?? 0)])) as Record<LoadClass, number>;
        workers.push({
          name,
          instance: fields.instance,
          pools: (fields.pools ?? 'ALL').split(','),
          slots: Number(fields.slots ?? 0),
          labels,
          host: fields.host ?? '',
          pid: Number(fields.pid ?? 0),
          startedAt: fields.startedAt ?? '',
          heartbeatAt: fields.heartbeatAt ?? '',
          alive: at(1) === 1,
          load,
        });
      });
      return workers;
    });
  }

  liveCapacity(): Promise<{ workers: number; slots: number }> {
    return this.op(async () => {
      const names = await this.redis.smembers(this.keys.workers);
      const pipeline = this.redis.pipeline();
      for (const name of names) pipeline.exists(this.keys.alive(name)).hget(this.keys.worker(name), 'slots');
      const replies = (await pipeline.exec()) ?? [];
      let workers = 0;
      let slots = 0;
      names.forEach((_, i) => {
        if (replies[2 * i]?.[1] !== 1) return;
        workers += 1;
        slots += Number(replies[2 * i + 1]?.[1] ?? 0);
      });
      return { workers, slots };
    });
  }

  waitingFirstPools(limit: number): Promise<string[]> {
    return this.op(async () => {
      const pools: string[] = [];
      for (const key of [this.keys.pending, this.keys.parked]) {
        const ids = await this.redis.zrange(key, 0, limit - 1);
        if (ids.length === 0) continue;
        const lookup = this.redis.pipeline();
        for (const id of ids) lookup.hget(this.keys.job(id), 'ppools');
        for (const [, value] of (await lookup.exec()) ?? []) {
          if (typeof value === 'string') pools.push(value.split(',')[0] || 'ALL');
        }
      }
      return pools;
    });
  }

  orphans(name: string): Promise<Map<string, JobProcess | null>> {
    return this.op(async () => {
      const orphans = new Map<string, JobProcess | null>();
      for (const [id, text] of Object.entries(await this.redis.hgetall(this.keys.orphans(name)))) {
        try {
          orphans.set(id, JSON.parse(text) as JobProcess);
        } catch {
          orphans.set(id, null);
        }
      }
      return orphans;
    });
  }

  forgetOrphans(name: string, ids: readonly string[]): Promise<void> {
    return this.op(async () => {
      if (ids.length > 0) await this.redis.hdel(this.keys.orphans(name), ...ids);
    });
  }

  retryJob(id: string, reason: string): Promise<JobRecord | undefined> {
    return this.change('jwRetryJob', id, reason);
  }

  runningAttempt(id: string, node: string): Promise<number | undefined> {
    return this.op(async () => {
      const [attempt, ...fields] = await this.redis.hmget(this.keys.job(id), 'attempt', ...RECORD_FIELDS);
      if (fields[0] === null) return undefined;
      const job = toRecord(fields as RecordReply);
      return job.status === 'Running' && job.node === node ? Number(attempt ?? 1) : undefined;
    });
  }

  handedToExecutor(node: string): Promise<JobRecord[]> {
    return this.op(async () => {
      const ids = new Set<string>();
      for (const cls of LOAD_CLASSES) for (const id of await this.redis.smembers(this.keys.load(node, cls))) ids.add(id);
      const jobs: JobRecord[] = [];
      for (const id of ids) {
        const [placed, state, ...fields] = await this.redis.hmget(this.keys.job(id), 'placed', 'executorState', ...RECORD_FIELDS);
        if (placed !== node || !state || fields[0] === null) continue;
        const job = toRecord(fields as RecordReply);
        if (job.status === 'Queued') jobs.push(job);
      }
      return jobs.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
    });
  }

  placedJob(id: string, node: string): Promise<{ job: JobRecord; attempt: number } | undefined> {
    return this.op(async () => {
      const [placed, attempt, ...fields] = await this.redis.hmget(this.keys.job(id), 'placed', 'attempt', ...RECORD_FIELDS);
      if (placed !== node || fields[0] === null) return undefined;
      const job = toRecord(fields as RecordReply);
      return job.status === 'Queued' ? { job, attempt: Number(attempt ?? 1) } : undefined;
    });
  }

  finishRun(id: string, fields: FinishFields, run: RunClaim): Promise<JobRecord | undefined> {
    return this.op(async () => {
      const changes = finishChanges(fields);
      const reply = await this.scripts.run<RecordReply | null>('jwFinishRun', id, JSON.stringify(changes.info), changes.result, run.node, String(run.attempt));
      return reply === null ? undefined : toRecord(reply);
    });
  }

  finishRunAndPlace(id: string, fields: FinishFields, run: RunClaim, pass: PlacementPass): Promise<{ job: JobRecord; placement: Placement } | undefined> {
    return this.op(async () => {
      const changes = finishChanges(fields);
      const reply = await this.scripts.run<[RecordReply, string[]] | null>('jwFinishRun', id, JSON.stringify(changes.info), changes.result, run.node, String(run.attempt), pass.scan, pass.patienceMs, pass.unlimitedSlots);
      return reply === null ? undefined : { job: toRecord(reply[0]), placement: placementOf(reply[1]) };
    });
  }

  releaseJob(node: string, id: string): Promise<void> {
    return this.op(async () => {
      await this.scripts.run('jwReleaseJob', node, id);
    });
  }

  staleHandOvers(node: string, olderThanMs: number, skip: ReadonlySet<string>): Promise<HandOver[]> {
    return this.op(async () => {
      const reply = await this.scripts.run<string[]>('jwStaleHandOvers', node, olderThanMs, ...skip);
      const stale: HandOver[] = [];
      for (let i = 0; i < reply.length; i += 2) stale.push({ jobId: reply[i]!, attempt: Number(reply[i + 1]) });
      return stale;
    });
  }

  resyncJob(id: string): Promise<void> {
    return this.streams.resync(id, { output: false });
  }

  placeJobs(pass: PlacementPass): Promise<Placement> {
    return this.op(async () => {
      return placementOf(await this.scripts.run<string[]>('jwPlaceJobs', pass.scan, pass.patienceMs, pass.unlimitedSlots, pass.quick === true ? 'quick' : 'full'));
    });
  }

  handOvers(onError: (err: unknown) => void): HandOvers {
    return new BullHandOvers(this.redis, this.keys.bull, onError);
  }

  takeHandOvers(node: string, options: TakeOptions, handle: (jobId: string) => Promise<void>): Promise<HandOverConsumer> {
    return takeHandOvers(this.redis, this.keys.bull, node, options, handle);
  }

  announceServer(id: string, url: string, ttlMs: number): Promise<void> {
    return this.op(async () => {
      await this.redis.multi().set(this.keys.server(id), url, 'PX', ttlMs).sadd(this.keys.servers, id).exec();
    });
  }

  withdrawServer(id: string): Promise<void> {
    return this.op(async () => {
      await this.redis.multi().del(this.keys.server(id)).srem(this.keys.servers, id).exec();
    });
  }

  serverUrls(): Promise<string[]> {
    return this.op(async () => {
      const ids = await this.redis.smembers(this.keys.servers);
      if (ids.length === 0) return [];
      const urls = await this.redis.mget(ids.map((id) => this.keys.server(id)));
      const gone = ids.filter((_, i) => urls[i] === null);
      if (gone.length > 0) await this.redis.srem(this.keys.servers, ...gone);
      return urls.filter((u): u is string => typeof u === 'string').sort();
    });
  }

  shareTokens(entries: ReadonlyMap<string, string>, revoked: readonly string[]): Promise<void> {
    return this.op(async () => {
      if (entries.size === 0 && revoked.length === 0) return;
      const multi = this.redis.multi();
      if (revoked.length > 0) multi.hdel(this.keys.tokens, ...revoked);
      if (entries.size > 0) multi.hset(this.keys.tokens, ...[...entries].flat());
      await multi.exec();
      await this.redis.publish(this.keys.tokens, 'changed');
    });
  }

  readTokens(): Promise<Map<string, string>> {
    return this.op(async () => new Map(Object.entries(await this.redis.hgetall(this.keys.tokens))));
  }

  async onTokensChanged(listener: () => void): Promise<() => void> {
    this.#tokenListeners.add(listener);
    if (!this.#tokensSubscribed) {
      this.subscriber.on('message', this.#onMessage);
      this.#tokensSubscribed = this.subscriber.subscribe(this.keys.tokens);
    }
    await this.#tokensSubscribed;
    return () => {
      this.#tokenListeners.delete(listener);
    };
  }

  #reapingKey(name: string): string {
    return `${this.keys.worker(name)}:reaping`;
  }
}

/** A placement pass's answer (see `jwPlaceJobs`). */
function placementOf(reply: string[]): Placement {
  const placed: PlacedJob[] = [];
  for (let i = 1; i < reply.length; i += 5) placed.push({ jobId: reply[i]!, node: reply[i + 1]!, attempt: Number(reply[i + 2]), slotClass: reply[i + 3]!, pools: reply[i + 4]! });
  return { placed, more: reply[0] === '1' };
}
