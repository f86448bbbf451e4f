/**
 * What a server does with jobs, independent of the protocol that asked: the REST routes, the
 * WebSocket endpoints and the gRPC service all call this one service, so validation, ownership
 * and state rules live in one place. The store stays behind it: live sessions on a job
 * (`session.ts`) are opened through it too.
 * @module
 */
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { basename } from 'node:path';
import {
  BadRequestError,
  ConflictError,
  isFinal,
  NotFoundError,
  UnauthorizedError,
  type ExecutorInfo,
  type GroupInfo,
  type JobDescription,
  type JobEvent,
  type JobInfo,
  type JobStatus,
  type OutputChannel,
  type QueueStatus,
} from '@jobwire/client';
import { finalStatusOf, type BlobEntry, type ChannelChunksOptions, type FinalStatus, type JobRecord, type Store, type StoredEvent, type StreamSizes } from '../store/types.js';
import { outputFolder, storeUpload, uploadFolder, uploadSize } from './sandbox.js';
import { setLongTimeout } from '../timers.js';
import type { JobScheduler } from './scheduler.js';
import { describeIssue, jobDescriptionSchema, parseJobDescription } from './schema.js';
import { LiveSession, StdinClosedError, type LiveSessionOptions, type SessionHandlers } from './session.js';

/** Options of {@link JobService}. */
export interface JobServiceOptions {
  store: Store;
  /** Checks, admits, runs or places the jobs, and says what the queues are (the server's backend). */
  scheduler: JobScheduler;
  /** Queue used when a description names none. @defaultValue "multi" */
  defaultQueue?: string;
}

/** Most jobs one {@link JobService.submitMany} call (`POST /v1/jobs/batch`) may submit. */
export const MAX_BATCH_JOBS = 1000;

const STATUSES: readonly JobStatus[] = ['Queued', 'Running', 'Success', 'Failed', 'Cancelled', 'Lost'];

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Strips server-only fields from a record. */
export function publicInfo(record: JobRecord, withDescription = true): JobInfo {
  const { jobToken: _t, pid: _p, process: _process, description, ...info } = record;
  return withDescription ? { ...info, description } : info;
}

/** Job operations on behalf of a user. */
export class JobService {
  private readonly store: Store;
  /** The executor adaptor jobs run with, as Xenon clients see it (see {@link JobScheduler.adaptor}). */
  readonly adaptor: string;
  private readonly scheduler: JobScheduler;
  private readonly defaultQueue: string;

  constructor(options: JobServiceOptions) {
    this.store = options.store;
    this.scheduler = options.scheduler;
    this.adaptor = options.scheduler.adaptor;
    this.defaultQueue = options.defaultQueue ?? 'multi';
  }

  /** Validates and queues a job for `owner`. */
  async submit(owner: string, input: unknown): Promise<JobRecord> {
    const description = await this.#accept(owner, parseJobDescription(input));
    await this.scheduler.admit(owner);
    return this.#queue(owner, description);
  }

