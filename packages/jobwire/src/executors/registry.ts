/**
 * Named executors: a server's `--executor NAME=URL` list, the scheme → factory table that turns
 * a URL into an {@link Executor}, and {@link NamedExecutors}, which runs each job on the executor
 * its description names (`local` when none). New kinds of executor add a row to
 * {@link EXECUTOR_SCHEMES}, as `slurm:` and `slurm+ssh:` do (the latter on
 * {@link ExecutorFactoryContext.sshConnection} for the login node).
 * @module
 */
import { BadRequestError, type ExecutorInfo, type JobDescription } from '@jobwire/client';
import { LocalExecutor } from './local/local-executor.js';
import { parseSlurmOptions, SlurmExecutor, type SlurmExecutorOptions } from './slurm/slurm-executor.js';
import { SshSubmitHost } from './slurm/ssh-submit-host.js';
import { SshConnection, type SshConnectionOptions } from './ssh/connection.js';
import { SshExecutor } from './ssh/ssh-executor.js';
import { parseSshTarget, targetText, type SshTarget } from './ssh/url.js';
import type { Executor, ExecutorState, ProcessHandle, QueueDef, ResumeFrom, StartSpec } from './types.js';

/** What a factory gets besides the URL. */
export interface ExecutorFactoryContext {
  /** Options of SSH connections (identity files, known_hosts, ...). */
  ssh: SshConnectionOptions;
  /** How long a remote job's host may stay unreachable before the job ends Lost. @defaultValue the executor's own default */
  lostAfterMs?: number;
  /** Keep Slurm jobs' output and exit files after their end (see {@link SlurmExecutorOptions.keepJobFiles}). @defaultValue false */
  keepRemoteJobFiles?: boolean;
  /** The shared connection to `target` (one per user, host and port). */
  sshConnection(target: SshTarget): SshConnection;
}

/** Makes an executor from its URL; throws a RangeError naming what is wrong with the URL. */
export type ExecutorFactory = (url: string, context: ExecutorFactoryContext) => Executor;

/**
 * A Slurm executor that starts asking Slurm for its partitions now, in the background: a server
 * with an unreachable Slurm starts, and `jobwire executors` says why.
 */
function lazySlurm(context: ExecutorFactoryContext, host?: SshSubmitHost): SlurmExecutor {
  const executor = new SlurmExecutor(
    parseSlurmOptions({
      ...(host !== undefined ? { host } : {}),
      ...(context.lostAfterMs !== undefined ? { lostAfterMs: context.lostAfterMs } : {}),
      ...(context.keepRemoteJobFiles === true ? { keepJobFiles: true } : {}),
    }),
  );
  executor.connect();
  return executor;
}

/** How each URL scheme is written, for messages. */
const SCHEME_FORMS: Record<string, string> = { 'ssh:': 'ssh://[user@]host[:port]', 'slurm+ssh:': 'slurm+ssh://[user@]host[:port]' };

/**
 * URL scheme → factory: `local:` (always there), `ssh://[user@]host[:port]`, `slurm:` (Slurm's
 * commands on this machine) and `slurm+ssh://[user@]host[:port]` (on a login node).
 */
export const EXECUTOR_SCHEMES = new Map<string, ExecutorFactory>([
  ['local:', () => new LocalExecutor()],
  [
    'ssh:',
    (url, context) => {
      const connection = context.sshConnection(parseSshTarget(url));
      return new SshExecutor(url, { ...context.ssh, connection, ...(context.lostAfterMs !== undefined ? { lostAfterMs: context.lostAfterMs } : {}) });
    },
  ],
  [
    'slurm:',
    (url, context) => {
      if (url.toLowerCase() !== 'slurm:') throw new RangeError(`"${url}": a slurm: executor takes nothing after "slurm:" (Slurm's commands on this machine); for a login node use slurm+ssh://[user@]host[:port]`);
      return lazySlurm(context);
    },
  ],
  ['slurm+ssh:', (url, context) => lazySlurm(context, new SshSubmitHost(context.sshConnection(parseSshTarget(url, { scheme: 'slurm+ssh:' }))))],
]);

