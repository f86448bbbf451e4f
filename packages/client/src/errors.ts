/**
 * Named errors with stable codes. The same codes travel on the wire (`{ error: { code, message } }`)
 * and map to HTTP statuses through {@link HTTP_STATUS}.
 * @module
 */

/** Stable error codes. */
export type ErrorCode =
  | 'bad_request'
  | 'invalid_description'
  | 'unsupported'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'headers_too_large'
  | 'range_not_satisfiable'
  | 'timeout'
  | 'no_server'
  | 'connection'
  | 'protocol'
  | 'internal';

/** HTTP status for each code. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_description: 400,
  unsupported: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  headers_too_large: 431,
  range_not_satisfiable: 416,
  timeout: 408,
  no_server: 503,
  connection: 503,
  protocol: 400,
  internal: 500,
};

/** Base class of all jobwire errors. */
export class JobwireError extends Error {
  override name = 'JobwireError';
  /** Which field of the input was wrong, when one was. */
  readonly field?: string;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions & { field?: string },
  ) {
    super(message, options);
    if (options?.field !== undefined) this.field = options.field;
  }
  /** HTTP status for this error. */
  get status(): number {
    return HTTP_STATUS[this.code];
  }
  /** Wire form. */
  toJSON(): { code: ErrorCode; message: string; field?: string } {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field };
  }
}

/** The job (or group) does not exist, or belongs to someone else. */
export class NotFoundError extends JobwireError {
  override name = 'NotFoundError';
  constructor(message: string, options?: ErrorOptions) {
    super('not_found', message, options);
  }
}

/** Missing or wrong token. */
export class UnauthorizedError extends JobwireError {
  override name = 'UnauthorizedError';
  constructor(message = 'missing or invalid token', options?: ErrorOptions) {
    super('unauthorized', message, options);
  }
}

/** The request was malformed or named a bad field. */
export class BadRequestError extends JobwireError {
  override name = 'BadRequestError';
  constructor(message: string, options?: ErrorOptions & { field?: string; code?: 'bad_request' | 'invalid_description' | 'unsupported' | 'payload_too_large' | 'headers_too_large' | 'range_not_satisfiable' | 'protocol' }) {
    super(options?.code ?? 'bad_request', message, options);
  }
}

/** A short job id that starts more than one of the caller's job ids (`candidates`). */
export class AmbiguousIdError extends BadRequestError {
  override name = 'AmbiguousIdError';
  constructor(
    prefix: string,
    /** The full ids that start with the prefix. */
    readonly candidates: readonly string[],
  ) {
    super(`the job id ${JSON.stringify(prefix)} is ambiguous: it begins ${candidates.length} of your job ids: ${candidates.join(', ')}`, { field: 'id' });
  }
}

/**
 * A WebSocket frame that cannot be decoded (too short, not JSON, unknown tag): code `protocol`,
 * so a server that meets one answers with the protocol close code and a client reports it as a
 * broken connection rather than a bug.
 */
export class FrameError extends BadRequestError {
  override name = 'FrameError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: 'protocol' });
  }
}

/** The operation does not fit the job's state. */
export class ConflictError extends JobwireError {
  override name = 'ConflictError';
  constructor(message: string, options?: ErrorOptions) {
    super('conflict', message, options);
  }
}

/** A wait ran out of time. */
export class TimeoutError extends JobwireError {
  override name = 'TimeoutError';
  constructor(message: string, options?: ErrorOptions) {
    super('timeout', message, options);
  }
}

/** No server could be reached. */
export class ConnectionError extends JobwireError {
  override name = 'ConnectionError';
  constructor(message: string, options?: ErrorOptions & { code?: 'connection' | 'no_server' }) {
    super(options?.code ?? 'connection', message, options);
  }
}

/** Builds the matching error class from a wire error. */
export function errorFromWire(body: { code?: string; message?: string; field?: string } | undefined, fallbackStatus = 500): JobwireError {
  const code = (body?.code ?? '') as ErrorCode;
  const message = body?.message ?? `request failed with HTTP ${fallbackStatus}`;
  const field = body?.field;
  switch (code) {
    case 'not_found':
      return new NotFoundError(message);
    case 'unauthorized':
      return new UnauthorizedError(message);
    case 'bad_request':
    case 'invalid_description':
    case 'unsupported':
    case 'payload_too_large':
    case 'headers_too_large':
    case 'range_not_satisfiable':
    case 'protocol':
      return new BadRequestError(message, field === undefined ? { code } : { code, field });
    case 'conflict':
      return new ConflictError(message);
    case 'timeout':
      return new TimeoutError(message);
    case 'connection':
    case 'no_server':
      return new ConnectionError(message, { code });
    case 'forbidden':
    case 'internal':
      return new JobwireError(code, message);
    default:
      return new JobwireError(fallbackStatus === 401 ? 'unauthorized' : fallbackStatus === 404 ? 'not_found' : fallbackStatus >= 500 ? 'internal' : 'bad_request', message);
  }
}
