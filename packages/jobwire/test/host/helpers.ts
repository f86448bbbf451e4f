/**
 * Helpers of the job host tests: homes with a real host process, following a job's output with
 * checks for gaps and repeats, and a "server" in a separate process that a test can kill -9.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { JobDescription, OutputChannel, OutputChunk } from '@jobwire/client';
import { type HostClient, type HostJobEvent } from '../../src/host/client.js';
import type { ExitRecord, StartJob } from '../../src/host/protocol.js';
import { hostStatus, stopHost } from '../../src/host/recovery.js';
import { removeHome, sleepUntil, tempHome } from '../helpers.js';

/** The "server" process of these tests (client-process.ts, compiled). */
const CLIENT_PROCESS = fileURLToPath(new URL('./client-process.js', import.meta.url));

/** Runs `fn` with a fresh home; stops the home's host (and so its jobs) and removes the home after. */
export async function withHostHome<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const home = tempHome('jobwire-host-');
  try {
    return await fn(home);
  } finally {
    await stopHost(home, { timeoutMs: 15_000 });
    removeHome(home);
  }
}

/** A start request for `description`, running in the system's temp folder. */
export function jobSpec(jobId: string, description: JobDescription, extra: Partial<StartJob> = {}): StartJob {
  return { jobId, description, defaultCwd: tmpdir(), env: {}, ...extra };
}

/** What {@link follow} has seen of a job. */
export interface Followed {
  chunks: OutputChunk[];
  events: HostJobEvent[];
  /** Resolves with the exit; rejects when it came before all output, or after a gap or repeat. */
  exit: Promise<ExitRecord>;
  /** Merged end of the output received. */
  readonly end: number;
  /** Output received, one channel or both in merged order. */
  text(channel?: OutputChannel): string;
  /** Resolves once the output received contains `text` (after `from` characters, if given). */
  until(text: string, from?: number): Promise<void>;
}

/**
 * Subscribes to `jobId` from `from` and records everything; every chunk must start where the
 * previous one ended (no gap, no repeat) and the exit must come after the last byte.
 */
export async function follow(client: HostClient, jobId: string, from = 0): Promise<Followed> {
  const chunks: OutputChunk[] = [];
  const events: HostJobEvent[] = [];
  let end = from;
  let problem: Error | undefined;
  let settle!: { resolve(exit: ExitRecord): void; reject(error: Error): void };
  const exit = new Promise<ExitRecord>((resolve, reject) => (settle = { resolve, reject }));
  const waiters: Array<() => void> = [];
  const text = (channel?: OutputChannel): string =>
    Buffer.concat(chunks.filter((chunk) => channel === undefined || chunk.channel === channel).map((chunk) => Buffer.from(chunk.data))).toString('latin1');
  await client.subscribe(
    jobId,
    (event) => {
      events.push(event);
      switch (event.type) {
        case 'output':
          if (event.chunk.pos !== end) problem ??= new Error(`chunk at ${event.chunk.pos}, expected ${end}: a gap or a repeat`);
          end = event.chunk.pos + event.chunk.data.byteLength;
          chunks.push(event.chunk);
          for (const wake of waiters.splice(0)) wake();
          break;
        case 'exit':
          if (event.exit.output.end !== end) problem ??= new Error(`exit came at ${end}, before the end of the output (${event.exit.output.end})`);
          if (problem) settle.reject(problem);
          else settle.resolve(event.exit);
          break;
        default:
          break;
      }
    },
    { from },
  );
  exit.catch(() => {});
  return {
    chunks,
    events,
    exit,
    get end() {
      return end;
    },
    text,
    until: (wanted, after = 0) =>
      new Promise<void>((resolve) => {
        const check = (): void => (text().indexOf(wanted, after) >= 0 ? resolve() : void waiters.push(check));
        check();
      }),
  };
}

/** Waits until the home's host process is gone. */
export async function hostGone(home: string, pid: number): Promise<void> {
  await sleepUntil(() => {
    const status = hostStatus(home);
    return status.state !== 'running' || status.info.pid !== pid;
  }, 20_000, `the job host (pid ${pid}) to exit`);
}

/** A message of client-process.ts. */
export type ClientEvent =
  | { ev: 'connected'; hostPid: number }
  | { ev: 'reply'; op: string; result: unknown }
  | { ev: 'output'; jobId: string; pos: number; channel: OutputChannel; data: string }
  | { ev: 'exit'; jobId: string; exit: ExitRecord }
  | { ev: 'error'; op: string; message: string };

/** A "server": a separate node process using the host client, driven by JSON lines. */
export class ClientProcess {
  readonly events: ClientEvent[] = [];
  readonly #proc: ChildProcess;
  readonly #waiters: Array<() => void> = [];
  readonly exited: Promise<void>;

  constructor(home: string, hostOptions: object = {}, clientOptions: object = {}) {
    this.#proc = spawn(process.execPath, [CLIENT_PROCESS, home, JSON.stringify(hostOptions), JSON.stringify(clientOptions)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.#proc.on('exit', () => resolve()));
    createInterface({ input: this.#proc.stdout! }).on('line', (line) => {
      this.events.push(JSON.parse(line) as ClientEvent);
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** Sends one command (see client-process.ts). */
  send(command: object): void {
    this.#proc.stdin!.write(JSON.stringify(command) + '\n');
  }

  /** Resolves with the first event (from the start) that matches. */
  waitFor<E extends ClientEvent>(match: (event: ClientEvent) => event is E, what: string): Promise<E>;
  waitFor(match: (event: ClientEvent) => boolean, what: string): Promise<ClientEvent>;
  waitFor(match: (event: ClientEvent) => boolean, what: string): Promise<ClientEvent> {
    return sleepUntil(() => {
      const error = this.events.find((event) => event.ev === 'error');
      if (error) throw new Error(`the client process failed: ${JSON.stringify(error)}`);
      return this.events.find(match);
    }, 20_000, what);
  }

  /** Output of `jobId` received so far. */
  output(jobId: string): string {
    return this.events
      .filter((event): event is Extract<ClientEvent, { ev: 'output' }> => event.ev === 'output' && event.jobId === jobId)
      .map((event) => Buffer.from(event.data, 'base64').toString('latin1'))
      .join('');
  }

  /** Sends the process a signal (SIGSTOP, SIGCONT, ...). */
  signal(signal: NodeJS.Signals): void {
    this.#proc.kill(signal);
  }

  /** kill -9, and waits for the exit. */
  async kill(): Promise<void> {
    this.#proc.kill('SIGKILL');
    await this.exited;
  }
}
