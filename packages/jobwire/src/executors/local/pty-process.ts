/**
 * Jobs under a pseudo-terminal (`tty: true`), on node-pty's native `fork` (forkpty: the job is a
 * session leader with the terminal as its controlling tty, so its pgid is its pid).
 *
 * Why not node-pty's `spawn()` wrapper: it loses the end of the output. When the last process
 * holding the terminal's slave side exits, the master reports POLLHUP while the kernel may still
 * hold several KiB of output; libuv then takes its last short read for the end of the stream and
 * closes the fd (node-pty issues #72, #85, #726; `seq 1 100000` lost 5-10 KiB in about one run of
 * three here). node-pty also destroys its socket 200 ms after the exit whether or not it has
 * drained. So this module:
 * 1. keeps its own descriptor of the slave open, so the master never hangs up while we read;
 * 2. learns of the exit from the native waitpid callback, not from the stream;
 * 3. then writes a random marker into the slave and reads until the marker comes out of the
 *    master. A pty is one FIFO, so everything the job wrote before it exited comes out first;
 * 4. only then closes both sides and settles `done`.
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tty from 'node:tty';
import type { ProcessHandle, ProcessResult, StartSpec } from '../types.js';
import { GroupTerminator, signalGroup } from './process-group.js';
import { startedJobProcess, type JobProcess } from './process-identity.js';
import { commandAs } from './os-account.js';
import { OutputCopy, ReadGate, StartError, checkCwd, describe, findExecutable, jobCwd, jobEnv, notStarted, openCopy, withProblem } from './setup.js';

/** Terminal type announced to tty jobs: what the dashboard's xterm.js emulates. */
const TERM_NAME = 'xterm-256color';
/** Terminal size when the description gives none. */
const DEFAULT_SIZE = { cols: 80, rows: 24 };
/**
 * Gives up waiting for the drain marker after this long without any output. Only reached when the
 * job left its terminal stopped (Ctrl-S) or our slave descriptor could not be written.
 */
const DRAIN_QUIET_MS = 2000;
/** Retry interval while the terminal's buffer is too full to take the marker. */
const MARKER_RETRY_MS = 10;

/** The part of node-pty's native addon (1.1.0, Unix) this module uses. */
interface NativePty {
  fork(
    file: string,
    args: string[],
    env: string[],
    cwd: string,
    cols: number,
    rows: number,
    uid: number,
    gid: number,
    utf8: boolean,
    helperPath: string,
    onExit: (exitCode: number, signal: number) => void,
  ): { fd: number; pid: number; pty: string };
  resize(fd: number, cols: number, rows: number): void;
}

let loaded: { native: NativePty; helperPath: string } | undefined;

/** Loads node-pty on first use, so a server without a working build still runs pipe jobs. */
function loadPty(): { native: NativePty; helperPath: string } {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  let native: NativePty | null;
  let root: string;
  try {
    native = (require('node-pty') as { native: NativePty | null }).native;
    root = path.dirname(require.resolve('node-pty/package.json'));
  } catch (error) {
    throw new StartError(`cannot start a tty job: node-pty is not available: ${describe(error)}`, { cause: error });
  }
  if (native === null) throw new StartError('cannot start a tty job: node-pty has no native pty on this platform');
  // The spawn helper is only used on macOS; node-pty looks for its addon in these folders.
  const folders = ['build/Release', 'build/Debug', `prebuilds/${process.platform}-${process.arch}`];
  const folder = folders.find((dir) => fs.existsSync(path.join(root, dir, 'pty.node'))) ?? folders[0]!;
  loaded = { native, helperPath: path.join(root, folder, 'spawn-helper') };
  return loaded;
}

const SIGNAL_NAMES = new Map(Object.entries(os.constants.signals).map(([name, number]) => [number, name]));

/** A job under a pseudo-terminal. All output arrives on "stdout". */
export class PtyProcess implements ProcessHandle {
  readonly done: Promise<ProcessResult>;
  #pid: number | undefined;
  #process: JobProcess | undefined;
  readonly #spec: StartSpec;
  readonly #terminator: GroupTerminator;
  #resolve!: (result: ProcessResult) => void;
  #native: NativePty | undefined;
  #masterFd = -1;
  #slaveFd: number | undefined;
  #socket: tty.ReadStream | undefined;
  #copy: OutputCopy | undefined;
  /** The caller and the description's stdout copy may both pause reading the terminal. */
  readonly #gate = new ReadGate(() => this.#socket);
  #stdinClosed = false;
  #readEnded = false;
  #exit: ProcessResult | undefined;
  /** Set once the job has exited and we are reading up to the marker. */
  #drain: { marker: Buffer; pending: Buffer; quiet: NodeJS.Timeout | undefined } | undefined;
  #markerRetry: NodeJS.Timeout | undefined;
  #finished = false;

