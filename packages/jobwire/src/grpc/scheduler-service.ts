/**
 * Xenon's SchedulerService over jobwire's JobService. A scheduler handle names an adaptor; the
 * adaptor a server offers is its executor (`local` in embedded mode, with the queues `single`,
 * `multi` and `unlimited`, Xenon's default being `single`), plus `ssh` when the server has named
 * ssh executors (`jobwire server --executor NAME=ssh://...`): an `ssh` scheduler's location names
 * one of their hosts, and its jobs run there; and `slurm` when it has Slurm executors (`slurm:`,
 * `slurm+ssh://...`): location `local://` or a login node, queues the cluster's partitions. Other Xenon adaptor names are refused with
 * UnknownAdaptorException until jobwire has an executor for them. Every job
 * operation goes through JobService, so jobs submitted here are ordinary jobwire jobs: same
 * validation, ownership and state rules, visible in the CLI and the dashboard, and their status
 * stays queryable after they end. `getFileSystem` of an ssh or slurm+ssh scheduler is an `sftp`
 * handle on its host; of any other, a `file` handle. `ssh` and `slurm` (on a login node) schedulers
 * also take a password or certificate credential: their jobs run on an executor of that credential's
 * own (credential-executors.ts), which remembers the key file's path but never the password
 * (see docs/grpc.md).
 * @module
 */
