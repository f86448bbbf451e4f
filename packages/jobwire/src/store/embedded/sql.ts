/**
 * Every SQL statement of the embedded store, each prepared once and named for what it does.
 * The transactions that combine them (a state change plus its event) live in
 * `sqlite-store.ts`, one method each.
 * @module
 */
import type Database from 'better-sqlite3';

/** A `jobs` row as SQLite returns it. */
export interface JobRow {
  id: string;
  owner: string;
  name: string;
  grp: string;
  status: string;
  queue: string;
  progress: string | null;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  /** JSON text, NULL for no result. */
  result: string | null;
  url: string | null;
  interactive: number;
  tty: number;
  node: string | null;
  reason: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  /** JSON text. */
  description: string;
  job_token: string;
  pid: number | null;
  /** JSON text of a JobProcess, NULL when not running. */
  process: string | null;
}

/** A `groups` row. */
export interface GroupRow {
  owner: string;
  path: string;
  created_at: string;
}

/** An `events` row, as read back for replay. */
export interface EventRow {
  id: number;
  verb: string;
  info: string;
}

/** Statuses from which a job may still change (the SQL twin of `!isFinal`). */
const ACTIVE = `('Queued', 'Running')`;

/**
 * Subtree condition on a `grp`/`path` column: the path itself or anything below it. See the
 * note in `migrations.ts` on why a byte range replaces LIKE.
 */
function inSubtree(column: string): string {
  return `(${column} = @group OR (${column} >= @group || ':' AND ${column} < @group || ';'))`;
}

/** The prepared statements of one database connection. */
export class Statements {
  /** Inserts a new Queued job. */
  readonly insertJob: Database.Statement;
  /** Creates a group if it does not exist yet; `changes` tells whether it did. */
  readonly insertGroupIfMissing: Database.Statement;
  /** Appends an event; `lastInsertRowid` is its id. */
  readonly insertEvent: Database.Statement;
  /** One job by id, any owner. */
  readonly selectJob: Database.Statement;
  /** One job by id and owner. */
  readonly selectOwnedJob: Database.Statement;
  /** What a stdin write checks of a job of an owner: `interactive` and `status`. */
  readonly selectStdinTarget: Database.Statement;
  /** Queued → Running, returning the job; no row when it was not Queued. */
  readonly markRunning: Database.Statement;
  /** Sets the progress message of a non-final job. */
  readonly setProgress: Database.Statement;
  /** Sets the wait reason of a Queued job when it differs; no row when unchanged or not Queued. */
  readonly setReason: Database.Statement;
  /** Moves a non-final job to a final status; no row when it was final already. */
  readonly finishJob: Database.Statement;
  /** Deletes a final job, returning it; no row when it is missing or not final. */
  readonly deleteFinalJob: Database.Statement;
  /** Queued jobs of one queue, oldest first. */
  readonly selectQueued: Database.Statement;
  /** Number of Queued and Running jobs per queue and status (one partial index each). */
  readonly countActiveByQueue: Database.Statement;
  /** All Running jobs, oldest first. */
  readonly selectRunning: Database.Statement;
  /** The Running jobs of one node, oldest first. */
  readonly selectRunningOfNode: Database.Statement;
  /** Running → Lost with a reason, returning the job. */
  readonly loseJob: Database.Statement;
  /** All groups of an owner, oldest first. */
  readonly selectGroups: Database.Statement;
  /** Groups of an owner in a subtree, oldest first. */
  readonly selectGroupsUnder: Database.Statement;
  /** Events of an owner after an id. */
  readonly selectEvents: Database.Statement;
  /** Events of an owner in a subtree after an id. */
  readonly selectEventsUnder: Database.Statement;
  /** Id of the newest event, 0 when none. */
  readonly selectLastEventId: Database.Statement;
  /** Records a running job's executor state (JSON). */
  readonly setExecutorState: Database.Statement;
  /** A job's executor state (JSON or NULL). */
  readonly selectExecutorState: Database.Statement;

