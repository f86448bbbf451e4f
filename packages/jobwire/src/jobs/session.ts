/**
 * One live session on a job, whatever the transport: the job's merged output from a cursor
 * (replayed, then followed live, through an {@link OutputFollower}), stdin with offsets and a
 * credit window, resize, status and progress while the job runs, and how it ended. The
 * WebSocket attach session and the gRPC `submitInteractiveJob` call each drive one and only
 * turn its callbacks into their frames and their flow control into `canTake()`/`pump()`.
 *
 * The rules live here once:
 * - stdin goes through the job service, which checks ownership and state on every write;
 *   input the job can no longer read (its stdin closed, the job ended, its output closed) is
 *   dropped silently, a gap in the offsets is a protocol error;
 * - the end comes after the last byte, with the final status that the output's close recorded,
 *   so nobody reads the job at the end (output closed by older code: the record is read then).
 * @module
 */
import {
  BadRequestError,
  ConflictError,
  isFinal,
  JobwireError,
  NotFoundError,
  type JobStatus,
  type OutputChunk,
} from '@jobwire/client';
import { DEFAULT_STDIN_WINDOW } from '@jobwire/client/protocol';
import type { FinalStatus, JobRecord, Store, StoredEvent, StreamEvent, StreamLog } from '../store/types.js';
import { OutputFollower } from './output-follower.js';

/**
 * Stdin for a job that can read no more: its stdin is closed, or the job has ended. A conflict
 * (409) like any other to a REST caller; a live session drops such input silently, where a gap
 * in the offsets (a plain ConflictError) is the client's bug.
 */
export class StdinClosedError extends ConflictError {
  override name = 'StdinClosedError';
}

/**
 * How many windows a writer that names offsets may run ahead of what the job has read before it
 * is refused: it was told the window (`STDIN_ACK`), so this far ahead it ignores it.
 */
export const STDIN_OVERRUN_WINDOWS = 4;

/** A status or progress change of a running job. */
export interface StatusUpdate {
  status: JobStatus;
  progress: string | null;
  /** Why a Queued job waits (or a Running one is held back), when known. */
  reason: string | null;
}

/**
 * What a session tells its transport. After `end` or `fail` (each called at most once, and
 * never both) nothing more is called.
 */
export interface SessionHandlers {
  /** True while the transport can take another output chunk now (not paused, not full). */
  canTake(): boolean;
  /** The next output chunk: it starts exactly where the previous one ended. */
  output(chunk: OutputChunk): void;
  /** The job's status or progress changed while it runs (only with {@link LiveSessionOptions.statusUpdates}). */
  status?(update: StatusUpdate): void;
  /** The job has read its stdin up to `consumed` bytes: the credit window moved. */
  stdinAck?(consumed: number): void;
  /** After all output: how the job ended. */
  end(final: FinalStatus): void;
  /**
   * The session cannot go on: `not_found` (the job was deleted), `protocol` or `conflict` (the
   * client broke a rule), `internal` (storage failed; `cause` holds the failure).
   */
  fail(error: JobwireError): void;
}

/** Options of {@link LiveSession}. */
export interface LiveSessionOptions {
  /** Merged-output position of the first byte to deliver. @defaultValue 0 */
  from?: number;
  /**
   * Report status and progress changes while the job runs, and fail with `not_found` when the
   * job is deleted (this listens to every store event). @defaultValue false
   */
  statusUpdates?: boolean;
  /** Stdin bytes accepted ahead of what the job has read. @defaultValue DEFAULT_STDIN_WINDOW (1 MiB) */
  stdinWindow?: number;
}

/** Where a session starts: what a transport's greeting tells its client. */
export interface SessionStart {
  /** Merged-output position of the first byte the session delivers. */
  from: number;
  /** Stdin bytes accepted so far: a writer resumes from here. */
  stdinOffset: number;
  /** Whether stdin has been closed. */
  stdinClosed: boolean;
  /** Stdin bytes the job has read. */
  stdinConsumed: number;
  /** The job's status, progress and wait reason now (updates follow from here). */
  status: StatusUpdate;
}

/**
 * The job service's operations a session calls on behalf of its owner (the service itself; an
 * interface here so that the service can make sessions without a module loop).
 */
export interface SessionService {
  writeStdin(owner: string, id: string, data: Uint8Array, offset?: number): Promise<number>;
  closeStdin(owner: string, id: string): Promise<number>;
  resize(owner: string, id: string, cols: number, rows: number): Promise<void>;
  finalStatus(owner: string, id: string): Promise<FinalStatus>;
}

/** What a session needs beyond the job service's public methods (handed over by the service). */
export interface SessionStore {
  streams: StreamLog;
  onEvent: Store['onEvent'];
  getJob: Store['getJob'];
}

