/**
 * One SSH connection per host, shared by everything that runs there (the ssh executor's jobs,
 * `slurm+ssh`, the sftp file adaptor): OpenSSH's ways to authenticate (agent, identity files,
 * a password from a file), host keys checked against known_hosts, keepalive, and a reconnect
 * that whoever needs the host drives.
 *
 * {@link SshConnection.exec} is the way to run a command on the host over the shared connection
 * (stdin, stdout, stderr, exit code, optional pty): other executors build on it.
 * @module
 */
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { AnyAuthMethod, Client as SshClient, ClientChannel, PseudoTtyOptions, SFTPWrapper } from 'ssh2';
import { checkHostKey, type HostKeyError } from './known-hosts.js';
import { targetText, type SshTarget } from './url.js';

const { Client, utils } = ssh2;

/** How to authenticate and which host keys to trust. */
export interface SshAuthOptions {
  /** Private key files to offer, in order. @defaultValue the existing ones of `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa` */
  identityFiles?: string[];
  /** A file holding the password (first line), tried after the keys. @defaultValue undefined (no password) */
  passwordFile?: string;
  /**
   * A password given as such (a Xenon client's password credential), tried after the keys and
   * never written anywhere. @defaultValue undefined
   */
  password?: string;
  /**
   * A private key given as its text (a Xenon client's certificate credential, read by the gRPC
   * service), offered before the identity files; `source` names it in messages. @defaultValue undefined
   */
  privateKey?: { key: Buffer; passphrase?: string; source: string };
  /**
   * A private key read again at every connection attempt (a Xenon scheduler's certificate
   * credential: its key file is what is remembered, so a restarted server reads it again);
   * throws (its message is the reason) when the file cannot be used. @defaultValue undefined
   */
  privateKeyFile?: { path: string; read(): Buffer; passphrase?: string };
  /** Why there is no way to authenticate, when that is expected (a password not given again since a restart). @defaultValue a list of what is missing */
  noAuthReason?: string;
  /** ssh-agent socket; false for none. @defaultValue `$SSH_AUTH_SOCK` */
  agent?: string | false;
  /** The known_hosts file host keys are checked against. @defaultValue `~/.ssh/known_hosts` */
  knownHostsFile?: string;
}

/** Options of an {@link SshConnection}. */
export interface SshConnectionOptions extends SshAuthOptions {
  /** Milliseconds between keepalive probes; 3 unanswered ones drop the connection. @defaultValue 15000 */
  keepaliveMs?: number;
  /** Milliseconds one connection attempt (TCP + handshake + authentication) may take. @defaultValue 20000 */
  connectTimeoutMs?: number;
}

/** What a connection is doing, as `jobwire executors` shows it. */
export interface ConnectionState {
  /** `connected`; `reconnecting` after a drop; `failing` when the last attempt failed; `idle` before the first. */
  state: 'idle' | 'connected' | 'reconnecting' | 'failing';
  /** Why it is not connected (the last error), when it is not. */
  reason?: string;
}

/** A connection attempt failed: unreachable host, refused host key, refused authentication. */
export class SshConnectError extends Error {
  /** `unreachable`, `host-key` or `auth`. */
  readonly kind: 'unreachable' | 'host-key' | 'auth';
  /** "JOBWIRE_SSH_CONNECT". */
  readonly code = 'JOBWIRE_SSH_CONNECT';
  constructor(message: string, kind: SshConnectError['kind'], options?: ErrorOptions) {
    super(message, options);
    this.kind = kind;
  }
}

/** Options of {@link SshConnection.exec}. */
export interface ExecOptions {
  /** Run under a pseudo-terminal of this size. @defaultValue undefined (pipes) */
  pty?: { cols: number; rows: number };
}

/** The events of an {@link SshConnection}. */
export interface SshConnectionEvents {
  /** Connected (again). */
  up: [];
  /** The connection dropped, with why. */
  down: [reason: string];
}

/** What a finished {@link SshConnection.run} returns. */
export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** How a command on an exec channel ended: its exit code or signal, both null when the connection dropped first. */
export interface ChannelEnd {
  code: number | null;
  /** The signal's name with `SIG` (`SIGTERM`), or null. */
  signal: string | null;
}

/** The exit status of each channel {@link SshConnection.exec} opened, once it came. */
const exits = new WeakMap<ClientChannel, ChannelEnd>();

/** A signal's name as jobwire reports it: with `SIG` (ssh2 adds it; a bare name gets it too); null for none. */
function signalName(signal: string | null | undefined): string | null {
  if (typeof signal !== 'string') return null;
  return signal.startsWith('SIG') ? signal : `SIG${signal}`;
}

/** Records `channel`'s exit status when it comes; called synchronously in ssh2's exec callback, before any packet after the open is handled. */
function recordExit(channel: ClientChannel): void {
  channel.once('exit', (code: number | null, signal?: string) => {
    exits.set(channel, { code: code ?? null, signal: signalName(signal) });
  });
}