  /** Statements of `listJobs`, one per combination of filters, prepared on first use. */
  readonly #listJobs = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {
    this.insertJob = db.prepare(`
      INSERT INTO jobs (id, owner, name, grp, status, queue, progress, exit_code, signal, error, result, url,
                        interactive, tty, node, reason, created_at, started_at, ended_at, description, job_token, pid)
      VALUES (@id, @owner, @name, @group, 'Queued', @queue, NULL, NULL, NULL, NULL, NULL, @url,
              @interactive, @tty, NULL, NULL, @createdAt, NULL, NULL, @description, @jobToken, NULL)
      RETURNING *`);
    this.insertGroupIfMissing = db.prepare(`
      INSERT INTO groups (owner, path, created_at) VALUES (@owner, @path, @createdAt)
      ON CONFLICT (owner, path) DO NOTHING`);
    this.insertEvent = db.prepare(`
      INSERT INTO events (owner, grp, verb, info, at) VALUES (@owner, @group, @verb, @info, @at)`);
    this.selectJob = db.prepare(`SELECT * FROM jobs WHERE id = ?`);
    this.selectOwnedJob = db.prepare(`SELECT * FROM jobs WHERE id = ? AND owner = ?`);
    this.selectStdinTarget = db.prepare(`SELECT interactive, status FROM jobs WHERE id = ? AND owner = ?`);
    // A job that starts no longer waits, so its reason is cleared.
    this.markRunning = db.prepare(`
      UPDATE jobs SET status = 'Running', started_at = @startedAt, pid = @pid, process = @process, node = @node, reason = NULL
      WHERE id = @id AND status = 'Queued'
      RETURNING *`);
    this.setProgress = db.prepare(`
      UPDATE jobs SET progress = @message WHERE id = @id AND status IN ${ACTIVE} RETURNING *`);
    this.setReason = db.prepare(`
      UPDATE jobs SET reason = @reason WHERE id = @id AND status IN ('Queued', 'Running') AND reason IS NOT @reason RETURNING *`);
    // The pid means "while running"; a finished job has none.
    this.finishJob = db.prepare(`
      UPDATE jobs SET status = @status, exit_code = @exitCode, signal = @signal, error = @error,
                      result = @result, ended_at = @endedAt, pid = NULL, process = NULL
      WHERE id = @id AND status IN ${ACTIVE}
      RETURNING *`);
    this.deleteFinalJob = db.prepare(`DELETE FROM jobs WHERE id = ? AND status NOT IN ${ACTIVE} RETURNING *`);
    this.selectQueued = db.prepare(`
      SELECT * FROM jobs WHERE status = 'Queued' AND queue = ? ORDER BY created_at, id LIMIT ?`);
    this.countActiveByQueue = db.prepare(`
      SELECT queue, 'Queued' AS status, count(*) AS n FROM jobs WHERE status = 'Queued' GROUP BY queue
      UNION ALL
      SELECT queue, 'Running' AS status, count(*) AS n FROM jobs WHERE status = 'Running' GROUP BY queue`);
    this.selectRunning = db.prepare(`SELECT * FROM jobs WHERE status = 'Running' ORDER BY created_at, id`);
    this.selectRunningOfNode = db.prepare(`SELECT * FROM jobs WHERE status = 'Running' AND node = ? ORDER BY created_at, id`);
    this.loseJob = db.prepare(`
      UPDATE jobs SET status = 'Lost', error = @error, ended_at = @endedAt, pid = NULL, process = NULL
      WHERE id = @id AND status = 'Running'
      RETURNING *`);
    this.selectGroups = db.prepare(`SELECT * FROM groups WHERE owner = @owner ORDER BY created_at, path`);
    this.selectGroupsUnder = db.prepare(`
      SELECT * FROM groups WHERE owner = @owner AND ${inSubtree('path')} ORDER BY created_at, path`);
    this.selectEvents = db.prepare(`
      SELECT id, verb, info FROM events WHERE owner = @owner AND id > @sinceId ORDER BY id LIMIT @limit`);
    this.selectEventsUnder = db.prepare(`
      SELECT id, verb, info FROM events
      WHERE owner = @owner AND id > @sinceId AND ${inSubtree('grp')}
      ORDER BY id LIMIT @limit`);
    this.selectLastEventId = db.prepare(`SELECT coalesce(max(id), 0) FROM events`).pluck();
    this.setExecutorState = db.prepare(`UPDATE jobs SET executor_state = @state WHERE id = @id AND status IN ${ACTIVE}`);
    this.selectExecutorState = db.prepare(`SELECT executor_state FROM jobs WHERE id = ?`).pluck();
  }

  /**
   * The page query of `listJobs` for one combination of filters. Parameters: @owner, @limit and,
   * when used, @group, @statuses (a JSON array), @name, @afterCreatedAt and @afterId.
   * Only fixed fragments go into the SQL text; every value is bound.
   */
  listJobs(filters: { group: boolean; status: boolean; name: boolean; after: boolean }): Database.Statement {
    const key = `${+filters.group}${+filters.status}${+filters.name}${+filters.after}`;
    let statement = this.#listJobs.get(key);
    if (statement === undefined) {
      const where = ['owner = @owner'];
      if (filters.group) where.push(inSubtree('grp'));
      if (filters.status) where.push(`status IN (SELECT value FROM json_each(@statuses))`);
      if (filters.name) where.push('name = @name');
      // Row-value comparison keeps the (created_at, id) index usable for the cursor.
      if (filters.after) where.push('(created_at, id) > (@afterCreatedAt, @afterId)');
      statement = this.db.prepare(`SELECT * FROM jobs WHERE ${where.join(' AND ')} ORDER BY created_at, id LIMIT @limit`);
      this.#listJobs.set(key, statement);
    }
    return statement;
  }
}