/** A live session on one job; made by `JobService.openSession`. */
export class LiveSession {
  private readonly follower: OutputFollower;
  private readonly window: number;
  /** Status, progress and reason last reported (starting with the record's). */
  private lastStatus: JobStatus;
  private lastProgress: string | null;
  private lastReason: string | null;
  /** A job event was seen since the subscription: it is newer than the record `open` reads. */
  private eventSeen = false;
  /** True once `start()` ran: output and updates flow. */
  private started = false;
  /** True after `end`, `fail` or `dispose`: no handler is called any more. */
  private over = false;
  private readonly offs: (() => void)[] = [];
  /** Stdin bytes accepted (as far as this session knows: also other writers') and read by the job. */
  private written = 0;
  private consumed = 0;
  /** True once stdin can take no more (closed, or refused as such). */
  private stdinDone = false;
  private outputClosed = false;
  /** The final status the `output-closed` event carried. */
  private closedFinal: FinalStatus | undefined;
  private wakers: (() => void)[] = [];
  private stdinChain: Promise<void> = Promise.resolve();

  constructor(
    private readonly service: SessionService,
    private readonly store: SessionStore,
    private readonly owner: string,
    /** The job as it was when the session was made (from `JobService.get` or `submit`). */
    readonly job: JobRecord,
    private readonly handlers: SessionHandlers,
    private readonly options: LiveSessionOptions = {},
  ) {
    this.window = options.stdinWindow ?? DEFAULT_STDIN_WINDOW;
    this.lastStatus = job.status;
    this.lastProgress = job.progress;
    this.lastReason = job.reason;
    this.follower = new OutputFollower(store.streams, job.id, options.from ?? 0, {
      canTake: () => this.started && !this.over && handlers.canTake(),
      take: (chunk) => handlers.output(chunk),
      end: (final) => this.finish(final),
      fail: (err) => this.fail(new JobwireError('internal', `cannot read output: ${String(err)}`, { cause: err })),
    });
  }

  /** Stdin bytes the job has read. */
  get stdinConsumed(): number {
    return this.consumed;
  }

  /**
   * Subscribes to the job (before any read, so nothing written meanwhile is missed), then reads
   * where its stdin stands. Undefined when the session is over meanwhile (disposed, or failed:
   * then `fail` was called).
   */
  async open(): Promise<SessionStart | undefined> {
    const { job } = this;
    this.offs.push(this.store.streams.subscribe(job.id, (ev) => this.onStream(ev)));
    if (this.options.statusUpdates) this.offs.push(this.store.onEvent((ev) => this.onJobEvent(ev)));
    // The record the session was made from may be older than the subscription (a job that
    // started in between would greet as Queued and never say otherwise): read it again.
    const fresh = this.options.statusUpdates && !isFinal(job.status);
    let sizes;
    let record: JobRecord | undefined;
    try {
      [sizes, record] = await Promise.all([this.store.streams.sizes(job.id), fresh ? this.store.getJob(job.id) : undefined]);
    } catch (err) {
      this.fail(new JobwireError('internal', `cannot read streams: ${String(err)}`, { cause: err }));
      return undefined;
    }
    if (this.over) return undefined;
    if (record && !this.eventSeen && !isFinal(record.status)) {
      this.lastStatus = record.status;
      this.lastProgress = record.progress;
      this.lastReason = record.reason;
    }
    this.consumed = Math.max(this.consumed, sizes.stdinConsumed);
    this.written = Math.max(this.written, sizes.stdin);
    if (sizes.stdinClosed) this.stdinDone = true;
    const status = { status: this.lastStatus, progress: this.lastProgress, reason: this.lastReason };
    return { from: this.follower.cursor, stdinOffset: sizes.stdin, stdinClosed: sizes.stdinClosed, stdinConsumed: this.consumed, status };
  }

  /** Starts delivering output and updates; call once the transport sent its greeting. */
  start(): void {
    if (this.over) return;
    this.started = true;
    this.follower.pump();
  }

  /** The transport has room again: read on. */
  pump(): void {
    if (!this.over) this.follower.pump();
  }

