/**
 * The program a function job runs in: a child Node process started by the local executor with
 * `child_process.fork`, never the server itself. It waits for a `start` message on the IPC
 * channel, runs the function, sends back its JSON result or its error, and exits (0 on success,
 * 1 on error) without waiting for timers the function may have left behind.
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
 * @module
 */
import { createRequire, isBuiltin } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { JsFunction } from '@jobwire/client';
import type { FromRunner, ToRunner } from './js-protocol.js';

const controller = new AbortController();
let started = false;

process.on('message', (message: ToRunner) => {
  switch (message.type) {
    case 'start':
      if (!started) {
        started = true;
        void run(message.fn);
      }
      break;
    case 'abort':
      controller.abort();
      break;
    default: {
      const never: never = message;
      void never;
    }
  }
});
// SIGTERM (sent to the whole group right after `abort`) becomes the abort signal too, so the
// function gets the grace period to wind down; SIGKILL follows if it does not.
process.on('SIGTERM', () => controller.abort());
process.on('disconnect', () => {
  controller.abort();
  if (!started) process.exit(1);
});

function send(message: FromRunner): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || process.send === undefined) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/** Reports a progress message to the executor. */
function progress(message: unknown): Promise<void> {
  return send({ type: 'progress', message: typeof message === 'string' ? message : String(message) });
}

// An error thrown from a callback the function left behind (a timer, an unawaited promise)
// would otherwise kill the runner with only a stack on stderr; make it the job's error.
process.on('uncaughtException', (error) => void finish({ type: 'error', error: describeThrown(error) }));

async function run(fn: JsFunction): Promise<void> {
  let outcome: FromRunner;
  try {
    const value = await call(fn);
    outcome = encode(value);
  } catch (error) {
    outcome = { type: 'error', error: describeThrown(error) };
  }
  await finish(outcome);
}

let finishing = false;

/** Reports the outcome, once, then exits. */
async function finish(outcome: FromRunner): Promise<void> {
  if (finishing) return;
  finishing = true;
  await send(outcome);
  // stdout and stderr are pipes, which Node writes synchronously on POSIX: nothing is cut off.
  process.exit(outcome.type === 'result' ? 0 : 1);
}

async function call(fn: JsFunction): Promise<unknown> {
  const args = fn.args ?? [];
  const signal = controller.signal;
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

function encode(value: unknown): FromRunner {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`the function's result cannot be serialised as JSON: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return json === undefined ? { type: 'result' } : { type: 'result', json };
}

function describeThrown(error: unknown): string {
  if (error instanceof Error) {
    const stack = error.stack ?? '';
    return stack.includes(error.message) ? stack : `${error.name}: ${error.message}\n${stack}`;
  }
  let text: string;
  try {
    text = typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    text = String(error);
  }
  return `the function threw a non-Error value: ${text}`;
}
