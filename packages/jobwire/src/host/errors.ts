/**
 * Errors of the job host's client side. Each carries a stable code from the SDK's table
 * (`packages/client/src/errors.ts`), so a server can hand them on unchanged.
 * @module
 */
import { JobwireError } from '@jobwire/client';

/** No job host could be reached or started for a home. */
export class HostUnavailableError extends JobwireError {
  override name = 'HostUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('connection', message, options);
  }
}

/** The host and the client share no protocol version. */
export class HostVersionError extends JobwireError {
  override name = 'HostVersionError';
  constructor(
    message: string,
    /** Versions the host speaks. */
    readonly hostVersions: number[],
    options?: ErrorOptions,
  ) {
    super('protocol', message, options);
  }
}

/** The connection to the host ended (the host exited or died) before an answer came. */
export class HostConnectionClosedError extends JobwireError {
  override name = 'HostConnectionClosedError';
  constructor(message: string, options?: ErrorOptions) {
    super('connection', message, options);
  }
}

/** The host broke the protocol (a frame this client cannot read). */
export class HostProtocolError extends JobwireError {
  override name = 'HostProtocolError';
  constructor(message: string, options?: ErrorOptions) {
    super('protocol', message, options);
  }
}
