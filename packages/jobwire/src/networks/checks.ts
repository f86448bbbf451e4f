/**
 * The checks a network passes before anything starts: what a schema cannot see. Pipes named
 * but not declared, pipes with no producer or two, cycles that could deadlock, executables whose
 * pipes have nowhere to go, builtins given the wrong framing, js modules that are missing or do
 * not export `run`. All issues are collected, each with its field and line, and thrown as one
 * {@link NetworkFileError}.
 *
 * js modules are imported in a child process (`inspect-module.ts`), not checked statically: an
 * import is the only sure way to learn what a module exports (re-exports, generated exports),
 * and a child keeps the module's side effects out of the checking process.
 * @module
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stronglyConnected } from '../graphs.js';
import { NetworkFileError, type FieldPath, type LoadedNetwork, type NetworkIssue } from './file.js';
import type { ModuleReport } from './inspect-module.js';
import { neverBlocks, type Network, type NetworkJob, type NetworkPipe } from './model.js';

/** A placeholder of an executable's arguments: `{in.NAME}` or `{out.NAME}`. */
export const PIPE_PLACEHOLDER = /\{(in|out)\.([A-Za-z0-9][A-Za-z0-9_-]*)\}/g;

/** Options of {@link checkNetwork}. */
export interface CheckNetworkOptions {
  /** Import js modules in a child process to check their exports. @defaultValue true */
  importModules?: boolean;
  /** Most milliseconds one module import may take. @defaultValue 20000 */
  importTimeoutMs?: number;
}

/** Runs every check; throws a {@link NetworkFileError} listing every issue found. */
export async function checkNetwork(loaded: LoadedNetwork, options: CheckNetworkOptions = {}): Promise<void> {
  const issues = await networkIssues(loaded, options);
  if (issues.length > 0) throw new NetworkFileError(loaded.file, issues);
}

/** Every issue of the network, in file order of jobs, then pipes, then cycles. */
export async function networkIssues(loaded: LoadedNetwork, options: CheckNetworkOptions = {}): Promise<NetworkIssue[]> {
  const { network, issue } = loaded;
  const issues: NetworkIssue[] = [];
  const say = (path: FieldPath, message: string, at?: 'key' | 'value'): void => {
    issues.push(issue(path, message, at));
  };
  for (const job of Object.values(network.jobs)) checkJob(network, job, say);
  checkPipes(network, say);
  checkCycles(network, say);
  if (options.importModules !== false) {
    const modules = Object.values(network.jobs).filter((job) => job.kind === 'js');
    const found = await Promise.all(modules.map((job) => moduleIssue(job, options.importTimeoutMs ?? 20_000)));
    found.forEach((message, i) => {
      if (message !== undefined) say(['jobs', modules[i]!.name, 'js'], message);
    });
  }
  return issues;
}

type Say = (path: FieldPath, message: string, at?: 'key' | 'value') => void;

/** What a builtin needs: how many inputs and outputs, which framings, which fields. */
interface BuiltinRule {
  inputs: [min: number, max: number];
  outputs: [min: number, max: number];
  /** Framings accepted on inputs / outputs (`frames` means frames of JSON). */
  framings: ReadonlyArray<'bytes' | 'lines' | 'frames'>;
  /** Fields it requires. */
  requires: ReadonlyArray<'path' | 'interval'>;
  /** Fields it accepts beyond the common ones. */
  accepts: ReadonlyArray<'path' | 'columns' | 'interval' | 'count'>;
}

const ANY = Number.POSITIVE_INFINITY;

const BUILTIN_RULES: Record<NonNullable<NetworkJob['builtin']>, BuiltinRule> = {
  'csv-sink': { inputs: [1, ANY], outputs: [0, 0], framings: ['lines', 'frames'], requires: ['path'], accepts: ['path', 'columns'] },
  interactive: { inputs: [0, 0], outputs: [1, ANY], framings: ['lines', 'bytes'], requires: [], accepts: [] },
  logging: { inputs: [0, 0], outputs: [0, 0], framings: [], requires: ['path'], accepts: ['path', 'interval'] },
  clock: { inputs: [0, 0], outputs: [1, ANY], framings: ['frames', 'lines'], requires: ['interval'], accepts: ['interval', 'count'] },
  forward: { inputs: [1, 1], outputs: [1, ANY], framings: ['bytes', 'lines', 'frames'], requires: [], accepts: [] },
};

const BUILTIN_FIELDS = ['path', 'columns', 'interval', 'count'] as const;

/** Shortest `interval` of the logging builtin, in ms. */
export const LOGGING_MIN_INTERVAL = 100;

