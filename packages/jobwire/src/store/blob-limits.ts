/**
 * The one error both {@link FileBlobs} implementations give for a file over its limit.
 * @module
 */
import { BadRequestError } from '@jobwire/client';

/** `name` grew past `limit` bytes (HTTP 413). */
export function blobTooLarge(name: string, limit: number): BadRequestError {
  return new BadRequestError(`${name}: larger than the limit of ${limit} bytes`, { code: 'payload_too_large' });
}
