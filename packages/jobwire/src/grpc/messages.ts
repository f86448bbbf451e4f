/**
 * TypeScript shapes of the `xenon.proto` messages this server reads and writes, as
 * @grpc/proto-loader presents them with {@link PROTO_LOADER_OPTIONS}: snake_case names,
 * defaults filled in (so requests never have missing scalars), 64-bit numbers as numbers,
 * enums as their names and `bytes` as Buffers.
 * @module
 */

/** `xenon.Empty`. */
export type Empty = Record<string, never>;

/** `xenon.Scheduler` / `xenon.FileSystem` / `xenon.Job` / `xenon.CopyOperation`: a handle. */
export interface Handle {
  id: string;
}

/** Credentials of a create request (the set member of the `credential` oneof). */
export interface CredentialFields {
  credential?: 'certificate_credential' | 'password_credential' | 'default_credential' | 'credential_map' | 'keytab_credential';
  default_credential?: { username: string } | null;
  password_credential?: { username: string; password: string } | null;
  certificate_credential?: { username: string; certfile: string; passphrase: string } | null;
}

/** `xenon.CreateSchedulerRequest` / `xenon.CreateFileSystemRequest`. */
export interface CreateRequest extends CredentialFields {
  adaptor: string;
  location: string;
  properties: Record<string, string>;
}

/** `xenon.JobDescription` (3.x). */
export interface XenonJobDescription {
  executable: string;
  arguments: string[];
  working_directory: string;
  environment: Record<string, string>;
  queue_name: string;
  max_runtime: number;
  stderr: string;
  stdin: string;
  stdout: string;
  name: string;
  max_memory: number;
  scheduler_arguments: string[];
  tasks: number;
  cores_per_task: number;
  tasks_per_node: number;
  start_per_task: boolean;
  start_time: string;
  temp_space: number;
}

/** `xenon.SubmitBatchJobRequest`. */
export interface SubmitBatchJobRequest {
  scheduler: Handle | null;
  description: XenonJobDescription | null;
}

/** `xenon.SubmitInteractiveJobRequest`. */
export interface SubmitInteractiveJobRequest extends SubmitBatchJobRequest {
  stdin: Buffer;
}

/** `xenon.SubmitInteractiveJobResponse`. */
export interface SubmitInteractiveJobResponse {
  job: Handle;
  stdout?: Uint8Array;
  stderr?: Uint8Array;
}

/** `xenon.JobRequest`. */
export interface JobRequest {
  scheduler: Handle | null;
  job: Handle | null;
}

/** `xenon.GetJobStatusesRequest`. */
export interface GetJobStatusesRequest {
  scheduler: Handle | null;
  jobs: Handle[];
}

/** `xenon.WaitRequest` (timeout in ms, 0 = for ever). */
export interface WaitRequest extends JobRequest {
  timeout: number;
}

/** `xenon.SchedulerAndQueues`. */
export interface SchedulerAndQueues {
  scheduler: Handle | null;
  queues: string[];
}

/** `xenon.GetQueueStatusRequest`. */
export interface GetQueueStatusRequest {
  scheduler: Handle | null;
  queue: string;
}

/** `xenon.JobStatus.ErrorType`. */
export type JobErrorType = 'NONE' | 'NOT_FOUND' | 'CANCELLED' | 'NOT_CONNECTED' | 'XENON' | 'IO' | 'OTHER';

/** `xenon.JobStatus`. */
export interface XenonJobStatus {
  job: Handle;
  state: string;
  running: boolean;
  done: boolean;
  scheduler_specific_information: Record<string, string>;
  exit_code: number;
  error_message: string;
  error_type: JobErrorType;
  name: string;
}

/** `xenon.QueueStatus`. */
export interface XenonQueueStatus {
  name: string;
  scheduler_specific_information: Record<string, string>;
  error_message: string;
  error_type: 'NONE' | 'NOT_FOUND' | 'NOT_CONNECTED' | 'XENON' | 'IO' | 'OTHER';
}

/** `xenon.SchedulerAdaptorDescription`. */
export interface SchedulerAdaptorDescription {
  name: string;
  description: string;
  supported_locations: string[];
  supported_properties: never[];
  is_embedded: boolean;
  supports_interactive: boolean;
  supports_batch: boolean;
  uses_file_system: boolean;
  supported_credentials: string[];
}

