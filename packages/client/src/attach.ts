/**
 * A live attachment to a job over the attach WebSocket: output in order and exactly once, exit
 * last, stdin with flow control, and transparent reconnection that resumes from offsets.
 * @module
 */
import type { Attachment } from './api.js';
import { BadRequestError, ConflictError, ConnectionError, JobwireError, errorFromWire } from './errors.js';
import { wsUrl, type Connection } from './http.js';
import { CloseCode, Tag, decodeFrame, encodeFlow, encodeResize, type Frame, type HelloFrame, type StatusFrame } from './protocol.js';
import { QueuedIterator } from './queued-iterator.js';
import { closeCodeError, isRetryable, loadSocketFactory, type SocketHandlers, type WireSocket } from './socket.js';
import { StdinChannel } from './stdin.js';
import type { ExitStatus, JobInfo, JobStatusUpdate, OutputChannel, OutputChunk } from './types.js';
import { BACKOFF, Sleeper, deferred, type Deferred } from './util.js';

/** Unread output at which the server is asked to pause (FLOW pause). */
export const OUTPUT_HIGH_WATER = 4 * 1024 * 1024;
/** Unread output at which a paused server is asked to resume. */
export const OUTPUT_LOW_WATER = 1024 * 1024;
/** Unread status updates kept (older ones are dropped: only the latest matter). */
const STATUS_UPDATES_KEPT = 16;
/** How long a new connection may take to deliver HELLO. */
const HELLO_TIMEOUT = 15_000;

/** What an attachment needs from its client. */
export interface AttachContext {
  jobId: string;
  /** Resolves the server URL and token (lazily, once per client). */
  connection: () => Promise<Connection>;
  /** Merged-output position to start from. */
  from: number;
  reconnect: boolean;
  /** Give up reconnecting after this many ms without a connection. */
  reconnectTimeout: number;
  signal?: AbortSignal | undefined;
}

type State = 'connecting' | 'open' | 'reconnecting' | 'ended' | 'detached' | 'failed';

function protocolError(message: string, cause?: unknown): JobwireError {
  return new BadRequestError(message, cause === undefined ? { code: 'protocol' } : { code: 'protocol', cause });
}

/** Implementation of {@link Attachment}; created by `Client.attach`. */
export class JobAttachment implements Attachment {
  readonly jobId: string;
  readonly output: QueuedIterator<OutputChunk>;
  readonly stdin: StdinChannel;
  readonly statusUpdates = new QueuedIterator<JobStatusUpdate>({ maxItems: STATUS_UPDATES_KEPT });
  readonly exit: Promise<ExitStatus>;
  /** The last update pushed, so that a reconnect's greeting repeats nothing. */
  private lastUpdate: JobStatusUpdate | undefined;
  private readonly exitDeferred = deferred<ExitStatus>();
  private state: State = 'connecting';
  private socket: WireSocket | undefined;
  /** Bumped for every socket and on every end, so events of an old socket are ignored. */
  private gen = 0;
  private connecting: Deferred<void> | undefined;
  /** Merged position of the next byte we have not seen: chunks before it are duplicates. */
  private next: number;
  private userPaused = false;
  private pressurePaused = false;
  /** What the current socket was told (a new socket starts unpaused). */
  private flowPaused = false;
  private size: { cols: number; rows: number } | undefined;
  private sizeSent = true;
  /** The exit status, held back until the output reader has read everything before it. */
  private heldExit: ExitStatus | undefined;
  private readonly sleeper = new Sleeper();
  private readonly onAbort = (): void => this.end('detached', new ConnectionError(`attach to job ${this.jobId} was aborted`));

