/**
 * The program function jobs run in: a child Node process started by the local executor, never
 * the server itself. It serves in one of two ways, chosen by its first message:
 * - **one-shot** (`start`, js-process.ts): runs one function, sends back its JSON result or its
 *   error, and exits (0 on success, 1 on error) without waiting for timers the function may have
 *   left behind;
 * - **pooled** (`run`, js-pool.ts): runs functions one after another, each with its own
 *   AbortSignal, working directory and environment. After each job it puts back the globals the
 *   job added or changed, writes the job's end marker to stdout and stderr, and reports the
 *   outcome with `reusable: false` when the job left something behind (a timer, a child
 *   process, a socket; see {@link leftovers}) or crashed the runner's state, so that the pool
 *   stops this runner instead of handing it the next job. An interactive job's `process.stdin`
 *   is a stream of its own, fed over the IPC channel (`stdin` messages) and replaced after the
 *   job; the runner's real stdin is /dev/null, so a job that reads file descriptor 0 itself gets
 *   no input in a pooled runner.
 *
 * Two forms of function (see `JsFunction` in @jobwire/client):
 * - `code`: the body of an async function with the parameters `progress`, `signal` and `args`.
 *   It runs in sloppy mode (as a `Function` constructor body does), so `x = 5; return x + 10`
 *   works; start the body with `'use strict'` to opt in. `await import('node:fs')` works inside.
 * - `module` + `export` (default `"default"`): the module is imported (an absolute path, a path
 *   relative to the working directory, or a package name found from the working directory) and
 *   the export is called as `fn(...args, { progress, signal })`.
 *
 * `progress(message)` reports a progress message (returns a promise that settles once it is
 * sent; awaiting it is optional). `signal` is an AbortSignal that aborts when the job is stopped:
 * on the executor's `abort` message, on SIGTERM, and if the server goes away.
 *
 * The stack of an error a function throws is reported without this runner's own frames
 * ({@link trimStack}); lines of a `code` body are numbered from the body's first line.
 * @module
 */
import { createRequire, isBuiltin } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { JsFunction } from '@jobwire/client';
import { applyEnvDiff } from '../../env-diff.js';
import type { FromRunner, ToRunner } from './js-protocol.js';

type Outcome = Extract<FromRunner, { type: 'result' | 'error' }>;

// Built-ins this runner uses after a job has run, taken before any job could replace them (a
// job may assign `JSON = null`; the globals are put back only once it has ended).
const { stringify } = JSON;
const { ownKeys } = Reflect;
const { getOwnPropertyDescriptor, defineProperty } = Object;
// stdout and stderr are taken now too, with the `write` they had: a job may replace either.
const stdio = [process.stdout, process.stderr].map((stream) => ({ stream, write: stream.write.bind(stream) }));

/** The job being run: its number (pooled only), abort controller, and how to fail it from outside. */
interface Current {
  job: number | undefined;
  controller: AbortController;
  /** Ends the job with `error` (an uncaught exception) and marks the runner unusable. */
  crash(error: unknown): void;
}

let mode: 'one-shot' | 'pooled' | undefined;
let current: Current | undefined;

/**
 * The stdin of the pooled job being run, when it is interactive: a stream standing in for
 * `process.stdin`, fed by `stdin` messages. Each message is answered with `stdin-taken` once the
 * stream has room (at once, or when the job reads on), so the executor writes at the job's pace.
 */
let jobStdin: { job: number; stream: Readable; feed(data: Buffer): void } | undefined;
/** `process.stdin` as Node defines it (a lazy getter), put back after each job. */
const processStdin = getOwnPropertyDescriptor(process, 'stdin');

/** Makes a stream fed by `stdin` messages the job's `process.stdin`. */
function openJobStdin(job: number): void {
  let waiting = 0;
  const taken = (): Promise<void> => send({ type: 'stdin-taken', job });
  const stream = new Readable({
    read() {
      for (; waiting > 0; waiting--) void taken();
    },
  });
  jobStdin = {
    job,
    stream,
    feed(data) {
      if (stream.push(data)) void taken();
      else waiting++;
    },
  };
  defineProperty(process, 'stdin', { configurable: true, enumerable: processStdin?.enumerable ?? true, get: () => stream });
}

/** Ends the job's stdin stream and puts `process.stdin` back. */
function closeJobStdin(): void {
  if (jobStdin === undefined) return;
  jobStdin.stream.destroy();
  jobStdin = undefined;
  if (processStdin !== undefined) defineProperty(process, 'stdin', processStdin);
}

