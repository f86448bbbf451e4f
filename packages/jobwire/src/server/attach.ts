/**
 * One attach session: a WebSocket following a job's merged output from an offset, replaying
 * from storage and then following live, with stdin, resize and flow control the other way.
 * The session itself (output, stdin rules, status, the end) is the job service's live session
 * (`jobs/session.ts`); this file turns it into frames and maps the socket's flow control.
 *
 * Memory stays bounded: output is sent only while the socket's buffered amount is under
 * {@link HIGH_WATER}; past it the session stops and, once the socket drains, reads on from the
 * stream log (which holds everything), so a slow client costs storage reads, never server memory.
 *
 * Output chunks taken in one turn of the event loop go out as one STDOUT or STDERR frame (up to
 * {@link OUTPUT_MESSAGE_BYTES}, one channel per frame) at the end of the turn: one WebSocket
 * message and one `writev` for what the job host sent in several reads, with no copy: the
 * WebSocket frame's header, the attach header and the chunks as they came are written to the
 * connection together ({@link writeBinaryMessage}), where gathering them into one buffer for
 * `ws.send` copied every byte of output once more (most of the server's CPU per MiB).
 * `STDIN_ACK`s wait up to {@link ACK_DELAY_MS} for the next frame and go out in the same write
 * as it (the connection is corked around the two): a line typed into an interactive job comes
 * back as output a moment later, and an ack sent on its own would wake the client once more per
 * line, on the round trip's critical path. The client needs acks only to stay within its window:
 * one that frees a quarter of the window or more goes at once.
 * @module
 */
import { JobwireError, isFinal } from '@jobwire/client';
import {
  DEFAULT_STDIN_WINDOW,
  Tag,
  decodeFrame,
  encodeError,
  encodeHello,
  encodeStatus,
  encodeStdinAck,
  CloseCode,
  OUTPUT_HEADER,
  writeOutputHeader,
  type Frame,
} from '@jobwire/client/protocol';
import type { OutputChunk } from '@jobwire/client';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { JobService } from '../jobs/service.js';
import type { LiveSession } from '../jobs/session.js';
import type { JobRecord } from '../store/types.js';
import { heartbeat } from './heartbeat.js';
import { attachClosed, attachOpened, outputSent } from '../metrics.js';

/** Bytes the socket may buffer before the session stops sending. */
export const HIGH_WATER = 1024 * 1024;
/** Buffered bytes under which sending resumes. */
export const LOW_WATER = 256 * 1024;
/** Most output bytes in one WebSocket message. */
export const OUTPUT_MESSAGE_BYTES = 1024 * 1024;
/**
 * Longest a `STDIN_ACK` waits for another frame to share a write with (the job's echo, most
 * often; on a loaded machine that takes milliseconds). Acks that free a quarter of the window
 * or more are not held, so a writer that waits on its window loses nothing to this.
 */
export const ACK_DELAY_MS = 10;

/**
 * Starts a session on an accepted WebSocket; `connection` is the connection under it (the
 * upgrade's socket), corked so that an ack and the frame after it leave in one write.
 */
export function startAttachSession(ws: WebSocket, connection: Duplex, service: JobService, owner: string, job: JobRecord, from: number): void {
  new AttachSession(ws, connection, service, owner, job, from).start();
}

/** The WebSocket close code for a session failure. */
function closeCodeOf(error: JobwireError): number {
  switch (error.code) {
    case 'not_found':
      return CloseCode.NOT_FOUND;
    case 'protocol':
    case 'conflict':
      return CloseCode.PROTOCOL;
    default:
      return 1011;
  }
}