  constructor(private readonly ctx: AttachContext) {
    this.jobId = ctx.jobId;
    this.next = ctx.from;
    this.exit = this.exitDeferred.promise;
    // Detaching rejects `exit`; nobody has to watch it, so an unobserved rejection must not crash Node.
    this.exit.catch(() => undefined);
    this.output = new QueuedIterator<OutputChunk>({
      sizeOf: (chunk) => chunk.data.byteLength,
      highWater: OUTPUT_HIGH_WATER,
      lowWater: OUTPUT_LOW_WATER,
      onPressure: (paused) => {
        this.pressurePaused = paused;
        this.updateFlow();
      },
      onEnd: () => this.releaseExit(),
    });
    this.stdin = new StdinChannel(ctx.jobId, (frame) => this.send(frame));
  }

  /** Connects and waits for HELLO; rejects with a typed error (and cleans up) when it cannot. */
  async start(): Promise<void> {
    const signal = this.ctx.signal;
    if (signal?.aborted) {
      const err = new ConnectionError(`attach to job ${this.jobId} was aborted`, { cause: signal.reason });
      this.end('failed', err);
      throw err;
    }
    signal?.addEventListener('abort', this.onAbort, { once: true });
    try {
      await this.connect();
    } catch (err) {
      this.end('failed', err);
      throw err;
    }
  }

  /** Sends a terminal size (tty jobs); sent again after a reconnect if it changed meanwhile. */
  resize(cols: number, rows: number): void {
    for (const [field, n] of [['cols', cols], ['rows', rows]] as const) {
      if (!Number.isInteger(n) || n < 1 || n > 0xffff) throw new BadRequestError(`${field} must be an integer from 1 to 65535, got ${n}`, { field });
    }
    this.size = { cols, rows };
    this.sizeSent = false;
    this.flushSize();
  }

  /** Asks the server to stop sending output until {@link JobAttachment.resume}. */
  pause(): void {
    this.userPaused = true;
    this.updateFlow();
  }

  /** Lifts {@link JobAttachment.pause} (output still waits while the consumer is too far behind). */
  resume(): void {
    this.userPaused = false;
    this.updateFlow();
  }

  /** Closes the connection without reconnecting; output ends, `exit` rejects, the job runs on. */
  detach(): void {
    // After the exit frame there is nothing to close; a held exit status is simply handed over.
    if (this.state === 'ended') this.releaseExit();
    this.end('detached', new ConnectionError(`detached from job ${this.jobId}`));
  }