import { status as Status, type ServerDuplexStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { isFinal, type ExecutorInfo, type WhoAmI } from '@jobwire/client';
import ssh2 from 'ssh2';
import { readKeyFile, type CredentialRequest } from '../executors/credential-executors.js';
import { CREDENTIAL_PREFIX } from '../executors/registry.js';
import { parseSshTarget } from '../executors/ssh/url.js';
import type { JobService } from '../jobs/service.js';
import type { JobRecord } from '../store/types.js';
import { XenonError } from './errors.js';
import type { FileSpace } from './file-space.js';
import { HandleTable, type SchedulerHandle } from './handles.js';
import { InteractiveSession } from './interactive.js';
import { missingJobStatus, missingQueueStatus, toJobDescription, toJobStatus, toQueueStatus, type SubmitTarget } from './mapping.js';
import type {
  CreateRequest,
  Empty,
  GetJobStatusesRequest,
  GetQueueStatusRequest,
  Handle,
  JobRequest,
  SchedulerAdaptorDescription,
  SchedulerAndQueues,
  SubmitBatchJobRequest,
  SubmitInteractiveJobRequest,
  SubmitInteractiveJobResponse,
  WaitRequest,
  XenonJobStatus,
} from './messages.js';
import type { CallContext, Rpc } from './rpc.js';

const { utils } = ssh2;

/** Xenon scheduler adaptors jobwire does not run (yet): refused by name, clearly. */
const KNOWN_XENON_ADAPTORS = ['ssh', 'slurm', 'gridengine', 'torque', 'at'];

/** Locations the local adaptor accepts (Xenon's: none, empty, or local://). */
const LOCAL_LOCATIONS = ['', '/', 'local://', 'local:///'];

/** What the scheduler service needs. */
export interface SchedulerServiceDeps {
  service: JobService;
  space: FileSpace;
  /** Opens a `file` file system handle for `who` (for getFileSystem). */
  openFileSystem(who: WhoAmI): Handle;
  /** Opens an `sftp` file system handle for `who` on the host of the executor `executor` (getFileSystem of an ssh or slurm+ssh scheduler). */
  openRemoteFileSystem(who: WhoAmI, executor: string, location: string): Promise<Handle>;
  /** Opens an sftp file system handle as FileSystemService.create does (getFileSystem of a scheduler with its own credential). */
  openSftp(who: WhoAmI, request: CreateRequest): Promise<Handle>;
  /** Reads a certificate credential's key file by the sftp adaptor's rule; `adaptor` names the caller in messages. */
  keyFile(who: WhoAmI, certfile: string, adaptor: string): Promise<{ key: Buffer; real: string }>;
  /** Makes (or finds) the executor of a scheduler with its own credential (undefined: the backend cannot). */
  credentialExecutor: ((request: CredentialRequest) => string) | undefined;
  /** Closes a file system handle opened by openFileSystem. */
  closeFileSystem(owner: string, id: string): void;
}

/** Longest single wait on the store; longer waits loop. */
const WAIT_STEP_MS = 3_600_000;

/** Builds the SchedulerService implementation. */
export function schedulerService(rpc: Rpc, deps: SchedulerServiceDeps): UntypedServiceImplementation {
  const { service, space } = deps;
  const schedulers = new HandleTable<SchedulerHandle>('scheduler');
  const adaptorName = service.adaptor;
  // Distributed workers run jobs with the local executor, so `local` names them too.
  const adaptorNames = adaptorName === 'worker' ? ['local', 'worker'] : [adaptorName];
  // The queues as the job service sees them (in distributed mode they come from the workers).
  const queueNames = async (): Promise<string[]> => (await service.queues()).map((q) => q.name);
  const defaultQueue = async (): Promise<string> => {
    const names = await queueNames();
    return names.includes('single') || names.length === 0 ? 'single' : names[0]!;
  };

  /** The server's ssh executors (offered as the `ssh` adaptor). */
  const sshExecutors = (): ExecutorInfo[] => service.executors().filter((e) => e.adaptor === 'ssh' && !e.name.startsWith(CREDENTIAL_PREFIX));
  /** The server's Slurm executors (offered as the `slurm` adaptor). */
  const slurmExecutors = (): ExecutorInfo[] => service.executors().filter((e) => e.adaptor === 'slurm' && !e.name.startsWith(CREDENTIAL_PREFIX));
  /** Every adaptor offered now. */
  const offered = (): string[] => [...adaptorNames, ...(sshExecutors().length > 0 ? ['ssh'] : []), ...(slurmExecutors().length > 0 ? ['slurm'] : [])];
  /** Where a Slurm executor is, as a Xenon slurm location: `local://` or `[user@]host[:port]`. */
  const slurmLocation = (url: string): string => (url.toLowerCase() === 'slurm:' ? 'local://' : url.replace(/^slurm\+ssh:\/\//i, ''));

  const slurmDescription = (): SchedulerAdaptorDescription => remoteDescription({
    name: 'slurm',
    description:
      'Runs jobs on the Slurm clusters this jobwire server has executors for (jobwire server --executor NAME=slurm: or NAME=slurm+ssh://...), as ordinary jobwire jobs: ' +
      `location local:// (or empty) for Slurm on the server's machine, [user@]host[:port] for a login node (${slurmExecutors().map((e) => `${e.name}: ${slurmLocation(e.url)}`).join(', ')}); ` +
      "with the default credential the connection and its credentials are the server's; a password credential, or a certificate credential naming a key file the caller may read through the file adaptor, logs in to the same login node with that instead (see docs/grpc.md). Queues are the cluster's partitions; a job without one goes to the default partition.",
    supported_locations: ['(empty)', 'local://', 'host[:port]', 'user@host[:port]', 'ssh://[user@]host[:port]'],
  });

  /** An adaptor over the server's remote executors: their jobs are jobwire jobs, their files not the server's. */
  const remoteDescription = (d: Pick<SchedulerAdaptorDescription, 'name' | 'description' | 'supported_locations'>): SchedulerAdaptorDescription => ({
    ...d,
    supported_properties: [],
    is_embedded: true,
    supports_interactive: true,
    supports_batch: true,
    uses_file_system: true,
    supported_credentials: ['DefaultCredential', 'PasswordCredential', 'CertificateCredential'],
  });

  const sshDescription = (): SchedulerAdaptorDescription => remoteDescription({
    name: 'ssh',
    description:
      'Runs jobs on the SSH hosts this jobwire server has executors for (jobwire server --executor NAME=ssh://...), as ordinary jobwire jobs: ' +
      `location [user@]host[:port] of one of them (${sshExecutors().map((e) => e.url.replace(/^ssh:\/\//, '')).join(', ')}); ` +
      "with the default credential the connection and its credentials are the server's; a password credential, or a certificate credential naming a key file the caller may read through the file adaptor, logs in to the same host with that instead (see docs/grpc.md). Queues single, multi and unlimited.",
    supported_locations: ['host[:port]', 'user@host[:port]'],
  });

  const description = (name: string): SchedulerAdaptorDescription => name === 'ssh' ? sshDescription() : name === 'slurm' ? slurmDescription() : ({
    name,
    description:
      adaptorName === 'local'
        ? 'Runs jobs on the machine of the jobwire server as ordinary jobwire jobs, in the queues single (one at a time), multi (up to the server\'s slots) and unlimited.'
        : `Runs jobs on the jobwire "${adaptorName}" executor, as ordinary jobwire jobs.`,
    supported_locations: name === 'local' ? ['(empty)', 'local://'] : ['(empty)'],
    supported_properties: [],
    is_embedded: true,
    supports_interactive: true,
    supports_batch: true,
    uses_file_system: true,
    supported_credentials: ['DefaultCredential'],
  });

  const checkAdaptor = (name: string): void => {
    const names = offered();
    if (names.includes(name)) return;
    const how: Record<string, string> = { ssh: ' (it has no ssh executor: jobwire server --executor NAME=ssh://host)', slurm: ' (it has no Slurm executor: jobwire server --executor NAME=slurm: or NAME=slurm+ssh://host)' };
    const known = KNOWN_XENON_ADAPTORS.includes(name) ? ` is not available on this jobwire server${how[name] ?? ' yet'}` : ` is unknown`;
    throw new XenonError('UnknownAdaptorException', name || '(none)', `the scheduler adaptor "${name}"${known}; this server offers: ${names.join(', ')}`);
  };

  /** The ssh executor `location` ([user@]host[:port]) names; its user must be the executor's when `sameUser` (the default credential). */
  const sshExecutorAt = (location: string, sameUser = true): string => {
    let wanted;
    try {
      wanted = parseSshTarget(location);
    } catch (err) {
      throw new XenonError('InvalidLocationException', 'ssh', `location ${JSON.stringify(location)}: ${(err as Error).message}`);
    }
    const explicitUser = sameUser && location.replace(/^ssh:\/\//, '').includes('@');
    const executors = sshExecutors();
    const found = executors.find((e) => {
      const t = parseSshTarget(e.url);
      return t.host === wanted.host && t.port === wanted.port && (!explicitUser || t.user === wanted.user);
    });
    if (found === undefined) {
      throw new XenonError('InvalidLocationException', 'ssh', `location ${JSON.stringify(location)}: this server has no ssh executor for it; its ssh executors are ${executors.map((e) => `${e.name} (${e.url})`).join(', ')}`);
    }
    return found.name;
  };

  /** The Slurm executor `location` names: empty or `local://` for `slurm:`, `[ssh://][user@]host[:port]` for `slurm+ssh://`. */
  const slurmExecutorAt = (location: string, sameUser = true): string => {
    const executors = slurmExecutors();
    const others = (): string => executors.map((e) => `${e.name} (${slurmLocation(e.url)})`).join(', ');
    if (LOCAL_LOCATIONS.includes(location)) {
      const local = executors.find((e) => e.url.toLowerCase() === 'slurm:');
      if (local === undefined) throw new XenonError('InvalidLocationException', 'slurm', `location ${JSON.stringify(location)}: this server has no Slurm executor on its own machine (slurm:); its Slurm executors are ${others()}`);
      return local.name;
    }
    let wanted;
    try {
      wanted = parseSshTarget(location.replace(/^ssh:\/\//i, ''), { scheme: 'slurm+ssh:' });
    } catch (err) {
      throw new XenonError('InvalidLocationException', 'slurm', `location ${JSON.stringify(location)}: ${(err as Error).message}`);
    }
    const explicitUser = sameUser && location.replace(/^ssh:\/\//i, '').includes('@');
    const found = executors.find((e) => {
      if (!/^slurm\+ssh:/i.test(e.url)) return false;
      const t = parseSshTarget(e.url, { scheme: 'slurm+ssh:' });
      return t.host === wanted.host && t.port === wanted.port && (!explicitUser || t.user === wanted.user);
    });
    if (found === undefined) throw new XenonError('InvalidLocationException', 'slurm', `location ${JSON.stringify(location)}: this server has no Slurm executor for it; its Slurm executors are ${others()}`);
    return found.name;
  };

  /** The executor of a handle's jobs, when it names one. */
  const executorOf = (handle: SchedulerHandle): ExecutorInfo | undefined => (handle.executor !== undefined ? service.executors().find((e) => e.name === handle.executor) : undefined);
  /** A handle's queue names: a Slurm scheduler's are its cluster's partitions. */
  const queueNamesOf = async (handle: SchedulerHandle): Promise<string[]> => (handle.adaptor === 'slurm' ? (executorOf(handle)?.queues ?? []).map((q) => q.name) : queueNames());
  /** A handle's default queue: a Slurm scheduler's is its cluster's default partition. */
  const defaultQueueOf = async (handle: SchedulerHandle): Promise<string | undefined> => (handle.adaptor === 'slurm' ? executorOf(handle)?.defaultQueue : defaultQueue());

  const scheduler = (who: WhoAmI, handle: Handle | null | undefined): SchedulerHandle => {
    const found = schedulers.find(who.user, handle?.id);
    if (!found) {
      throw new XenonError('XenonException', adaptorName, `no scheduler ${JSON.stringify(handle?.id ?? '')}: create one first (handles are forgotten when closed or when the server restarts)`, {
        code: Status.NOT_FOUND,
      });
    }
    return found;
  };

  const create = async (who: WhoAmI, request: Partial<CreateRequest>): Promise<Handle> => {
    const adaptor = request.adaptor ?? '';
    checkAdaptor(adaptor);
    const location = request.location ?? '';
    if (adaptor === 'local' && !LOCAL_LOCATIONS.includes(location)) {
      throw new XenonError('InvalidLocationException', adaptor, `location ${JSON.stringify(location)}: the local adaptor takes an empty location or "local://"`);
    }
    const kind = request.credential ?? 'default_credential';
    if (kind !== 'default_credential' && !((adaptor === 'ssh' || adaptor === 'slurm') && (kind === 'password_credential' || kind === 'certificate_credential'))) {
      const why = adaptor === 'ssh' || adaptor === 'slurm' ? 'it takes a default, password or certificate credential' : 'callers authenticate to jobwire with a bearer token';
      throw new XenonError('InvalidCredentialException', adaptor, `the ${adaptor} adaptor takes no ${kind.replace('_', ' ')}: ${why}`);
    }
    const props = Object.keys(request.properties ?? {});
    if (props.length > 0) {
      throw new XenonError('UnknownPropertyException', adaptor, `unknown propert${props.length > 1 ? 'ies' : 'y'} ${props.join(', ')}: queues and limits are configured on the jobwire server`);
    }
    // A caller's own credential may log in as another user, to the same hosts only.
    const sameUser = kind === 'default_credential';
    const executor = adaptor === 'ssh' ? sshExecutorAt(location, sameUser) : adaptor === 'slurm' ? slurmExecutorAt(location, sameUser) : undefined;
    const own = kind === 'default_credential' ? undefined : await credentialExecutor(who, adaptor as 'ssh' | 'slurm', location, executor!, request);
    const id = schedulers.newId(adaptor, who.user, location);
    schedulers.add({ kind: 'scheduler', id, owner: who.user, adaptor, location, ...(own !== undefined ? own : executor !== undefined ? { executor } : {}) });
    return { id };
  };

  /**
   * The executor of a scheduler with the caller's own credential, to the host of the server's
   * executor `serverExecutor` (the server reaches no host it was not told of): its own
   * connection, logged in with that credential (credential-executors.ts; docs/grpc.md).
   */
  const credentialExecutor = async (
    who: WhoAmI,
    adaptor: 'ssh' | 'slurm',
    location: string,
    serverExecutor: string,
    request: Partial<CreateRequest>,
  ): Promise<Pick<SchedulerHandle, 'executor' | 'credential' | 'sftpRequest'>> => {
    const info = service.executors().find((e) => e.name === serverExecutor)!;
    if (deps.credentialExecutor === undefined || !/^(ssh|slurm\+ssh):/i.test(info.url)) {
      throw new XenonError('InvalidCredentialException', adaptor, `the ${adaptor} adaptor takes a password or certificate credential only for hosts it logs in to by ssh${deps.credentialExecutor === undefined ? ' on a server that runs jobs itself (not in distributed mode)' : `; ${JSON.stringify(location)} is Slurm on the server's own machine`}`);
    }
    const server = parseSshTarget(info.url, { scheme: /^slurm/i.test(info.url) ? 'slurm+ssh:' : 'ssh:' });
    const bare = location.replace(/^ssh:\/\//i, '');
    const named = bare.includes('@') ? parseSshTarget(bare).user : undefined;
    const password = request.credential === 'password_credential';
    const given = password ? request.password_credential : request.certificate_credential;
    const username = given?.username || named || server.user;
    const target = { user: username, host: server.host, port: server.port };
    const sftpRequest: CreateRequest = { adaptor: 'sftp', location: `${username}@${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`, properties: {}, credential: request.credential! };
    if (password) {
      const secret = request.password_credential?.password ?? '';
      if (secret === '') throw new XenonError('InvalidCredentialException', adaptor, 'the password credential has an empty password');
      const name = deps.credentialExecutor({ user: who.user, adaptor, target, password: secret });
      return { executor: name, credential: { password_credential: { username, password: '' } }, sftpRequest: { ...sftpRequest, password_credential: { username, password: secret } } };
    }
    const cert = request.certificate_credential;
    let real: string;
    try {
      ({ real } = await deps.keyFile(who, cert?.certfile ?? '', adaptor));
    } catch (err) {
      if (err instanceof XenonError && err.kind !== 'InvalidCredentialException') throw new XenonError('InvalidCredentialException', adaptor, `the certificate credential's key file: ${err.message}`, { cause: err });
      throw err;
    }
    // Read again as the executor will read it at every connection (by its real path), and parsed now: a key that cannot be used is refused here.
    try {
      const parsed = utils.parseKey(readKeyFile(real), cert?.passphrase || undefined);
      if (parsed instanceof Error) throw parsed;
    } catch (err) {
      throw new XenonError('InvalidCredentialException', adaptor, `the key file ${cert!.certfile} cannot be used: ${(err as Error).message}`, { cause: err });
    }
    const name = deps.credentialExecutor({ user: who.user, adaptor, target, keyFile: { path: real, ...(cert?.passphrase ? { passphrase: cert.passphrase } : {}) } });
    return {
      executor: name,
      credential: { certificate_credential: { username, certfile: cert!.certfile, passphrase: '' } },
      sftpRequest: { ...sftpRequest, certificate_credential: { username, certfile: cert!.certfile, passphrase: cert?.passphrase ?? '' } },
    };
  };

  const jobStatus = async (who: WhoAmI, id: string): Promise<XenonJobStatus> => toJobStatus(await service.get(who.user, id), adaptorName);

  const checkQueue = async (name: string): Promise<void> => {
    const names = await queueNames();
    if (!names.includes(name)) throw new XenonError('NoSuchQueueException', adaptorName, `no queue "${name}"; the queues are ${names.join(', ')}`);
  };

  /** Waits until reached or `timeoutMs` passed (0 = for ever) or the caller went away. */
  const waitFor = async (ctx: CallContext, request: WaitRequest, until: 'done' | 'running'): Promise<XenonJobStatus> => {
    scheduler(ctx.who, request.scheduler);
    const id = request.job?.id ?? '';
    const timeout = request.timeout;
    const deadline = timeout === 0 ? Number.POSITIVE_INFINITY : Date.now() + timeout;
    let job: JobRecord;
    for (;;) {
      const step = Math.max(0, Math.min(deadline - Date.now(), WAIT_STEP_MS));
      job = await service.wait(ctx.who.user, id, until, step, ctx.signal);
      const reached = isFinal(job.status) || (until === 'running' && job.status === 'Running');
      if (reached || Date.now() >= deadline || ctx.signal.aborted) break;
    }
    return toJobStatus(job, adaptorName);
  };

  // The admin's jobs start where any job does (the server's or its worker's --work-dir, or the
  // login folder of a remote executor), and relative paths stay relative to it; another user's
  // local jobs start in their file space.
  const submitTarget = async (who: WhoAmI, handle: SchedulerHandle): Promise<SubmitTarget> =>
    handle.executor !== undefined
      ? { adaptor: handle.adaptor, executor: handle.executor, ...(handle.adaptor === 'slurm' ? {} : { defaultQueue: await defaultQueue() }) }
      : { adaptor: adaptorName, defaultQueue: await defaultQueue(), ...(who.admin ? {} : { workDir: space.root(who) }) };

  const a = adaptorName;
  return {
    getAdaptorDescriptions: rpc.unary<Empty, unknown>(a, async () => ({ descriptions: offered().map(description) })),
    getAdaptorNames: rpc.unary<Empty, unknown>(a, async () => ({ name: offered() })),
    getAdaptorDescription: rpc.unary<{ name: string }, SchedulerAdaptorDescription>(a, async (request) => {
      checkAdaptor(request.name);
      return description(request.name);
    }),
    create: rpc.unary<CreateRequest, Handle>(a, async (request, { who }) => create(who, request)),
    localScheduler: rpc.unary<Empty, Handle>(a, async (_request, { who }) => create(who, { adaptor: 'local', location: '', properties: {} })),
    listSchedulers: rpc.unary<Empty, unknown>(a, async (_request, { who }) => ({ schedulers: schedulers.list(who.user).map((s) => ({ id: s.id })) })),
    close: rpc.unary<Handle, Empty>(a, async (request, { who }) => {
      // Closing a handle forgets it; the jobs behind it run on (they are jobwire jobs).
      const handle = scheduler(who, request);
      if (handle.fileSystemId !== undefined) deps.closeFileSystem(who.user, handle.fileSystemId);
      schedulers.remove(handle);
      return {};
    }),
    isOpen: rpc.unary<Handle, unknown>(a, async (request, { who }) => {
      scheduler(who, request);
      return { value: true };
    }),
    getAdaptorName: rpc.unary<Handle, unknown>(a, async (request, { who }) => ({ name: scheduler(who, request).adaptor })),
    getLocation: rpc.unary<Handle, unknown>(a, async (request, { who }) => ({ location: scheduler(who, request).location })),
    getCredential: rpc.unary<Handle, unknown>(a, async (request, { who }) => {
      // A credential as given, its secret (password, passphrase) left out.
      return scheduler(who, request).credential ?? { default_credential: { username: who.user } };
    }),
    getProperties: rpc.unary<Handle, unknown>(a, async (request, { who }) => {
      scheduler(who, request);
      return { properties: {} };
    }),
    getQueueNames: rpc.unary<Handle, unknown>(a, async (request, { who }) => ({ name: await queueNamesOf(scheduler(who, request)) })),
    getDefaultQueueName: rpc.unary<Handle, unknown>(a, async (request, { who }) => ({ name: (await defaultQueueOf(scheduler(who, request))) ?? '' })),
    getDefaultRuntime: rpc.unary<Handle, unknown>(a, async (request, { who }) => {
      scheduler(who, request);
      return { value: 0 };
    }),
    getQueueStatus: rpc.unary<GetQueueStatusRequest, unknown>(a, async (request, { who }) => {
      scheduler(who, request.scheduler);
      await checkQueue(request.queue);
      const queue = (await service.queues()).find((q) => q.name === request.queue)!;
      return toQueueStatus(queue);
    }),
    getQueueStatuses: rpc.unary<SchedulerAndQueues, unknown>(a, async (request, { who }) => {
      scheduler(who, request.scheduler);
      const all = await service.queues();
      const names = request.queues.length > 0 ? request.queues : all.map((q) => q.name);
      return { statuses: names.map((name) => {
        const queue = all.find((q) => q.name === name);
        return queue ? toQueueStatus(queue) : missingQueueStatus(name, adaptorName);
      }) };
    }),
    getJobs: rpc.unary<SchedulerAndQueues, unknown>(a, async (request, { who }) => {
      // Xenon's getJobs: the jobs still in the queues (queued or running), of this user.
      scheduler(who, request.scheduler);
      for (const q of request.queues) await checkQueue(q);
      const ids: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await service.list(who.user, { status: 'Queued,Running', limit: 1000, ...(cursor ? { cursor } : {}) });
        for (const job of page.items) if (request.queues.length === 0 || request.queues.includes(job.queue)) ids.push(job.id);
        cursor = page.next;
      } while (cursor !== undefined);
      return { jobs: ids.map((id) => ({ id })) };
    }),
    submitBatchJob: rpc.unary<SubmitBatchJobRequest, Handle>(a, async (request, { who }) => {
      const handle = scheduler(who, request.scheduler);
      const job = await service.submit(who.user, toJobDescription(request.description, await submitTarget(who, handle), false));
      return { id: job.id };
    }),
    submitInteractiveJob: rpc.bidi<SubmitInteractiveJobRequest, SubmitInteractiveJobResponse>(a, async (call, ctx) => {
      const first = await firstRequest(call);
      if (first === undefined) {
        throw new XenonError('IncompleteJobDescriptionException', adaptorName, 'the first request of submitInteractiveJob carries the scheduler and the job description', {
          code: Status.INVALID_ARGUMENT,
        });
      }
      const handle = scheduler(ctx.who, first.scheduler);
      const job = await service.submit(ctx.who.user, toJobDescription(first.description, await submitTarget(ctx.who, handle), true));
      await new InteractiveSession(call, service, ctx.who.user, job, ctx.signal).run(first.stdin);
    }),
    getJobStatus: rpc.unary<JobRequest, XenonJobStatus>(a, async (request, { who }) => {
      scheduler(who, request.scheduler);
      return jobStatus(who, request.job?.id ?? '');
    }),
    getJobStatuses: rpc.unary<GetJobStatusesRequest, unknown>(a, async (request, { who }) => {
      scheduler(who, request.scheduler);
      const statuses = await Promise.all(
        request.jobs.map(async (job) => {
          const record = await service.find(who.user, job.id);
          return record ? toJobStatus(record, adaptorName) : missingJobStatus(job.id, adaptorName);
        }),
      );
      return { statuses };
    }),
    waitUntilDone: rpc.unary<WaitRequest, XenonJobStatus>(a, async (request, ctx) => waitFor(ctx, request, 'done')),
    waitUntilRunning: rpc.unary<WaitRequest, XenonJobStatus>(a, async (request, ctx) => waitFor(ctx, request, 'running')),
    cancelJob: rpc.unary<JobRequest, XenonJobStatus>(a, async (request, ctx) => {
      scheduler(ctx.who, request.scheduler);
      const id = request.job?.id ?? '';
      const job = await service.cancel(ctx.who.user, id);
      if (isFinal(job.status)) return toJobStatus(job, adaptorName);
      // A running job stops within the grace period; give the answer a moment to be final.
      return toJobStatus(await service.wait(ctx.who.user, id, 'done', 2000, ctx.signal), adaptorName);
    }),
    getFileSystem: rpc.unary<Handle, Handle>(a, async (request, { who }) => {
      const handle = scheduler(who, request);
      if (handle.fileSystemId !== undefined) return { id: handle.fileSystemId };
      const info = executorOf(handle);
      if (handle.sftpRequest !== undefined) {
        // The host's files over sftp, logged in with the scheduler's own credential.
        handle.fileSystemId = (await deps.openSftp(who, handle.sftpRequest)).id;
      } else if (info !== undefined && /^(ssh|slurm\+ssh):/i.test(info.url)) {
        // The host's files over sftp, on the executor's own connection (as its jobs see them).
        handle.fileSystemId = (await deps.openRemoteFileSystem(who, info.name, handle.adaptor === 'slurm' ? slurmLocation(info.url) : handle.location)).id;
      } else {
        // local, and slurm: (the cluster's files are this machine's): the file adaptor.
        handle.fileSystemId = deps.openFileSystem(who).id;
      }
      return { id: handle.fileSystemId };
    }),
  };
}

/** The first request of a stream, or undefined when the client half-closed without one. */
function firstRequest<Req>(call: ServerDuplexStream<Req, unknown>): Promise<Req | undefined> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      call.off('data', onData);
      call.off('end', onEnd);
      call.off('error', onError);
      call.off('cancelled', onCancel);
    };
    const onData = (request: Req): void => {
      cleanup();
      call.pause();
      resolve(request);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(undefined);
    };
    const onError = (err: unknown): void => {
      cleanup();
      reject(err);
    };
    const onCancel = (): void => {
      cleanup();
      resolve(undefined);
    };
    call.on('data', onData);
    call.on('end', onEnd);
    call.on('error', onError);
    call.on('cancelled', onCancel);
  });
}
