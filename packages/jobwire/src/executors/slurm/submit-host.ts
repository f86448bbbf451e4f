/**
 * The machine the Slurm executor sends its commands to: `sbatch`, `squeue`, `scontrol`,
 * `scancel`, `sinfo` and `srun` run there, and the job's output files (on the cluster's shared
 * file system) are read there. {@link LocalSubmitHost} is this machine (`slurm:`); a host over
 * SSH (`slurm+ssh://`) implements the same small interface on a shared connection.
 * @module
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import type { ProcessHandle, StartSpec } from '../types.js';
import { PipeProcess } from '../local/pipe-process.js';
import { PtyProcess } from '../local/pty-process.js';
import { describe } from '../local/setup.js';

/** How a command run to completion ended. */
export interface CommandResult {
  /** Exit code; null when the command was killed by a signal or could not be started. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started at all (e.g. not installed): why, in words. */
  startError?: string;
}

/** A program and its arguments, run without a shell. */
export interface HostCommand {
  file: string;
  args: readonly string[];
}

/** Runs commands and reads files on the machine where Slurm's commands are. */
export interface SubmitHost {
  /** Where, for messages ("this machine", "login.example.org"). */
  readonly where: string;
  /** Runs a command to completion, writing `stdin` (if given) to it and collecting its output. */
  run(command: HostCommand, stdin?: string): Promise<CommandResult>;
  /**
   * Starts a job's command with streams (pipes, or a pseudo-terminal with `tty`), passing its
   * output to `spec.onOutput`; `spec.description` gives the environment, working directory and
   * terminal size. Never throws: a command that cannot start ends the handle's `done` with an error.
   */
  spawn(spec: StartSpec, command: HostCommand, options: { tty: boolean }): ProcessHandle;
  /**
   * Reads up to `max` bytes of a file from byte `offset` on; an empty buffer at its end,
   * undefined when the file does not exist.
   */
  read(path: string, offset: number, max: number): Promise<Buffer | undefined>;
  /** Creates a folder and its parents (no error when it exists). */
  mkdir(path: string): Promise<void>;
  /** The home folder of the account the commands run as (for the default jobs folder). */
  home(): Promise<string>;
}

/** Options of a {@link LocalSubmitHost}. */
export interface LocalSubmitHostOptions {
  /**
   * Variables added to this process's environment for every Slurm command and job (e.g.
   * `SLURM_CONF` for a cluster whose configuration is not in /etc/slurm). @defaultValue {}
   */
  env?: Record<string, string>;
}

/** Slurm commands on this machine: child processes, node-pty for `srun --pty`. */
export class LocalSubmitHost implements SubmitHost {
  readonly where = 'this machine';
  readonly #env: Record<string, string | undefined>;

  constructor(options: LocalSubmitHostOptions = {}) {
    this.#env = { ...process.env, ...options.env };
  }

  run(command: HostCommand, stdin?: string): Promise<CommandResult> {
    return new Promise((resolve) => {
      const child = spawn(command.file, command.args, { env: this.#env, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let startError: string | undefined;
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.on('error', (error) => (startError = describe(error)));
      // A command that exits without reading its stdin makes the write fail with EPIPE: its exit says why.
      child.stdin.on('error', () => undefined);
      child.stdin.end(stdin ?? '');
      child.on('close', (code) => {
        const result: CommandResult = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
        if (startError !== undefined) result.startError = startError;
        resolve(result);
      });
    });
  }

  spawn(spec: StartSpec, command: HostCommand, options: { tty: boolean }): ProcessHandle {
    const hostSpec: StartSpec = { ...spec, baseEnv: { ...definedValues(spec.baseEnv ?? this.#env), ...definedValues(this.#env) } };
    if (options.tty) {
      // The local pty job runs the description's executable: make that the srun command.
      return new PtyProcess({ ...hostSpec, description: { ...spec.description, executable: command.file, arguments: [...command.args] } });
    }
    return new PipeProcess(hostSpec, { command, what: `"${command.file}"` });
  }

  async read(path: string, offset: number, max: number): Promise<Buffer | undefined> {
    let file: fs.FileHandle;
    try {
      file = await fs.open(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const buffer = Buffer.alloc(max);
      const { bytesRead } = await file.read(buffer, 0, max, offset);
      return buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }

  async mkdir(path: string): Promise<void> {
    await fs.mkdir(path, { recursive: true });
  }

  home(): Promise<string> {
    return Promise.resolve(os.homedir());
  }
}

/** An environment without its undefined entries. */
function definedValues(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  return out;
}
