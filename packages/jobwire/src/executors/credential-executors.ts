/**
 * Executors of Xenon schedulers created with the caller's own credential
 * (`Scheduler.create(adaptor='ssh'|'slurm', credential=password|certificate)`): one executor, on
 * one connection of its own, per (host, port, username, credential), never shared across
 * credentials. Their names start with {@link CREDENTIAL_PREFIX} and are the only thing a job
 * records of them (its description's `executor`); only the jobwire users who gave the credential
 * may run jobs on them.
 *
 * What outlives the server is kept in `xenon-executors.json` in the jobwire home (mode 0600):
 * each executor's name, URL, kind, users and, for a certificate credential, the key file's path
 * (never its contents, never a password). A restarted server makes them again before it follows
 * their jobs: a certificate executor reads its key file again (at every connection attempt); a
 * password executor has no password until a caller gives the same credential again, and until
 * then its jobs are "reconnecting" and end Lost after the executor's bound, saying why.
 *
 * A name is a keyed digest (HMAC-SHA-256 with a random key kept in the home, mode 0600) of the
 * kind, URL and secret (password) or key path, so the same credential finds the same executor
 * again, while the name tells nothing of the password.
 * @module
 */
import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CREDENTIAL_PREFIX, executorFromUrl, type ExecutorFactoryContext, type NamedExecutors } from './registry.js';
import { SshConnection, type SshConnectionOptions } from './ssh/connection.js';
import type { SshTarget } from './ssh/url.js';

/** Largest key file a certificate credential may name (as the sftp adaptor's rule). */
export const MAX_KEY_BYTES = 64 * 1024;

/** What a Xenon scheduler with its own credential asks for. */
export interface CredentialRequest {
  /** The jobwire user creating the scheduler. */
  user: string;
  /** `ssh` (jobs on the host) or `slurm` (Slurm commands on the host as a login node). */
  adaptor: 'ssh' | 'slurm';
  /** Where to log in, with the credential's username. */
  target: SshTarget;
  /** A password credential's password (kept in memory only). */
  password?: string;
  /** A certificate credential: the key file's real path (checked by the caller) and its passphrase (memory only). */
  keyFile?: { path: string; passphrase?: string };
}

/** One remembered executor (xenon-executors.json). */
interface Remembered {
  url: string;
  kind: 'password' | 'certificate';
  users: string[];
  keyPath?: string;
}

/** Reason a password executor gives until its password is given again. */
const PASSWORD_NOT_GIVEN =
  "the password of this Xenon scheduler's credential is kept in memory only and has not been given again since the jobwire server restarted (Scheduler.create with the same location, username and password credential lets its jobs go on)";

/**
 * Reads a key file by its real path, refusing it when the path no longer leads to that file
 * (a link put in its place, or in place of a folder above it), when it is not a regular file or
 * when it is bigger than {@link MAX_KEY_BYTES}.
 */
