/**
 * `slurm+ssh://`: Slurm's commands on a login node, over the shared {@link SshConnection} of
 * that host. Commands run through the login shell with every word quoted; job variables are
 * exported in the command (SSH environment requests are dropped by most servers); output files
 * are read from an offset with `tail -c +N | head -c MAX` on an exec channel, as raw bytes.
 * @module
 */
import type { ClientChannel } from 'ssh2';
import { ChannelHandle, channelResult, pumpChannel } from '../ssh/channel-handle.js';
import { channelEnd, SshConnection, shellQuote } from '../ssh/connection.js';
import { targetText } from '../ssh/url.js';
import type { ProcessHandle, ProcessResult, StartSpec } from '../types.js';
import type { CommandResult, HostCommand, SubmitHost } from './submit-host.js';

/** What the guard writes to stderr when a command is not on the host's PATH. */
const NOT_FOUND = 'jobwire: command not found on PATH';

/** `exec FILE ARGS...`, after a check that FILE is there (exit 127 with {@link NOT_FOUND} otherwise). */
function commandLine(command: HostCommand, env: Record<string, string> = {}): string {
  const exports = Object.entries(env).map(([name, value]) => `export ${name}=${shellQuote(value)}; `).join('');
  const file = shellQuote(command.file);
  return `${exports}command -v ${file} >/dev/null 2>&1 || { echo ${shellQuote(NOT_FOUND)} >&2; exit 127; }; exec ${[command.file, ...command.args].map(shellQuote).join(' ')}`;
}

/** Why a command could not run, when the guard said it is missing. */
function missing(code: number | null, stderr: string): string | undefined {
  return code === 127 && stderr.includes(NOT_FOUND) ? 'ENOENT: not found on PATH' : undefined;
}

/** Slurm's commands on the host of a shared SSH connection. */
export class SshSubmitHost implements SubmitHost {
  readonly where: string;
  readonly #connection: SshConnection;

  constructor(connection: SshConnection) {
    this.#connection = connection;
    this.where = targetText(connection.target);
  }

  /** Runs the command; an unreachable host is a `startError` naming why (nothing throws). */
  async run(command: HostCommand, stdin?: string): Promise<CommandResult> {
    try {
      const answer = await this.#connection.run(commandLine(command), stdin);
      const result: CommandResult = { code: answer.code, stdout: answer.stdout, stderr: answer.stderr };
      const why = missing(answer.code, answer.stderr);
      if (why !== undefined) result.startError = why;
      return result;
    } catch (error) {
      return { code: null, stdout: '', stderr: '', startError: (error as Error).message };
    }
  }

  spawn(spec: StartSpec, command: HostCommand, options: { tty: boolean }): ProcessHandle {
    return new ChannelProcess(this.#connection, spec, commandLine(command, { ...spec.env, ...(spec.description.environment ?? {}) }), options.tty);
  }

  async read(path: string, offset: number, max: number): Promise<Buffer | undefined> {
    const channel = await this.#connection.exec(`f=${shellQuote(path)}; [ -e "$f" ] || exit 3; tail -c +${offset + 1} -- "$f" | head -c ${max}`);
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    channel.on('data', (data: Buffer) => chunks.push(data));
    channel.stderr.on('data', (data: Buffer) => err.push(data));
    const ended = channelEnd(channel);
    channel.end();
    const { code, signal } = await ended;
    if (code === 3) return undefined;
    if (code === 0) return Buffer.concat(chunks);
    throw new Error(`cannot read ${path} on ${this.where}: ${Buffer.concat(err).toString().trim() || (code !== null ? `exit ${code}` : signal !== null ? `killed by ${signal}` : 'the connection dropped')}`);
  }

  async mkdir(path: string): Promise<void> {
    const answer = await this.#connection.run(`mkdir -p -- ${shellQuote(path)}`);
    if (answer.code !== 0) throw new Error(answer.stderr.trim() || `mkdir exited with ${answer.code}`);
  }

  async home(): Promise<string> {
    const answer = await this.#connection.run('printf %s "$HOME"');
    if (answer.code !== 0 || !answer.stdout.startsWith('/')) throw new Error(`cannot tell the home folder on ${this.where} (${answer.stderr.trim() || `"${answer.stdout}"`})`);
    return answer.stdout;
  }
}

/**
 * A command on an exec channel (a pty for `tty`): `srun` of an interactive job. Stop: KILL (an
 * SSH signal request) after the grace time, and the channel closed; the Slurm executor sends
 * the TERM itself, through `scancel`.
 */
class ChannelProcess extends ChannelHandle implements ProcessHandle {
  readonly pid = undefined;
  readonly done: Promise<ProcessResult>;
  protected readonly channel: Promise<ClientChannel | undefined>;
  protected readonly tty: boolean;
  #terminated = false;

  constructor(connection: SshConnection, spec: StartSpec, command: string, tty: boolean) {
    super();
    this.tty = tty;
    const where = targetText(connection.target);
    const size = spec.description.size ?? { cols: 80, rows: 24 };
    let startError: string | undefined;
    this.channel = connection.exec(command, tty ? { pty: size } : {}).catch((error: unknown) => {
      startError = `cannot start on ${where}: ${(error as Error).message}`;
      return undefined;
    });
    this.done = this.channel.then(async (channel) => {
      if (channel === undefined) return { exitCode: null, signal: null, error: startError ?? 'cannot start' };
      let seen = '';
      const ended = await pumpChannel(channel, tty, (name, data) => {
        if (seen.length < 200) seen += data.toString();
        spec.onOutput(name, data);
      });
      const why = missing(ended.code, seen);
      if (why !== undefined) return { exitCode: null, signal: null, error: `cannot start on ${where}: ${why}` };
      return channelResult(ended, where);
    });
  }

  terminate(graceMs: number): void {
    if (this.#terminated) return;
    this.#terminated = true;
    void this.channel.then((channel) => {
      if (channel === undefined) return;
      // No TERM here: srun signalled on its own may end before its tasks (the executor sends
      // TERM through scancel instead); after the grace time the command is killed.
      const timer = setTimeout(() => {
        channel.signal('KILL');
        channel.close();
      }, graceMs);
      timer.unref();
      channel.once('close', () => clearTimeout(timer));
    });
  }
}