/** `xenon.FileSystemAdaptorDescription`. */
export interface FileSystemAdaptorDescription {
  name: string;
  description: string;
  supported_locations: string[];
  supported_properties: never[];
  supports_third_party_copy: boolean;
  can_create_symboliclinks: boolean;
  can_read_symboliclinks: boolean;
  is_connectionless: boolean;
  supported_credentials: string[];
  supports_reading_posix_permissions: boolean;
  supports_setting_posix_permissions: boolean;
  supports_rename: boolean;
  can_append: boolean;
  needs_size_beforehand: boolean;
}

/** `xenon.Path` (an empty separator means "/"). */
export interface XenonPath {
  path: string;
  separator: string;
}

/** `xenon.PathRequest`. */
export interface PathRequest {
  filesystem: Handle | null;
  path: XenonPath | null;
}

/** `xenon.DeleteRequest`. */
export interface DeleteRequest extends PathRequest {
  recursive: boolean;
}

/** `xenon.RenameRequest`. */
export interface RenameRequest {
  filesystem: Handle | null;
  source: XenonPath | null;
  target: XenonPath | null;
}

/** `xenon.CreateSymbolicLinkRequest`. */
export interface CreateSymbolicLinkRequest {
  filesystem: Handle | null;
  link: XenonPath | null;
  target: XenonPath | null;
}

/** `xenon.CopyRequest.CopyMode`. */
export type CopyMode = 'CREATE' | 'REPLACE' | 'IGNORE';

/** `xenon.CopyRequest`. */
export interface CopyRequest {
  filesystem: Handle | null;
  source: XenonPath | null;
  destination_filesystem: Handle | null;
  destination: XenonPath | null;
  mode: CopyMode;
  recursive: boolean;
}

/** `xenon.CopyOperationRequest`. */
export interface CopyOperationRequest {
  filesystem: Handle | null;
  copy_operation: Handle | null;
}

/** `xenon.WaitUntilDoneRequest` (timeout in ms, 0 = until done). */
export interface WaitUntilDoneRequest extends CopyOperationRequest {
  timeout: number;
}

/** `xenon.CopyStatus.ErrorType`. */
export type CopyErrorType = 'NONE' | 'NOT_FOUND' | 'CANCELLED' | 'ALREADY_EXISTS' | 'NOT_CONNECTED' | 'XENON';

/** `xenon.CopyStatus`. */
export interface XenonCopyStatus {
  copy_operation: Handle;
  bytes_copied: number;
  bytes_to_copy: number;
  done: boolean;
  running: boolean;
  state: string;
  error_message: string;
  error_type: CopyErrorType;
}

/** `xenon.PosixFilePermission`. */
export type PosixFilePermission =
  | 'NONE'
  | 'OWNER_READ'
  | 'OWNER_WRITE'
  | 'OWNER_EXECUTE'
  | 'GROUP_READ'
  | 'GROUP_WRITE'
  | 'GROUP_EXECUTE'
  | 'OTHERS_READ'
  | 'OTHERS_WRITE'
  | 'OTHERS_EXECUTE';

/** `xenon.PathAttributes` (times in ms since the epoch). */
export interface PathAttributes {
  path: XenonPath;
  creation_time: number;
  group: string;
  is_directory: boolean;
  is_executable: boolean;
  is_hidden: boolean;
  is_other: boolean;
  is_readable: boolean;
  is_regular: boolean;
  is_symbolic_link: boolean;
  is_writable: boolean;
  last_access_time: number;
  last_modified_time: number;
  owner: string;
  permissions: PosixFilePermission[];
  size: number;
}

/** `xenon.SetPosixFilePermissionsRequest`. */
export interface SetPosixFilePermissionsRequest extends PathRequest {
  permissions: PosixFilePermission[];
}

/** `xenon.WriteToFileRequest` / `xenon.AppendToFileRequest`. */
export interface WriteToFileRequest {
  filesystem: Handle | null;
  path: XenonPath | null;
  buffer: Buffer;
  size?: number;
}

/** `xenon.ListRequest`. */
export interface ListRequest {
  filesystem: Handle | null;
  dir: XenonPath | null;
  recursive: boolean;
}

/** `xenon.ReadFromFileResponse`. */
export interface ReadFromFileResponse {
  buffer: Uint8Array;
}
