/**
 * The harness a network's js and builtin jobs run in: a function job (`js: { module: this file,
 * export: "hostNetworkJob" }`) that loads the job's module — the user's, or a builtin from
 * `builtins.ts` — and carries its frames over the job's stdin and stdout as lines of JSON:
 *
 * - **in** (server → job, stdin): one line per aligned set of input frames,
 *   `{"seq":N,"in":[v0,v1,…],"gap":[…],"reset":bool}`; each value as {@link payloadToValue}
 *   gives it, bytes as `{"$bytes":"<base64>"}`. A job with one input gets its sets in the
 *   compact form instead, `=SEQ FLAGS PAYLOAD` (FLAGS a digit, {@link SetFlag}): the payload as
 *   its pipe stores it — the line, the JSON text — or in base64 for bytes; no JSON to build or
 *   parse per set (a payload holding a newline goes as JSON). Stdin ends when every input has ended.
 * - **out** (job → server, stdout): one line per output frame, {@link FRAME_PREFIX} then
 *   `[port,value]` in JSON, bytes as `{"$bytes":…}` — or, for a string or number to a `lines`
 *   pipe and a value to a `json` pipe, the compact `=PORT PAYLOAD` ({@link compactText}); after each set's frames, {@link FRAME_PREFIX}
 *   `+N`: N sets are handled, so the server commits their input frames (a set taken but not
 *   handled when the job crashes comes again to the restarted job). The frames and `+N` lines of
 *   every set of one stdin read go out in one write; the `+N` after each set lets the server store
 *   and commit them a few sets at a time (see `#storeSets` in `run.ts`). Other lines (the job's
 *   own `process.stdout.write`) are kept as the job's output and are no frames; `console.log`
 *   goes to stderr. Once the job's signal aborts (it was cancelled, or its server went away) it
 *   handles no more sets and does not call `finish()`: what it was sent and did not handle
 *   comes again to the job after it.
 *
 * `setup(ctx)` runs once before any input; `run(...inputs)` once per set, its value going to
 * the outputs (one value for a job with one output, an array with one per output otherwise,
 * `undefined` for none); a source's `run` is a generator whose values each go to the outputs the
 * same way; `finish()` runs after the inputs ended, and its value goes out too.
 * @module
 */
import { StringDecoder } from 'node:string_decoder';
import { pathToFileURL } from 'node:url';
import { BUILTINS } from './builtins.js';
import { COMPACT, FRAME_PREFIX, SetFlag, compactText, fromWire, toWire, type HostConfig, type HostPipe, type NetworkJobContext, type NetworkJobModule } from './js-wire.js';

