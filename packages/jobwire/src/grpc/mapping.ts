/**
 * Between Xenon's messages and jobwire's types: JobDescription in, JobStatus and QueueStatus
 * out. Xenon's conventions: zero or empty means "not set", max_runtime is in minutes, the
 * local adaptor's default queue is `single`, and a job's state is one of PENDING, RUNNING,
 * DONE, KILLED or ERROR — a job that ran to its end is DONE with its exit code (a non-zero
 * exit is not an error), a cancelled or timed-out one is KILLED with error type CANCELLED, one
 * that could not run is ERROR.
 * @module
 */
import type { JobDescription, JobInfo, QueueStatus } from '@jobwire/client';
import { constants as osConstants } from 'node:os';
import { XenonError } from './errors.js';
import type { JobErrorType, XenonJobDescription, XenonJobStatus, XenonQueueStatus } from './messages.js';

/** What the mapping needs to know about the scheduler a job is submitted to. */
export interface SubmitTarget {
  adaptor: string;
  /** Queue used when the description names none. @defaultValue none: the executor's own default (a Slurm cluster's default partition) */
  defaultQueue?: string;
  /**
   * Working directory for jobs that name none, and base of relative ones. @defaultValue none:
   * the job's own default (the server's or the worker's work folder; on a remote executor, the
   * login folder there), relative ones kept relative to it
   */
  workDir?: string;
  /** The named executor the jobs run on. @defaultValue undefined (local) */
  executor?: string;
}

/** Maps a Xenon JobDescription to jobwire's; refuses what jobwire cannot honour. */
export function toJobDescription(d: XenonJobDescription | null | undefined, target: SubmitTarget, interactive: boolean): JobDescription {
  const { adaptor } = target;
  if (!d || d.executable === '') throw new XenonError('IncompleteJobDescriptionException', adaptor, 'executable: a job description needs an executable');
  const unsupported = (field: string, why: string): never => {
    throw new XenonError('UnsupportedJobDescriptionException', adaptor, `${field}: ${why}`);
  };
  if (d.tasks_per_node > 1) unsupported('tasks_per_node', 'this scheduler runs one task per job');
  if (d.start_time !== '') unsupported('start_time', 'this scheduler starts a job as soon as its queue has room');
  if (d.temp_space > 0) unsupported('temp_space', 'this scheduler cannot reserve scratch space');
  const out: JobDescription = { executable: d.executable };
  const queue = d.queue_name === '' ? target.defaultQueue : d.queue_name;
  if (queue !== undefined) out.queueName = queue;
  const dir = d.working_directory;
  if (target.workDir === undefined) {
    if (dir !== '') out.workingDirectory = dir;
  } else {
    out.workingDirectory = dir === '' ? target.workDir : dir.startsWith('/') ? dir : `${target.workDir}/${dir}`;
  }
  if (target.executor !== undefined) out.executor = target.executor;
  if (d.arguments.length > 0) out.arguments = d.arguments;
  if (Object.keys(d.environment).length > 0) out.environment = d.environment;
  if (d.max_runtime > 0) out.maxRuntime = d.max_runtime;
  if (d.max_memory > 0) out.maxMemory = d.max_memory;
  if (d.stdin !== '') out.stdin = d.stdin;
  if (d.stdout !== '') out.stdout = d.stdout;
  if (d.stderr !== '') out.stderr = d.stderr;
  if (d.name !== '') out.name = d.name;
  if (d.scheduler_arguments.length > 0) out.schedulerArguments = d.scheduler_arguments;
  if (d.tasks > 0) out.tasks = d.tasks;
  if (d.cores_per_task > 0) out.coresPerTask = d.cores_per_task;
  if (interactive) out.interactive = true;
  return out;
}

/** Signal number of a signal name (for Xenon's exit code of a killed process, 128 + n). */
function signalNumber(name: string): number | undefined {
  return (osConstants.signals as Record<string, number | undefined>)[name];
}

