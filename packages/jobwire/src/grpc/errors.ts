/**
 * Errors of the Xenon service. Each carries a Xenon exception kind (the class name a Xenon
 * client knows, e.g. `NoSuchPathException`) and travels as a gRPC status whose code follows
 * xenon-grpc's mapping and whose details read `KIND: ADAPTOR adaptor: MESSAGE`. PyXenon picks its
 * exception class from the text before the first colon, so `PathAlreadyExistsException: ...`
 * raises `xenon.PathAlreadyExistsException` in Python.
 * @module
 */
import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import { JobwireError } from '@jobwire/client';

/** Xenon exception kinds this server raises. */
export type XenonExceptionKind =
  | 'XenonException'
  | 'NoSuchPathException'
  | 'PathAlreadyExistsException'
  | 'InvalidPathException'
  | 'DirectoryNotEmptyException'
  | 'NoSuchCopyException'
  | 'FileSystemClosedException'
  | 'NoSuchJobException'
  | 'NoSuchQueueException'
  | 'IncompleteJobDescriptionException'
  | 'InvalidJobDescriptionException'
  | 'UnsupportedJobDescriptionException'
  | 'UnknownAdaptorException'
  | 'UnknownPropertyException'
  | 'InvalidLocationException'
  | 'InvalidCredentialException'
  | 'UnsupportedOperationException'
  | 'NotConnectedException';

/** gRPC status code of each kind (xenon-grpc's table; plain XenonException is INTERNAL). */
const KIND_STATUS: Record<XenonExceptionKind, Status> = {
  XenonException: Status.INTERNAL,
  NoSuchPathException: Status.NOT_FOUND,
  PathAlreadyExistsException: Status.ALREADY_EXISTS,
  InvalidPathException: Status.FAILED_PRECONDITION,
  DirectoryNotEmptyException: Status.FAILED_PRECONDITION,
  NoSuchCopyException: Status.NOT_FOUND,
  FileSystemClosedException: Status.NOT_FOUND,
  NoSuchJobException: Status.NOT_FOUND,
  NoSuchQueueException: Status.NOT_FOUND,
  IncompleteJobDescriptionException: Status.INVALID_ARGUMENT,
  InvalidJobDescriptionException: Status.FAILED_PRECONDITION,
  UnsupportedJobDescriptionException: Status.UNIMPLEMENTED,
  UnknownAdaptorException: Status.NOT_FOUND,
  UnknownPropertyException: Status.NOT_FOUND,
  InvalidLocationException: Status.FAILED_PRECONDITION,
  InvalidCredentialException: Status.FAILED_PRECONDITION,
  UnsupportedOperationException: Status.UNIMPLEMENTED,
  NotConnectedException: Status.UNAVAILABLE,
};

/** An error answered to a Xenon client. */
export class XenonError extends Error {
  override name = 'XenonError';
  /** gRPC status code. */
  readonly code: Status;

  constructor(
    /** The Xenon exception kind. */
    readonly kind: XenonExceptionKind,
    /** Adaptor the error is about ("local", "file"), or undefined for the server itself. */
    readonly adaptor: string | undefined,
    message: string,
    options?: ErrorOptions & { code?: Status },
  ) {
    super(message, options);
    this.code = options?.code ?? KIND_STATUS[kind];
  }

  /** The status details sent on the wire. */
  get details(): string {
    return `${this.kind}: ${this.adaptor === undefined ? '' : `${this.adaptor} adaptor: `}${this.message}`;
  }
}

/** A handle, file or job the caller may not touch: PERMISSION_DENIED. */
export function permissionDenied(adaptor: string, message: string): XenonError {
  return new XenonError('XenonException', adaptor, message, { code: Status.PERMISSION_DENIED });
}

/** Job description field names: jobwire's (camelCase) → Xenon's (snake_case). */
const XENON_FIELD: Record<string, string> = {
  workingDirectory: 'working_directory',
  queueName: 'queue_name',
  maxRuntime: 'max_runtime',
  maxMemory: 'max_memory',
  coresPerTask: 'cores_per_task',
  schedulerArguments: 'scheduler_arguments',
};