/** The function job's entry point (called by the function runner with the config and `{ signal }`). */
export async function hostNetworkJob(config: HostConfig, extra: { signal: AbortSignal }): Promise<{ sets: number; frames: number }> {
  // console.log goes to stderr: stdout carries frames.
  console.log = console.error;
  const mod = await loadModule(config);
  const ctx: NetworkJobContext = {
    network: config.network,
    job: config.job,
    inputs: config.inputs.map((p) => p.name),
    outputs: config.outputs.map((p) => p.name),
    signal: extra.signal,
    restarts: config.restarts,
    moves: config.moves ?? 0,
    frame: { seq: 0, gap: [], reset: false },
  };
  let frames = 0;
  let sets = 0;
  /** The output lines of `value` (see the protocol above). */
  const encode = (value: unknown): string => {
    if (value === undefined || config.outputs.length === 0) return '';
    let text = '';
    const values = config.outputs.length === 1 ? [value] : Array.isArray(value) ? value : [value];
    values.forEach((v, port) => {
      if (v === undefined || port >= config.outputs.length) return;
      const compact = compactText(config.outputs[port]!.kind, v);
      text += compact !== undefined ? `${FRAME_PREFIX}${COMPACT}${port} ${compact}\n` : `${FRAME_PREFIX}${JSON.stringify([port, toWire(v)])}\n`;
      frames++;
    });
    return text;
  };
  const write = async (text: string): Promise<void> => {
    if (text !== '' && !process.stdout.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
  };
  /** Writes the frames and `+N` lines of handled sets, once the module's `flush()` says their effects are done. */
  const report = async (text: string): Promise<void> => {
    if (text !== '') await mod.flush?.();
    await write(text);
  };
  await mod.setup?.(ctx);
  if (config.inputs.length === 0) {
    const produced = mod.run.call(mod) as AsyncIterable<unknown> | Iterable<unknown>;
    for await (const value of produced) {
      if (extra.signal.aborted) break;
      await write(encode(value));
    }
  } else {
    // Every set that arrived in one read is handled before one write of their frames, each set's
    // followed by its `+N`: a write (a system call, and a chunk for the host and the server) per
    // read, not per set, and still a commit point after every set.
    const decoder = new StringDecoder('utf8');
    let pending = '';
    for await (const chunk of process.stdin as AsyncIterable<Buffer | string>) {
      const lines = (pending + (typeof chunk === 'string' ? chunk : decoder.write(chunk))).split('\n');
      pending = lines.pop()!;
      let text = '';
      try {
        for (const line of lines) {
          if (line === '') continue;
          // Cancelled (or its server went away): the sets not handled come again to the next job,
          // and its inputs did not end, so no `finish()`.
          if (extra.signal.aborted) {
            await report(text);
            return { sets, frames };
          }
          const set = line.charCodeAt(0) === COMPACT_CODE ? compactSet(line, config.inputs[0]!.kind) : (JSON.parse(line) as { seq: number; in: unknown[]; gap: boolean[]; reset: boolean });
          ctx.frame = { seq: set.seq, gap: set.gap, reset: set.reset };
          let value = mod.run.apply(mod, line.charCodeAt(0) === COMPACT_CODE ? set.in : set.in.map(fromWire));
          if (value instanceof Promise) value = await value;
          sets++;
          text += `${encode(value)}${FRAME_PREFIX}+${sets}\n`;
        }
      } catch (error) {
        // The sets handled before the one that threw are done (a sink's rows are written): they
        // go out and are committed, so a restarted job does not handle them again.
        await report(text);
        throw error;
      }
      await report(text);
    }
  }
  await write(encode(await mod.finish?.()));
  return { sets, frames };
}

const COMPACT_CODE = COMPACT.charCodeAt(0);

/** A set line in the compact form, `=SEQ FLAGS PAYLOAD` (one input; the payload in its pipe's encoding, bytes in base64). */
function compactSet(line: string, kind: HostPipe['kind']): { seq: number; in: unknown[]; gap: boolean[]; reset: boolean } {
  const space = line.indexOf(' ', 1);
  const flags = line.charCodeAt(space + 1) - 0x30;
  const text = line.slice(space + 3);
  const value = kind === 'lines' ? text : kind === 'json' ? (JSON.parse(text) as unknown) : new Uint8Array(Buffer.from(text, 'base64'));
  return { seq: Number(line.slice(1, space)), in: [value], gap: [(flags & SetFlag.GAP) !== 0], reset: (flags & SetFlag.RESET) !== 0 };
}

async function loadModule(config: HostConfig): Promise<NetworkJobModule> {
  if (config.builtin !== undefined) {
    const make = BUILTINS[config.builtin.name];
    if (make === undefined) throw new Error(`no builtin ${JSON.stringify(config.builtin.name)}`);
    return make(config.builtin.options, config);
  }
  const namespace = (await import(pathToFileURL(config.module!).href)) as Record<string, unknown>;
  const holder = (config.export === undefined ? namespace : namespace[config.export]) as NetworkJobModule | undefined;
  if (holder === undefined || typeof holder.run !== 'function') throw new Error(`module ${config.module} has no run${config.export === undefined ? '' : ` in export ${config.export}`}`);
  return holder;
}
