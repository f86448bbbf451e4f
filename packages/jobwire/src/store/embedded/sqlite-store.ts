/**
 * The embedded {@link Store}: job records, groups and events in one SQLite database.
 *
 * Each method that changes something changes the row(s) and appends the matching event(s) all
 * or nothing; listeners hear the events synchronously once it has committed, so a listener that
 * reads the store sees the change. Changes are committed in groups: the writes asked for in one
 * turn of the event loop run in one transaction (each in a savepoint of its own, so a failing
 * one takes back only itself), committed before the next turn's I/O; a commit costs far more
 * than the changes (a WAL append each), and a burst of submits or job ends then pays one.
 * Writes apply in call order, and every read and the synchronous operations run the writes
 * still waiting first, so a read always sees the writes asked for before it.
 * @module
 */
import Database from 'better-sqlite3';
import {
  BadRequestError,
  ConflictError,
  FINAL_STATUSES,
  NotFoundError,
  type EventVerb,
  type GroupInfo,
  type InfoObject,
  type JobDescription,
  type JobEvent,
  type JobInfo,
  type JobStatus,
} from '@jobwire/client';
import type { JobProcess } from '../../job-process.js';
import { finalStatusOf, type FileBlobs, type FinishFields, type JobRecord, type ListJobsQuery, type LostReason, type NewJob, type RunningFields, type Store, type StoredEvent } from '../types.js';
import { ancestorPaths, checkGroupPath, decodeCursor, encodeCursor, resultText } from '../checks.js';
import { checkJobId, checkLimit, closedError, settle, toStoreError } from './errors.js';
import type { FileStreamLog } from './file-stream-log.js';
import { ListenerSet, type ListenerErrorHandler } from './listeners.js';
import { migrate } from './migrations.js';
import { Statements, type EventRow, type GroupRow, type JobRow } from './sql.js';

/** Settings of {@link SqliteStore}, filled in by `openEmbeddedStore`. */
export interface SqliteStoreSettings {
  /** Path of the database file. */
  dbPath: string;
  /** How long a write waits for a lock held by another connection, in milliseconds. */
  busyTimeoutMs: number;
  /** The store's stream log (closed with the store). */
  streams: FileStreamLog;
  /** Where uploads and output files are kept. */
  blobs: FileBlobs;
  /** Receives errors thrown by `onEvent` listeners. */
  onListenerError: ListenerErrorHandler;
}

const FINAL = new Set<string>(FINAL_STATUSES);

/** A write waiting for its group commit. */
interface QueuedWrite {
  change: () => unknown;
  afterCommit: (() => void) | undefined;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** The SQLite-backed {@link Store}. */
export class SqliteStore implements Store {
  readonly streams: FileStreamLog;
  readonly blobs: FileBlobs;
  readonly #db: Database.Database;
  readonly #sql: Statements;
  readonly #listeners: ListenerSet<StoredEvent>;
  /** Runs a function in a BEGIN IMMEDIATE transaction; built once, as it is on every write. */
  readonly #transaction: Database.Transaction<(change: () => unknown) => unknown>;
  /** Events appended by the transaction in progress, announced once it commits. */
  #pending: StoredEvent[] = [];
  /** Writes waiting for the group commit of this turn (see the module documentation). */
  #queued: QueuedWrite[] = [];
  /** Committed events not yet heard by the listeners, oldest first (see {@link #announce}). */
  readonly #unannounced: StoredEvent[] = [];
  #announcing = false;
  #closed = false;