function checkJob(network: Network, job: NetworkJob, say: Say): void {
  const at = ['jobs', job.name];
  if (job.kind === undefined) {
    const given = (['command', 'js', 'builtin'] as const).filter((k) => job[k === 'command' ? 'command' : k] !== undefined);
    say(given.length === 0 ? at : [...at, given[1]!], given.length === 0 ? 'give one of "command", "js" and "builtin"' : `give only one of "command", "js" and "builtin" (this job has ${given.join(' and ')})`, 'key');
  }
  if (job.strayExport) say([...at, 'export'], '"export" names an export of a js module; this job has no "js"', 'key');
  for (const list of ['inputs', 'outputs'] as const) {
    const seen = new Set<string>();
    job[list].forEach((pipe, i) => {
      if (seen.has(pipe)) say([...at, list, i], `pipe "${pipe}" is listed twice`);
      seen.add(pipe);
      if (!network.pipes[pipe]!.declared) say([...at, list, i], `unknown pipe "${pipe}": declare it under "pipes"`);
    });
  }
  if (job.align !== undefined && job.inputs.length < 2) say([...at, 'align'], `"align" joins several inputs; this job has ${job.inputs.length}`);
  if (job.kind !== 'builtin') {
    for (const field of BUILTIN_FIELDS) if (job[field] !== undefined) say([...at, field], `"${field}" is a field of builtin jobs`, 'key');
  }
  if (job.kind === 'executable') checkExecutable(job, say);
  if (job.kind === 'builtin') checkBuiltin(network, job, say);
}

function checkExecutable(job: NetworkJob, say: Say): void {
  const at = ['jobs', job.name, 'command'];
  const named = { in: new Set<string>(), out: new Set<string>() };
  job.command!.forEach((arg, i) => {
    for (const [, direction, pipe] of arg.matchAll(PIPE_PLACEHOLDER)) {
      const mine = direction === 'in' ? job.inputs : job.outputs;
      if (!mine.includes(pipe!)) say([...at, i], `{${direction}.${pipe}} names no pipe of this job's ${direction === 'in' ? 'inputs' : 'outputs'}`);
      named[direction as 'in' | 'out'].add(pipe!);
    }
  });
  // What no placeholder names goes through stdin / stdout: one pipe each at most.
  for (const [direction, list, stream] of [['in', 'inputs', 'stdin'], ['out', 'outputs', 'stdout']] as const) {
    const left = job[list].filter((p) => !named[direction].has(p));
    if (left.length > 1) {
      say(['jobs', job.name, list], `an executable reads one ${list === 'inputs' ? 'input' : 'output'} through ${stream}; name the others in "command" as {${direction}.NAME} (not named: ${left.join(', ')})`);
    }
  }
}

function checkBuiltin(network: Network, job: NetworkJob, say: Say): void {
  const at = ['jobs', job.name];
  const rule = BUILTIN_RULES[job.builtin!];
  for (const list of ['inputs', 'outputs'] as const) {
    const [min, max] = rule[list];
    const n = job[list].length;
    if (n < min || n > max) {
      const wanted = max === 0 ? 'none' : min === max ? `exactly ${min}` : max === ANY ? `at least ${min}` : `${min} to ${max}`;
      say(n === 0 ? [...at, 'builtin'] : [...at, list], `builtin ${job.builtin} takes ${wanted} ${list}, not ${n}`);
    }
  }
  for (const field of rule.requires) if (job[field] === undefined) say([...at, 'builtin'], `builtin ${job.builtin} needs "${field}"`);
  for (const field of BUILTIN_FIELDS) {
    if (job[field] !== undefined && !rule.accepts.includes(field)) say([...at, field], `builtin ${job.builtin} takes no "${field}"`, 'key');
  }
  const framingOf = (pipe: NetworkPipe): string => (pipe.framing === 'frames' ? `frames (${pipe.encoding})` : pipe.framing);
  const accepted = (pipe: NetworkPipe): boolean => rule.framings.includes(pipe.framing) && (pipe.framing !== 'frames' || pipe.encoding === 'json' || job.builtin === 'forward');
  for (const list of ['inputs', 'outputs'] as const) {
    job[list].forEach((name, i) => {
      const pipe = network.pipes[name]!;
      if (pipe.declared && !accepted(pipe)) {
        const wants = rule.framings.map((f) => (f === 'frames' && job.builtin !== 'forward' ? 'frames (json)' : f)).join(' or ');
        say([...at, list, i], `builtin ${job.builtin} needs pipes framed as ${wants}; pipe "${name}" is framed as ${framingOf(pipe)}`);
      }
    });
  }
  // Each sample of the logging builtin reads /proc for every process of the machine.
  if (job.builtin === 'logging' && job.interval !== undefined && job.interval < LOGGING_MIN_INTERVAL) {
    say([...at, 'interval'], `builtin logging samples at most every ${LOGGING_MIN_INTERVAL} ms (interval ${job.interval})`);
  }
  if (job.builtin === 'forward' && job.inputs.length === 1) {
    const input = network.pipes[job.inputs[0]!]!;
    job.outputs.forEach((name, i) => {
      const output = network.pipes[name]!;
      if (input.declared && output.declared && framingOf(input) !== framingOf(output)) {
        say([...at, 'outputs', i], `builtin forward copies frames as they are: pipe "${name}" is framed as ${framingOf(output)}, its input "${input.name}" as ${framingOf(input)}`);
      }
    });
  }
}