/** Xenon's state, flags, exit code and error of a jobwire job. */
function xenonState(job: JobInfo, adaptor: string): Pick<XenonJobStatus, 'state' | 'running' | 'done' | 'exit_code' | 'error_type' | 'error_message'> {
  // An exit code Xenon would report: the process's own, or 128 + n for a process killed by
  // signal n (as Java reports it); 0 ("not set" in proto3) when the process never ran.
  const exitCode = job.exitCode ?? (job.signal !== null ? 128 + (signalNumber(job.signal) ?? 0) : 0);
  const base = { running: false, done: true, exit_code: exitCode, error_type: 'NONE' as JobErrorType, error_message: '' };
  const error = (message: string): string => `${adaptor} adaptor: ${message}`;
  switch (job.status) {
    case 'Queued':
      return { ...base, state: 'PENDING', done: false };
    case 'Running':
      return { ...base, state: 'RUNNING', running: true, done: false };
    case 'Success':
      return { ...base, state: 'DONE' };
    case 'Cancelled':
      return { ...base, state: 'KILLED', error_type: 'CANCELLED', error_message: error(`Process cancelled by user (${job.error ?? 'cancelled'})`) };
    case 'Lost':
      return { ...base, state: 'ERROR', error_type: 'XENON', error_message: error(job.error ?? 'the job was lost') };
    case 'Failed': {
      if (job.error?.startsWith('stopped after maxRuntime')) {
        return { ...base, state: 'KILLED', error_type: 'CANCELLED', error_message: error(`Process timed out (${job.error})`) };
      }
      if (job.error?.startsWith('output could not be stored')) return { ...base, state: 'ERROR', error_type: 'IO', error_message: error(job.error) };
      if (job.exitCode !== null || job.signal !== null) return { ...base, state: 'DONE' };
      return { ...base, state: 'ERROR', error_type: 'XENON', error_message: error(job.error ?? 'the job failed') };
    }
    default: {
      const never: never = job.status;
      return { ...base, state: String(never), error_type: 'OTHER' };
    }
  }
}

/** Maps a jobwire job to Xenon's JobStatus; jobwire's own fields go into scheduler_specific_information. */
export function toJobStatus(job: JobInfo, adaptor: string): XenonJobStatus {
  const info: Record<string, string> = { 'jobwire.status': job.status, 'jobwire.queue': job.queue, 'jobwire.createdAt': job.createdAt };
  const put = (key: string, value: string | null | undefined): void => {
    if (value !== null && value !== undefined && value !== '') info[`jobwire.${key}`] = value;
  };
  put('group', job.group);
  put('node', job.node);
  put('progress', job.progress);
  put('reason', job.reason);
  put('error', job.error);
  put('signal', job.signal);
  put('exitCode', job.exitCode === null ? null : String(job.exitCode));
  put('startedAt', job.startedAt);
  put('endedAt', job.endedAt);
  put('interactive', job.interactive ? 'true' : null);
  return { job: { id: job.id }, name: job.name, scheduler_specific_information: info, ...xenonState(job, adaptor) };
}

/** The status of a job that does not exist (or is someone else's), as getJobStatuses reports it. */
export function missingJobStatus(id: string, adaptor: string): XenonJobStatus {
  return {
    job: { id },
    name: '',
    state: 'UNKNOWN',
    running: false,
    done: false,
    exit_code: 0,
    scheduler_specific_information: {},
    error_type: 'NOT_FOUND',
    error_message: `${adaptor} adaptor: Job ${id} does not exist`,
  };
}

/** Maps a queue's load to Xenon's QueueStatus. */
export function toQueueStatus(queue: QueueStatus): XenonQueueStatus {
  return {
    name: queue.name,
    scheduler_specific_information: { limit: queue.limit === null ? 'unlimited' : String(queue.limit), running: String(queue.running), queued: String(queue.queued) },
    error_message: '',
    error_type: 'NONE',
  };
}

/** The QueueStatus of an unknown queue. */
export function missingQueueStatus(name: string, adaptor: string): XenonQueueStatus {
  return { name, scheduler_specific_information: {}, error_message: `${adaptor} adaptor: no queue "${name}"`, error_type: 'NOT_FOUND' };
}