  constructor(settings: SqliteStoreSettings) {
    this.streams = settings.streams;
    this.blobs = settings.blobs;
    this.#listeners = new ListenerSet(settings.onListenerError);
    const db = new Database(settings.dbPath);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(settings.busyTimeoutMs))}`);
      db.pragma('foreign_keys = ON');
      migrate(db);
      this.#sql = new Statements(db);
      this.#transaction = db.transaction((change: () => unknown) => change());
    } catch (error) {
      db.close();
      throw error;
    }
    this.#db = db;
  }

  createJob(job: NewJob): Promise<JobRecord> {
    return this.#write(() => {
      checkJobId(job.id);
      checkGroupPath(job.group);
      for (const path of ancestorPaths(job.group)) {
        if (this.#sql.insertGroupIfMissing.run({ owner: job.owner, path, createdAt: job.createdAt }).changes > 0) {
          this.#appendEvent('add', groupInfo({ owner: job.owner, path, created_at: job.createdAt }));
        }
      }
      let row: JobRow;
      try {
        row = this.#sql.insertJob.get({
          id: job.id,
          owner: job.owner,
          name: job.name,
          group: job.group,
          queue: job.queue,
          url: job.url,
          interactive: job.interactive ? 1 : 0,
          tty: job.tty ? 1 : 0,
          createdAt: job.createdAt,
          description: JSON.stringify(job.description),
          jobToken: job.jobToken,
        }) as JobRow;
      } catch (error) {
        if (isConstraintError(error, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
          throw new ConflictError(`a job with id ${job.id} exists already`, { cause: error });
        }
        throw error;
      }
      return this.#changed('add', row);
    });
  }

  getJob(id: string, owner?: string): Promise<JobRecord | undefined> {
    return this.#read(() => {
      const row = (owner === undefined ? this.#sql.selectJob.get(id) : this.#sql.selectOwnedJob.get(id, owner)) as JobRow | undefined;
      return row === undefined ? undefined : toRecord(row);
    });
  }

  stdinTarget(id: string, owner: string): Promise<{ interactive: boolean; status: JobStatus } | undefined> {
    return this.#read(() => {
      const row = this.#sql.selectStdinTarget.get(id, owner) as { interactive: number; status: string } | undefined;
      return row === undefined ? undefined : { interactive: row.interactive !== 0, status: row.status as JobStatus };
    });
  }

  listJobs(query: ListJobsQuery): Promise<{ items: JobInfo[]; next?: string }> {
    return this.#read(() => {
      const limit = checkLimit(query.limit);
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      const group = query.group !== undefined && query.group !== '';
      const status = query.status !== undefined && query.status.length > 0;
      const name = query.name !== undefined;
      const rows = this.#sql.listJobs({ group, status, name, after: after !== undefined }).all({
        owner: query.owner,
        limit: limit + 1,
        ...(group ? { group: query.group } : {}),
        ...(status ? { statuses: JSON.stringify(query.status) } : {}),
        ...(name ? { name: query.name } : {}),
        ...(after !== undefined ? { afterCreatedAt: after.createdAt, afterId: after.id } : {}),
      }) as JobRow[];
      const more = rows.length > limit;
      if (more) rows.length = limit;
      const items = rows.map((row) => toInfo(toRecord(row)));
      const last = rows[rows.length - 1];
      return more && last !== undefined ? { items, next: encodeCursor(last.created_at, last.id) } : { items };
    });
  }

  markRunning(id: string, fields: RunningFields): Promise<JobRecord | undefined> {
    return this.#write(() => {
      const process = fields.process == null ? null : JSON.stringify(fields.process);
      const row = this.#sql.markRunning.get({ id, startedAt: fields.startedAt, pid: fields.pid, process, node: fields.node }) as JobRow | undefined;
      return row === undefined ? undefined : this.#changed('update', row);
    });
  }

  setExecutorState(id: string, state: Record<string, unknown>): Promise<void> {
    return this.#write(() => {
      this.#sql.setExecutorState.run({ id, state: JSON.stringify(state) });
    });
  }

  executorState(id: string): Promise<Record<string, unknown> | undefined> {
    return this.#read(() => {
      const text = this.#sql.selectExecutorState.get(id) as string | null | undefined;
      return text == null ? undefined : (JSON.parse(text) as Record<string, unknown>);
    });
  }

  setProgress(id: string, message: string): Promise<JobRecord | undefined> {
    return this.#write(() => {
      const row = this.#sql.setProgress.get({ id, message }) as JobRow | undefined;
      return row === undefined ? undefined : this.#changed('update', row);
    });
  }

  /**
   * Sets why a Queued job waits. Setting the reason it already has changes nothing and appends
   * no event (a scheduler may re-state reasons on every pass); the job is still returned.
   */
  setReason(id: string, reason: string | null): Promise<JobRecord | undefined> {
    return this.#write(() => {
      const row = this.#sql.setReason.get({ id, reason }) as JobRow | undefined;
      if (row !== undefined) return this.#changed('update', row);
      const current = this.#sql.selectJob.get(id) as JobRow | undefined;
      return current?.status === 'Queued' ? toRecord(current) : undefined;
    });
  }

  finishJob(id: string, fields: FinishFields): Promise<JobRecord | undefined> {
    return this.#write(() => {
      if (!FINAL.has(fields.status)) {
        throw new BadRequestError(`finishJob needs a final status, got ${JSON.stringify(fields.status)}`, { field: 'status' });
      }
      const { result, error } = resultText(fields.result, fields.error ?? null);
      const row = this.#sql.finishJob.get({
        id,
        status: fields.status,
        exitCode: fields.exitCode ?? null,
        signal: fields.signal ?? null,
        error,
        result,
        endedAt: fields.endedAt,
      }) as JobRow | undefined;
      return row === undefined ? undefined : this.#changed('update', row);
    });
  }

  /** Deletes a final job and its streams. A missing job is NotFound; a non-final one a Conflict. */
  deleteJob(id: string): Promise<void> {
    return this.#write(() => {
      const row = this.#sql.deleteFinalJob.get(id) as JobRow | undefined;
      if (row === undefined) {
        const current = this.#sql.selectJob.get(id) as JobRow | undefined;
        if (current === undefined) throw new NotFoundError(`no job ${id}`);
        throw new ConflictError(`job ${id} is ${current.status}; only a finished job can be deleted`);
      }
      this.#changed('remove', row);
    }, () => this.streams.removeNow(id));
  }

  queuedJobs(queue: string, limit: number): Promise<JobRecord[]> {
    return this.#read(() => (this.#sql.selectQueued.all(queue, checkLimit(limit)) as JobRow[]).map(toRecord));
  }

  queueCounts(): Promise<Map<string, { running: number; queued: number }>> {
    return this.#read(() => {
      const counts = new Map<string, { running: number; queued: number }>();
      for (const row of this.#sql.countActiveByQueue.all() as Array<{ queue: string; status: JobStatus; n: number }>) {
        let entry = counts.get(row.queue);
        if (entry === undefined) counts.set(row.queue, (entry = { running: 0, queued: 0 }));
        if (row.status === 'Running') entry.running = row.n;
        else entry.queued = row.n;
      }
      return counts;
    });
  }

  runningJobs(node?: string): Promise<JobRecord[]> {
    return this.#read(() => this.#running(node).map(toRecord));
  }

  /**
   * Every Running job (of `node`, when given) becomes Lost with `reason`. Its output is closed
   * first, so that, as for any job, the status is final only once the output is complete and
   * attached clients get their last frame.
   */
  loseRunningJobs(reason: LostReason, node?: string): Promise<JobRecord[]> {
    return settle(() => {
      this.#checkOpen();
      this.#flush();
      const running = this.#running(node).map(toRecord);
      const errors = running.map((job) => (typeof reason === 'string' ? reason : reason(job)));
      // Nothing runs in between (all synchronous), so the close records what the record becomes.
      running.forEach((job, i) => this.streams.closeOutputNow(job.id, { ...finalStatusOf(job), status: 'Lost', error: errors[i]! }));
      return this.#writeNow(() => {
        const endedAt = new Date().toISOString();
        const lost: JobRecord[] = [];
        for (const [i, job] of running.entries()) {
          const error = errors[i]!;
          const row = this.#sql.loseJob.get({ id: job.id, error, endedAt }) as JobRow | undefined;
          if (row !== undefined) lost.push(this.#changed('update', row));
        }
        return lost;
      });
    });
  }

  /** Running rows (of `node`, when given), oldest first. */
  #running(node: string | undefined): JobRow[] {
    return (node === undefined ? this.#sql.selectRunning.all() : this.#sql.selectRunningOfNode.all(node)) as JobRow[];
  }

  listGroups(owner: string, under?: string): Promise<GroupInfo[]> {
    return this.#read(() => {
      const rows = (
        under === undefined || under === '' ? this.#sql.selectGroups.all({ owner }) : this.#sql.selectGroupsUnder.all({ owner, group: under })
      ) as GroupRow[];
      return rows.map(groupInfo);
    });
  }

  readEvents(owner: string, group: string, sinceId: number, limit: number): Promise<JobEvent[]> {
    return this.#read(() => {
      if (typeof sinceId !== 'number' || !Number.isSafeInteger(sinceId)) {
        throw new BadRequestError(`since must be an integer, got ${String(sinceId)}`, { field: 'since' });
      }
      const params = { owner, sinceId, limit: checkLimit(limit), group };
      const rows = (group === '' ? this.#sql.selectEvents.all(params) : this.#sql.selectEventsUnder.all(params)) as EventRow[];
      return rows.map((row) => ({ id: row.id, verb: row.verb as EventVerb, info: JSON.parse(row.info) as InfoObject }));
    });
  }

  lastEventId(): Promise<number> {
    return this.#read(() => this.#sql.selectLastEventId.get() as number);
  }

  onEvent(listener: (event: StoredEvent) => void): () => void {
    return this.#listeners.add(listener);
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.#closed) return;
      this.#flush();
      this.#closed = true;
      try {
        this.streams.close();
      } finally {
        this.#db.close();
      }
    });
  }

  /** Runs a read now, after the writes still waiting; its outcome as a promise. */
  #read<T>(operation: () => T): Promise<T> {
    return settle(() => {
      this.#checkOpen();
      this.#flush();
      return operation();
    });
  }

  /** Queues a write for this turn's group commit (see {@link #flush}); its outcome as a promise. */
  #write<T>(change: () => T, afterCommit?: () => void): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    return new Promise<T>((resolve, reject) => {
      if (this.#queued.length === 0) setImmediate(() => this.#flush());
      this.#queued.push({ change, afterCommit, resolve: resolve as (value: unknown) => void, reject });
    });
  }

  /**
   * Commits the queued writes in one transaction, each in a savepoint of its own (a nested
   * better-sqlite3 transaction), then, in call order, their `afterCommit`s, their events and
   * their promises. A failed write rejects alone; a failed commit rejects them all.
   */
  #flush(): void {
    const writes = this.#queued;
    if (writes.length === 0) return;
    this.#queued = [];
    const outcomes: Array<{ value?: unknown; events: StoredEvent[]; failed?: { error: unknown } }> = [];
    if (writes.length === 1) {
      // Alone in its turn: its own transaction, no savepoint needed.
      const [write] = writes as [QueuedWrite];
      try {
        write.resolve(this.#writeNow(write.change, write.afterCommit));
      } catch (error) {
        write.reject(toStoreError(error));
      }
      return;
    }
    try {
      this.#transaction.immediate(() => {
        for (const write of writes) {
          this.#pending = [];
          try {
            const value = this.#transaction(write.change);
            outcomes.push({ value, events: this.#pending });
          } catch (error) {
            outcomes.push({ events: [], failed: { error } });
          }
        }
      });
    } catch (error) {
      this.#pending = [];
      for (const write of writes) write.reject(toStoreError(error));
      return;
    }
    this.#pending = [];
    // Every write's work outside the database first, then all the events at once (so that a
    // commit a listener causes is heard after them), then the promises.
    const failures = writes.map((write, i) => {
      if (outcomes[i]!.failed !== undefined) return outcomes[i]!.failed;
      try {
        write.afterCommit?.();
      } catch (error) {
        return { error };
      }
      return undefined;
    });
    this.#announce(outcomes.flatMap((outcome) => outcome.events));
    writes.forEach((write, i) => {
      const failure = failures[i];
      if (failure !== undefined) write.reject(toStoreError(failure.error));
      else write.resolve(outcomes[i]!.value);
    });
  }

  /**
   * Runs `change` in one transaction now (after the queued writes), then `afterCommit` (work
   * outside the database, such as deleting files, that listeners should find done), then
   * announces the events. An error of `afterCommit` is thrown only after the events went out, as
   * the change itself stands.
   */
  #writeNow<T>(change: () => T, afterCommit?: () => void): T {
    this.#flush();
    this.#pending = [];
    let result: T;
    try {
      // IMMEDIATE takes the write lock up front, so busy_timeout applies rather than a
      // deadlock-avoiding SQLITE_BUSY when another connection writes meanwhile.
      result = this.#transaction.immediate(change) as T;
    } catch (error) {
      this.#pending = [];
      throw error;
    }
    const events = this.#pending;
    this.#pending = [];
    let failure: { error: unknown } | undefined;
    try {
      afterCommit?.();
    } catch (error) {
      failure = { error };
    }
    this.#announce(events);
    if (failure !== undefined) throw failure.error;
    return result;
  }

  /**
   * Tells the listeners of committed events in commit order. A listener may cause a commit (a
   * write of its own, or a read that runs waiting writes first); its events then wait until the
   * listeners have heard the events committed before them, so event ids only grow.
   */
  #announce(events: StoredEvent[]): void {
    this.#unannounced.push(...events);
    if (this.#announcing) return;
    this.#announcing = true;
    try {
      for (let event = this.#unannounced.shift(); event !== undefined; event = this.#unannounced.shift()) this.#listeners.emit(event);
    } finally {
      this.#announcing = false;
    }
  }

  /** Appends the event of a changed job row (within the transaction) and returns the record. */
  #changed(verb: EventVerb, row: JobRow): JobRecord {
    const record = toRecord(row);
    this.#appendEvent(verb, toInfo(record));
    return record;
  }

  #appendEvent(verb: EventVerb, info: InfoObject): void {
    const group = info.type === 'job' ? info.group : info.path;
    const id = Number(
      this.#sql.insertEvent.run({ owner: info.owner, group, verb, info: JSON.stringify(info), at: new Date().toISOString() }).lastInsertRowid,
    );
    this.#pending.push({ id, verb, info, owner: info.owner, group });
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }
}

/** A row as a record: JSON columns parsed, flags as booleans. */
function toRecord(row: JobRow): JobRecord {
  return {
    id: row.id,
    type: 'job',
    name: row.name,
    group: row.grp,
    owner: row.owner,
    status: row.status as JobStatus,
    queue: row.queue,
    progress: row.progress,
    exitCode: row.exit_code,
    signal: row.signal,
    error: row.error,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    url: row.url,
    interactive: row.interactive !== 0,
    tty: row.tty !== 0,
    node: row.node,
    reason: row.reason,
    createdAt: row.created_at,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    description: JSON.parse(row.description) as JobDescription,
    jobToken: row.job_token,
    pid: row.pid,
    process: row.process === null ? null : (JSON.parse(row.process) as JobProcess),
  };
}

/** What others may see of a job: no description (lists and events stay small), no secrets. */
function toInfo(record: JobRecord): JobInfo {
  const { description: _description, jobToken: _jobToken, pid: _pid, process: _process, ...info } = record;
  return info;
}

/**
 * A group row as its info object. The id is stable and unique per owner, and cannot clash with
 * a job's (job ids hold no ':', see `checkJobId`).
 */
function groupInfo(row: GroupRow): GroupInfo {
  const cut = row.path.lastIndexOf(':');
  return {
    id: `group:${row.path}`,
    type: 'group',
    name: cut < 0 ? row.path : row.path.slice(cut + 1),
    path: row.path,
    parent: cut < 0 ? null : row.path.slice(0, cut),
    owner: row.owner,
    createdAt: row.created_at,
  };
}

function isConstraintError(error: unknown, code: string): boolean {
  return error instanceof Database.SqliteError && error.code === code;
}
