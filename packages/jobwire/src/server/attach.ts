/**
 * One attach session: a WebSocket following a job's merged output from an offset, replaying
 * from storage and then following live, with stdin, resize and flow control the other way.
 *
 * Memory stays bounded: output is sent only while the socket's buffered amount is under
 * {@link HIGH_WATER}; past it the session stops and, once the socket drains, reads on from the
 * stream log (which holds everything), so a slow client costs storage reads, never server memory.
 * @module
 */
import {
  DEFAULT_STDIN_WINDOW,
  Tag,
  decodeFrame,
  encodeError,
  encodeHello,
  encodeOutput,
  encodeStatus,
  encodeStdinAck,
  CloseCode,
  JobwireError,
  isFinal,
  type Frame,
} from '@jobwire/client';
import type { WebSocket } from 'ws';
import { OutputFollower } from '../jobs/output-follower.js';
import type { JobService } from '../jobs/service.js';
import type { JobRecord, StreamEvent } from '../store/types.js';
import { heartbeat } from './heartbeat.js';
import { attachClosed, attachOpened, outputSent } from '../metrics.js';

/** Bytes the socket may buffer before the session stops sending. */
export const HIGH_WATER = 1024 * 1024;
/** Buffered bytes under which sending resumes. */
export const LOW_WATER = 256 * 1024;

/** Starts a session on an accepted socket. */
export function startAttachSession(ws: WebSocket, service: JobService, owner: string, job: JobRecord, from: number): void {
  new AttachSession(ws, service, owner, job, from).start();
}

class AttachSession {
  private readonly follower: OutputFollower;
  private paused = false;
  private waitingDrain = false;
  private finished = false;
  private closed = false;
  /** False until HELLO went out: nothing else may precede it. */
  private ready = false;
  private stdinChain: Promise<void> = Promise.resolve();
  private consumed = 0;
  private readonly offs: (() => void)[] = [];
  private lastStatus: string;
  private lastProgress: string | null;

  constructor(
    private readonly ws: WebSocket,
    private readonly service: JobService,
    private readonly owner: string,
    private readonly job: JobRecord,
    from: number,
  ) {
    this.follower = new OutputFollower(service.store.streams, job.id, from, {
      canTake: () => this.canSend(),
      take: (chunk) => this.send(encodeOutput(chunk.channel, chunk.pos, chunk.offset, chunk.data), chunk.data.byteLength),
      end: () => this.sendExit(),
      fail: (err) => this.fail('internal', `cannot read output: ${String(err)}`, 1011),
    });
    this.lastStatus = job.status;
    this.lastProgress = job.progress;
  }

  start(): void {
    const { ws, job } = this;
    attachOpened('websocket');
    const streams = this.service.store.streams;
    // Subscribe before the first read so nothing written in between is missed.
    this.offs.push(streams.subscribe(job.id, (ev) => this.onStream(ev)));
    this.offs.push(
      this.service.store.onEvent((ev) => {
        if (ev.info.type !== 'job' || ev.info.id !== job.id) return;
        if (ev.verb === 'remove') {
          this.fail('not_found', `job ${job.id} was deleted`, CloseCode.NOT_FOUND);
          return;
        }
        const info = ev.info;
        if (this.ready && !isFinal(info.status) && (info.status !== this.lastStatus || info.progress !== this.lastProgress)) {
          this.lastStatus = info.status;
          this.lastProgress = info.progress;
          this.send(encodeStatus({ status: info.status, exitCode: null, signal: null, error: null, final: false, progress: info.progress }));
        }
      }),
    );
    this.offs.push(heartbeat(ws));
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.dispose());
    ws.on('error', () => this.dispose());