process.on('message', (message: ToRunner) => {
  switch (message.type) {
    case 'start':
      if (mode === undefined) {
        mode = 'one-shot';
        void runOnce(message.fn);
      }
      break;
    case 'run':
      if (mode === 'one-shot' || current !== undefined) break;
      mode = 'pooled';
      void runPooled(message);
      break;
    case 'abort':
      if (current !== undefined && current.job === message.job) current.controller.abort();
      break;
    case 'stdin':
      if (jobStdin !== undefined && jobStdin.job === message.job) jobStdin.feed(Buffer.from(message.data, 'base64'));
      // A job that has ended takes nothing more; the answer keeps the executor from waiting.
      else void send({ type: 'stdin-taken', job: message.job });
      break;
    case 'stdin-end':
      if (jobStdin !== undefined && jobStdin.job === message.job) jobStdin.stream.push(null);
      break;
    default: {
      const never: never = message;
      void never;
    }
  }
});
// SIGTERM (sent to the whole group right after `abort`) becomes the abort signal too, so the
// function gets the grace period to wind down; SIGKILL follows if it does not.
process.on('SIGTERM', () => current?.controller.abort());
process.on('disconnect', () => {
  current?.controller.abort();
  // Nobody is left to report to: an idle runner goes; a busy one goes once its job has settled.
  if (current === undefined) process.exit(mode === 'pooled' ? 0 : 1);
});
// An error thrown from a callback the function left behind (a timer, an unawaited promise)
// would otherwise kill the runner with only a stack on stderr; make it the job's error. A pooled
// runner that is idle has no job to blame it on (it cannot happen to a runner that was reused:
// see `leftovers`), so it just goes and the pool replaces it.
process.on('uncaughtException', (error) => {
  if (current !== undefined) current.crash(error);
  else process.exit(1);
});

function send(message: FromRunner): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || process.send === undefined) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/** A `progress` function that reports for `job`. */
function progressOf(job: number | undefined): (message: unknown) => Promise<void> {
  return (message) => send({ type: 'progress', message: typeof message === 'string' ? message : String(message), ...(job === undefined ? {} : { job }) });
}

/** Runs `fn` for `current`; resolves with its outcome, or the first uncaught exception's. */
async function attempt(fn: JsFunction, job: number | undefined): Promise<{ outcome: Outcome; crashed: boolean }> {
  let crash!: (error: unknown) => void;
  const crashed = new Promise<Outcome>((resolve) => (crash = (error) => resolve({ type: 'error', error: describeThrown(error) })));
  const controller = new AbortController();
  current = { job, controller, crash };
  let didCrash = false;
  const ran = (async (): Promise<Outcome> => {
    try {
      return encode(await call(fn, controller.signal, progressOf(job)));
    } catch (error) {
      return { type: 'error', error: describeThrown(error) };
    }
  })();
  const outcome = await Promise.race([ran, crashed.then((o) => ((didCrash = true), o))]);
  return { outcome, crashed: didCrash };
}

/** One-shot: runs the function, reports once, exits. */
async function runOnce(fn: JsFunction): Promise<void> {
  const { outcome } = await attempt(fn, undefined);
  // Output still queued for stdout and stderr (sockets: Node writes them asynchronously) would
  // be cut off by process.exit.
  await flushStdio(Buffer.alloc(0));
  await send(outcome);
  process.exit(outcome.type === 'result' ? 0 : 1);
}

/** Globals as the runner left them before its first job (see {@link restoreGlobals}). */
let globalsAtStart: Map<string | symbol, PropertyDescriptor> | undefined;
/** Active resources of an idle runner, by type (see {@link leftovers}). */
let resourcesAtStart: Map<string, number> | undefined;

