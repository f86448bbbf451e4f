/**
 * A network as jobwire works with it: the validated file with every default filled in, each
 * job's kind decided, relative paths made absolute, and each pipe's producer and consumers
 * found. Built by {@link resolveNetwork}; what no schema can see (unknown pipes, producers,
 * cycles, modules) is left to `checks.ts`.
 * @module
 */
import { isAbsolute, resolve } from 'node:path';
import type { Builtin, FrameEncoding, Framing, GapPolicy, ParsedNetwork, Queue, QueueSpec } from '@jobwire/client';

/** How a job runs. */
export type JobKind = 'executable' | 'js' | 'builtin';

/** Restart policy of a job with its defaults filled in. */
export interface Restart {
  policy: 'never' | 'on-failure' | 'always';
  max: number;
}

/** Alignment of a job's inputs with its defaults filled in. */
export interface Alignment {
  by: 'seq';
  gap: GapPolicy;
}

/** One job of a {@link Network}. Fields of other kinds stay as written, for the checks to refuse. */
export interface NetworkJob {
  name: string;
  /** Undefined when the file gives no kind or more than one (the checks say which). */
  kind: JobKind | undefined;
  command?: string[];
  js?: { module: string; export?: string };
  builtin?: Builtin;
  inputs: string[];
  outputs: string[];
  pools?: string[];
  node?: string;
  restart: Restart;
  align?: Alignment;
  environment?: Record<string, string>;
  workingDirectory?: string;
  path?: string;
  columns?: string[];
  interval?: number;
  count?: number;
  /** `export` written without `js` (refused by the checks). */
  strayExport?: boolean;
}

/** One pipe of a {@link Network}. */
export interface NetworkPipe {
  name: string;
  framing: Framing;
  /** Set for `framing: frames` (default `json`); otherwise what the file wrote, for the checks. */
  encoding?: FrameEncoding;
  queue: Queue;
  /** Jobs listing this pipe in `outputs` (one, once the checks pass). */
  producers: string[];
  /** Jobs listing this pipe in `inputs`, in file order. */
  consumers: string[];
  /** False when no `pipes:` entry declares it (refused by the checks). */
  declared: boolean;
}

/** A network with defaults filled in. Jobs and pipes keep the order of the file. */
export interface Network {
  name: string;
  jobs: Record<string, NetworkJob>;
  pipes: Record<string, NetworkPipe>;
  /** Folder relative paths were resolved against. */
  baseDir: string;
}

/** Restart policy when neither the job nor `defaults` say. */
export const DEFAULT_RESTART: Restart = { policy: 'on-failure', max: 3 };

/** Fills in defaults and resolves relative paths against `baseDir`. */
export function resolveNetwork(spec: ParsedNetwork, baseDir: string, defaultQueue: Queue): Network {
  const queueDefaults = mergeQueue(defaultQueue, spec.defaults?.queue);
  const restartDefaults: Restart = { ...DEFAULT_RESTART, ...spec.defaults?.restart };
  const pipes: Record<string, NetworkPipe> = {};
  for (const [name, pipe] of Object.entries(spec.pipes ?? {})) {
    const framing = pipe?.framing ?? 'lines';
    pipes[name] = {
      name,
      framing,
      ...(pipe?.encoding !== undefined || framing === 'frames' ? { encoding: pipe?.encoding ?? 'json' } : {}),
      queue: mergeQueue(queueDefaults, pipe?.queue),
      producers: [],
      consumers: [],
      declared: true,
    };
  }
  const pipeOf = (name: string): NetworkPipe =>
    (pipes[name] ??= { name, framing: 'lines', queue: queueDefaults, producers: [], consumers: [], declared: false });
  const jobs: Record<string, NetworkJob> = {};
  for (const [name, job] of Object.entries(spec.jobs)) {
    const kinds = (['command', 'js', 'builtin'] as const).filter((k) => job[k] !== undefined);
    const kind = kinds.length === 1 ? ({ command: 'executable', js: 'js', builtin: 'builtin' } as const)[kinds[0]!] : undefined;
    const inputs = job.inputs ?? [];
    const outputs = job.outputs ?? [];
    for (const p of inputs) pipeOf(p).consumers.push(name);
    for (const p of outputs) pipeOf(p).producers.push(name);
    const resolved: NetworkJob = { name, kind, inputs, outputs, restart: { ...restartDefaults, ...job.restart } };
    if (job.command !== undefined) resolved.command = [resolveProgram(job.command[0]!, baseDir), ...job.command.slice(1)];
    if (job.js !== undefined) resolved.js = { module: resolvePath(job.js, baseDir), ...(job.export !== undefined ? { export: job.export } : {}) };
    else if (job.export !== undefined) resolved.strayExport = true;
    if (job.builtin !== undefined) resolved.builtin = job.builtin;
    const pools = job.pools ?? spec.defaults?.pools;
    if (pools !== undefined) resolved.pools = pools;
    if (job.node !== undefined) resolved.node = job.node;
    if (job.align !== undefined) {
      const align = job.align === 'seq' ? { by: 'seq' as const } : job.align;
      resolved.align = { by: 'seq', gap: align.gap ?? 'wait' };
    }
    if (job.environment !== undefined) resolved.environment = job.environment;
    if (job.workingDirectory !== undefined) resolved.workingDirectory = resolvePath(job.workingDirectory, baseDir);
    if (job.path !== undefined) resolved.path = resolvePath(job.path, baseDir);
    if (job.columns !== undefined) resolved.columns = job.columns;
    if (job.interval !== undefined) resolved.interval = job.interval;
    if (job.count !== undefined) resolved.count = job.count;
    jobs[name] = resolved;
  }
  return { name: spec.name, jobs, pipes, baseDir };
}

function mergeQueue(base: Queue, over: QueueSpec | undefined): Queue {
  const merged: Queue = { ...base };
  if (over?.max !== undefined) merged.max = over.max;
  if (over?.overflow !== undefined) merged.overflow = over.overflow;
  if (over?.mode !== undefined) merged.mode = over.mode;
  if (over?.default !== undefined) merged.default = over.default;
  return merged;
}

function resolvePath(path: string, baseDir: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** A program named with a slash (`./tool`, `bin/tool`) is a path; a bare name is looked up on PATH. */
function resolveProgram(program: string, baseDir: string): string {
  return program.includes('/') ? resolvePath(program, baseDir) : program;
}

/** True when a pipe can never stop its producer: it drops, or its consumers take the latest value. */
export function neverBlocks(pipe: NetworkPipe): boolean {
  return pipe.queue.overflow !== 'block' || pipe.queue.mode === 'latest';
}