  /**
   * Validates and queues many jobs for `owner` (at most {@link MAX_BATCH_JOBS}), in order. All
   * or nothing: every description is checked first, and one that is wrong is refused with a
   * BadRequestError whose field starts `jobs.<index>`, with nothing queued. The records are
   * created in the same turn, so the embedded store commits them in one transaction.
   */
  async submitMany(owner: string, inputs: unknown): Promise<JobRecord[]> {
    if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_BATCH_JOBS) {
      throw new BadRequestError(`jobs: an array of 1 to ${MAX_BATCH_JOBS} job descriptions`, { code: 'invalid_description', field: 'jobs' });
    }
    return this.submitAll(
      owner,
      inputs.map((input: unknown, index) => [`jobs.${index}`, input] as const),
    );
  }

  /**
   * {@link submitMany} without its count limit, each description under a field root of the
   * caller's (a network's jobs: `jobs.NAME`): all are checked before any is queued, so a wrong
   * one leaves nothing behind.
   */
  async submitAll(owner: string, inputs: readonly (readonly [root: string, input: unknown])[]): Promise<JobRecord[]> {
    const descriptions: JobDescription[] = [];
    for (const [root, input] of inputs) {
      const parsed = jobDescriptionSchema.safeParse(input);
      if (!parsed.success) throw describeIssue(parsed.error.issues[0]!, root);
      try {
        descriptions.push(await this.#accept(owner, parsed.data as JobDescription));
      } catch (err) {
        if (!(err instanceof BadRequestError)) throw err;
        const code = err.code as NonNullable<ConstructorParameters<typeof BadRequestError>[1]>['code'];
        throw new BadRequestError(`${root}: ${err.message}`, { code, field: err.field === undefined ? root : `${root}.${err.field}`, cause: err });
      }
    }
    await this.scheduler.admit(owner);
    return Promise.all(descriptions.map((description) => this.#queue(owner, description)));
  }

  /** Checks a parsed description for `owner` and fills in its defaults. */
  async #accept(owner: string, description: JobDescription): Promise<JobDescription> {
    if (description.tty && !description.interactive) description.interactive = true;
    // Checked before the default queue is filled in: the check may give the executor's own (a Slurm partition).
    this.scheduler.check(description, owner);
    description.queueName ??= this.defaultQueue;
    for (const [name, id] of Object.entries(description.inputFiles ?? {})) {
      if ((await uploadSize(this.store.blobs, owner, id)) === undefined) {
        throw new BadRequestError(`inputFiles.${name}: no upload ${id} (upload the file first: POST /v1/uploads)`, { code: 'invalid_description', field: `inputFiles.${name}` });
      }
    }
    return description;
  }

  /** Creates the record of a checked job and hands it to the scheduler. */
  async #queue(owner: string, description: JobDescription): Promise<JobRecord> {
    const name = description.name ?? (description.executable ? basename(description.executable) : 'js');
    const record = await this.store.createJob({
      id: randomUUID(),
      owner,
      name,
      group: description.group ?? '',
      queue: description.queueName!,
      description,
      interactive: !!description.interactive,
      tty: !!description.tty,
      url: description.url ?? null,
      jobToken: randomBytes(24).toString('base64url'),
      createdAt: new Date().toISOString(),
    });
    this.scheduler.queued(record);
    return record;
  }

  /** Stores an upload of `owner` from `chunks` (streamed, size-limited); returns its id and size. */
  async upload(owner: string, chunks: AsyncIterable<Uint8Array>): Promise<{ id: string; size: number }> {
    const id = randomUUID();
    const size = await storeUpload(this.store.blobs, owner, id, chunks);
    return { id, size };
  }

  /** The output files a job of `owner` kept, by name. */
  async outputFiles(owner: string, id: string): Promise<BlobEntry[]> {
    const job = await this.get(owner, id);
    return this.store.blobs.list(outputFolder(job.id));
  }

  /** One output file of a job of `owner`; NotFoundError when the job kept none of that name. */
  async outputFile(owner: string, id: string, name: string): Promise<Buffer> {
    const job = await this.get(owner, id);
    const data = await this.store.blobs.read(outputFolder(job.id), name);
    if (data === undefined) throw new NotFoundError(`job ${job.id} kept no output file ${JSON.stringify(name)}`);
    return data;
  }

  /** A job of `owner`; NotFoundError otherwise (another owner's job looks the same as none). */
  async get(owner: string, id: string): Promise<JobRecord> {
    const job = await this.store.getJob(id, owner);
    if (!job) throw new NotFoundError(`no job ${JSON.stringify(id)}`);
    return job;
  }

  /** A job of `owner`, or undefined (another owner's job looks the same as none). */
  find(owner: string, id: string): Promise<JobRecord | undefined> {
    return this.store.getJob(id, owner);
  }

  /** Lists jobs of `owner`. */
  async list(owner: string, query: { group?: string; status?: string; name?: string; limit?: number; cursor?: string }): Promise<{ items: JobInfo[]; next?: string }> {
    let status: JobStatus[] | undefined;
    if (query.status) {
      status = query.status.split(',').map((s) => s.trim()) as JobStatus[];
      const bad = status.find((s) => !STATUSES.includes(s));
      if (bad !== undefined) throw new BadRequestError(`status: unknown status ${JSON.stringify(bad)} (one of ${STATUSES.join(', ')})`, { field: 'status' });
    }
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new BadRequestError('limit: an integer from 1 to 1000', { field: 'limit' });
    return this.store.listJobs({
      owner,
      limit,
      ...(query.group ? { group: query.group } : {}),
      ...(status ? { status } : {}),
      ...(query.name ? { name: query.name } : {}),
      ...(query.cursor ? { cursor: query.cursor } : {}),
    });
  }

  /** Cancels a job: a Queued one at once, a Running one by stopping its process. */
  async cancel(owner: string, id: string): Promise<JobRecord> {
    const job = await this.get(owner, id);
    if (isFinal(job.status)) return job;
    if (job.status === 'Queued') {
      const done = await this.store.finishJob(id, { status: 'Cancelled', error: 'cancelled before it started', endedAt: new Date().toISOString() });
      if (done) {
        await this.store.streams.closeOutput(id, finalStatusOf(done));
        return done;
      }
    }
    await this.store.streams.sendControl(id, { type: 'cancel' });
    return (await this.store.getJob(id, owner)) ?? job;
  }

  /** Deletes a final job with its output. */
  async delete(owner: string, id: string): Promise<void> {
    const job = await this.get(owner, id);
    if (!isFinal(job.status)) throw new ConflictError(`job ${id} is ${job.status}; cancel it before deleting it`);
    await this.store.deleteJob(id);
    await this.store.blobs.remove(outputFolder(id));
    for (const upload of Object.values(job.description.inputFiles ?? {})) await this.store.blobs.remove(uploadFolder(owner, upload));
  }

  /** Checks that job `id` of `owner` exists, is interactive and has not ended (the store's light read when it has one). */
  private async interactiveJob(owner: string, id: string): Promise<void> {
    const job = this.store.stdinTarget !== undefined ? await this.store.stdinTarget(id, owner) : await this.store.getJob(id, owner);
    if (!job) throw new NotFoundError(`no job ${JSON.stringify(id)}`);
    if (!job.interactive) throw new ConflictError(`job ${id} is not interactive: its stdin is closed`);
    if (isFinal(job.status)) throw new StdinClosedError(`job ${id} has ended (${job.status})`);
  }

  /**
   * Appends stdin at `offset` (default: the current end). Returns the accepted length. Every
   * transport writes through here: NotFoundError for a job that is not `owner`'s, ConflictError
   * for one that is not interactive or for a gap in the offsets, {@link StdinClosedError} (a
   * ConflictError) when the job can read no more input.
   */
  async writeStdin(owner: string, id: string, data: Uint8Array, offset?: number): Promise<number> {
    await this.interactiveJob(owner, id);
    const at = offset ?? (await this.store.streams.sizes(id)).stdin;
    try {
      return await this.store.streams.appendStdin(id, at, data);
    } catch (err) {
      // The log refuses a gap and an append after close alike; its flag tells them apart (it
      // never goes back, so a refusal for close always finds it set).
      if (err instanceof ConflictError && (await this.store.streams.sizes(id).catch(() => undefined))?.stdinClosed) throw new StdinClosedError(err.message, { cause: err });
      throw err;
    }
  }

  /** Ends stdin; idempotent. StdinClosedError when the job has ended. */
  async closeStdin(owner: string, id: string): Promise<number> {
    await this.interactiveJob(owner, id);
    return this.store.streams.closeStdin(id);
  }

  /** Resizes the terminal of a job of `owner` (a message to whoever runs it). */
  async resize(owner: string, id: string, cols: number, rows: number): Promise<void> {
    await this.get(owner, id);
    await this.store.streams.sendControl(id, { type: 'resize', cols, rows });
  }

  /**
   * Makes a live session on `job` (a job of `owner`, from {@link get} or {@link submit}): the
   * core every streaming transport drives. It starts with `open()`.
   */
  openSession(owner: string, job: JobRecord, handlers: SessionHandlers, options?: LiveSessionOptions): LiveSession {
    return new LiveSession(this, { streams: this.store.streams, onEvent: (listener) => this.store.onEvent(listener), getJob: (id, owner) => this.store.getJob(id, owner) }, owner, job, handlers, options);
  }

  /**
   * How a job of `owner` ended, from its record: for output closed without a recorded final
   * status (by older jobwire). A job deleted meanwhile reads as Lost.
   */
  async finalStatus(owner: string, id: string): Promise<FinalStatus> {
    const job = await this.store.getJob(id, owner);
    return job ? finalStatusOf(job) : { status: 'Lost', exitCode: null, signal: null, error: 'the job was deleted', progress: null };
  }

  /** Sizes and flags of the streams of job `id` (one the caller got through {@link get}). */
  streamSizes(id: string): Promise<StreamSizes> {
    return this.store.streams.sizes(id);
  }

  /**
   * Bytes [from, to) of one output channel of job `id` (one the caller got through {@link get}),
   * as chunks read when the consumer asks (see `StreamLog.readChannelChunks`).
   */
  readChannelChunks(id: string, channel: OutputChannel, from: number, to?: number, options?: ChannelChunksOptions): AsyncIterable<Uint8Array> {
    return this.store.streams.readChannelChunks(id, channel, from, to, options);
  }

  /** Live store events of every owner (the listener picks its owner's); returns an unsubscribe function. */
  onEvent(listener: (event: StoredEvent) => void): () => void {
    return this.store.onEvent(listener);
  }

  /** Events of `owner` in the subtree `group` ('' = all) with id > sinceId, oldest first. */
  events(owner: string, group: string, sinceId: number, limit: number): Promise<JobEvent[]> {
    return this.store.readEvents(owner, group, sinceId, limit);
  }

  /** Id of the newest event (0 when none). */
  lastEventId(): Promise<number> {
    return this.store.lastEventId();
  }

  /** True when `token` is job `id`'s own token (`JOBWIRE_JOB_TOKEN`), so that a bad one is refused before its request is read. */
  async isJobToken(id: string, token: string): Promise<boolean> {
    const job = await this.store.getJob(id);
    return !!job && safeEqual(job.jobToken, token);
  }

  /** Sets the progress message, for the owner or the job itself (its job token). */
  async setProgress(who: { owner?: string; jobToken?: string }, id: string, message: string): Promise<JobRecord> {
    if (typeof message !== 'string' || message.length > 10_000) throw new BadRequestError('message: a string of at most 10000 characters', { field: 'message' });
    const job = await this.store.getJob(id, who.owner);
    // Without a user token, only the job's own token admits the call; anything else is a bad token.
    if (who.owner === undefined && (!job || !who.jobToken || !safeEqual(job.jobToken, who.jobToken))) throw new UnauthorizedError('invalid token');
    if (!job) throw new NotFoundError(`no job ${JSON.stringify(id)}`);
    if (isFinal(job.status)) throw new ConflictError(`job ${id} has ended (${job.status})`);
    return (await this.store.setProgress(id, message)) ?? job;
  }

  /**
   * Waits until the job is final (`for: 'done'`) or Running/final (`for: 'running'`), at most
   * `timeoutMs`, or until `signal` aborts (the caller went away); returns the job as it then is.
   */
  async wait(owner: string, id: string, until: 'done' | 'running', timeoutMs: number, signal?: AbortSignal): Promise<JobRecord> {
    const job = await this.get(owner, id);
    const reached = (s: JobStatus): boolean => isFinal(s) || (until === 'running' && s === 'Running');
    if (reached(job.status) || timeoutMs <= 0 || signal?.aborted) return job;
    return new Promise<JobRecord>((resolve) => {
      let settled = false;
      const finish = (): void => {
        if (settled) return;
        settled = true;
        timer.clear();
        off();
        signal?.removeEventListener('abort', finish);
        this.store.getJob(id, owner).then((j) => resolve(j ?? job), () => resolve(job));
      };
      signal?.addEventListener('abort', finish, { once: true });
      const off = this.store.onEvent((ev) => {
        if (ev.info.id === id && ev.info.type === 'job' && (reached(ev.info.status) || ev.verb === 'remove')) finish();
      });
      const timer = setLongTimeout(finish, timeoutMs);
      // The job may have moved between the first read and the subscription.
      this.store.getJob(id, owner).then((j) => {
        if (!j || reached(j.status)) finish();
      }, finish);
    });
  }

  /** Queues with their load. */
  /** The named executors jobs may choose (`executor` in the description); empty when only `local` runs jobs. */
  executors(): ExecutorInfo[] {
    return this.scheduler.executors?.() ?? [];
  }

  async queues(): Promise<QueueStatus[]> {
    const counts = await this.store.queueCounts();
    const defs = await this.scheduler.queues();
    return defs.map((q) => ({ name: q.name, limit: q.limit, running: counts.get(q.name)?.running ?? 0, queued: counts.get(q.name)?.queued ?? 0 }));
  }

  /** Groups of `owner`. */
  groups(owner: string, under?: string): Promise<GroupInfo[]> {
    return this.store.listGroups(owner, under);
  }
}
