/**
 * Getting a connection to a home's job host: connect to the one that runs, or — when none
 * answers — recover what a dead one left (journal.ts, recovery.ts), start a new one detached
 * from the caller (its own session, its stdio on `<home>/host.log`) and connect to it.
 * @module
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, renameSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { prepareHome } from '../home.js';
import { HostClient, type HostClientOptions } from './client.js';
import { HostUnavailableError, HostVersionError } from './errors.js';
import { lockHolder } from './lock.js';
import type { HostProcessOptions } from './main.js';
import { hostPaths } from './paths.js';
import { recoverJournal, type JobRecovery } from './recovery.js';

/** The host's entry point, next to this module. */
const HOST_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
/**
 * Node options of a host process. `--initial-old-space-size=64` (MiB): a host's heap is small
 * (about 10 MB) and V8 starts it with an old-generation limit only about 16 MB above that; while
 * output streams, the young generation grows to its 16 MB and V8 then takes the old generation
 * as near its limit and marks it again and again (30 full collections for 256 MiB of output,
 * a third of the host's CPU per MiB). A higher starting limit lets the young generation's
 * collections free the pipe reads' buffers as they should. It is a limit, not a reservation:
 * the host still uses what it needs.
 */
export const HOST_NODE_OPTIONS: readonly string[] = ['--initial-old-space-size=64'];
/** host.log is moved aside to host.log.1 when a new host starts and it is larger than this. */
const LOG_ROTATE_BYTES = 10 * 1024 * 1024;

/** Options of {@link ensureHost}. */
export interface EnsureHostOptions extends HostClientOptions {
  /** Options for a host started by this call (idle time, write-behind bound, ...). @defaultValue the host's defaults */
  host?: HostProcessOptions;
  /** Gives up when no host serves the home within this time (not counting the stop of a dead host's leftovers). @defaultValue 15000 */
  startTimeoutMs?: number;
  /** Grace period when stopping a dead host's leftover processes. @defaultValue 10000 */
  graceMs?: number;
  /** Node binary that runs the host. @defaultValue process.execPath */
  nodePath?: string;
}

/** What {@link ensureHost} found and did. */
export interface EnsuredHost {
  client: HostClient;
  /** Whether this call started the host. */
  started: boolean;
  /**
   * Jobs of a previous host that was gone, with what became of each (ended with a stored exit,
   * or Lost with the reason); their journal entries are removed, so report them now.
   */
  recovered: Array<{ jobId: string; recovery: JobRecovery }>;
}

/**
 * Connects to the job host of `home`, starting one if none runs. Rejects with a
 * {@link HostVersionError} when a host runs that speaks none of our versions (it is left running:
 * its jobs are not ours to end), and a {@link HostUnavailableError} when no host could be reached
 * or started in time (the message quotes the host's own complaint).
 */
export async function ensureHost(home: string, options: EnsureHostOptions = {}): Promise<EnsuredHost> {
  const paths = hostPaths(home);
  prepareHome(paths.home);
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  let deadline = Date.now() + startTimeoutMs;
  const recovered: EnsuredHost['recovered'] = [];
  let started = false;
  let lastError: unknown;
  for (let attempt = 0; ; attempt++) {
    try {
      const client = await HostClient.connect(paths.socket, { ...options, timeoutMs: Math.max(1, Math.min(options.timeoutMs ?? 10_000, deadline - Date.now())) });
      return { client, started, recovered };
    } catch (error) {
      if (error instanceof HostVersionError) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) break;
    // A live lock holder is a host starting up or closing down: give it a moment.
    if (lockHolder(paths.home) !== undefined) {
      await sleep(Math.min(20 * 2 ** Math.min(attempt, 5), 500));
      continue;
    }
    recovered.push(...(await recoverJournal(paths.home, options.graceMs ?? 10_000)));
    // Stopping a dead host's leftovers may take their grace period; the new host still gets its time.
    deadline = Math.max(deadline, Date.now() + startTimeoutMs);
    const outcome = await spawnHost(paths.home, paths.log, options, deadline);
    if (outcome.kind === 'error') throw new HostUnavailableError(`cannot start the job host of ${paths.home}: ${outcome.message} (see ${paths.log})`);
    if (outcome.kind === 'ready') started = true;
    // 'busy': another caller's host won the race; connect to it.
  }
  throw new HostUnavailableError(`no job host serves ${paths.home}: ${(lastError as Error | undefined)?.message ?? 'timed out'}`, { cause: lastError });
}

type SpawnOutcome = { kind: 'ready' } | { kind: 'busy' } | { kind: 'error'; message: string };

/** Starts a host process and waits for its report on fd 3. */
async function spawnHost(home: string, logPath: string, options: EnsureHostOptions, deadline: number): Promise<SpawnOutcome> {
  rotateLog(logPath);
  const log = openSync(logPath, 'a', 0o600);
  let child;
  try {
    child = spawn(options.nodePath ?? process.execPath, [...HOST_NODE_OPTIONS, HOST_MAIN, '--home', home, ...(options.host ? ['--options', JSON.stringify(options.host)] : [])], {
      // Its own session: signals for the caller's terminal or process group do not reach it.
      detached: true,
      // Not the caller's cwd: a host must not keep a folder (or a mount) busy.
      cwd: '/',
      stdio: ['ignore', log, log, 'pipe'],
    });
  } finally {
    closeSync(log);
  }
  const report = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
  let text = '';
  const outcome = await new Promise<SpawnOutcome>((resolve) => {
    const timer = setTimeout(() => resolve({ kind: 'error', message: 'it did not report within the start timeout' }), Math.max(0, deadline - Date.now()));
    const finish = (result: SpawnOutcome): void => {
      clearTimeout(timer);
      resolve(result);
    };
    report.setEncoding('utf8');
    report.on('data', (data: string) => {
      text += data;
    });
    report.on('error', () => {});
    report.on('end', () => {
      try {
        const message = JSON.parse(text.trim()) as { ready?: boolean; busy?: number; error?: string };
        if (message.ready === true) finish({ kind: 'ready' });
        else if (message.busy !== undefined) finish({ kind: 'busy' });
        else finish({ kind: 'error', message: message.error ?? 'it gave no reason' });
      } catch {
        finish({ kind: 'error', message: 'it exited without reporting' });
      }
    });
    child.on('error', (error) => finish({ kind: 'error', message: error.message }));
  });
  report.destroy();
  // The host lives on by itself; this process must not wait for it.
  child.unref();
  return outcome;
}

/** Moves a large host.log aside, so the log of a long-lived home stays bounded. */
function rotateLog(path: string): void {
  try {
    if (statSync(path).size > LOG_ROTATE_BYTES) renameSync(path, `${path}.1`);
  } catch {
    // No log yet, or it cannot be moved: the host appends to what is there.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