/** Rewrites a leading jobwire field name of a message into the Xenon one. */
function xenonFieldMessage(err: JobwireError): string {
  const field = err.field?.split('.')[0];
  if (field === undefined || XENON_FIELD[field] === undefined) return err.message;
  return err.message.startsWith(field) ? XENON_FIELD[field] + err.message.slice(field.length) : `${XENON_FIELD[field]}: ${err.message}`;
}

/** Maps a JobService error to the Xenon kind a scheduler client expects. */
export function fromJobwireError(err: JobwireError, adaptor: string): XenonError {
  const message = xenonFieldMessage(err);
  switch (err.code) {
    case 'not_found':
      return new XenonError('NoSuchJobException', adaptor, message, { cause: err });
    case 'invalid_description':
      return new XenonError(err.field === 'executable' ? 'IncompleteJobDescriptionException' : 'InvalidJobDescriptionException', adaptor, message, { cause: err });
    case 'unsupported':
      return new XenonError(err.field === 'queueName' ? 'NoSuchQueueException' : 'UnsupportedJobDescriptionException', adaptor, message, { cause: err });
    case 'bad_request':
    case 'range_not_satisfiable':
    case 'protocol':
      return new XenonError('XenonException', adaptor, message, { cause: err, code: Status.INVALID_ARGUMENT });
    case 'conflict':
      return new XenonError('XenonException', adaptor, message, { cause: err, code: Status.FAILED_PRECONDITION });
    case 'payload_too_large':
      return new XenonError('XenonException', adaptor, message, { cause: err, code: Status.RESOURCE_EXHAUSTED });
    case 'unauthorized':
      return new XenonError('XenonException', undefined, message, { cause: err, code: Status.UNAUTHENTICATED });
    case 'forbidden':
      return new XenonError('XenonException', adaptor, message, { cause: err, code: Status.PERMISSION_DENIED });
    case 'timeout':
      return new XenonError('XenonException', adaptor, message, { cause: err, code: Status.DEADLINE_EXCEEDED });
    default:
      return new XenonError('XenonException', adaptor, message, { cause: err });
  }
}

/** Plain words for the file system errors a client may meet. */
const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'no such path',
  EEXIST: 'path already exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ENOTEMPTY: 'directory not empty',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ELOOP: 'too many levels of symbolic links',
  EINVAL: 'invalid argument',
  EXDEV: 'cannot move across devices',
  ENOSPC: 'no space left on device',
};

/** Maps a Node file system error about `path` (as the client named it) to a Xenon kind. */
export function fromFsError(err: unknown, path: string, adaptor = 'file'): XenonError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const words = ERRNO_WORDS[code] ?? (err instanceof Error ? err.message : String(err));
  const message = `${path}: ${words}`;
  switch (code) {
    case 'ENOENT':
      return new XenonError('NoSuchPathException', adaptor, message, { cause: err });
    case 'EEXIST':
      return new XenonError('PathAlreadyExistsException', adaptor, message, { cause: err });
    case 'ENOTDIR':
    case 'EISDIR':
    case 'EINVAL':
    case 'ELOOP':
      return new XenonError('InvalidPathException', adaptor, message, { cause: err });
    case 'ENOTEMPTY':
      return new XenonError('DirectoryNotEmptyException', adaptor, message, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return permissionDenied(adaptor, message);
    case 'ENOSPC':
      return new XenonError('XenonException', adaptor, message, { cause: err, code: Status.RESOURCE_EXHAUSTED });
    default:
      return new XenonError('XenonException', adaptor, message, { cause: err });
  }
}

/** Anything thrown in a handler, as a XenonError (unexpected errors become INTERNAL). */
export function toXenonError(err: unknown, adaptor?: string): XenonError {
  if (err instanceof XenonError) return err;
  if (err instanceof JobwireError) return fromJobwireError(err, adaptor ?? 'local');
  return new XenonError('XenonException', adaptor, 'internal error', { cause: err });
}

/** The gRPC error object for `err`. */
export function toServiceError(err: XenonError): Partial<ServiceError> & { code: Status; details: string } {
  const metadata = new Metadata();
  metadata.set('xenon-exception', err.kind);
  return { code: err.code, details: err.details, metadata };
}
