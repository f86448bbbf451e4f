/**
 * The builtin jobs of a network, as modules of the js harness (`js-host.ts`): each runs as a
 * js job does, in a function job, with frames over its stdin and stdout.
 *
 * - `csv-sink`: one CSV row per set of input frames, written to `path` (appended after a restart). A frame that is an
 *   array gives its items as cells; an object gives the fields named in `columns` (or all its
 *   fields); anything else is one cell. `columns` is written first as the header row.
 * - `forward`: each input frame goes to every output.
 * - `clock`: a frame every `interval` ms (`count` frames, or until stopped): `{"tick":N,"time":MS}`
 *   on a JSON pipe, the ISO time on a lines pipe.
 * - `interactive`: each line typed by anyone attached to the job (`jobwire attach`) is a frame.
 * - `logging`: every `interval` ms (default 1000) one CSV row per running job of the network
 *   whose processes run on this machine: cpu seconds, resident bytes, elapsed seconds. The server
 *   tells it the jobs over its stdin (`logging-feed.ts`); it ends when that stdin ends.
 * @module
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { BuiltinOptions, HostConfig, NetworkJobContext, NetworkJobModule } from './js-wire.js';
import type { LoggingJobs } from './logging-feed.js';
import { groupUsage } from './usage.js';

/** One CSV field, quoted when it must be (RFC 4180). */
function csvField(value: unknown): string {
  const text = value === undefined || value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The cells a frame gives a CSV row. */
function cells(value: unknown, columns: string[] | undefined): unknown[] {
  if (Array.isArray(value)) return value;
  if (value instanceof Uint8Array) return [Buffer.from(value).toString('utf8')];
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return (columns ?? Object.keys(record)).map((c) => record[c]);
  }
  return [value];
}

function csvSink(options: BuiltinOptions): NetworkJobModule {
  let out: WriteStream;
  /** Rows of the sets handled since the last flush. */
  let rows = '';
  /** Writes `text` and settles once it is in the file (not only buffered in the stream). */
  const write = (text: string): Promise<unknown> => new Promise((resolve, reject) => out.write(text, (error) => (error ? reject(error) : resolve(undefined))));
  return {
    async setup(ctx: NetworkJobContext) {
      // A restarted (or moved) sink goes on after the rows it wrote before.
      const first = ctx.restarts === 0 && ctx.moves === 0;
      out = createWriteStream(options.path!, { flags: first ? 'w' : 'a' });
      await once(out, 'open');
      if (options.columns !== undefined && first) await write(`${options.columns.map(csvField).join(',')}\n`);
    },
    // Rows are kept until the harness flushes (once per read of the job's stdin, before it reports
    // the sets handled): one write to the file per batch of sets rather than one per row.
    run(...inputs: unknown[]) {
      rows += `${inputs.flatMap((v) => cells(v, options.columns)).map(csvField).join(',')}\n`;
    },
    // A set is reported handled only once its row is in the file: a sink killed with its worker
    // must not have its set committed with the row still in memory or in the stream's buffer.
    async flush() {
      if (rows === '') return;
      const text = rows;
      rows = '';
      await write(text);
    },
    async finish() {
      if (rows !== '') await write(rows);
      out.end();
      await once(out, 'close');
    },
  };
}

function forward(_options: BuiltinOptions, config: HostConfig): NetworkJobModule {
  return { run: (value: unknown) => (config.outputs.length === 1 ? value : config.outputs.map(() => value)) };
}

function clock(options: BuiltinOptions, config: HostConfig): NetworkJobModule {
  let signal: AbortSignal | undefined;
  const json = config.outputs.every((p) => p.kind === 'json');
  return {
    setup(ctx: NetworkJobContext) {
      signal = ctx.signal;
    },
    async *run() {
      const interval = options.interval!;
      const start = Date.now();
      for (let tick = 0; options.count === undefined || tick < options.count; tick++) {
        // Ticks keep to the start's grid, so a slow consumer does not make the clock drift.
        const wait = start + tick * interval - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (signal?.aborted) return;
        const time = Date.now();
        const value = json ? { tick, time } : new Date(time).toISOString();
        yield config.outputs.length === 1 ? value : config.outputs.map(() => value);
      }
    },
  };
}

function interactive(_options: BuiltinOptions, config: HostConfig): NetworkJobModule {
  return {
    async *run() {
      for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
        yield config.outputs.length === 1 ? line : config.outputs.map(() => line);
      }
    },
  };
}

/** The columns of the `logging` builtin's CSV file. */
export const LOGGING_COLUMNS = ['time', 'job', 'id', 'pid', 'cpu_seconds', 'rss_bytes', 'elapsed_seconds', 'processes'] as const;

function logging(options: BuiltinOptions): NetworkJobModule {
  let signal: AbortSignal | undefined;
  let restarts = 0;
  return {
    setup(ctx: NetworkJobContext) {
      signal = ctx.signal;
      restarts = ctx.restarts;
    },
    // A source with no outputs: it yields nothing, and ends when the server ends its stdin.
    async *run() {
      const out = createWriteStream(options.path!, { flags: restarts === 0 ? 'w' : 'a' });
      await once(out, 'open');
      const write = async (text: string): Promise<void> => {
        if (text !== '' && !out.write(text)) await once(out, 'drain');
      };
      if (restarts === 0) await write(`${LOGGING_COLUMNS.join(',')}\n`);
      let jobs: LoggingJobs['jobs'] = [];
      let ended = false;
      let wake: (() => void) | undefined;
      const reading = (async () => {
        for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
          if (line !== '') jobs = (JSON.parse(line) as LoggingJobs).jobs;
        }
      })().finally(() => {
        ended = true;
        wake?.();
      });
      signal?.addEventListener('abort', () => wake?.(), { once: true });
      const interval = options.interval ?? 1000;
      const start = Date.now();
      for (let tick = 0; !ended && signal?.aborted !== true; tick++) {
        const now = Date.now();
        let rows = '';
        for (const job of jobs) {
          const usage = job.leader === null ? undefined : groupUsage(job.leader);
          if (usage === undefined) continue;
          const elapsed = job.startedAt === null ? '' : ((now - Date.parse(job.startedAt)) / 1000).toFixed(3);
          rows += `${[new Date(now).toISOString(), job.name, job.id, job.leader!.pid, usage.cpu.toFixed(2), usage.rss, elapsed, usage.processes].map(csvField).join(',')}\n`;
        }
        await write(rows);
        // Samples keep to the start's grid, as the clock's ticks do.
        const wait = start + (tick + 1) * interval - Date.now();
        if (wait > 0 && !ended) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, wait);
          });
        }
      }
      if (ended) await reading.catch(() => {});
      out.end();
      await once(out, 'close');
    },
  };
}

/** Builtins the harness can load, by name. */
export const BUILTINS: Record<string, (options: BuiltinOptions, config: HostConfig) => NetworkJobModule> = {
  'csv-sink': csvSink,
  forward,
  clock,
  interactive,
  logging,
};