/** Names of the executors of Xenon schedulers created with a password or certificate credential (credential-executors.ts). */
export const CREDENTIAL_PREFIX = 'xenon.';

/** Executor names: as job descriptions' `executor` field takes them. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Reads `NAME=URL` (`--executor`); throws a RangeError naming what is wrong. */
export function parseExecutorSpec(text: string): { name: string; url: string } {
  const at = text.indexOf('=');
  if (at < 0) throw new RangeError(`--executor "${text}": expected NAME=URL, e.g. cluster=ssh://me@login.example.org`);
  const name = text.slice(0, at);
  const url = text.slice(at + 1);
  if (!NAME.test(name)) throw new RangeError(`--executor "${text}": the name "${name}" must be letters, digits, ".", "_" and "-", starting with a letter or digit`);
  if (name === 'local') throw new RangeError(`--executor "${text}": "local" is always this machine; pick another name`);
  if (name.startsWith(CREDENTIAL_PREFIX)) throw new RangeError(`--executor "${text}": names starting with "${CREDENTIAL_PREFIX}" are those of Xenon schedulers with their own credential; pick another name`);
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0].toLowerCase();
  if (scheme === undefined || !EXECUTOR_SCHEMES.has(scheme)) {
    throw new RangeError(`--executor "${text}": unknown kind of URL "${url}"; known: ${[...EXECUTOR_SCHEMES.keys()].map((s) => SCHEME_FORMS[s] ?? s).join(', ')}`);
  }
  return { name, url };
}

/** Shared SSH connections, one per user, host and port, for every executor (and the sftp adaptor). */
export class SshConnections {
  readonly #options: SshConnectionOptions;
  readonly #open = new Map<string, SshConnection>();

  constructor(options: SshConnectionOptions = {}) {
    this.#options = options;
  }

  /** The connection to `target`, made on first use. */
  get(target: SshTarget): SshConnection {
    const key = targetText(target);
    let connection = this.#open.get(key);
    if (connection === undefined) {
      connection = new SshConnection(target, this.#options);
      this.#open.set(key, connection);
    }
    return connection;
  }

  /** Closes every connection. */
  close(): void {
    for (const connection of this.#open.values()) connection.close();
    this.#open.clear();
  }
}

/** Makes the executor of `url` (a scheme of {@link EXECUTOR_SCHEMES}). */
export function executorFromUrl(url: string, context: ExecutorFactoryContext): Executor {
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0].toLowerCase();
  const factory = scheme !== undefined ? EXECUTOR_SCHEMES.get(scheme) : undefined;
  if (factory === undefined) throw new RangeError(`unknown kind of executor URL "${url}"; known: ${[...EXECUTOR_SCHEMES.keys()].join(', ')}`);
  return factory(url, context);
}

/** One entry of a {@link NamedExecutors}. */
interface Named {
  name: string;
  url: string;
  executor: Executor;
  /** Only these jobwire users may run jobs on it (an executor with a caller's credential); undefined: everyone. */
  users?: Set<string>;
}

/**
 * The executors of one server by name, as one {@link Executor}: each job goes to the one its
 * description's `executor` names (`local` when none). Queues with the same name are one queue
 * for the server's dispatcher (its limit is the local executor's).
 */
export class NamedExecutors implements Executor {
  /** Adaptor name of the whole: that of `local`. */
  readonly name = 'local';
  readonly #byName = new Map<string, Named>();
  readonly #queueListeners: Array<() => void> = [];