  /** Detaches (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.detach();
  }

  private isOver(): boolean {
    return this.state === 'ended' || this.state === 'detached' || this.state === 'failed';
  }

  private send(frame: Uint8Array): void {
    if (this.state === 'open') this.socket?.send(frame);
  }

  private updateFlow(): void {
    const want = this.userPaused || this.pressurePaused;
    if (this.state !== 'open' || want === this.flowPaused) return;
    this.flowPaused = want;
    this.send(encodeFlow(!want));
  }

  private flushSize(): void {
    if (this.state !== 'open' || this.sizeSent || !this.size) return;
    this.sizeSent = true;
    this.send(encodeResize(this.size.cols, this.size.rows));
  }

  /** Opens one socket; resolves once its HELLO was handled. */
  private async connect(): Promise<void> {
    const [conn, factory] = await Promise.all([this.ctx.connection(), loadSocketFactory()]);
    if (this.isOver()) throw new ConnectionError(`attach to job ${this.jobId} ended while connecting`);
    const gen = ++this.gen;
    const ready = deferred<void>();
    let greeted = false;
    let verdict: JobwireError | undefined;
    const url = wsUrl(conn.url, `/jobs/${encodeURIComponent(this.jobId)}/attach`, { from: this.next });
    // Handlers are registered when the socket is created, so no frame can slip past them.
    let socket: WireSocket | undefined;
    const helloTimer = setTimeout(() => {
      verdict ??= new ConnectionError(`no HELLO from ${conn.url} within ${HELLO_TIMEOUT} ms`);
      socket?.close();
    }, HELLO_TIMEOUT);
    const handlers: SocketHandlers = {
      onOpen: () => undefined,
      onMessage: (data) => {
        if (gen !== this.gen) return;
        let frame: Frame;
        try {
          if (typeof data === 'string') throw protocolError('attach sent a text message; frames are binary');
          frame = decodeFrame(data);
        } catch (err) {
          const error = err instanceof JobwireError ? err : protocolError(`bad frame from the server: ${(err as Error).message}`, err);
          if (greeted) {
            this.end('failed', error);
          } else {
            verdict ??= error;
            socket?.close(CloseCode.PROTOCOL);
          }
          return;
        }
        if (greeted) {
          this.onFrame(frame);
        } else if (frame.tag === Tag.HELLO) {
          greeted = true;
          clearTimeout(helloTimer);
          this.onHello(frame.hello);
          ready.resolve();
        } else if (frame.tag === Tag.ERROR) {
          // The server closes next; the close carries this verdict.
          verdict ??= errorFromWire({ code: frame.code, message: frame.message });
        } else {
          verdict ??= protocolError(`the first frame was tag ${frame.tag}, not HELLO`);
          socket?.close(CloseCode.PROTOCOL);
        }
      },
      onClose: (code, reason, error) => {
        clearTimeout(helloTimer);
        if (gen !== this.gen) return;
        this.socket = undefined;
        this.stdin.disconnected();
        if (!greeted) {
          ready.reject(verdict ?? closeCodeError(code, reason) ?? error ?? new ConnectionError(`the attach connection to job ${this.jobId} closed before HELLO (code ${code})`));
        } else {
          this.onDrop(code, reason, error);
        }
      },
    };
    try {
      socket = factory(url, { token: conn.token, base: conn.url, ca: conn.ca }, handlers);
    } catch (err) {
      clearTimeout(helloTimer);
      throw err instanceof JobwireError ? err : new ConnectionError(`cannot open ${url.href}: ${(err as Error).message}`, { cause: err });
    }
    this.socket = socket;
    this.connecting = ready;
    try {
      await ready.promise;
    } finally {
      if (this.connecting === ready) this.connecting = undefined;
    }
  }

  private onHello(hello: HelloFrame): void {
    // A job that ended greets with its final status; `exit` reports that one.
    if (hello.status === 'Queued' || hello.status === 'Running') this.onStatus({ status: hello.status, progress: hello.progress ?? null, reason: hello.reason ?? null });
    this.state = 'open';
    this.flowPaused = false;
    this.stdin.connected(hello);
    this.updateFlow();
    this.flushSize();
  }

  private onFrame(frame: Frame): void {
    switch (frame.tag) {
      case Tag.STDOUT:
      case Tag.STDERR:
        this.onOutput(frame.tag === Tag.STDOUT ? 'stdout' : 'stderr', frame.pos, frame.offset, frame.data);
        return;
      case Tag.STATUS:
        if (frame.status.final) this.onExit(frame.status);
        else this.onStatus({ status: frame.status.status, progress: frame.status.progress ?? null, reason: frame.status.reason ?? null });
        return;
      case Tag.STDIN_ACK:
        this.stdin.ack(frame.consumed, frame.window);
        return;
      case Tag.ERROR:
        this.end('failed', errorFromWire({ code: frame.code, message: frame.message }));
        return;
      case Tag.HELLO:
      case Tag.STDIN:
      case Tag.RESIZE:
      case Tag.CLOSE:
      case Tag.FLOW:
        this.end('failed', protocolError(`unexpected frame tag ${frame.tag} from the server`));
        return;
      default: {
        const never: never = frame;
        this.end('failed', protocolError(`unknown frame ${String((never as Frame).tag)}`));
      }
    }
  }

  private onOutput(channel: OutputChannel, pos: number, offset: number, data: Uint8Array): void {
    // A replay after a reconnect may start before what we have: keep only the new bytes.
    const skip = Math.max(0, this.next - pos);
    if (skip >= data.byteLength && data.byteLength > 0) return;
    if (data.byteLength === 0) return;
    const chunk: OutputChunk = { channel, pos: pos + skip, offset: offset + skip, data: skip > 0 ? data.subarray(skip) : data };
    this.next = chunk.pos + chunk.data.byteLength;
    this.output.push(chunk);
  }

