/**
 * Xenon's SchedulerService over jobwire's JobService. A scheduler handle names an adaptor; the
 * adaptor a server offers is its executor (`local` in embedded mode, with the queues `single`,
 * `multi` and `unlimited`, Xenon's default being `single`). Other Xenon adaptor names are
 * refused with UnknownAdaptorException until jobwire has an executor for them. Every job
 * operation goes through JobService, so jobs submitted here are ordinary jobwire jobs: same
 * validation, ownership and state rules, visible in the CLI and the dashboard, and their status
 * stays queryable after they end.
 * @module
 */
import { status as Status, type ServerDuplexStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { isFinal, type WhoAmI } from '@jobwire/client';
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

  const description = (name: string): SchedulerAdaptorDescription => ({
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
    if (adaptorNames.includes(name)) return;
    const known = KNOWN_XENON_ADAPTORS.includes(name) ? ` is not available on this jobwire server yet` : ` is unknown`;
    throw new XenonError('UnknownAdaptorException', name || '(none)', `the scheduler adaptor "${name}"${known}; this server offers: ${adaptorNames.join(', ')}`);
  };

  const scheduler = (who: WhoAmI, handle: Handle | null | undefined): SchedulerHandle => {
    const found = schedulers.find(who.user, handle?.id);
    if (!found) {
      throw new XenonError('XenonException', adaptorName, `no scheduler ${JSON.stringify(handle?.id ?? '')}: create one first (handles are forgotten when closed or when the server restarts)`, {
        code: Status.NOT_FOUND,
      });
    }
    return found;
  };

  const create = (who: WhoAmI, request: Partial<CreateRequest>): Handle => {
    const adaptor = request.adaptor ?? '';
    checkAdaptor(adaptor);
    const location = request.location ?? '';
    if (adaptor === 'local' && !LOCAL_LOCATIONS.includes(location)) {
      throw new XenonError('InvalidLocationException', adaptor, `location ${JSON.stringify(location)}: the local adaptor takes an empty location or "local://"`);
    }
    if (request.credential !== undefined && request.credential !== 'default_credential') {
      throw new XenonError('InvalidCredentialException', adaptor, `the ${adaptor} adaptor takes no ${request.credential.replace('_', ' ')}; callers authenticate to jobwire with a bearer token`);
    }
    const props = Object.keys(request.properties ?? {});
    if (props.length > 0) {
      throw new XenonError('UnknownPropertyException', adaptor, `unknown propert${props.length > 1 ? 'ies' : 'y'} ${props.join(', ')}: queues and limits are configured on the jobwire server`);
    }
    const id = schedulers.newId(adaptor, who.user, location);
    schedulers.add({ kind: 'scheduler', id, owner: who.user, adaptor, location });
    return { id };
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

  // The admin's jobs start where any job does (the server's or its worker's --work-dir), and
  // relative paths stay relative to it; another user's start in their file space.
  const submitTarget = async (who: WhoAmI): Promise<SubmitTarget> => ({
    adaptor: adaptorName,
    defaultQueue: await defaultQueue(),
    ...(who.admin ? {} : { workDir: space.root(who) }),
  });

  const a = adaptorName;
  return {
    getAdaptorDescriptions: rpc.unary<Empty, unknown>(a, async () => ({ descriptions: adaptorNames.map(description) })),
    getAdaptorNames: rpc.unary<Empty, unknown>(a, async () => ({ name: adaptorNames })),
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
      scheduler(who, request);
      return { default_credential: { username: who.user } };
    }),
    getProperties: rpc.unary<Handle, unknown>(a, async (request, { who }) => {
      scheduler(who, request);
      return { properties: {} };
    }),
    getQueueNames: rpc.unary<Handle, unknown>(a, async (request, { who }) => {
      scheduler(who, request);
      return { name: await queueNames() };
    }),
    getDefaultQueueName: rpc.unary<Handle, unknown>(a, async (request, { who }) => {
      scheduler(who, request);
      return { name: await defaultQueue() };
    }),
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
      scheduler(who, request.scheduler);
      const job = await service.submit(who.user, toJobDescription(request.description, await submitTarget(who), false));
      return { id: job.id };
    }),
    submitInteractiveJob: rpc.bidi<SubmitInteractiveJobRequest, SubmitInteractiveJobResponse>(a, async (call, ctx) => {
      const first = await firstRequest(call);
      if (first === undefined) {
        throw new XenonError('IncompleteJobDescriptionException', adaptorName, 'the first request of submitInteractiveJob carries the scheduler and the job description', {
          code: Status.INVALID_ARGUMENT,
        });
      }
      scheduler(ctx.who, first.scheduler);
      const job = await service.submit(ctx.who.user, toJobDescription(first.description, await submitTarget(ctx.who), true));
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
      handle.fileSystemId ??= deps.openFileSystem(who).id;
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
