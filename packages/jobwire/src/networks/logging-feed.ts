/**
 * The server's side of the `logging` builtin: it tells the logging job which jobs to measure.
 *
 * The logging job (`builtins.ts`) measures processes through /proc on its own machine, so it
 * must know each job's process-group leader (pid, start time, boot id), which the server keeps
 * with the job's record. The server writes the list of the network's other jobs to the logging
 * job's stdin as one JSON line, {@link LoggingJobs}, each time it changes (a job starts, ends, or
 * is restarted as a new job), and ends that stdin once every other job's supervision is over; the
 * logging job then takes a last sample and ends.
 * @module
 */
import { isFinal } from '@jobwire/client';
import type { JobService } from '../jobs/service.js';
import type { Store } from '../store/types.js';
import type { ProcessIdentity } from '../executors/local/process-identity.js';

/** How often the server looks at the jobs' records. */
const LOOK_MS = 200;

/** One line written to the logging job's stdin. */
export interface LoggingJobs {
  jobs: Array<{
    name: string;
    id: string;
    /** The job's process-group leader while it runs; null before it starts and after it ends. */
    leader: ProcessIdentity | null;
    startedAt: string | null;
    node: string | null;
  }>;
}

export interface LoggingFeed {
  store: Store;
  service: JobService;
  owner: string;
  /** The logging job. */
  id: string;
  /** The network's other jobs now: name and current job id. */
  jobs(): Array<[name: string, id: string]>;
  /** True once every other job's supervision is over (none will run again). */
  over(): boolean;
  /** Called when the logging job's attempt ends: the feed stops. */
  onEnd(stop: () => void): void;
}

/** Feeds the logging job until the others are over (then ends its stdin) or its attempt ends. */
export async function feedLogging(feed: LoggingFeed): Promise<void> {
  let stopped = false;
  let wake: (() => void) | undefined;
  feed.onEnd(() => {
    stopped = true;
    wake?.();
  });
  let offset = 0;
  let sent = '';
  while (!stopped) {
    const over = feed.over();
    const jobs: LoggingJobs['jobs'] = [];
    for (const [name, id] of feed.jobs()) {
      const record = await feed.store.getJob(id, feed.owner);
      const running = record !== undefined && !isFinal(record.status);
      jobs.push({ name, id, leader: running ? (record.process?.leader ?? null) : null, startedAt: record?.startedAt ?? null, node: record?.node ?? null });
    }
    const line = `${JSON.stringify({ jobs } satisfies LoggingJobs)}\n`;
    if (line !== sent) {
      offset = await feed.store.streams.appendStdin(feed.id, offset, Buffer.from(line, 'utf8'));
      sent = line;
    }
    if (over) {
      await feed.service.closeStdin(feed.owner, feed.id);
      return;
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, LOOK_MS).unref();
    });
  }
}