function checkPipes(network: Network, say: Say): void {
  for (const pipe of Object.values(network.pipes)) {
    if (!pipe.declared) continue;
    if (pipe.producers.length === 0) say(['pipes', pipe.name], `pipe "${pipe.name}" has no producer: no job lists it in "outputs"`, 'key');
    if (pipe.producers.length > 1) {
      const second = network.jobs[pipe.producers[1]!]!;
      say(['jobs', second.name, 'outputs', second.outputs.indexOf(pipe.name)], `pipe "${pipe.name}" has two producers (${pipe.producers.join(' and ')}); a pipe has one`);
    }
    if (pipe.encoding !== undefined && pipe.framing !== 'frames') say(['pipes', pipe.name, 'encoding'], '"encoding" is for framing: frames', 'key');
    if (pipe.queue.mode === 'latest' && pipe.queue.overflow !== 'block') say(['pipes', pipe.name, 'queue', 'overflow'], 'a "latest" queue never fills, so it has no overflow policy');
  }
}

/**
 * A cycle whose pipes all block can deadlock: each job waits for room in the next. A cycle
 * passes when one of its pipes never blocks (it drops, or is read as `latest`).
 */
function checkCycles(network: Network, say: Say): void {
  const edges = new Map<string, Array<{ to: string; pipe: string }>>();
  for (const pipe of Object.values(network.pipes)) {
    if (neverBlocks(pipe)) continue;
    for (const from of pipe.producers) for (const to of pipe.consumers) (edges.get(from) ?? edges.set(from, []).get(from)!).push({ to, pipe: pipe.name });
  }
  for (const cycle of blockingCycles(Object.keys(network.jobs), edges)) {
    const first = network.pipes[cycle.pipes[0]!]!;
    say(['pipes', first.name], `cycle ${cycle.jobs.join(' → ')} → ${cycle.jobs[0]} (pipes ${cycle.pipes.join(', ')}) could deadlock: give one of its pipes queue.overflow drop-oldest or drop-newest, or queue.mode latest`, 'key');
  }
}

/** One cycle per strongly connected part of the graph that has one: a walk inside the part until a job repeats. */
function blockingCycles(nodes: string[], edges: Map<string, Array<{ to: string; pipe: string }>>): Array<{ jobs: string[]; pipes: string[] }> {
  const successors = new Map([...edges].map(([from, out]) => [from, out.map((e) => e.to)]));
  const cycles: Array<{ jobs: string[]; pipes: string[] }> = [];
  for (const part of stronglyConnected(nodes, successors)) {
    const inPart = new Set(part);
    const start = nodes.find((n) => inPart.has(n))!;
    if (part.length === 1 && !(edges.get(start) ?? []).some((e) => e.to === start)) continue;
    const jobs: string[] = [];
    const pipes: string[] = [];
    let at = start;
    while (!jobs.includes(at)) {
      jobs.push(at);
      const edge = (edges.get(at) ?? []).find((e) => inPart.has(e.to))!;
      pipes.push(edge.pipe);
      at = edge.to;
    }
    const from = jobs.indexOf(at);
    cycles.push({ jobs: jobs.slice(from), pipes: pipes.slice(from) });
  }
  return cycles;
}

/** Why a js job's module cannot serve, or undefined when it can. */
async function moduleIssue(job: NetworkJob, timeoutMs: number): Promise<string | undefined> {
  const { module, export: exportName } = job.js!;
  try {
    const info = await stat(module);
    if (!info.isFile()) return `${module} is not a file`;
  } catch {
    return `module not found: ${module}`;
  }
  const report = await inspectModule(module, exportName, timeoutMs);
  if (!report.ok) return `cannot import ${module}: ${report.error}`;
  if (!report.hasExport) return `${module} has no export "${exportName}"`;
  const owner = exportName === undefined ? module : `${module} (export "${exportName}")`;
  const { setup, run, finish } = report.members;
  if (run === 'missing') return `${owner} exports no "run"`;
  if (run === 'other') return `"run" of ${owner} is not a function`;
  const source = job.inputs.length === 0;
  if (source && run === 'function') return `job has no inputs, so it is a source: "run" of ${owner} must be a generator (async function*)`;
  if (!source && run !== 'function') return `"run" of ${owner} is a generator, but the job has inputs: a generator is for sources`;
  for (const [name, kind] of [['setup', setup], ['finish', finish]] as const) {
    if (kind !== 'missing' && kind !== 'function') return `"${name}" of ${owner} is not a plain function`;
  }
  return undefined;
}

const INSPECTOR = fileURLToPath(new URL('./inspect-module.js', import.meta.url));

function inspectModule(module: string, exportName: string | undefined, timeoutMs: number): Promise<ModuleReport> {
  const args = [INSPECTOR, pathToFileURL(module).href, ...(exportName === undefined ? [] : [exportName])];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (error, stdout) => {
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line !== undefined) {
        try {
          resolve(JSON.parse(line) as ModuleReport);
          return;
        } catch {
          // fall through: report the failure below
        }
      }
      resolve({ ok: false, error: error?.killed ? `the import took longer than ${timeoutMs} ms` : (error?.message ?? 'no report from the import') });
    });
  });
}
