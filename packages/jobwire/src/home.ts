/**
 * The jobwire home holds tokens, the database and every job's output: only its owner may look
 * inside. `mkdirSync(home, { mode: 0o700 })` does nothing for a folder that already exists, so
 * {@link prepareHome} also checks who owns it and tightens its mode.
 * @module
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';

/** The home is unfit to use (another user's folder, or not a folder). */
export class UnsafeHomeError extends Error {
  override name = 'UnsafeHomeError';
  /** Stable code for callers that map errors. */
  readonly code = 'JOBWIRE_UNSAFE_HOME';
  constructor(
    message: string,
    /** The home in question. */
    readonly home: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** What {@link prepareHome} found and did. */
export interface PreparedHome {
  /** The mode the home had before, when it was wider than 0700 and has been tightened. */
  tightenedFrom?: number;
}

/**
 * Creates the home (mode 0700) or makes an existing one private: a home owned by this user is
 * chmod-ed to 0700 when group or others had any access; a home owned by anyone else is refused
 * with {@link UnsafeHomeError}, changing nothing (their folder is theirs to fix, and they could
 * read or swap what we put there).
 */
export function prepareHome(home: string): PreparedHome {
  let stats;
  try {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    stats = statSync(home);
  } catch (err) {
    throw new UnsafeHomeError(`cannot use ${home} as the jobwire home: ${(err as Error).message}`, home, { cause: err });
  }
  if (!stats.isDirectory()) throw new UnsafeHomeError(`the jobwire home ${home} is not a folder`, home);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new UnsafeHomeError(
      `the jobwire home ${home} belongs to another user (uid ${stats.uid}; this process runs as uid ${uid}): ` +
        'it would hold tokens and job output, so use a home of your own (--home or JOBWIRE_HOME)',
      home,
    );
  }
  const mode = stats.mode & 0o777;
  if ((mode & 0o077) === 0) return {};
  chmodSync(home, 0o700);
  return { tightenedFrom: mode };
}
