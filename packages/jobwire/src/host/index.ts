/**
 * The job host: one process per jobwire home that starts the home's jobs, holds their pipes and
 * terminal masters, writes their output to the stream log's files, and keeps them running when
 * the server (or worker) that started them stops or dies. A server reaches it with
 * {@link ensureHost} and talks to it through a {@link HostClient}; {@link recoverJobs} and
 * {@link recoverJournal} settle the jobs of a host that died. docs/architecture.md ("The job
 * host") has the why.
 * @module
 */
export { HostExecutor, STDIN_WINDOW_BYTES, type HostExecutorOptions, type HostJobRecord } from './executor.js';
export { ensureHost, type EnsureHostOptions, type EnsuredHost } from './ensure.js';
export { HostClient, type HostClientOptions, type HostJobEvent, type SubscribeOptions, type TerminateOptions } from './client.js';
export { JobHost, HostRunningError, DEFAULT_IDLE_MS, type JobHostOptions } from './daemon.js';
export { hostStatus, readExitRecord, recoverJobs, recoverJournal, stopHost, type HostStatus, type JobRecovery, type StopHostOptions } from './recovery.js';
export { HostConnectionClosedError, HostProtocolError, HostUnavailableError, HostVersionError } from './errors.js';
export { hostPaths, type HostPaths } from './paths.js';
export { readStoredOutput, WRITE_BEHIND_BYTES, type OutputFileHandles, type StoredBounds } from './output-files.js';
export { STDIN_BACKLOG_BYTES, DEFAULT_GRACE_MS } from './job.js';
export type { HostProcessOptions } from './main.js';
export { PROTOCOL_VERSIONS, MAX_FRAME_BYTES, type ExitRecord, type HostInfo, type HostJobState, type StartJob, type StorageState } from './protocol.js';