/**
 * Resolves when a channel from {@link SshConnection.exec} closes, to how its command ended. A
 * channel that closes after its exit status ended normally, even when the status came before the
 * caller attached anything; both fields are null only when no status came at all (the connection
 * dropped). Attach the output listeners in the same tick as this call.
 */
export function channelEnd(channel: ClientChannel): Promise<ChannelEnd> {
  return new Promise((resolve) => {
    channel.once('close', (code?: number | null, signal?: string) => {
      // ssh2 passes the exit status with 'close' too: a second source for a status recorded late.
      const recorded = exits.get(channel);
      if (recorded !== undefined) resolve(recorded);
      else if (typeof code === 'number') resolve({ code, signal: null });
      else resolve({ code: null, signal: signalName(signal) });
    });
  });
}

/** The existing default identity files of this account. */
function defaultIdentities(): string[] {
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((name) => join(homedir(), '.ssh', name)).filter((file) => existsSync(file));
}

/**
 * A shared connection to one host. Nothing connects until it is used; after a drop, the next
 * use (or {@link waitConnected}) connects again.
 */
export class SshConnection extends EventEmitter<SshConnectionEvents> {
  /** Where it connects. */
  readonly target: SshTarget;
  #options: SshConnectionOptions;
  #client: SshClient | undefined;
  #connecting: Promise<SshClient> | undefined;
  #state: ConnectionState = { state: 'idle' };
  #everUp = false;
  #closed = false;

  constructor(target: SshTarget, options: SshConnectionOptions = {}) {
    super();
    this.target = target;
    this.#options = options;
  }