  /** `local` is the given local executor; `named` come in the order given. */
  constructor(local: Executor, named: { name: string; url: string; executor: Executor }[] = []) {
    this.#byName.set('local', { name: 'local', url: 'local:', executor: local });
    for (const entry of named) {
      if (this.#byName.has(entry.name)) throw new RangeError(`executor "${entry.name}" is named twice`);
      this.#byName.set(entry.name, entry);
    }
  }

  /**
   * Adds (or finds) an executor made while the server runs: that of a Xenon scheduler with its
   * own credential, usable only by `user` (and the other users added for it).
   */
  add(name: string, url: string, make: () => Executor, user: string): Executor {
    let found = this.#byName.get(name);
    if (found === undefined) {
      found = { name, url, executor: make(), users: new Set() };
      this.#byName.set(name, found);
      for (const listener of this.#queueListeners) found.executor.onQueuesChanged?.(listener);
    }
    found.users?.add(user);
    return found.executor;
  }

  /** The executor named `name`, if there is one. */
  get(name: string): Executor | undefined {
    return this.#byName.get(name)?.executor;
  }

  /**
   * The executor `description` names; a BadRequestError (field `executor`) for an unknown name,
   * or for one that `owner` may not use (known: only when given).
   */
  pick(description: JobDescription, owner?: string): Executor {
    const name = description.executor ?? 'local';
    const found = this.#byName.get(name);
    const usable = found !== undefined && (owner === undefined || found.users === undefined || found.users.has(owner));
    if (!usable) {
      const names = [...this.#byName.values()].filter((n) => n.users === undefined || (owner !== undefined && n.users.has(owner))).map((n) => n.name);
      throw new BadRequestError(`no executor named "${name}" on this server${found !== undefined ? ' for you (it is that of another caller\'s Xenon scheduler credential)' : ''}; it has ${names.join(', ')} (jobwire executors)`, { code: 'invalid_description', field: 'executor' });
    }
    return found.executor;
  }

  /** Calls `listener` whenever a named executor's queues may have changed (see {@link Executor.onQueuesChanged}). */
  onQueuesChanged(listener: () => void): void {
    this.#queueListeners.push(listener);
    for (const { executor } of this.#byName.values()) executor.onQueuesChanged?.(listener);
  }

  /** Closes the named executors (pollers, retries); `local` is closed by its owner. */
  close(): void {
    for (const { name, executor } of this.#byName.values()) if (name !== 'local') executor.close?.();
  }

  /** The named executor of `description`; this whole for an unknown name (its start reports it). */
  executorFor(description: JobDescription): Executor {
    return this.#byName.get(description.executor ?? 'local')?.executor ?? this;
  }

  /** Every queue name once, with the first executor's limit that names it (local's first). */
  queues(): QueueDef[] {
    const seen = new Map<string, QueueDef>();
    for (const { executor } of this.#byName.values()) {
      for (const queue of executor.queues()) if (!seen.has(queue.name)) seen.set(queue.name, queue);
    }
    return [...seen.values()];
  }

  /**
   * Checks with the named executor; a job that names no queue gets that executor's own default
   * queue, when it has one (a Slurm cluster's default partition), before the server's default.
   */
  check(description: JobDescription, owner?: string): void {
    const executor = this.pick(description, owner);
    executor.check(description);
    if (description.queueName === undefined && executor.defaultQueue !== undefined) description.queueName = executor.defaultQueue;
  }

  /** Starts on the named executor. */
  start(spec: StartSpec): ProcessHandle {
    return this.pick(spec.description).start(spec);
  }

  /** Resumes on the named executor (undefined when it cannot, or is gone from the server). */
  async resume(spec: StartSpec, state: ExecutorState, from: ResumeFrom): Promise<ProcessHandle | undefined> {
    let executor: Executor;
    try {
      executor = this.pick(spec.description);
    } catch {
      return undefined;
    }
    return executor.resume?.(spec, state, from);
  }

  /** What `GET /v1/executors` reports. */
  list(): ExecutorInfo[] {
    return [...this.#byName.values()].map(({ name, url, executor }) => {
      const status = executor.status?.() ?? { state: 'ready' as const };
      const defaultQueue = executor.defaultQueue;
      return {
        name,
        url,
        adaptor: executor.name,
        state: status.state,
        ...(status.reason !== undefined ? { reason: status.reason } : {}),
        ...(defaultQueue !== undefined ? { defaultQueue } : {}),
        queues: executor.queues().map((q) => ({ name: q.name, limit: q.limit })),
      };
    });
  }
}