/** Pooled: runs one job, cleans up after it, marks the end of its output, reports. */
async function runPooled(message: Extract<ToRunner, { type: 'run' }>): Promise<void> {
  if (resourcesAtStart === undefined) {
    // stdout and stderr open their pipes when first used: open them now, so that they count as
    // the runner's own and not as something the first job left behind.
    void process.stdout;
    void process.stderr;
    resourcesAtStart = countResources();
  }
  globalsAtStart ??= snapshotGlobals();
  let outcome: Outcome;
  let crashed = false;
  try {
    // First: the next job's difference is from this one's, whether or not it gets to run.
    const env = jobEnvOf(message);
    process.chdir(message.cwd);
    setEnv(env);
    if (message.stdin === true) openJobStdin(message.job);
    ({ outcome, crashed } = await attempt(message.fn, message.job));
  } catch (error) {
    outcome = { type: 'error', error: `cannot start the function: ${error instanceof Error ? error.message : String(error)}` };
  }
  closeJobStdin();
  restoreGlobals(globalsAtStart);
  // The marker follows the job's output on each stream, once what it wrote has left.
  await flushStdio(Buffer.from(message.marker));
  const reusable = !crashed && leftovers().length === 0;
  current = undefined;
  await send({ ...outcome, job: message.job, reusable });
  if (!process.connected) process.exit(0);
}

/**
 * Writes `tail` after everything queued on stdout and on stderr, with the streams' own `write`
 * (not one a job put in its place); resolves once both have handed it to the kernel (or failed:
 * nobody is reading any more).
 */
function flushStdio(tail: Buffer): Promise<unknown> {
  return Promise.all(stdio.map(({ write }) => new Promise<void>((resolve) => write(tail, () => resolve()))));
}

/** The environment of the previous job (what a `run`'s `envDiff` changes). */
let previousEnv: Record<string, string> | undefined;

/** A `run`'s environment: whole, or the previous job's changed by its `envDiff`. */
function jobEnvOf(message: Extract<ToRunner, { type: 'run' }>): Record<string, string> {
  let env: Record<string, string>;
  if ('env' in message) env = message.env;
  else if (previousEnv === undefined) throw new Error('the runner was sent an environment difference before any environment');
  else env = applyEnvDiff(previousEnv, message.envDiff);
  previousEnv = env;
  return env;
}

/**
 * Makes `env` the whole of `process.env`. Only what differs is set: jobs of one server share
 * most of their environment, and each write to `process.env` is a `setenv` through C++ (a read
 * costs less): writing all of about 40 variables took about 0.27 ms per job on a loaded VM,
 * the comparison and the few that differ about 0.1 ms.
 */
function setEnv(env: Record<string, string>): void {
  for (const key of Object.keys(process.env)) if (!Object.hasOwn(env, key)) delete process.env[key];
  for (const key in env) {
    const value = env[key]!;
    if (process.env[key] !== value) process.env[key] = value;
  }
}

function snapshotGlobals(): Map<string | symbol, PropertyDescriptor> {
  const globals = new Map<string | symbol, PropertyDescriptor>();
  for (const key of ownKeys(globalThis)) {
    const descriptor = getOwnPropertyDescriptor(globalThis, key);
    if (descriptor !== undefined) globals.set(key, descriptor);
  }
  return globals;
}

/**
 * Deletes the globals a job added and puts back those it replaced or deleted (own properties of
 * `globalThis`, compared by value or accessor). What it does not undo: changes inside a global
 * object (a method added to `Array.prototype`), and the state of modules, which stay loaded.
 */
function restoreGlobals(start: Map<string | symbol, PropertyDescriptor>): void {
  // A `write` a job put on stdout or stderr (to capture output) goes with it.
  for (const { stream } of stdio) if (Object.hasOwn(stream, 'write')) delete (stream as { write?: unknown }).write;
  const record = globalThis as unknown as Record<string | symbol, unknown>;
  for (const key of ownKeys(globalThis)) {
    if (start.has(key)) continue;
    try {
      delete record[key];
    } catch {
      // Non-configurable (defined so by the job): it stays, as it would in any realm.
    }
  }
  for (const [key, was] of start) {
    const now = getOwnPropertyDescriptor(globalThis, key);
    const same = now !== undefined && now.value === was.value && now.get === was.get && now.set === was.set;
    if (same) continue;
    try {
      defineProperty(globalThis, key, was);
    } catch {
      // The job made it non-configurable: nothing to put back.
    }
  }
}

/**
 * Resource types that are requests in flight on a handle (closing it, writing to it: a progress
 * message not awaited), never something that runs later by itself; the handles are counted.
 */
const OWN_RESOURCES = new Set(['CloseReq', 'WriteWrap', 'SimpleWriteWrap', 'ShutdownWrap']);

function countResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) if (!OWN_RESOURCES.has(type)) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/**
 * What keeps the event loop busy beyond what an idle runner has: timers, immediates, child
 * processes, sockets, servers, file requests a job started and left behind. A runner with
 * leftovers is not reused: they would run (and write output) during the next job. Unref'd
 * timers and handles are not seen (Node does not list them).
 */
