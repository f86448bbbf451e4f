/**
 * Schema of the embedded store's SQLite database, as an ordered list of migrations. The
 * database's `user_version` counts the migrations applied; opening a database applies the
 * missing ones in one transaction and refuses a database written by a newer jobwire.
 * @module
 */
import type Database from 'better-sqlite3';
import { JobwireError } from '@jobwire/client';

/**
 * Migration N (1-based) brings `user_version` from N-1 to N. Append only: never edit a
 * migration that has shipped.
 *
 * Notes on the shape:
 * - `grp` is the job's group path ('' for the root). A subtree query is `grp = p OR
 *   (grp >= p || ':' AND grp < p || ';')`: ';' follows ':' in byte order, so that range is
 *   exactly the paths starting with `p:`, with no LIKE escaping and an index range scan.
 * - `result` and `description` are JSON text; `result` is NULL when the job returned nothing.
 * - The scheduler's indexes are partial: they hold only Queued (or Running) jobs, so they stay
 *   small however many finished jobs accumulate. SQLite uses a partial index only when the
 *   query repeats its condition literally (`status = 'Queued'`, not an IN list).
 * - Events keep the info object as it was when the event happened, so a replay shows history
 *   rather than the current state.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    grp         TEXT NOT NULL,
    status      TEXT NOT NULL,
    queue       TEXT NOT NULL,
    progress    TEXT,
    exit_code   INTEGER,
    signal      TEXT,
    error       TEXT,
    result      TEXT,
    url         TEXT,
    interactive INTEGER NOT NULL,
    tty         INTEGER NOT NULL,
    node        TEXT,
    reason      TEXT,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    ended_at    TEXT,
    description TEXT NOT NULL,
    job_token   TEXT NOT NULL,
    pid         INTEGER
  );
  CREATE INDEX jobs_by_owner_created ON jobs (owner, created_at, id);
  CREATE INDEX jobs_by_owner_group ON jobs (owner, grp, created_at, id);
  CREATE INDEX jobs_queued ON jobs (queue, created_at, id) WHERE status = 'Queued';
  CREATE INDEX jobs_running ON jobs (queue, node) WHERE status = 'Running';

  CREATE TABLE groups (
    owner      TEXT NOT NULL,
    path       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (owner, path)
  ) WITHOUT ROWID;

  CREATE TABLE events (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    grp   TEXT NOT NULL,
    verb  TEXT NOT NULL,
    info  TEXT NOT NULL,
    at    TEXT NOT NULL
  );
  CREATE INDEX events_by_owner ON events (owner, id);
  `,
  // JSON of the running job's JobProcess (leader and runner identities), NULL when not running.
  `
  ALTER TABLE jobs ADD COLUMN process TEXT;
  `,
  // JSON of what the job's executor needs to find it again after a restart (ExecutorState), NULL when none.
  `
  ALTER TABLE jobs ADD COLUMN executor_state TEXT;
  `,
];

/** Schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database to {@link SCHEMA_VERSION}; throws if it is newer than this code. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new JobwireError(
      'internal',
      `the database ${db.name} has schema version ${current}, newer than this jobwire understands (${SCHEMA_VERSION})`,
    );
  }
  if (current === SCHEMA_VERSION) return;
  db.transaction(() => {
    for (let version = current; version < SCHEMA_VERSION; version++) db.exec(MIGRATIONS[version]!);
    // PRAGMA takes no bound parameters; the value is our own integer.
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