  /**
   * Writes stdin, applied in the order of calls; resolves once the bytes are stored or dropped
   * (never rejects: a failure ends the session through `fail`).
   *
   * With `offset` (a writer that counts its bytes and keeps to the window it was told, as the
   * attach protocol does) the bytes start there: bytes stored already are skipped, a gap is a
   * protocol error, and so is running {@link STDIN_OVERRUN_WINDOWS} windows ahead of what the
   * job has read. Without it (a writer that is simply read no further meanwhile, as a gRPC call
   * is) the bytes go at the end of what is stored, once fewer than a window of bytes wait for
   * the job.
   */
  writeStdin(data: Uint8Array, offset?: number): Promise<void> {
    if (this.over) return Promise.resolve();
    if (!this.job.interactive) {
      this.fail(new ConflictError(`job ${this.job.id} is not interactive: its stdin is closed`));
      return Promise.resolve();
    }
    if (offset !== undefined && offset + data.byteLength > this.consumed + STDIN_OVERRUN_WINDOWS * this.window) {
      this.fail(new BadRequestError('stdin sent far beyond the flow-control window', { code: 'protocol' }));
      return Promise.resolve();
    }
    return this.chain(async () => {
      if (offset === undefined) {
        while (this.written - this.consumed >= this.window && this.takesStdin()) await new Promise<void>((wake) => this.wakers.push(wake));
      }
      if (!this.takesStdin()) return;
      const end = await this.service.writeStdin(this.owner, this.job.id, data, offset);
      this.written = Math.max(this.written, end);
    });
  }

  /** Ends stdin (after the writes before it); nothing for a job that is not interactive. */
  closeStdin(): Promise<void> {
    if (this.over || !this.job.interactive) return Promise.resolve();
    return this.chain(async () => {
      if (this.stdinDone || this.over) return;
      this.stdinDone = true;
      await this.service.closeStdin(this.owner, this.job.id);
    });
  }

  /** Resizes the job's terminal (a job without one, or a size with a zero, is left alone). */
  resize(cols: number, rows: number): void {
    if (this.over || !this.job.tty || !(cols > 0 && rows > 0)) return;
    void this.service.resize(this.owner, this.job.id, cols, rows).catch(() => undefined);
  }

  /** Stops the session (the client went away); the job runs on. Nothing more is called. */
  dispose(): void {
    this.over = true;
    for (const off of this.offs.splice(0)) off();
    this.wake();
  }

  /** True while stdin written now could still reach the job. */
  private takesStdin(): boolean {
    return !this.stdinDone && !this.outputClosed && !this.over;
  }

  /** Applies stdin operations one after another; a refusal of input the job cannot read is dropped. */
  private chain(op: () => Promise<void>): Promise<void> {
    this.stdinChain = this.stdinChain.then(op).catch((err: unknown) => {
      if (err instanceof StdinClosedError) {
        this.stdinDone = true;
        return;
      }
      if (err instanceof ConflictError) this.fail(new BadRequestError(err.message, { code: 'protocol', cause: err }));
      else if (err instanceof NotFoundError) this.fail(err);
      else this.fail(new JobwireError('internal', `stdin failed: ${String(err)}`, { cause: err }));
    });
    return this.stdinChain;
  }

  private wake(): void {
    for (const wake of this.wakers.splice(0)) wake();
  }

  private onStream(ev: StreamEvent): void {
    if (this.over) return;
    switch (ev.type) {
      case 'output':
        this.follower.offer(ev.chunk);
        break;
      case 'output-closed':
        this.outputClosed = true;
        this.closedFinal ??= ev.final;
        this.wake();
        this.follower.pump();
        break;
      case 'stdin-ack':
        this.consumed = Math.max(this.consumed, ev.consumed);
        this.wake();
        if (this.started) this.handlers.stdinAck?.(this.consumed);
        break;
      case 'stdin-closed':
        this.stdinDone = true;
        this.wake();
        break;
      case 'stdin':
        this.written = Math.max(this.written, ev.offset + ev.data.byteLength);
        break;
      case 'control':
        break;
      default: {
        const never: never = ev;
        void never;
      }
    }
  }

  private onJobEvent(ev: StoredEvent): void {
    if (this.over || ev.info.type !== 'job' || ev.info.id !== this.job.id) return;
    if (ev.verb === 'remove') {
      this.fail(new NotFoundError(`job ${this.job.id} was deleted`));
      return;
    }
    const { status, progress, reason } = ev.info;
    if (isFinal(status) || (status === this.lastStatus && progress === this.lastProgress && reason === this.lastReason)) return;
    this.lastStatus = status;
    this.lastProgress = progress;
    this.lastReason = reason;
    this.eventSeen = true;
    // Before the start the greeting carries what changed (see `open`).
    if (this.started) this.handlers.status?.({ status, progress, reason });
  }

  /** After the last byte: how the job ended, as the close recorded it (older closes: as the record says). */
  private async finish(final: FinalStatus | undefined): Promise<void> {
    if (this.over) return;
    let status = final ?? this.closedFinal;
    if (status === undefined) {
      try {
        status = await this.service.finalStatus(this.owner, this.job.id);
      } catch (err) {
        this.fail(new JobwireError('internal', `cannot read the final status: ${String(err)}`, { cause: err }));
        return;
      }
      if (this.over) return;
    }
    this.over = true;
    this.handlers.end(status);
    this.dispose();
  }

  private fail(error: JobwireError): void {
    if (this.over) return;
    this.over = true;
    this.handlers.fail(error);
    this.dispose();
  }
}