  private onStatus(update: JobStatusUpdate): void {
    const last = this.lastUpdate;
    if (last && last.status === update.status && last.progress === update.progress && last.reason === update.reason) return;
    this.lastUpdate = update;
    this.statusUpdates.push(update);
  }

  private onExit(status: StatusFrame): void {
    const exit: ExitStatus = { status: status.status, exitCode: status.exitCode, signal: status.signal, error: status.error };
    if (this.isOver()) return;
    this.state = 'ended';
    this.gen++;
    this.cleanup();
    this.output.stop();
    this.statusUpdates.stop();
    this.stdin.finish(new ConflictError(`job ${this.jobId} has ended (${exit.status})`), true);
    // Exit comes after all output: while a reader still has chunks queued, `exit` waits until it
    // read them (or left). With nothing left to read it resolves now. Whether anyone will read is
    // unknown when the frames came in one burst (even before `attach()` resolved), so a reader
    // that starts within this turn of the event loop counts; without one, `exit` resolves then.
    this.heldExit = exit;
    if (this.output.length === 0 || this.output.finishedReading) this.releaseExit();
    else if (!this.output.started) {
      setTimeout(() => {
        if (!this.output.started) this.releaseExit();
      }, 0);
    }
  }

  private releaseExit(): void {
    const exit = this.heldExit;
    if (exit === undefined) return;
    this.heldExit = undefined;
    this.exitDeferred.resolve(exit);
  }

  private onDrop(code: number, reason: string, error: JobwireError | undefined): void {
    if (this.state !== 'open') return;
    const verdict = closeCodeError(code, reason);
    if (verdict) {
      this.end('failed', verdict);
    } else if (!this.ctx.reconnect) {
      this.end('failed', new ConnectionError(`lost the connection to job ${this.jobId} (code ${code})`, error ? { cause: error } : undefined));
    } else {
      this.state = 'reconnecting';
      void this.reconnect(error);
    }
  }

  private async reconnect(cause: unknown): Promise<void> {
    const timeout = this.ctx.reconnectTimeout;
    const deadline = Date.now() + timeout;
    let delay: number = BACKOFF.first;
    let last = cause;
    while (this.state === 'reconnecting') {
      await this.sleeper.sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
      if (this.state !== 'reconnecting') return;
      try {
        await this.connect();
        return;
      } catch (err) {
        if (this.state !== 'reconnecting') return;
        if (!isRetryable(err)) {
          this.end('failed', err);
          return;
        }
        last = err;
      }
      if (Date.now() >= deadline) {
        this.end('failed', new ConnectionError(`lost the connection to job ${this.jobId} and could not reconnect within ${timeout} ms`, { cause: last }));
        return;
      }
      delay = Math.min(delay * 2, BACKOFF.max);
    }
  }

  /** Ends the attachment for good (detach or failure): output stops, `exit` rejects. */
  private end(state: 'detached' | 'failed', err: unknown): void {
    if (this.isOver()) return;
    this.state = state;
    this.gen++;
    this.cleanup();
    this.connecting?.reject(err);
    // Detaching ends the output quietly; a failure is thrown to the reader after what it has.
    this.output.stop(state === 'detached' ? undefined : err);
    this.statusUpdates.stop();
    this.stdin.finish(err, false);
    this.exitDeferred.reject(err);
  }

  private cleanup(): void {
    this.sleeper.cancel();
    this.ctx.signal?.removeEventListener('abort', this.onAbort);
    const socket = this.socket;
    this.socket = undefined;
    socket?.close(CloseCode.NORMAL);
  }
}

/** An attachment opened by `submitInteractiveJob`, with the info of the job it submitted. */
export class InteractiveAttachment extends JobAttachment {
  constructor(
    ctx: AttachContext,
    /** The job as the server answered the submission. */
    readonly info: JobInfo,
  ) {
    super(ctx);
  }
}