function leftovers(): string[] {
  const found: string[] = [];
  for (const [type, count] of countResources()) if (count > (resourcesAtStart?.get(type) ?? 0)) found.push(type);
  return found;
}

async function call(fn: JsFunction, signal: AbortSignal, progress: (message: unknown) => Promise<void>): Promise<unknown> {
  const args = fn.args ?? [];
  if (fn.code !== undefined) {
    const AsyncFunction = (async () => {}).constructor as new (...params: string[]) => (...values: unknown[]) => Promise<unknown>;
    return await new AsyncFunction('progress', 'signal', 'args', fn.code)(progress, signal, args);
  }
  if (fn.module === undefined) throw new TypeError('the function job gives neither "code" nor "module"');
  const name = fn.export ?? 'default';
  const namespace = (await import(moduleUrl(fn.module, process.cwd()))) as Record<string, unknown>;
  const target = namespace[name];
  if (typeof target !== 'function') {
    throw new TypeError(
      name in namespace
        ? `export "${name}" of module "${fn.module}" is not a function (it is ${typeof target})`
        : `module "${fn.module}" has no export "${name}"`,
    );
  }
  return await (target as (...values: unknown[]) => unknown)(...args, { progress, signal });
}

/** Where to import `specifier` from: a file URL for paths, the resolved file for packages. */
function moduleUrl(specifier: string, cwd: string): string {
  if (isBuiltin(specifier)) return specifier;
  const relative = specifier.startsWith('./') || specifier.startsWith('../') || specifier === '.' || specifier === '..';
  if (path.isAbsolute(specifier) || relative || fs.existsSync(path.resolve(cwd, specifier))) {
    return pathToFileURL(path.resolve(cwd, specifier)).href;
  }
  try {
    // Packages are looked up from the job's working directory, as `node` run there would.
    return pathToFileURL(createRequire(path.join(cwd, 'index.js')).resolve(specifier)).href;
  } catch {
    // ESM-only packages without a "require" export: let import() resolve it from here.
    return specifier;
  }
}

function encode(value: unknown): Outcome {
  let json: string | undefined;
  try {
    json = stringify(value);
  } catch (error) {
    throw new TypeError(`the function's result cannot be serialised as JSON: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return json === undefined ? { type: 'result' } : { type: 'result', json };
}

function describeThrown(error: unknown): string {
  if (error instanceof Error) {
    const stack = trimStack(error.stack ?? '');
    return stack.includes(error.message) ? stack : `${error.name}: ${error.message}\n${stack}`;
  }
  let text: string;
  try {
    text = typeof error === 'string' ? error : (stringify(error) ?? String(error));
  } catch {
    text = String(error);
  }
  return `the function threw a non-Error value: ${text}`;
}

/** This file, as stack frames name it. */
const SELF_URL = import.meta.url;
const SELF_PATH = fileURLToPath(import.meta.url);
/**
 * Lines the `AsyncFunction` constructor puts before a `code` body
 * (`async function anonymous(progress,signal,args\n) {\n`).
 */
const CODE_HEADER_LINES = 2;
/** A frame in a `code` body: `(eval at call (file:///…/js-runner.js:L:C), <anonymous>:L:C)`. */
const CODE_FRAME = /\(eval at [^()]*\([^()]*\), <anonymous>:(\d+):(\d+)\)/;

/**
 * The user's part of a stack: frames of a `code` body read `<job code>:LINE:COLUMN` (lines of
 * the body), this runner's frames are dropped, and so are Node's own frames below them.
 */
function trimStack(stack: string): string {
  const lines = stack.split('\n').flatMap((line) => {
    if (!/^\s+at /.test(line)) return [line];
    const code = CODE_FRAME.exec(line);
    if (code !== null) {
      const where = `<job code>:${Math.max(1, Number(code[1]) - CODE_HEADER_LINES)}:${code[2]}`;
      return [line.replace(/^(\s+at )eval \(.*\)$/, `$1${where}`).replace(CODE_FRAME, `(${where})`)];
    }
    return line.includes(SELF_URL) || line.includes(SELF_PATH) ? [] : [line];
  });
  while (lines.length > 1 && /^\s+at (.* \()?node:/.test(lines.at(-1)!)) lines.pop();
  return lines.join('\n');
}
