/**
 * The terminal side of an attachment, shared by `run`, `attach` and `logs`: job output to
 * stdout/stderr in arrival order with backpressure, local stdin to the job, raw mode and window
 * size for tty jobs, and what Ctrl-C and termination signals do.
 * @module
 */
import { once } from 'node:events';
import type { Attachment, ExitStatus } from '@jobwire/client';
import { EscapeScanner } from './escape.js';
import { describeError, jobwireErrorCode } from './errors.js';
import { ExitCode, exitCodeForJob, exitCodeForSignal } from './exit-codes.js';
import { printable } from './format.js';

/** The process streams a session uses (the real ones, unless a test swaps them). */
export interface SessionIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/** Options of {@link runSession}. */
export interface SessionOptions {
  jobId: string;
  /** Forward local stdin to the job; local EOF ends the job's stdin. @defaultValue false */
  stdin?: boolean;
  /** Put local stdin in raw mode (tty jobs, when stdin is a TTY); `~.` then detaches. @defaultValue false */
  raw?: boolean;
  /** Forward the local terminal size (tty jobs, when stdout is a TTY). @defaultValue false */
  resize?: boolean;
  /**
   * What Ctrl-C does outside raw mode: `detach`, or `cancel` (the first Ctrl-C cancels the job
   * and keeps streaming until it ended; a second one detaches). @defaultValue "detach"
   */
  interrupt?: 'detach' | 'cancel';
  /** Cancels the job, for `interrupt: "cancel"`. */
  cancel?: () => Promise<unknown>;
  /** Detach once output reached this merged position (`logs` without `-f`). */
  until?: number;
  /** Which channels to print. @defaultValue both */
  channels?: { stdout: boolean; stderr: boolean };
  /** @defaultValue the process's streams */
  io?: SessionIo;
  /**
   * True while the job has not started (it waits in its queue): then Ctrl-C typed in raw mode
   * does what Ctrl-C does outside it (see `interrupt`), as there is no program yet to get the key.
   * @defaultValue never
   */
  waiting?: () => boolean;
  /** Called before the session writes anything (job output, a note on Ctrl-C): a line drawn on stderr (the queued notice) is cleared then. */
  beforeWrite?: () => void;
}

/** How a session ended. */
export type SessionEnd =
  /** The job ended; all its output was written. */
  | { kind: 'exit'; status: ExitStatus }
  /** The CLI let go; the job keeps running. */
  | { kind: 'detached'; why: 'interrupt' | 'escape' | 'caught-up'; cancelling?: boolean }
  /** The CLI was told to stop (SIGTERM, SIGHUP); it detached. */
  | { kind: 'signal'; signal: NodeJS.Signals };

/** The byte a terminal in raw mode sends for Ctrl-C. */
const CTRL_C = 0x03;

/** Longest wait for buffered output when detaching (normal ends wait as long as it takes). */
const DETACH_FLUSH_MS = 1_000;

/**
 * Writes chunks to two streams so that a reader of both sees them in the order they came: a
 * chunk for one stream waits while the other still holds unwritten bytes. When a stream's
 * buffer is full the attachment is paused until it drains (the server then stops sending).
 */
export class OrderedOutput {
  private last: NodeJS.WritableStream | undefined;
  private readonly pending = new Map<NodeJS.WritableStream, Promise<void>>();

  constructor(private readonly flow: Pick<Attachment, 'pause' | 'resume'>) {}

  /** Writes `data` to `stream`; resolves when the caller may write the next chunk. */
  async write(stream: NodeJS.WriteStream, data: Uint8Array): Promise<void> {
    const previous = this.last;
    if (previous !== undefined && previous !== stream && (previous as NodeJS.WriteStream).writableLength > 0) {
      await this.pending.get(previous);
    }
    let ok = true;
    const written = new Promise<void>((resolve, reject) => {
      ok = stream.write(data, (err) => (err ? reject(err) : resolve()));
    });
    // A failed write also shows as the stream's 'error' event; the process handles that one.
    written.catch(() => {});
    this.pending.set(stream, written);
    this.last = stream;
    if (!ok) {
      this.flow.pause();
      try {
        await once(stream, 'drain');
      } finally {
        this.flow.resume();
      }
    }
  }

