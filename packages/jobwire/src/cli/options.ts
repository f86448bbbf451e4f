/**
 * Parsing of option values and the job description built from `submit`/`run` options. Value
 * parsers throw commander's InvalidArgumentError, so a bad value is a usage error (exit 2) that
 * names the option.
 * @module
 */
import { InvalidArgumentError } from 'commander';
import { isAbsolute, resolve } from 'node:path';
import type { JobDescription, JobStatus } from '@jobwire/client';
import { PLACEMENT_NAME } from '../jobs/placement-names.js';
import { UsageError } from './errors.js';

/** A parser for an integer option in [min, max]. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = Number(value.trim());
    if (value.trim() === '' || !Number.isInteger(n)) throw new InvalidArgumentError('expected a whole number.');
    if (n < min || n > max) throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `expected a number >= ${min}.` : `expected a number from ${min} to ${max}.`);
    return n;
  };
}

/** A parser for a non-negative number of seconds (fractions allowed). */
export function seconds(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds >= 0.');
  return n;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Collects repeated `--env K=V` into a record; a later K wins. */
export function envPair(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected NAME=VALUE.');
  const name = value.slice(0, eq);
  if (!ENV_NAME.test(name)) throw new InvalidArgumentError(`"${name}" is not a variable name (letters, digits and _, not starting with a digit).`);
  return { ...previous, [name]: value.slice(eq + 1) };
}

/** A parser for a pool or node name (distributed mode). */
export function placementName(what: string): (value: string) => string {
  return (value) => {
    if (!PLACEMENT_NAME.test(value)) throw new InvalidArgumentError(`a ${what} name is letters, digits, ".", "_" and "-", starting with a letter or digit (at most 128).`);
    return value;
  };
}

/** Collects repeated `--pool P` values, in order, without repeats. */
export function poolList(value: string, previous: string[] = []): string[] {
  const pool = placementName('pool')(value);
  return previous.includes(pool) ? previous : [...previous, pool];
}

const STATUSES: readonly JobStatus[] = ['Queued', 'Running', 'Success', 'Failed', 'Cancelled', 'Lost'];

/** Collects `--status` values: comma lists, repeatable, any letter case. */
export function statusList(value: string, previous: JobStatus[] = []): JobStatus[] {
  const out = [...previous];
  for (const raw of value.split(',')) {
    const word = raw.trim().toLowerCase();
    if (word === '') continue;
    const status = STATUSES.find((s) => s.toLowerCase() === word);
    if (!status) throw new InvalidArgumentError(`unknown status "${raw.trim()}"; one of ${STATUSES.join(', ')}.`);
    if (!out.includes(status)) out.push(status);
  }
  return out;
}

/** Options of `submit` and `run` that describe the job. */
export interface JobOptions {
  js?: string;
  jsModule?: string;
  export?: string;
  cmd?: string;
  /** Executable and its arguments (after `--`). */
  command?: string[];
  name?: string;
  group?: string;
  queue?: string;
  env?: Record<string, string>;
  cwd?: string;
  maxRuntime?: number;
  /** Preferred worker node (distributed mode). */
  node?: string;
  /** Worker pools, highest priority first (distributed mode; `--pool`, repeatable). */
  pool?: string[];
  /** Retries when the worker is lost (distributed mode). */
  retries?: number;
  interactive?: boolean;
  tty?: boolean;
  /** Local files uploaded into the job's working directory (`--input`, repeatable). */
  input?: string[];
  /** Patterns of files kept with the job after it ends (`--output-file`, repeatable). */
  outputFile?: string[];
  /** Terminal size for tty jobs. */
  size?: { cols: number; rows: number };
}

/** Longest default name taken from a `--cmd` line. */
const NAME_FROM_LINE = 80;

/** `--cmd "make -j8 && make test"` is named after its (first) line, shortened. */
export function nameFromLine(line: string): string {
  const first = line.trim().split('\n')[0]!.trim();
  return first.length <= NAME_FROM_LINE ? first : `${first.slice(0, NAME_FROM_LINE - 1)}…`;
}

/**
 * A module path the user typed relative to their shell (`./job.mjs`, `../x.js`) becomes absolute,
 * as the server resolves relative paths against the job's working directory; a bare name is left
 * for the server (a package name, or relative to `--cwd`).
 */
export function resolveModulePath(path: string, cwd: string): string {
  if (isAbsolute(path)) return path;
  if (path === '.' || path === '..' || path.startsWith('./') || path.startsWith('../')) return resolve(cwd, path);
  return path;
}

/**
 * The job description for `submit`/`run` options. Exactly one of `--js`, `--js-module`, `--cmd`
 * and a command after `--` says what runs. Throws a UsageError otherwise.
 */
export function buildDescription(o: JobOptions, cwd: string = process.cwd()): JobDescription {
  const sources = [
    o.js !== undefined && '--js',
    o.jsModule !== undefined && '--js-module',
    o.cmd !== undefined && '--cmd',
    o.command !== undefined && o.command.length > 0 && 'a command',
  ].filter((s): s is string => typeof s === 'string');
  if (sources.length === 0) throw new UsageError('nothing to run: give --js CODE, --js-module PATH, --cmd "LINE" or -- COMMAND [ARGS...]');
  if (sources.length > 1) throw new UsageError(`give only one of --js, --js-module, --cmd and a command (got ${sources.join(' and ')})`);
  if (o.export !== undefined && o.jsModule === undefined) throw new UsageError('--export goes with --js-module');

  const d: JobDescription = {};
  if (o.js !== undefined) {
    if (o.js.trim() === '') throw new UsageError('--js: the code is empty');
    d.js = { code: o.js };
  } else if (o.jsModule !== undefined) {
    if (o.jsModule.trim() === '') throw new UsageError('--js-module: the path is empty');
    d.js = { module: resolveModulePath(o.jsModule, cwd) };
    if (o.export !== undefined) d.js.export = o.export;
  } else if (o.cmd !== undefined) {
    if (o.cmd.trim() === '') throw new UsageError('--cmd: the command line is empty');
    d.executable = 'sh';
    d.arguments = ['-c', o.cmd];
    d.name = nameFromLine(o.cmd);
  } else {
    const [executable, ...args] = o.command!;
    if (executable!.trim() === '') throw new UsageError('the command is empty');
    d.executable = executable!;
    d.arguments = args;
  }
  return withJobSettings(d, o, cwd);
}

/**
 * Adds what the options say about how and where a job runs (name, group, queue, environment,
 * directory, limits, placement, interactivity) to `d`: for {@link buildDescription} and for a
 * description read from a file (JDL), whose own values the options override.
 */
export function withJobSettings(d: JobDescription, o: Omit<JobOptions, 'js' | 'jsModule' | 'export' | 'cmd' | 'command'>, cwd: string = process.cwd()): JobDescription {
  if (o.name !== undefined) d.name = o.name;
  if (o.group !== undefined) d.group = o.group;
  if (o.queue !== undefined) d.queueName = o.queue;
  if (o.env !== undefined && Object.keys(o.env).length > 0) d.environment = { ...d.environment, ...o.env };
  // As srun: a job starts where it was submitted from unless told otherwise (the server falls
  // back to its work folder where this directory does not exist).
  if (o.cwd !== undefined) d.workingDirectory = resolve(cwd, o.cwd);
  else if (d.workingDirectory === undefined) d.submitDirectory = resolve(cwd);
  if (o.maxRuntime !== undefined) d.maxRuntime = o.maxRuntime;
  if (o.node !== undefined) d.node = o.node;
  if (o.pool !== undefined && o.pool.length > 0) d.pools = o.pool;
  if (o.retries !== undefined) d.retries = o.retries;
  if (o.interactive) d.interactive = true;
  if (o.tty) d.tty = true;
  if (o.tty && o.size) d.size = o.size;
  if (o.outputFile !== undefined && o.outputFile.length > 0) d.outputFiles = [...(d.outputFiles ?? []), ...o.outputFile];
  return d;
}

/** Collects a repeatable option's values in order. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
