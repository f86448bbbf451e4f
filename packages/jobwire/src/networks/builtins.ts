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
 * @module
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { BuiltinOptions, HostConfig, NetworkJobContext, NetworkJobModule } from './js-wire.js';

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
  const write = async (text: string): Promise<void> => {
    if (!out.write(text)) await once(out, 'drain');
  };
  return {
    async setup(ctx: NetworkJobContext) {
      // A restarted (or moved) sink goes on after the rows it wrote before.
      const first = ctx.restarts === 0 && ctx.moves === 0;
      out = createWriteStream(options.path!, { flags: first ? 'w' : 'a' });
      await once(out, 'open');
      if (options.columns !== undefined && first) await write(`${options.columns.map(csvField).join(',')}\n`);
    },
    async run(...inputs: unknown[]) {
      await write(`${inputs.flatMap((v) => cells(v, options.columns)).map(csvField).join(',')}\n`);
    },
    async finish() {
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

/** Builtins the harness can load, by name. */
export const BUILTINS: Record<string, (options: BuiltinOptions, config: HostConfig) => NetworkJobModule> = {
  'csv-sink': csvSink,
  forward,
  clock,
  interactive,
};
