/**
 * One `submitInteractiveJob` call: a jobwire interactive job driven over a bidirectional gRPC
 * stream. The first response carries only the job; then the job's merged output follows in
 * the order it arrived (stdout and stderr interleaved as the job wrote them); the stream ends
 * after the last byte, once the job's final status is stored, with that status in the
 * trailing metadata (`jobwire-status`, `jobwire-exit-code`, `jobwire-signal`).
 *
 * Memory stays bounded both ways:
 * - output is read from the stream log at a cursor and written only while `call.write()`
 *   accepts more; past that the session waits for 'drain' and reads on from storage, so a
 *   client that reads nothing costs a few messages of memory, however much the job writes;
 * - stdin requests are read one at a time, and a request is appended only while fewer than
 *   {@link STDIN_WINDOW} bytes are waiting for the job to read them (`stdin-ack` events move
 *   the window). Meanwhile the session stops reading requests, so gRPC's flow control slows a
 *   fast client instead of the server buffering for it.
 *
 * Half-closing the request stream ends the job's stdin. Cancelling the call detaches: the job
 * runs on (jobwire's rule — detaching never stops a job), its status stays queryable.
 *
 * The session itself (output, stdin rules, the end) is the job service's live session
 * (`jobs/session.ts`), as for the WebSocket attach; this file turns it into messages and maps
 * the call's flow control.
 * @module
 */
import { Metadata, type ServerDuplexStream } from '@grpc/grpc-js';
import type { JobwireError, OutputChunk } from '@jobwire/client';
import { attachClosed, attachOpened, outputSent } from '../metrics.js';
import type { JobService } from '../jobs/service.js';
import type { LiveSession } from '../jobs/session.js';
import type { FinalStatus, JobRecord } from '../store/types.js';
import type { SubmitInteractiveJobRequest, SubmitInteractiveJobResponse } from './messages.js';

/** Stdin bytes accepted ahead of what the job has read. */
export const STDIN_WINDOW = 1024 * 1024;
/** Largest output payload of one response message. */
const MAX_PAYLOAD = 256 * 1024;

type Call = ServerDuplexStream<SubmitInteractiveJobRequest, SubmitInteractiveJobResponse>;

/** Streams one interactive job over `call` until its output ends or the client goes away. */
export class InteractiveSession {
  private readonly session: LiveSession;
  private waitingDrain = false;
  /** True once the call is over: ended, failed or detached. */
  private settled = false;
  private readonly offs: (() => void)[] = [];
  private readonly ended: Promise<void>;
  private resolveEnded!: () => void;
  private rejectEnded!: (err: unknown) => void;

  constructor(
    private readonly call: Call,
    service: JobService,
    owner: string,
    private readonly job: JobRecord,
    private readonly signal: AbortSignal,
  ) {
    this.ended = new Promise((resolve, reject) => {
      this.resolveEnded = resolve;
      this.rejectEnded = reject;
    });
    this.session = service.openSession(
      owner,
      job,
      {
        canTake: () => !this.waitingDrain,
        output: (chunk) => this.send(chunk),
        end: (final) => this.finish(final),
        fail: (error) => this.fail(error),
      },
      { stdinWindow: STDIN_WINDOW },
    );
  }

  /** Runs the session; resolves when the call is over (ended or detached), rejects if it failed. */
  async run(firstStdin: Uint8Array): Promise<void> {
    const { call } = this;
    attachOpened('grpc');
    this.offs.push(() => attachClosed('grpc'));
    const onDrain = (): void => {
      this.waitingDrain = false;
      this.session.pump();
    };
    call.on('drain', onDrain);
    this.offs.push(() => call.off('drain', onDrain));
    const onAbort = (): void => this.detach();
    this.signal.addEventListener('abort', onAbort, { once: true });
    this.offs.push(() => this.signal.removeEventListener('abort', onAbort));

    const start = await this.session.open();
    if (start === undefined || this.settled) return this.ended;
    call.write({ job: { id: this.job.id } });
    this.session.start();

    // The caller paused the call after the first request; reading resumes when that request's
    // stdin is applied.
    const onData = (request: SubmitInteractiveJobRequest): void => this.queueStdin(request.stdin);
    const onEnd = (): void => void this.session.closeStdin();
    call.on('data', onData);
    call.on('end', onEnd);
    this.offs.push(() => {
      call.off('data', onData);
      call.off('end', onEnd);
    });
    if (firstStdin.byteLength > 0) this.queueStdin(firstStdin);
    else call.resume();
    if (this.signal.aborted) this.detach();
    await this.ended;
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    for (const off of this.offs.splice(0)) off();
    return true;
  }

  /** The client went away (or the server closes): stop, leave the job running. */
  private detach(): void {
    if (!this.settle()) return;
    this.session.dispose();
    this.resolveEnded();
  }

  /**
   * Applies one stdin request, reading no further request meanwhile: the session holds it until
   * fewer than {@link STDIN_WINDOW} bytes wait for the job, so gRPC's flow control slows a fast
   * client instead of the server buffering for it.
   */
  private queueStdin(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    this.call.pause();
    void this.session.writeStdin(data).finally(() => {
      if (!this.settled) this.call.resume();
    });
  }

  /** Writes one chunk (already trimmed to the cursor by the follower), split into messages. */
  private send(chunk: OutputChunk): void {
    if (this.settled) return; // the call is over: nobody to write to
    const { data } = chunk;
    outputSent('grpc', data.byteLength);
    for (let at = 0; at < data.byteLength; at += MAX_PAYLOAD) {
      const piece = data.subarray(at, at + MAX_PAYLOAD);
      const message: SubmitInteractiveJobResponse = { job: { id: this.job.id }, [chunk.channel]: piece };
      if (!this.call.write(message)) this.waitingDrain = true;
    }
  }

  /** Ends the call after all output, with the job's final status in the trailers. */
  private finish(final: FinalStatus): void {
    if (!this.settle()) return;
    const trailers = new Metadata();
    trailers.set('jobwire-job-id', this.job.id);
    trailers.set('jobwire-status', final.status);
    if (final.exitCode !== null) trailers.set('jobwire-exit-code', String(final.exitCode));
    if (final.signal) trailers.set('jobwire-signal', final.signal);
    this.call.end(trailers);
    this.resolveEnded();
  }

  private fail(error: JobwireError): void {
    if (!this.settle()) return;
    // A storage failure answers as the failure itself (the rpc layer logs it, answers INTERNAL).
    this.rejectEnded(error.code === 'internal' && error.cause !== undefined ? error.cause : error);
  }
}
