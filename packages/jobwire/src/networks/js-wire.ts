/**
 * What the server side of a network (`run.ts`) and the js harness (`js-host.ts`) share: the
 * harness's configuration, what a js job's module and `setup` see, and how values travel as
 * JSON over the job's stdin and stdout (see `js-host.ts` for the protocol).
 * @module
 */

/** Options of a builtin, from its job in the network file. */
export interface BuiltinOptions {
  path?: string;
  columns?: string[];
  interval?: number;
  count?: number;
}

/** What marks a line of the job's stdout as a frame. */
export const FRAME_PREFIX = '\x1ejw ';

/** Framing of one pipe, as the harness needs it. */
export interface HostPipe {
  name: string;
  /** `lines`: strings; `json`: JSON values; `bytes`: bytes. */
  kind: 'lines' | 'json' | 'bytes';
}

/** The harness's argument: which module, and the job's pipes. */
export interface HostConfig {
  network: string;
  job: string;
  /** Absolute path of the user's module, or a builtin's name with its options. */
  module?: string;
  export?: string;
  builtin?: { name: string; options: BuiltinOptions };
  inputs: HostPipe[];
  outputs: HostPipe[];
  /** Times this job was restarted before (0 for its first run). */
  restarts: number;
  /** Times this job was moved before (placed again after its worker or its wiring server stopped). */
  moves: number;
}

/** What `setup(ctx)` receives. */
export interface NetworkJobContext {
  network: string;
  job: string;
  inputs: string[];
  outputs: string[];
  /** Aborted when the job is stopped. */
  signal: AbortSignal;
  /** Times this job was restarted before (0 for its first run). */
  restarts: number;
  /** Times this job was moved before: placed again after its worker died or its wiring server stopped (not restarts). */
  moves: number;
  /** The set being handled by `run`: its sequence number, which inputs are fillers, and whether a producer restarted. */
  frame: { seq: number; gap: boolean[]; reset: boolean };
}

/** Members a network job's module may export. */
export interface NetworkJobModule {
  setup?: (ctx: NetworkJobContext) => unknown;
  run: (...inputs: unknown[]) => unknown;
  /**
   * Called (and awaited) before the harness reports sets as handled: a module whose `run` hands
   * its work to something asynchronous (a file stream, a connection) finishes it here, so a set
   * is never committed before its effect is done.
   */
  flush?: () => unknown;
  finish?: () => unknown;
}

/** A value on the wire: bytes become `{"$bytes": base64}`. */
export function toWire(value: unknown): unknown {
  return value instanceof Uint8Array ? { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') } : value;
}

/** The reverse of {@link toWire}. */
export function fromWire(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as { $bytes?: unknown }).$bytes === 'string' && Object.keys(value).length === 1) {
    return new Uint8Array(Buffer.from((value as { $bytes: string }).$bytes, 'base64'));
  }
  return value;
}
