/**
 * What the server side of a network (`run.ts`) and the js harness (`js-host.ts`) share: the
 * harness's configuration, what a js job's module and `setup` see, and how values travel over
 * the job's stdin and stdout, as JSON or in their pipe's own encoding (see `js-host.ts` for the
 * protocol).
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

/**
 * First character of a line in the compact form (see `js-host.ts`): a set of a job with one input
 * (`=SEQ FLAGS PAYLOAD`), or after {@link FRAME_PREFIX} an output frame (`=PORT PAYLOAD`), the
 * payload in its pipe's own encoding rather than as a JSON value.
 */
export const COMPACT = '=';

/** Flags of a compact set line: the set's frame starts a new epoch, or is a filler. */
export const SetFlag = { RESET: 1, GAP: 2 } as const;

/**
 * A value as the payload text of a compact output frame of a pipe of `kind`, when it has one: a
 * string without a newline or a finite number for `lines` (as the server would store it), the
 * JSON text of a value for `json`. Undefined for the others, which go as JSON (`[port,value]`),
 * where the server turns them into payloads or refuses them.
 */
export function compactText(kind: HostPipe['kind'], value: unknown): string | undefined {
  if (kind === 'lines') {
    if (typeof value === 'string') return value.includes('\n') ? undefined : value;
    return typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;
  }
  if (kind !== 'json' || value instanceof Uint8Array || isWireBytes(value)) return undefined;
  return JSON.stringify(value);
}

function isWireBytes(value: unknown): boolean {
  return value !== null && typeof value === 'object' && typeof (value as { $bytes?: unknown }).$bytes === 'string' && Object.keys(value).length === 1;
}

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
  if (isWireBytes(value)) {
    return new Uint8Array(Buffer.from((value as { $bytes: string }).$bytes, 'base64'));
  }
  return value;
}