    void streams.sizes(job.id).then(
      (sizes) => {
        if (this.closed) return;
        this.consumed = sizes.stdinConsumed;
        this.send(
          encodeHello({
            jobId: job.id,
            from: this.follower.cursor,
            stdinOffset: sizes.stdin,
            stdinClosed: sizes.stdinClosed,
            status: job.status,
            interactive: job.interactive,
            tty: job.tty,
          }),
        );
        if (job.interactive) this.send(encodeStdinAck(this.consumed, DEFAULT_STDIN_WINDOW));
        this.ready = true;
        this.follower.pump();
      },
      (err) => this.fail('internal', `cannot read streams: ${String(err)}`, 1011),
    );
  }

  private dispose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.offs.splice(0)) off();
    attachClosed('websocket');
  }

  /** Sends `frame`; `output` is how many bytes of job output it carries. */
  private send(frame: Uint8Array, output = 0): void {
    if (this.closed) return;
    if (output > 0) outputSent('websocket', output);
    this.ws.send(frame, { binary: true }, () => {
      if (this.waitingDrain && this.ws.bufferedAmount < LOW_WATER) {
        this.waitingDrain = false;
        this.follower.pump();
      }
    });
  }

  private fail(code: string, message: string, closeCode: number): void {
    if (this.closed) return;
    this.send(encodeError(code, message));
    this.ws.close(closeCode, message.slice(0, 120));
    this.dispose();
  }

  private canSend(): boolean {
    if (this.closed || this.paused || this.finished || !this.ready) return false;
    if (this.ws.bufferedAmount >= HIGH_WATER) {
      this.waitingDrain = true;
      return false;
    }
    return true;
  }

  private onStream(ev: StreamEvent): void {
    switch (ev.type) {
      case 'output':
        this.follower.offer(ev.chunk);
        break;
      case 'output-closed':
        this.follower.pump();
        break;
      case 'stdin-ack':
        this.consumed = Math.max(this.consumed, ev.consumed);
        if (this.job.interactive && this.ready) this.send(encodeStdinAck(this.consumed, DEFAULT_STDIN_WINDOW));
        break;
      case 'stdin':
      case 'stdin-closed':
      case 'control':
        break;
      default: {
        const never: never = ev;
        void never;
      }
    }
  }

  private async sendExit(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    const job = await this.service.store.getJob(this.job.id);
    const status = job?.status ?? 'Lost';
    this.send(
      encodeStatus({
        status,
        exitCode: job?.exitCode ?? null,
        signal: job?.signal ?? null,
        error: job ? job.error : 'the job was deleted',
        final: true,
        progress: job?.progress ?? null,
      }),
    );
    this.ws.close(CloseCode.NORMAL, 'job ended');
    this.dispose();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      this.fail('protocol', 'attach frames are binary', CloseCode.PROTOCOL);
      return;
    }
    let frame: Frame;
    try {
      frame = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (err) {
      this.fail('protocol', err instanceof Error ? err.message : String(err), CloseCode.PROTOCOL);
      return;
    }
    switch (frame.tag) {
      case Tag.STDIN: {
        if (!this.job.interactive) {
          this.fail('conflict', `job ${this.job.id} is not interactive: its stdin is closed`, CloseCode.PROTOCOL);
          return;
        }
        if (frame.offset + frame.data.byteLength > this.consumed + 4 * DEFAULT_STDIN_WINDOW) {
          this.fail('protocol', 'stdin sent far beyond the flow-control window', CloseCode.PROTOCOL);
          return;
        }
        const copy = new Uint8Array(frame.data); // the frame buffer is reused by ws
        const offset = frame.offset;
        this.chainStdin(() => this.service.store.streams.appendStdin(this.job.id, offset, copy).then(() => undefined));
        break;
      }
      case Tag.CLOSE:
        if (frame.channel === 0 && this.job.interactive) this.chainStdin(() => this.service.store.streams.closeStdin(this.job.id).then(() => undefined));
        break;
      case Tag.RESIZE:
        if (this.job.tty && frame.cols > 0 && frame.rows > 0) {
          void this.service.store.streams.sendControl(this.job.id, { type: 'resize', cols: frame.cols, rows: frame.rows }).catch(() => undefined);
        }
        break;
      case Tag.FLOW:
        this.paused = !frame.resume;
        if (frame.resume) this.follower.pump();
        break;
      case Tag.STDOUT:
      case Tag.STDERR:
      case Tag.STATUS:
      case Tag.STDIN_ACK:
      case Tag.ERROR:
      case Tag.HELLO:
        this.fail('protocol', `a client may not send frame tag ${frame.tag}`, CloseCode.PROTOCOL);
        break;
      default: {
        const never: never = frame;
        void never;
      }
    }
  }

  /** Applies stdin operations in the order they arrived. */
  private chainStdin(op: () => Promise<void>): void {
    this.stdinChain = this.stdinChain.then(op).catch(async (err: unknown) => {
      if (err instanceof JobwireError && err.code === 'conflict') {
        // Stdin after EOF is dropped (the job has its input); a gap in offsets is a client bug.
        const sizes = await this.service.store.streams.sizes(this.job.id).catch(() => undefined);
        if (sizes?.stdinClosed) return;
        this.fail('protocol', err.message, CloseCode.PROTOCOL);
        return;
      }
      this.fail('internal', `stdin failed: ${String(err)}`, 1011);
    });
  }
}
