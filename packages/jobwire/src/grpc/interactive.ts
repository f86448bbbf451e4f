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
 * @module
 */
import { Metadata, type ServerDuplexStream } from '@grpc/grpc-js';
import { JobwireError, type OutputChunk } from '@jobwire/client';
import { OutputFollower } from '../jobs/output-follower.js';
import { attachClosed, attachOpened, outputSent } from '../metrics.js';
import type { JobService } from '../jobs/service.js';
import type { StreamEvent } from '../store/types.js';
import type { SubmitInteractiveJobRequest, SubmitInteractiveJobResponse } from './messages.js';

/** Stdin bytes accepted ahead of what the job has read. */
export const STDIN_WINDOW = 1024 * 1024;
/** Largest output payload of one response message. */
const MAX_PAYLOAD = 256 * 1024;

type Call = ServerDuplexStream<SubmitInteractiveJobRequest, SubmitInteractiveJobResponse>;

/** Streams one interactive job over `call` until its output ends or the client goes away. */
export class InteractiveSession {
  private readonly follower: OutputFollower;
  private waitingDrain = false;
  private finished = false;
  private detached = false;
  /** False until the first response (the job alone) went out: no output may precede it. */
  private ready = false;
  /** Stdin bytes accepted into the log, and read by the job. */
  private written = 0;
  private consumed = 0;
  /** True once stdin can take no more (the job ended or its stdin was closed). */
  private stdinDone = false;
  private outputClosed = false;
  private wakers: (() => void)[] = [];
  private stdinChain: Promise<void> = Promise.resolve();
  private readonly offs: (() => void)[] = [];
  private readonly ended: Promise<void>;
  private resolveEnded!: () => void;
  private rejectEnded!: (err: unknown) => void;

  constructor(
    private readonly call: Call,
    private readonly service: JobService,
    private readonly owner: string,
    private readonly jobId: string,
    private readonly signal: AbortSignal,
  ) {
    this.ended = new Promise((resolve, reject) => {
      this.resolveEnded = resolve;
      this.rejectEnded = reject;
    });
    this.follower = new OutputFollower(service.store.streams, jobId, 0, {
      canTake: () => this.ready && !this.finished && !this.detached && !this.waitingDrain,
      take: (chunk) => this.send(chunk),
      end: () => this.finish(),
      fail: (err) => this.fail(err),
    });
  }

  /** Runs the session; resolves when the call is over (ended or detached), rejects if it failed. */
  async run(firstStdin: Uint8Array): Promise<void> {
    const { call, service, jobId } = this;
    attachOpened('grpc');
    this.offs.push(() => attachClosed('grpc'));
    this.offs.push(service.store.streams.subscribe(jobId, (ev) => this.onStream(ev)));
    const onDrain = (): void => {
      this.waitingDrain = false;
      this.follower.pump();
    };
    call.on('drain', onDrain);
    this.offs.push(() => call.off('drain', onDrain));
    const onAbort = (): void => this.detach();
    this.signal.addEventListener('abort', onAbort, { once: true });
    this.offs.push(() => this.signal.removeEventListener('abort', onAbort));

    try {
      this.consumed = (await service.store.streams.sizes(jobId)).stdinConsumed;
    } catch (err) {
      this.fail(err);
      return this.ended;
    }
    call.write({ job: { id: jobId } });
    this.ready = true;
    this.follower.pump();

    // The caller paused the call after the first request; reading resumes when that request's
    // stdin is applied.
    const onData = (request: SubmitInteractiveJobRequest): void => this.queueStdin(request.stdin);
    const onEnd = (): void => this.queueStdinEnd();
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

  private cleanup(): void {
    for (const off of this.offs.splice(0)) off();
    this.wake();
    this.resolveEnded();
  }

  /** The client went away (or the server closes): stop, leave the job running. */
  private detach(): void {
    if (this.detached || this.finished) return;
    this.detached = true;
    this.cleanup();
  }

  private wake(): void {
    for (const wake of this.wakers.splice(0)) wake();
  }

  private onStream(ev: StreamEvent): void {
    switch (ev.type) {
      case 'output':
        this.follower.offer(ev.chunk);
        break;
      case 'output-closed':
        this.outputClosed = true;
        this.wake();
        this.follower.pump();
        break;
      case 'stdin-ack':
        this.consumed = Math.max(this.consumed, ev.consumed);
        this.wake();
        break;
      case 'stdin-closed':
        this.stdinDone = true;
        this.wake();
        break;
      case 'stdin':
      case 'control':
        break;
      default: {
        const never: never = ev;
        void never;
      }
    }
  }

  // ---- stdin -------------------------------------------------------------------------------

  /** Applies stdin requests one at a time, reading no further request meanwhile. */
  private queueStdin(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    this.call.pause();
    this.stdinChain = this.stdinChain
      .then(() => this.writeStdin(data))
      .finally(() => {
        if (!this.detached && !this.finished) this.call.resume();
      });
  }

  private queueStdinEnd(): void {
    this.stdinChain = this.stdinChain.then(async () => {
      if (this.stdinDone || this.detached) return;
      this.stdinDone = true;
      await this.service.closeStdin(this.owner, this.jobId).catch((err: unknown) => this.stdinError(err));
    });
  }

  private async writeStdin(data: Uint8Array): Promise<void> {
    while (this.written - this.consumed >= STDIN_WINDOW && !this.stdinDone && !this.outputClosed && !this.detached) {
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
    // Input the job can no longer read is dropped, as the attach endpoint does.
    if (this.stdinDone || this.outputClosed || this.detached) return;
    try {
      this.written = await this.service.writeStdin(this.owner, this.jobId, data, this.written);
    } catch (err) {
      this.stdinError(err);
    }
  }

  private stdinError(err: unknown): void {
    // A job that has ended (or was never interactive) takes no more input; anything else is a bug.
    if (err instanceof JobwireError && err.code === 'conflict') {
      this.stdinDone = true;
      return;
    }
    this.fail(err);
  }

  // ---- output ------------------------------------------------------------------------------

  /** Writes one chunk (already trimmed to the cursor by the follower), split into messages. */
  private send(chunk: OutputChunk): void {
    if (this.finished || this.detached) return; // the call is over: nobody to write to
    const { data } = chunk;
    outputSent('grpc', data.byteLength);
    for (let at = 0; at < data.byteLength; at += MAX_PAYLOAD) {
      const piece = data.subarray(at, at + MAX_PAYLOAD);
      const message: SubmitInteractiveJobResponse = { job: { id: this.jobId }, [chunk.channel]: piece };
      if (!this.call.write(message)) this.waitingDrain = true;
    }
  }

  /** Ends the call after all output, with the job's final status in the trailers. */
  private async finish(): Promise<void> {
    if (this.finished || this.detached) return;
    this.finished = true;
    const job = await this.service.store.getJob(this.jobId, this.owner);
    const trailers = new Metadata();
    trailers.set('jobwire-job-id', this.jobId);
    trailers.set('jobwire-status', job?.status ?? 'Lost');
    if (job?.exitCode !== null && job?.exitCode !== undefined) trailers.set('jobwire-exit-code', String(job.exitCode));
    if (job?.signal) trailers.set('jobwire-signal', job.signal);
    this.call.end(trailers);
    this.cleanup();
  }

  private fail(err: unknown): void {
    if (this.finished || this.detached) return;
    this.finished = true;
    this.rejectEnded(err);
    this.cleanup();
  }
}