  /**
   * Changes how the next attempts authenticate (a password or key passphrase given again after
   * a restart); a live connection stays as it is.
   */
  updateAuth(options: Pick<SshAuthOptions, 'password' | 'privateKeyFile'>): void {
    const next: SshConnectionOptions = { ...this.#options, ...options };
    delete next.noAuthReason;
    this.#options = next;
  }

  /** What the connection is doing now. */
  get state(): ConnectionState {
    return { ...this.#state };
  }

  /** The connection, opening it if needed (one attempt; concurrent callers share it). Rejects with an {@link SshConnectError}. */
  connect(): Promise<SshClient> {
    if (this.#closed) return Promise.reject(new SshConnectError(`the connection to ${targetText(this.target)} is closed`, 'unreachable'));
    if (this.#client !== undefined) return Promise.resolve(this.#client);
    this.#connecting ??= this.#attempt().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  /**
   * Connects, retrying (backoff up to 5 s) until connected or until `deadline` (epoch ms) has
   * passed; then rejects with the last attempt's error. Refused host keys and authentication are
   * retried too: a fixed known_hosts or key lets a waiting job go on.
   */
  async waitConnected(deadline: number): Promise<SshClient> {
    let delay = 200;
    for (;;) {
      try {
        return await this.connect();
      } catch (err) {
        if (this.#closed || Date.now() + delay > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /**
   * Runs `command` on the host (through the login shell, as `ssh host command` does); resolves
   * once its channel is open. How the command ends is recorded from the moment the channel opens
   * (see {@link channelEnd}): its exit status can arrive in the same packet as the open
   * confirmation, before the caller gets the channel.
   */
  async exec(command: string, options: ExecOptions = {}): Promise<ClientChannel> {
    const client = await this.connect();
    return new Promise((resolve, reject) => {
      const done = (err: Error | undefined, channel: ClientChannel): void => {
        if (err) {
          reject(err);
          return;
        }
        recordExit(channel);
        resolve(channel);
      };
      if (options.pty !== undefined) {
        const pty: PseudoTtyOptions = { cols: options.pty.cols, rows: options.pty.rows, term: 'xterm-256color' };
        client.exec(command, { pty }, done);
      } else {
        client.exec(command, done);
      }
    });
  }

  /** Runs `command` to its end with no stdin and collects its output (for short bookkeeping commands). */
  async run(command: string, stdin?: string): Promise<RunResult> {
    const channel = await this.exec(command);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    channel.on('data', (data: Buffer) => out.push(data));
    channel.stderr.on('data', (data: Buffer) => err.push(data));
    const ended = channelEnd(channel);
    channel.end(stdin);
    const { code, signal } = await ended;
    if (code === null && signal === null) throw new SshConnectError(`the connection to ${targetText(this.target)} dropped while running a command`, 'unreachable');
    return { code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  }

  /** An sftp session on the connection. */
  async sftp(): Promise<SFTPWrapper> {
    const client = await this.connect();
    return new Promise((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
  }

  /** Closes the connection; running channels end, nothing reconnects. */
  close(): void {
    this.#closed = true;
    this.#client?.end();
    this.#client = undefined;
  }

  /** The authentication methods to offer, in OpenSSH's order: agent, keys, password. */
  #authMethods(): { methods: AnyAuthMethod[]; tried: string[] } {
    const username = this.target.user;
    const methods: AnyAuthMethod[] = [];
    const tried: string[] = [];
    const agent = this.#options.agent ?? process.env.SSH_AUTH_SOCK;
    if (typeof agent === 'string' && agent !== '') {
      methods.push({ type: 'agent', username, agent });
      tried.push('ssh-agent');
    }
    const given = this.#options.privateKey;
    if (given !== undefined) {
      const parsed = utils.parseKey(given.key, given.passphrase);
      if (parsed instanceof Error) throw new SshConnectError(`the key ${given.source} cannot be used: ${parsed.message}`, 'auth', { cause: parsed });
      methods.push({ type: 'publickey', username, key: given.key, ...(given.passphrase !== undefined ? { passphrase: given.passphrase } : {}) });
      tried.push(`key ${given.source}`);
    }
    const keyFile = this.#options.privateKeyFile;
    if (keyFile !== undefined) {
      let key: Buffer;
      try {
        key = keyFile.read();
      } catch (err) {
        throw new SshConnectError(`the key file ${keyFile.path} cannot be used: ${(err as Error).message}`, 'auth', { cause: err });
      }
      const parsed = utils.parseKey(key, keyFile.passphrase);
      if (parsed instanceof Error) throw new SshConnectError(`the key file ${keyFile.path} cannot be used: ${parsed.message}`, 'auth', { cause: parsed });
      methods.push({ type: 'publickey', username, key, ...(keyFile.passphrase !== undefined ? { passphrase: keyFile.passphrase } : {}) });
      tried.push(`key file ${keyFile.path}`);
    }
    for (const file of this.#options.identityFiles ?? defaultIdentities()) {
      let text: Buffer;
      try {
        text = readFileSync(file);
      } catch (err) {
        throw new SshConnectError(`identity file ${file} is unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'auth', { cause: err });
      }
      const parsed = utils.parseKey(text);
      if (parsed instanceof Error) {
        tried.push(`key ${file} (skipped: ${parsed.message})`);
        continue;
      }
      methods.push({ type: 'publickey', username, key: text });
      tried.push(`key ${file}`);
    }
    if (this.#options.passwordFile !== undefined) {
      let password: string;
      try {
        password = readFileSync(this.#options.passwordFile, 'utf8').split('\n')[0] ?? '';
      } catch (err) {
        throw new SshConnectError(`password file ${this.#options.passwordFile} is unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'auth', { cause: err });
      }
      methods.push({ type: 'password', username, password });
      tried.push(`password from ${this.#options.passwordFile}`);
    }
    if (this.#options.password !== undefined) {
      methods.push({ type: 'password', username, password: this.#options.password });
      tried.push('the password given');
    }
    return { methods, tried };
  }

  /** One connection attempt. */
  async #attempt(): Promise<SshClient> {
    const where = targetText(this.target);
    let refusedKey: HostKeyError | undefined;
    try {
      const { methods, tried } = this.#authMethods();
      if (methods.length === 0 && this.#options.noAuthReason !== undefined) throw new SshConnectError(`no way to authenticate to ${where}: ${this.#options.noAuthReason}`, 'auth');
      if (methods.length === 0) throw new SshConnectError(`no way to authenticate to ${where}: no ssh-agent, no identity file (give --ssh-identity) and no password file`, 'auth');
      const knownHosts = this.#options.knownHostsFile ?? join(homedir(), '.ssh', 'known_hosts');
      const client = new Client();
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        // Persistent: a failing client may emit more than one error (an unheard one would throw).
        client.on('error', (err: Error & { level?: string }) => {
          if (refusedKey !== undefined) reject(new SshConnectError(refusedKey.message, 'host-key', { cause: err }));
          else if (err.level === 'client-authentication') reject(new SshConnectError(`authentication to ${where} refused (tried: ${tried.join(', ')})`, 'auth', { cause: err }));
          else reject(new SshConnectError(`cannot reach ${where}: ${err.message}`, 'unreachable', { cause: err }));
          // Once connected, errors are reported through 'close'.
        });
        client.connect({
          host: this.target.host,
          port: this.target.port,
          username: this.target.user,
          authHandler: methods,
          hostVerifier: (key: Buffer) => {
            refusedKey = checkHostKey(knownHosts, this.target.host, this.target.port, key);
            return refusedKey === undefined;
          },
          keepaliveInterval: this.#options.keepaliveMs ?? 15_000,
          keepaliveCountMax: 3,
          readyTimeout: this.#options.connectTimeoutMs ?? 20_000,
        });
      });
      client.once('close', () => {
        if (this.#client !== client) return;
        this.#client = undefined;
        const reason = `the connection to ${where} dropped`;
        this.#state = { state: 'reconnecting', reason };
        this.emit('down', reason);
      });
      if (this.#closed) {
        client.end();
        throw new SshConnectError(`the connection to ${where} is closed`, 'unreachable');
      }
      this.#client = client;
      this.#everUp = true;
      this.#state = { state: 'connected' };
      this.emit('up');
      return client;
    } catch (err) {
      const error = err instanceof SshConnectError ? err : new SshConnectError(`cannot reach ${where}: ${(err as Error).message}`, 'unreachable', { cause: err });
      this.#state = { state: this.#everUp && error.kind === 'unreachable' ? 'reconnecting' : 'failing', reason: error.message };
      throw error;
    }
  }
}

/** Quotes `text` for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