  /** Resolves once everything written so far has been handed to the OS (or after `timeoutMs`). */
  async flush(timeoutMs?: number): Promise<void> {
    const all = Promise.all(this.pending.values()).then(() => undefined);
    if (timeoutMs === undefined) return all;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}

/**
 * Connects the terminal to an attachment until the job ends, the session detaches, or a signal
 * stops the CLI. Restores the terminal in every case.
 */
export async function runSession(att: Attachment, options: SessionOptions): Promise<SessionEnd> {
  const io = options.io ?? { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  const channels = options.channels ?? { stdout: true, stderr: true };
  const out = new OrderedOutput(att);
  const cleanups: (() => void)[] = [];

  let settled = false;
  let finish!: (end: SessionEnd) => void;
  let fail!: (err: unknown) => void;
  const ended = new Promise<SessionEnd>((resolve, reject) => {
    finish = (end) => {
      if (settled) return;
      settled = true;
      resolve(end);
    };
    fail = (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    };
  });

  // Output: in arrival order, paced by the local streams.
  const pump = async (): Promise<void> => {
    if (options.until !== undefined && options.until <= 0) return finish({ kind: 'detached', why: 'caught-up' });
    for await (const chunk of att.output) {
      if (settled) break;
      if (channels[chunk.channel] && chunk.data.byteLength > 0) {
        options.beforeWrite?.();
        await out.write(chunk.channel === 'stdout' ? io.stdout : io.stderr, chunk.data);
      }
      if (options.until !== undefined && chunk.pos + chunk.data.byteLength >= options.until) {
        return finish({ kind: 'detached', why: 'caught-up' });
      }
    }
    if (settled) return;
    // The output ends after the exit status arrived (or the connection failed: exit rejects).
    finish({ kind: 'exit', status: await att.exit });
  };
  pump().catch(fail);

  // Raw mode for tty jobs: keys go to the job as typed, restored however the CLI ends.
  if (options.raw && io.stdin.isTTY) {
    io.stdin.setRawMode(true);
    const restore = (): void => {
      if (io.stdin.isRaw) io.stdin.setRawMode(false);
    };
    process.once('exit', restore);
    cleanups.push(() => {
      restore();
      process.removeListener('exit', restore);
    });
  }

  // Window size for tty jobs: the local terminal's, now and on every SIGWINCH.
  if (options.resize && io.stdout.isTTY) {
    const onResize = (): void => {
      if (io.stdout.columns > 0 && io.stdout.rows > 0) att.resize(io.stdout.columns, io.stdout.rows);
    };
    io.stdout.on('resize', onResize);
    cleanups.push(() => io.stdout.removeListener('resize', onResize));
    onResize();
  }

  // Input: local stdin to the job, paced by the job's stdin window; local EOF is the job's EOF.
  if (options.stdin) {
    const escape = options.raw && io.stdin.isTTY ? new EscapeScanner() : undefined;
    const forward = async (): Promise<void> => {
      try {
        for await (const chunk of io.stdin as AsyncIterable<Buffer>) {
          if (settled) return;
          let data: Uint8Array = chunk;
          if (options.raw && io.stdin.isTTY && options.waiting?.() && chunk.includes(CTRL_C)) {
            onInterrupt();
            continue;
          }
          if (escape) {
            const scanned = escape.push(chunk);
            data = scanned.forward;
            if (scanned.detach) {
              // What was typed before the escape goes to the job if it can go now; detaching
              // must not wait for a full stdin window.
              if (data.byteLength > 0) att.stdin.write(data).catch(() => {});
              return finish({ kind: 'detached', why: 'escape' });
            }
          }
          if (data.byteLength > 0) await att.stdin.write(data);
        }
        if (!settled) await att.stdin.end();
      } catch (err) {
        if (settled) return;
        const message = jobwireErrorCode(err) === 'conflict' ? "the job's stdin is closed" : describeError(err).message;
        io.stderr.write(`jobwire: stopped forwarding input: ${message}\n`);
      }
    };
    void forward();
    cleanups.push(() => io.stdin.destroy());
  }

  // Ctrl-C (outside raw mode) and termination signals.
  let cancelling = false;
  const onInterrupt = (): void => {
    options.beforeWrite?.();
    if (options.interrupt === 'cancel' && options.cancel && !cancelling) {
      cancelling = true;
      io.stderr.write(`\njobwire: cancelling job ${options.jobId} (Ctrl-C again to detach)\n`);
      options.cancel().catch((err: unknown) => io.stderr.write(`jobwire: could not cancel: ${describeError(err).message}\n`));
      return;
    }
    finish(cancelling ? { kind: 'detached', why: 'interrupt', cancelling } : { kind: 'detached', why: 'interrupt' });
  };
  const onTerminate = (signal: NodeJS.Signals): void => {
    options.beforeWrite?.();
    finish({ kind: 'signal', signal });
  };
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onTerminate);
  process.on('SIGHUP', onTerminate);
  cleanups.push(() => {
    process.removeListener('SIGINT', onInterrupt);
    process.removeListener('SIGTERM', onTerminate);
    process.removeListener('SIGHUP', onTerminate);
  });

  try {
    const end = await ended;
    options.beforeWrite?.();
    if (end.kind !== 'exit') att.detach();
    const complete = end.kind === 'exit' || (end.kind === 'detached' && end.why === 'caught-up');
    await out.flush(complete ? undefined : DETACH_FLUSH_MS);
    return end;
  } catch (err) {
    options.beforeWrite?.();
    att.detach();
    throw err;
  } finally {
    for (const cleanup of cleanups.reverse()) cleanup();
  }
}

/**
 * The exit code for how a session ended, after telling the user on stderr when the CLI
 * detached from a job that keeps running.
 */
export function finishSession(end: SessionEnd, jobId: string, stderr: NodeJS.WritableStream = process.stderr): number {
  const detached = (): void => {
    const state = end.kind === 'detached' && end.cancelling ? 'it is being cancelled' : 'the job keeps running';
    stderr.write(`\njobwire: detached from ${jobId}; ${state}. Reattach: jobwire attach ${jobId}\n`);
  };
  switch (end.kind) {
    case 'exit': {
      const note = endNote(end.status, jobId);
      if (note) stderr.write(`jobwire: ${note}\n`);
      return exitCodeForJob(end.status);
    }
    case 'signal':
      detached();
      return exitCodeForSignal(end.signal);
    case 'detached':
      if (end.why === 'caught-up') return ExitCode.OK;
      detached();
      return end.why === 'interrupt' ? ExitCode.CANCELLED : ExitCode.OK;
    default: {
      const never: never = end;
      return never;
    }
  }
}

/**
 * What to tell the user about a job's end that its own output does not: a failure without an
 * exit code (the program could not start, a function threw), a signal, a cancel, a loss.
 * Nothing for an ordinary exit code, which the program's output explains.
 */
export function endNote(end: ExitStatus, jobId: string): string | undefined {
  const why = end.error ? `: ${printable(end.error.split('\n')[0]!)}` : '';
  switch (end.status) {
    case 'Success':
    case 'Queued':
    case 'Running':
      return undefined;
    case 'Failed':
      if (end.signal) return `job ${jobId} was killed by ${end.signal}`;
      if (end.exitCode === null) return `job ${jobId} failed${why}`;
      return undefined;
    case 'Cancelled':
      return `job ${jobId} was cancelled`;
    case 'Lost':
      return `job ${jobId} was lost${why}`;
    default: {
      const never: never = end.status;
      return never;
    }
  }
}