export function readKeyFile(path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    // The file opened must be the one at `path` itself: a folder above it swapped for a link is refused.
    let real: string | undefined;
    try {
      real = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      real = undefined;
    }
    if (real !== undefined && real !== path) throw new Error(`${path} now leads to ${real}`);
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path}: not a regular file`);
    if (st.size > MAX_KEY_BYTES) throw new Error(`${path}: ${st.size} bytes is too big for a private key (at most ${MAX_KEY_BYTES})`);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The credential executors of one server (see the module comment). */
export class CredentialExecutors {
  readonly #home: string;
  readonly #named: NamedExecutors;
  readonly #context: ExecutorFactoryContext;
  readonly #ssh: SshConnectionOptions;
  readonly #remembered: Record<string, Remembered>;
  readonly #connections = new Map<string, SshConnection>();
  #key: Buffer | undefined;

  /** Makes the executors remembered in `home` again (their jobs are followed after this). */
  constructor(home: string, named: NamedExecutors, context: ExecutorFactoryContext) {
    this.#home = home;
    this.#named = named;
    this.#context = context;
    this.#ssh = context.ssh;
    this.#remembered = this.#read();
    for (const [name, r] of Object.entries(this.#remembered)) {
      for (const user of r.users) this.#add(name, r, user, r.kind === 'certificate' && r.keyPath !== undefined ? { privateKeyFile: { path: r.keyPath, read: () => readKeyFile(r.keyPath!) } } : { noAuthReason: PASSWORD_NOT_GIVEN });
    }
  }

  get #file(): string {
    return join(this.#home, 'xenon-executors.json');
  }

  #read(): Record<string, Remembered> {
    try {
      const parsed = JSON.parse(readFileSync(this.#file, 'utf8')) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
      const out: Record<string, Remembered> = {};
      for (const [name, v] of Object.entries(parsed as Record<string, Partial<Remembered>>)) {
        if (!name.startsWith(CREDENTIAL_PREFIX) || typeof v?.url !== 'string' || (v.kind !== 'password' && v.kind !== 'certificate') || !Array.isArray(v.users)) continue;
        out[name] = { url: v.url, kind: v.kind, users: v.users.filter((u): u is string => typeof u === 'string'), ...(typeof v.keyPath === 'string' ? { keyPath: v.keyPath } : {}) };
      }
      return out;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new Error(`${this.#file}: ${(err as Error).message}`, { cause: err });
    }
  }

  #write(): void {
    const tmp = `${this.#file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#remembered, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, this.#file);
  }

  /** The key names are digested with (made once, kept in the home). */
  #digestKey(): Buffer {
    if (this.#key !== undefined) return this.#key;
    const file = join(this.#home, 'xenon-executors.key');
    try {
      this.#key = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const key = randomBytes(32);
      try {
        writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
        this.#key = key;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        this.#key = readFileSync(file);
      }
    }
    return this.#key;
  }

  #add(name: string, r: Remembered, user: string, auth: Partial<SshConnectionOptions>): void {
    this.#named.add(name, r.url, () => {
      // Its own connection: never the server's agent, identity files or password, only this credential.
      const { passwordFile: _file, password: _password, privateKey: _key, ...base } = this.#ssh;
      const connection = new SshConnection(this.#targetOf(r.url), { ...base, agent: false, identityFiles: [], ...auth });
      this.#connections.set(name, connection);
      return executorFromUrl(r.url, { ...this.#context, sshConnection: () => connection });
    }, user);
  }

  #targetOf(url: string): SshTarget {
    const m = /^(?:ssh|slurm\+ssh):\/\/(.*)@(\[[^\]]+\]|[^:]+):(\d+)$/i.exec(url);
    if (m === null) throw new RangeError(`not a credential executor URL: ${url}`);
    return { user: decodeURIComponent(m[1]!), host: m[2]!.replace(/^\[|\]$/g, ''), port: Number(m[3]) };
  }

  /**
   * The name of the executor for `request` (made, or found with its connection and given the
   * secret again); it is remembered in the home before the name is returned.
   */
  executorFor(request: CredentialRequest): string {
    const { target } = request;
    const scheme = request.adaptor === 'ssh' ? 'ssh' : 'slurm+ssh';
    const url = `${scheme}://${encodeURIComponent(target.user)}@${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    const kind = request.password !== undefined ? 'password' : 'certificate';
    const secret = request.password ?? request.keyFile!.path;
    const digest = createHmac('sha256', this.#digestKey()).update(JSON.stringify([kind, url, secret])).digest('hex').slice(0, 24);
    const name = `${CREDENTIAL_PREFIX}${request.adaptor}.${digest}`;
    const remembered = this.#remembered[name] ?? { url, kind, users: [], ...(kind === 'certificate' ? { keyPath: request.keyFile!.path } : {}) };
    const auth: Partial<SshConnectionOptions> =
      kind === 'password'
        ? { password: request.password! }
        : { privateKeyFile: { path: request.keyFile!.path, read: () => readKeyFile(request.keyFile!.path), ...(request.keyFile!.passphrase ? { passphrase: request.keyFile!.passphrase } : {}) } };
    this.#add(name, remembered, request.user, auth);
    // Made before (by another scheduler, or again after a restart without its secret): give it this one.
    this.#connections.get(name)?.updateAuth(auth);
    if (this.#remembered[name] === undefined || !remembered.users.includes(request.user)) {
      if (!remembered.users.includes(request.user)) remembered.users.push(request.user);
      this.#remembered[name] = remembered;
      this.#write();
    }
    return name;
  }

  /** Closes every connection (server stop). */
  close(): void {
    for (const connection of this.#connections.values()) connection.close();
  }
}