class AttachSession {
  private readonly session: LiveSession;
  private paused = false;
  private waitingDrain = false;
  private closed = false;
  private readonly offs: (() => void)[] = [];
  /** Output taken in this turn, sent as one frame at its end (see the module's note). */
  private out: OutputChunk[] = [];
  private outBytes = 0;
  private outFlush: NodeJS.Immediate | undefined;
  /** Stdin consumed, not yet acked to the client (see {@link ACK_DELAY_MS}). */
  private ackDue: number | undefined;
  /** Stdin consumed as the client was last told. */
  private acked = 0;
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly connection: Duplex,
    service: JobService,
    owner: string,
    private readonly job: JobRecord,
    from: number,
  ) {
    this.session = service.openSession(
      owner,
      job,
      {
        canTake: () => this.canSend(),
        output: (chunk) => this.queueOutput(chunk),
        status: ({ status, progress, reason }) => this.send(encodeStatus({ status, exitCode: null, signal: null, error: null, final: false, progress, reason })),
        stdinAck: (consumed) => {
          if (job.interactive) this.queueAck(consumed);
        },
        end: (final) => {
          this.send(encodeStatus({ status: final.status, exitCode: final.exitCode, signal: final.signal, error: final.error, final: true, progress: final.progress }));
          this.ws.close(CloseCode.NORMAL, 'job ended');
          this.dispose();
        },
        fail: (error) => this.fail(error.code, error.message, closeCodeOf(error)),
      },
      { from, statusUpdates: true, stdinWindow: DEFAULT_STDIN_WINDOW },
    );
  }

  start(): void {
    const { ws, job } = this;
    attachOpened('websocket');
    this.offs.push(heartbeat(ws));
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.dispose());
    ws.on('error', () => this.dispose());

    void this.session.open().then((start) => {
      if (start === undefined || this.closed) return;
      // HELLO goes first: nothing else may precede it.
      this.send(
        encodeHello({
          jobId: job.id,
          from: start.from,
          stdinOffset: start.stdinOffset,
          stdinClosed: start.stdinClosed,
          status: start.status.status,
          progress: start.status.progress,
          reason: start.status.reason,
          interactive: job.interactive,
          tty: job.tty,
        }),
      );
      if (job.interactive) {
        this.acked = start.stdinConsumed;
        this.send(encodeStdinAck(start.stdinConsumed, DEFAULT_STDIN_WINDOW));
      }
      this.session.start();
    });
  }

  private dispose(): void {
    if (this.closed) return;
    this.closed = true;
    clearImmediate(this.outFlush);
    this.out = [];
    this.outBytes = 0;
    clearTimeout(this.ackTimer);
    this.session.dispose();
    for (const off of this.offs.splice(0)) off();
    attachClosed('websocket');
  }

  /** Queues an output chunk for the frame sent at the end of this turn. */
  private queueOutput(chunk: OutputChunk): void {
    if (this.closed) return;
    const first = this.out[0];
    if (first !== undefined && (first.channel !== chunk.channel || this.outBytes + chunk.data.byteLength > OUTPUT_MESSAGE_BYTES)) this.flushOutput();
    this.out.push(chunk);
    this.outBytes += chunk.data.byteLength;
    this.outFlush ??= setImmediate(() => {
      this.outFlush = undefined;
      this.flushOutput();
    });
  }

  /** Sends the queued output as one frame: the chunks follow each other (the session's rule). */
  private flushOutput(): void {
    const chunks = this.out;
    const first = chunks[0];
    if (first === undefined) return;
    const bytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    const header = Buffer.allocUnsafe(OUTPUT_HEADER);
    writeOutputHeader(header, first.channel, first.pos, first.offset);
    this.send([header, ...chunks.map((chunk) => chunk.data)], bytes);
  }

  /**
   * Sends one message (after the output queued before it, and the ack that waits, if one does):
   * `frame`, or the parts of an output message; `output` is how many bytes of job output it carries.
   */
  private send(frame: Uint8Array | Uint8Array[], output = 0): void {
    if (this.closed) return;
    if (this.ackDue === undefined) {
      this.write(frame, output);
      return;
    }
    const connection = this.connection;
    connection.cork();
    this.sendAck();
    this.write(frame, output);
    connection.uncork();
  }

  /** Has the client told, within {@link ACK_DELAY_MS}, that the job has read `consumed` stdin bytes. */
  private queueAck(consumed: number): void {
    if (this.closed) return;
    this.ackDue = consumed;
    if (consumed - this.acked >= DEFAULT_STDIN_WINDOW / 4) {
      this.sendAck();
      return;
    }
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      this.sendAck();
    }, ACK_DELAY_MS);
  }

  private sendAck(): void {
    const consumed = this.ackDue;
    if (consumed === undefined || this.closed) return;
    this.ackDue = undefined;
    this.acked = consumed;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.write(encodeStdinAck(consumed, DEFAULT_STDIN_WINDOW));
  }

  private write(frame: Uint8Array | Uint8Array[], output = 0): void {
    if (output > 0) outputSent('websocket', output);
    else this.flushOutput();
    const sent = (): void => {
      if (this.waitingDrain && this.ws.bufferedAmount < LOW_WATER) {
        this.waitingDrain = false;
        this.session.pump();
      }
    };
    if (Array.isArray(frame)) {
      // Like ws.send on a socket that is closing: nothing goes out after the close frame.
      if (this.ws.readyState === WebSocket.OPEN) writeBinaryMessage(this.connection, frame, sent);
      return;
    }
    this.ws.send(frame, { binary: true }, sent);
  }

  private fail(code: string, message: string, closeCode: number): void {
    if (this.closed) return;
    this.send(encodeError(code, message));
    this.ws.close(closeCode, message.slice(0, 120));
    this.dispose();
  }

  /**
   * Whether the session may take another chunk this turn: the socket holds less than
   * {@link HIGH_WATER} from earlier messages and this turn's message is not full. The two are
   * judged apart, so how far the kernel has drained the socket does not change where messages
   * are cut (a turn's output is one message of up to {@link OUTPUT_MESSAGE_BYTES} whenever the
   * socket has room). At most HIGH_WATER + OUTPUT_MESSAGE_BYTES + one chunk is held.
   */
  private canSend(): boolean {
    if (this.closed || this.paused) return false;
    if (this.ws.bufferedAmount >= HIGH_WATER || this.outBytes >= OUTPUT_MESSAGE_BYTES) {
      this.waitingDrain = true;
      return false;
    }
    return true;
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
      case Tag.STDIN:
        // A copy: the frame buffer is reused by ws.
        void this.session.writeStdin(new Uint8Array(frame.data), frame.offset);
        break;
      case Tag.CLOSE:
        if (frame.channel === 0) void this.session.closeStdin();
        break;
      case Tag.RESIZE:
        this.session.resize(frame.cols, frame.rows);
        break;
      case Tag.FLOW:
        this.paused = !frame.resume;
        if (frame.resume) this.session.pump();
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
}