  constructor(spec: StartSpec) {
    this.#spec = spec;
    this.#terminator = new GroupTerminator(() => this.#pid);
    this.done = new Promise((resolve) => (this.#resolve = resolve));
    const description = spec.description;
    const executable = description.executable ?? '';
    let socket: tty.ReadStream;
    try {
      const cwd = jobCwd(spec);
      const env = jobEnv(spec, { TERM: TERM_NAME });
      const account = spec.account;
      // As another account the job's own process enters the directory and finds the program
      // (see os-account.ts): a failure there shows in the terminal and ends the job with 126/127.
      if (account === undefined) {
        checkCwd(cwd, `"${executable}"`);
        findExecutable(executable, cwd, env.PATH);
      }
      this.#copy = openCopy(spec, 'stdout', cwd);
      const { native, helperPath } = loadPty();
      this.#native = native;
      const { cols, rows } = description.size ?? DEFAULT_SIZE;
      const envPairs = Object.entries(env).map(([key, value]) => `${key}=${value}`);
      const run = account === undefined ? { file: executable, args: description.arguments ?? [] } : commandAs(account, cwd, executable, description.arguments ?? []);
      let term: { fd: number; pid: number; pty: string };
      try {
        // uid/gid -1: node-pty's own switch would keep root's supplementary groups, so another
        // account is reached through setpriv (commandAs). utf8: sets IUTF8, so erase works on
        // multi-byte characters.
        term = native.fork(run.file, run.args, envPairs, account === undefined ? cwd : '/', cols, rows, -1, -1, true, helperPath, (code, signal) =>
          this.#onExit(code, signal),
        );
      } catch (error) {
        throw new StartError(`cannot start "${executable}": ${describe(error)}`, { cause: error });
      }
      if (account !== undefined) {
        try {
          // The terminal belongs to the job's account, as login and sshd do it (tty(1), mesg).
          fs.chownSync(term.pty, account.uid, -1);
        } catch {
          // The job still has its terminal open; only programs that reopen it by name notice.
        }
      }
      this.#pid = term.pid;
      this.#process = startedJobProcess(term.pid);
      this.#masterFd = term.fd;
      try {
        // O_NOCTTY: the terminal must not become the server's controlling tty.
        this.#slaveFd = fs.openSync(term.pty, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
      } catch {
        // Without it we fall back to reading until the master hangs up, which may lose the tail.
      }
      try {
        socket = new tty.ReadStream(term.fd);
        this.#socket = socket;
      } catch (error) {
        signalGroup(term.pid, 'SIGKILL');
        closeQuietly(term.fd);
        throw new StartError(`cannot read the terminal of "${executable}": ${describe(error)}`, { cause: error });
      }
    } catch (error) {
      this.#finished = true;
      if (this.#slaveFd !== undefined) closeQuietly(this.#slaveFd);
      const copy = this.#copy;
      void (copy === undefined ? Promise.resolve() : copy.close()).then(() => this.#resolve(notStarted(error)));
      return;
    }

    socket.on('data', (data: Buffer) => this.#onData(data));
    // EIO is how a master reports that the terminal hung up; any error ends reading the same way.
    socket.on('error', () => this.#onReadEnd());
    socket.on('end', () => this.#onReadEnd());
    socket.on('close', () => this.#onReadEnd());
    // A batch job's stdin is at its end from the start (see closeStdin for what that means here).
    if (description.interactive !== true) this.closeStdin();
  }

  /** OS process id of the job: a session leader, so also its process group id. */
  get pid(): number | undefined {
    return this.#pid;
  }

  /** Leader and runner of the job's processes, read right after the fork. */
  get process(): JobProcess | undefined {
    return this.#process;
  }

  /**
   * Writes to the terminal (as if typed) and resolves once the kernel has taken the data, so a
   * writer that awaits each call is slowed to the terminal's pace. Dropped (and resolved) after
   * closeStdin or once the job has ended.
   */
  writeStdin(data: Uint8Array): Promise<void> {
    const socket = this.#socket;
    if (this.#stdinClosed || this.#finished || socket === undefined || socket.destroyed) return Promise.resolve();
    // The callback also runs, with an error, if the socket is destroyed first.
    return new Promise((resolve) => {
      socket.write(data, () => resolve());
    });
  }

  /**
   * Ends stdin the only way a terminal can: it has no half-close, so we type the EOF character
   * (VEOF, Ctrl-D, `\x04`). The line discipline turns it into a zero-byte read, i.e. EOF, for a
   * program reading at the start of a line in canonical mode; after a partial line the first
   * Ctrl-D only flushes that line, and a program in raw mode sees a plain 0x04 byte.
   */
  closeStdin(): void {
    const socket = this.#socket;
    if (this.#stdinClosed || this.#finished || socket === undefined || socket.destroyed) return;
    socket.write('\x04');
    this.#stdinClosed = true;
  }

  /** Changes the terminal size; the job gets SIGWINCH. Ignored once the job has ended. */
  resize(cols: number, rows: number): void {
    if (this.#finished || this.#native === undefined) return;
    if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1) return;
    try {
      this.#native.resize(this.#masterFd, cols, rows);
    } catch {
      // The terminal went away between the check and the call: nothing left to resize.
    }
  }

  /** SIGTERM to the job's process group, SIGKILL after `graceMs` if it has not finished. */
  terminate(graceMs: number): void {
    this.#terminator.terminate(graceMs);
  }

  /** Stops reading the terminal: the job blocks once the terminal's buffer is full. */
  pauseOutput(): void {
    this.#gate.hold('caller');
  }

  /** Reads the terminal again (unless the description's stdout copy still holds it). */
  resumeOutput(): void {
    this.#gate.release('caller');
  }

  #onData(data: Buffer): void {
    const drain = this.#drain;
    if (drain === undefined) {
      this.#emit(data);
      return;
    }
    drain.pending = drain.pending.length === 0 ? data : Buffer.concat([drain.pending, data]);
    const at = drain.pending.indexOf(drain.marker);
    if (at >= 0) {
      // Before the marker: the job's last output. After it: a straggler still writing; keep it.
      const before = drain.pending.subarray(0, at);
      const after = drain.pending.subarray(at + drain.marker.length);
      drain.pending = Buffer.alloc(0);
      if (before.length > 0) this.#emit(before);
      if (after.length > 0) this.#emit(after);
      this.#finish();
      return;
    }
    this.#armQuietTimer();
  }

  #emit(data: Buffer): void {
    this.#spec.onOutput('stdout', data);
    this.#copy?.write(data, this.#gate.as('copy'));
  }

  #onReadEnd(): void {
    if (this.#readEnded) return;
    this.#readEnded = true;
    // Reading can only end before the exit if the terminal was hung up under us; the exit
    // callback finishes then. After the exit, nothing more can arrive.
    if (this.#exit !== undefined) this.#finish();
  }

  #onExit(exitCode: number, signal: number): void {
    if (this.#finished) return;
    this.#exit = signal > 0 ? { exitCode: null, signal: SIGNAL_NAMES.get(signal) ?? `SIG${signal}` } : { exitCode, signal: null };
    if (this.#readEnded) return this.#finish();
    this.#drain = { marker: randomMarker(), pending: Buffer.alloc(0), quiet: undefined };
    this.#armQuietTimer();
    // Without our slave descriptor there is no marker to write: we read until the master hangs
    // up (onReadEnd), or until the quiet timer gives up.
    this.#writeMarker(0);
  }

  /** Writes the marker into the slave; retries while the terminal's buffer is full. */
  #writeMarker(offset: number): void {
    const drain = this.#drain;
    if (this.#finished || drain === undefined || this.#slaveFd === undefined) return;
    let written = offset;
    try {
      written += fs.writeSync(this.#slaveFd, drain.marker, offset, drain.marker.length - offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') return; // the quiet timer ends the wait
    }
    if (written < drain.marker.length) {
      this.#markerRetry = setTimeout(() => this.#writeMarker(written), MARKER_RETRY_MS);
    }
  }

  #armQuietTimer(): void {
    const drain = this.#drain;
    if (drain === undefined) return;
    clearTimeout(drain.quiet);
    drain.quiet = setTimeout(() => {
      // Paused by a slow stdout copy is not quiet: the output is there, just not read yet.
      if (this.#socket?.isPaused() === true) this.#armQuietTimer();
      else this.#finish();
    }, DRAIN_QUIET_MS);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#markerRetry);
    const drain = this.#drain;
    if (drain !== undefined) {
      clearTimeout(drain.quiet);
      if (drain.pending.length > 0) this.#emit(drain.pending);
    }
    if (this.#slaveFd !== undefined) closeQuietly(this.#slaveFd);
    this.#socket?.destroy();
    this.#terminator.finish();
    const exit = this.#exit ?? { exitCode: null, signal: null, error: 'the terminal closed before the job exited' };
    const copy = this.#copy;
    void (copy === undefined ? Promise.resolve(undefined) : copy.close()).then((problem) => this.#resolve(withProblem(exit, problem)));
  }
}

function randomMarker(): Buffer {
  // Upper-case letters and digits only: no output processing (ONLCR, OLCUC, tabs) changes them.
  return Buffer.from(`JOBWIRE${randomBytes(16).toString('hex').toUpperCase()}END`);
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}
