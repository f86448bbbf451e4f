/**
 * Which OS account runs a user's jobs (docs/security.md). A server or worker that is not root
 * runs every job as itself: it cannot do otherwise. One that is root runs the admin's jobs as
 * itself, as before, and every other user's jobs as the OS account mapped to that user in the
 * token book (`jobwire token create USER --os-user NAME`, `jobwire token map USER NAME`); a user
 * with no mapping gets no job run at all rather than one running as root.
 *
 * Embedded servers ask this at submit (nothing is queued for an unmapped user) and again when
 * the job starts (a mapping may have changed meanwhile). Workers of distributed mode ask it when
 * the job starts, from the token book every server shares in Redis: the mapping is read where the
 * job runs, when it runs, so remapping or revoking a user also holds for jobs already queued,
 * and the name is resolved to a uid by the machine whose accounts it names.
 * @module
 */
import { hostname } from 'node:os';
import { JobwireError } from '@jobwire/client';
import { findAccount, runsAsRoot, type OsAccount } from '../executors/local/os-account.js';
import type { UserEntry } from '../auth/tokens.js';

/** A job of a user who has no OS account to run as: refused (HTTP 403, code "forbidden"). */
export class UnmappedUserError extends JobwireError {
  override name = 'UnmappedUserError';
  constructor(message: string, options?: ErrorOptions) {
    super('forbidden', message, options);
  }
}

/** Finds what the token book says of a user. */
export type UserLookup = (user: string) => UserEntry | undefined | Promise<UserEntry | undefined>;

/** Options of {@link accountPolicy}. */
export interface AccountPolicyOptions {
  /** Whether this process may switch accounts. @defaultValue process.getuid() === 0 */
  root?: boolean;
}

/**
 * The rule above as a function: owner → the account to run as (undefined: this process's own),
 * or a rejection with an {@link UnmappedUserError} saying why and how to fix it.
 */
export function accountPolicy(lookup: UserLookup, options: AccountPolicyOptions = {}): (owner: string) => Promise<OsAccount | undefined> {
  const root = options.root ?? runsAsRoot();
  return async (owner) => {
    if (!root) return undefined;
    const entry = await lookup(owner);
    if (entry?.admin === true) return undefined;
    if (entry?.osUser === undefined) {
      throw new UnmappedUserError(
        `user "${owner}" has no OS account to run jobs as: jobwire runs as root here, and runs only the admin's jobs as root. ` +
          `Map the user to an account: jobwire token map ${owner} OSUSER (see docs/security.md)`,
      );
    }
    const account = await findAccount(entry.osUser);
    if (account === undefined) {
      throw new UnmappedUserError(`user "${owner}" is mapped to OS account "${entry.osUser}", which does not exist on ${hostname()}; create it, or map the user to another one`);
    }
    // A user mapped to this process's own account is trusted with it, as the admin is.
    return account.uid === process.getuid?.() ? undefined : account;
  };
}