/**
 * Writes one binary WebSocket message made of `parts` to `connection` as a single unmasked,
 * unfragmented frame (RFC 6455 §5.2), the parts as they are (no copy), in one `writev`; `done`
 * is called once they are written. This is what `ws.send` writes for one buffer; it is safe
 * beside ws because the server's WebSocketServer negotiates no extension (no
 * permessage-deflate), so ws writes each of its own frames at once, never holding one back that
 * this could overtake, and counts what is queued on the connection in `bufferedAmount`.
 */
export function writeBinaryMessage(connection: Duplex, parts: readonly Uint8Array[], done: () => void): void {
  let length = 0;
  for (const part of parts) length += part.byteLength;
  let header: Buffer;
  if (length < 126) {
    header = Buffer.allocUnsafe(2);
    header[1] = length;
  } else if (length < 0x1_0000) {
    header = Buffer.allocUnsafe(4);
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.allocUnsafe(10);
    header[1] = 127;
    header.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2);
    header.writeUInt32BE(length >>> 0, 6);
  }
  // FIN, opcode 2 (binary).
  header[0] = 0x82;
  connection.cork();
  connection.write(header);
  parts.forEach((part, i) => connection.write(part, i === parts.length - 1 ? () => done() : undefined));
  connection.uncork();
}
